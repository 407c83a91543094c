"""River model stages, delayed labels, calibration, ensemble weighting and state storage.

Nothing here imports Kafka or Redis: models see ticks' event time only.
"""
