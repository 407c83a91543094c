"""The Redis key layout, without a Redis: one partition's checkpoint keys share a hash slot."""

from __future__ import annotations

from redis.crc import key_slot

from models.sealed import StateSealer
from streams.redis_store import RedisStateStore


def test_one_partitions_keys_share_one_redis_cluster_hash_slot() -> None:
    # catches: a key layout whose checkpoint transaction spans slots (MULTI/EXEC and WATCH
    # fail on Redis Cluster), or partitions sharing a slot (no spreading over nodes)
    store = RedisStateStore(None, StateSealer(b"0123456789abcdef", "pipe"))  # type: ignore[arg-type]
    slots: dict[int, set[int]] = {}
    for partition in range(12):
        store.partition = partition
        tag = store.tag(partition)
        keys = [store.redis_key(f"{o}/SYM{partition}") for o in ("microstructure", "voting")]
        keys.append(store.versions_key(tag))
        slots[partition] = {key_slot(k.encode()) for k in keys}
        assert keys[0] == f"quorum:{{pipe:p{partition}}}:state:microstructure/SYM{partition}"
    assert all(len(s) == 1 for s in slots.values())
    assert len({next(iter(s)) for s in slots.values()}) == 12


def test_a_store_without_partitions_keeps_one_tag_per_pipeline() -> None:
    # the embedded pipeline and tools: still one slot, still namespaced by pipeline
    store = RedisStateStore(None, StateSealer(b"0123456789abcdef", "pipe"))  # type: ignore[arg-type]
    assert store.redis_key("voting/BTC") == "quorum:{pipe}:state:voting/BTC"
    store.partition = 3  # a key keeps the slot it was first placed in
    assert store.redis_key("voting/BTC") == "quorum:{pipe}:state:voting/BTC"
    assert store.redis_key("voting/ETH") == "quorum:{pipe:p3}:state:voting/ETH"
