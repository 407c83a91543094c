"""Kafka's default key partitioner (murmur2), so a packed record lands where its ticks would.

``quorum replay --no-pack`` lets librdkafka pick the partition of a symbol-keyed record with
``partitioner: murmur2_random``, which is Kafka's Java ``DefaultPartitioner`` (and aiokafka's,
hence Faust's). A batch record has no single key to hash, so replay computes the partition
itself with this module and produces to it explicitly: the symbol's ticks then sit on the same
partition, in the same order, whichever producer (packing or not, Java or Python) sent them.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2 (seed 0x9747b28c) as Java's signed 32-bit int.

    Signed like Java so Kafka's published test vectors read the same here; aiokafka returns the
    same bits unsigned. Arithmetic is masked to 32 bits, as Java's ``int`` overflows.
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest:
        if rest == 3:
            h ^= data[end + 2] << 16
        if rest >= 2:
            h ^= data[end + 1] << 8
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's DefaultPartitioner gives ``key``: toPositive(murmur2(key)) % n."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
