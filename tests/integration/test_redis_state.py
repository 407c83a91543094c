"""Model state in the real Redis: a pipeline checkpointed and resumed from Redis continues
exactly as an uninterrupted one; tampered state in Redis is refused, not executed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from agents.describe import meta
from agents.pipeline import Pipeline
from config.settings import load_config
from models.records import Signal, Tick
from models.sealed import StateIntegrityError, StateSealer
from streams.readers import read_ticks
from streams.redis_store import RedisStateStore, StateFencedError, redis_client
from tests.conftest import SAMPLE_FILES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = b"integration-test-secret-0123456789"
URL = os.environ.get("QUORUM_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def sealer() -> Iterator[StateSealer]:
    s = StateSealer(SECRET, f"it-{uuid.uuid4().hex[:10]}")
    yield s
    client = redis_client(URL)
    keys = list(client.scan_iter(match=f"quorum:{{{s.pipeline}*"))
    if keys:
        client.delete(*keys)


def _run(pipe: Pipeline, ticks: list[Tick]) -> list[Signal]:
    return [d.signal for t in ticks if (d := pipe.process(t)) is not None]


def test_resume_from_a_redis_checkpoint_gives_identical_signals(sealer: StateSealer) -> None:
    cfg = load_config()
    ticks = list(read_ticks(SAMPLE_FILES))
    expected = _run(Pipeline(cfg), ticks)
    cut = len(ticks) * 2 // 3

    first = RedisStateStore(redis_client(URL), sealer, meta=meta)
    head = _run(Pipeline(cfg, first), ticks[:cut])
    first.touch_all()
    stats = first.checkpoint()
    assert stats.keys == 2 * (len(cfg.stages) + 2)  # stages, shared labels, voter: BTC, ETH
    assert stats.bytes > 0

    resumed = RedisStateStore(redis_client(URL), sealer, meta=meta)  # a fresh process's view
    tail = _run(Pipeline(cfg, resumed), ticks[cut:])
    assert head + tail == expected
    heads = {k: h for k, h, _ in resumed.headers()}
    assert heads["microstructure/BTCUSDT"].version == 1  # type: ignore[union-attr]
    assert heads["microstructure/BTCUSDT"].meta["examples_learned"] > 0  # type: ignore[union-attr]


def test_tampered_state_in_redis_is_refused(sealer: StateSealer) -> None:
    cfg = load_config()
    store = RedisStateStore(redis_client(URL), sealer, meta=meta)
    _run(Pipeline(cfg, store), list(read_ticks([SAMPLE_FILES[0]]))[:3000])
    store.touch_all()
    store.checkpoint()
    client = redis_client(URL)
    rkey = f"quorum:{{{sealer.pipeline}}}:state:voting/BTCUSDT"  # no partition: no :pN
    blob = bytearray(client.get(rkey))  # type: ignore[arg-type]
    blob[len(blob) // 2] ^= 0xFF
    client.set(rkey, bytes(blob))

    fresh = RedisStateStore(redis_client(URL), sealer)
    with pytest.raises(StateIntegrityError, match="voting/BTCUSDT: bad signature"):
        _run(Pipeline(cfg, fresh), list(read_ticks([SAMPLE_FILES[0]]))[:100])
    refused = {k: h for k, h, _ in fresh.headers() if isinstance(h, StateIntegrityError)}
    assert list(refused) == ["voting/BTCUSDT"]


def test_a_stale_writer_is_fenced_off(sealer: StateSealer) -> None:
    """Two workers believed they owned the same symbol: the one that saved second from stale
    state is refused, and what the first saved stays."""
    cfg = load_config()
    ticks = list(read_ticks([SAMPLE_FILES[0]]))[:2000]
    first = RedisStateStore(redis_client(URL), sealer, meta=meta)
    _run(Pipeline(cfg, first), ticks[:1000])
    first.touch_all()
    first.checkpoint()

    zombie = RedisStateStore(redis_client(URL), sealer, meta=meta)  # loads version 1
    successor = RedisStateStore(redis_client(URL), sealer, meta=meta)  # loads version 1
    _run(Pipeline(cfg, zombie), ticks[1000:1500])
    _run(Pipeline(cfg, successor), ticks[1000:2000])
    successor.touch_all()
    successor.checkpoint()  # version 2
    zombie.touch_all()
    with pytest.raises(StateFencedError, match="microstructure/BTCUSDT"):
        zombie.checkpoint()
    saved = RedisStateStore(redis_client(URL), sealer)
    heads = {k: h for k, h, _ in saved.headers()}
    assert heads["microstructure/BTCUSDT"].version == 2  # type: ignore[union-attr]
    assert saved.get("microstructure/BTCUSDT").seq == 2000  # the successor's, not the zombie's

    # a store that created a key nobody had is fenced too when someone else created it first
    late = RedisStateStore(redis_client(URL), sealer, meta=meta)
    assert late.get("microstructure/NEWCOIN") is None
    early = RedisStateStore(redis_client(URL), sealer, meta=meta)
    assert early.get("microstructure/NEWCOIN") is None
    early.put("microstructure/NEWCOIN", {"n": 1})
    early.checkpoint()
    late.put("microstructure/NEWCOIN", {"n": 2})
    with pytest.raises(StateFencedError):
        late.checkpoint()


def test_a_checkpoint_whose_reply_was_lost_does_not_fence_its_writer(
    sealer: StateSealer,
) -> None:
    """Redis applied our transaction but the reply never came (connection lost after EXEC):
    the retry finds our own write, not someone else's, and goes on."""
    store = RedisStateStore(redis_client(URL), sealer, meta=meta)
    assert store.get("microstructure/LOSTREPLY") is None
    store.put("microstructure/LOSTREPLY", {"n": 1})
    store.checkpoint()
    store._versions["microstructure/LOSTREPLY"] = 0  # as if that checkpoint had raised
    store.touch_all()
    store.checkpoint()
    heads = {k: h for k, h, _ in store.headers()}
    assert heads["microstructure/LOSTREPLY"].version == 2  # type: ignore[union-attr]
