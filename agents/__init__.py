"""Processing agents: feature stages, the voting agent and the pipeline that chains them.

Pure code: event time comes from ticks, state from a store; no Kafka, no Redis, no wall clock.
"""
