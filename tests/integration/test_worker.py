"""The golden test and friends: ticks replayed through Kafka into a worker give exactly the
signals the embedded backtest gives; bad ticks go to the dead-letter topic and do not stop it.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from config.runtime import RuntimeConfig
from models.records import Signal
from quorum import run_backtest
from streams.codecs import encode_tick
from streams.readers import read_ticks
from streams.replay import replay
from streams.signal_consumer import iter_signals
from tests.conftest import SAMPLE_FILES
from tests.integration.conftest import ROOT, drain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FULL_SAMPLE = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))

StartWorker = Callable[..., subprocess.Popen[bytes]]


def collect(rt: RuntimeConfig, expected: int, timeout_s: float = 180.0) -> dict[str, Signal]:
    """Signals by id, until ``expected`` distinct ones arrived (or the timeout)."""
    got: dict[str, Signal] = {}
    deadline = time.monotonic() + timeout_s
    stream = iter_signals(rt, from_beginning=True, follow=False, timeout_s=timeout_s)
    try:
        for s in stream:
            got[s.id] = s
            if len(got) >= expected or time.monotonic() > deadline:
                break
    finally:
        stream.close()
    return got


def assert_same_signals(got: dict[str, Signal], expected: list[Signal]) -> None:
    want = {s.id: s for s in expected}
    assert len(want) == len(expected)
    missing, extra = want.keys() - got.keys(), got.keys() - want.keys()
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    differ = [(s.symbol, s.seq) for sid, s in want.items() if got[sid] != s]
    assert not differ, f"{len(differ)} signals differ, first {differ[:5]}, last {differ[-3:]}"
    for sid, s in want.items():
        g = got[sid]
        assert (g.action, g.p_up, g.symbol, g.seq, g.ts) == (
            s.action,
            s.p_up,
            s.symbol,
            s.seq,
            s.ts,
        )
        assert g == s  # the whole receipt: per-stage p_up, weights, model versions


def test_kafka_worker_matches_the_embedded_backtest(
    rt: RuntimeConfig, start_worker: StartWorker
) -> None:
    expected = run_backtest(SAMPLE_FILES).signals
    worker = start_worker()
    summary = replay(SAMPLE_FILES, rt, speed=None)
    assert summary.sent == sum(1 for _ in read_ticks(SAMPLE_FILES))
    got = collect(rt, len(expected))
    assert worker.poll() is None, "the worker is still running"
    assert_same_signals(got, expected)

    # a consumer started late, from the beginning, sees every signal too
    late = subprocess.run(
        [sys.executable, "-m", "quorum.cli", "signals", "--from-beginning", "--timeout", "5"],
        cwd=ROOT,
        env={**os.environ, "QUORUM_TOPIC_PREFIX": rt.topics.prefix},
        capture_output=True,
        check=True,
        timeout=120,
    )
    ids = {orjson.loads(line)["id"] for line in late.stdout.splitlines() if line.strip()}
    assert ids == {s.id for s in expected}


@pytest.mark.timeout(900)
def test_the_full_sample_through_kafka_gives_the_backtests_buy_and_sell_signals(
    rt: RuntimeConfig, start_worker: StartWorker
) -> None:
    """The fixtures' heads only give HOLD: this is the run where actions, thresholds and the
    voter's learned weights matter. Catches: any difference between the Kafka driver and the
    embedded pipeline (ordering, join, voter state) that only shows once signals trade."""
    assert len(FULL_SAMPLE) == 4, FULL_SAMPLE
    expected = run_backtest(FULL_SAMPLE).signals
    actions = collections.Counter(s.action.value for s in expected)
    assert actions["BUY"] > 0 and actions["SELL"] > 0, actions
    # parity, not the timeout, is under test: on a loaded 2-core machine (workers traced by
    # coverage) a stage agent's first vote once came more than the default 10 s after the
    # others', and 5 ticks were decided without it (the join's timeout has its own tests)
    worker = start_worker("--join-timeout", "600")
    summary = replay(FULL_SAMPLE, rt, speed=None)  # quorum replay --speed max
    assert summary.sent == sum(1 for _ in read_ticks(FULL_SAMPLE))
    got = collect(rt, len(expected), timeout_s=780.0)
    assert worker.poll() is None, "the worker is still running"
    assert collections.Counter(s.action.value for s in got.values()) == actions
    assert_same_signals(got, expected)


def test_bad_ticks_are_dead_lettered_and_good_ones_still_signal(
    rt: RuntimeConfig, start_worker: StartWorker, tmp_path: Path
) -> None:
    good = list(read_ticks([SAMPLE_FILES[0]]))[:3000]
    bad = [
        b"not json at all",
        b'{"type":"trade","symbol":"BTCUSDT","ts":1723161300000000000,"price":-5,"size":1}',
        b'{"type":"quote","symbol":"BTCUSDT","ts":1723161300000000000,"bid":10,"ask":9,'
        b'"bid_size":1,"ask_size":1}',
        b'{"type":"candle","symbol":"BTCUSDT","ts":1723161300000000000}',
        b"\xff\xfe\x00binary",
    ]
    producer = Producer({**rt.librdkafka(), "partitioner": "murmur2_random"})
    ticks_topic = rt.topic("ticks")
    for i, tick in enumerate(good):
        producer.produce(ticks_topic, key=tick.symbol.encode(), value=encode_tick(tick))
        if i % 600 == 0:
            producer.produce(ticks_topic, key=b"BTCUSDT", value=bad[(i // 600) % len(bad)])
    assert producer.flush(30) == 0
    start_worker()

    jsonl = tmp_path / "good.jsonl"
    jsonl.write_bytes(b"".join(encode_tick(t) + b"\n" for t in good))
    expected = run_backtest([jsonl]).signals
    assert_same_signals(collect(rt, len(expected)), expected)

    rejected = [orjson.loads(v) for _, _, v in drain(rt, rt.topic("rejected"))]
    assert len(rejected) == 5
    assert all(r["topic"] == ticks_topic and r["reason"] for r in rejected)
    reasons = " | ".join(r["reason"] for r in rejected)
    for fragment in ("malformed JSON", "price", "crossed", "type"):
        assert fragment in reasons
