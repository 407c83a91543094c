"""Records, codecs, readers and every touch of Kafka: the edges of quorum."""
