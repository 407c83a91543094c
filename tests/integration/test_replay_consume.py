"""Replay onto the real broker and read back: ticks exactly once and in order, pacing, rejects,
packed records on the partitions librdkafka gives their symbols, and the signal reader's
de-duplication, symbol filter and start position.

Each test gets its own topic prefix (so tests can share the broker) and deletes its topics.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from config.runtime import RuntimeConfig
from models.records import Action, Signal, StageVote, Tick
from streams.codecs import DecodeError, decode_tick, decode_tick_record, encode_signal
from streams.partitioner import partition_for
from streams.readers import read_ticks
from streams.replay import DEFAULT_PACK, replay
from streams.signal_consumer import ConsumerStats, iter_signals
from tests.conftest import SAMPLE_FILES
from tests.integration.conftest import drain as _drain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

S = 1_000_000_000
T0 = 1_723_161_255_000_000_000


def _timestamp_lag(rt: RuntimeConfig, topic: str, n: int = 50) -> list[int]:
    """For the first ``n`` messages: event time (ns) minus the Kafka timestamp (ms) in ns."""
    consumer = Consumer(
        {**rt.librdkafka(), "group.id": rt.group("ts"), "enable.auto.commit": False}
    )
    try:
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(rt.topics.partitions)]
        )
        lags: list[int] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(lags) < n:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                first = decode_tick_record(msg.value() or b"")[0]  # a pack: its first tick
                assert not isinstance(first, DecodeError), first
                lags.append(first.ts - msg.timestamp()[1] * 1_000_000)
        assert len(lags) == n
        return lags
    finally:
        consumer.close()


def test_replay_of_the_fixture_arrives_once_and_in_order(rt: RuntimeConfig) -> None:
    path = SAMPLE_FILES[0]  # btcusdt_head.gz: one symbol, so one partition and one order
    expected = list(read_ticks([path]))
    summary = replay([path], rt, speed=None, pack=None)
    assert (summary.sent, summary.rejected, summary.delivery_errors) == (len(expected), 0, 0)
    assert (summary.first_ts, summary.last_ts) == (expected[0].ts, expected[-1].ts)
    print(
        f"\nreplay {path.name} at max speed: {summary.sent:,} ticks in "
        f"{summary.elapsed_s:.2f} s = {summary.rate:,.0f} ticks/s"
    )
    got = _drain(rt, rt.topic("ticks"))
    assert {(p, k) for p, k, _ in got} == {(got[0][0], b"BTCUSDT")}
    assert [decode_tick(v) for _, _, v in got] == expected  # each once, in order
    # the Kafka timestamp is the event time, in ms
    assert all(0 <= d < 1_000_000 for d in _timestamp_lag(rt, rt.topic("ticks")))


def test_two_symbols_keep_their_own_order(rt: RuntimeConfig) -> None:
    expected = list(read_ticks(SAMPLE_FILES))
    summary = replay(SAMPLE_FILES, rt, pack=None)
    assert summary.sent == len(expected) and summary.delivery_errors == 0
    assert summary.per_symbol == {"BTCUSDT": 10_915, "ETHUSDT": 10_857}
    got = _drain(rt, rt.topic("ticks"))
    assert len(got) == len(expected)
    partitions: dict[bytes, set[int]] = {}
    for partition, key, _ in got:
        partitions.setdefault(key, set()).add(partition)
    assert sorted(partitions) == [b"BTCUSDT", b"ETHUSDT"]
    assert all(len(p) == 1 for p in partitions.values())  # a symbol stays on one partition
    for symbol in ("BTCUSDT", "ETHUSDT"):
        mine = [decode_tick(v) for _, k, v in got if k == symbol.encode()]
        assert mine == [t for t in expected if t.symbol == symbol]


def test_speed_paces_by_event_time(rt: RuntimeConfig, tmp_path: Path) -> None:
    path = tmp_path / "two_seconds.csv"
    rows = [f"{T0 + i * S // 4},AAA,{100 + i},1,buy" for i in range(9)]  # 0 .. 2 s
    path.write_text("ts,symbol,price,size,side\n" + "\n".join(rows) + "\n")
    started = time.monotonic()
    summary = replay([path], rt, speed=4.0, pack=None)
    took = time.monotonic() - started
    assert summary.sent == 9
    assert 0.4 <= took < 1.9, took  # 2 s / 4 = 0.5 s: paced, but not real time
    prices = [orjson.loads(v)["price"] for _, _, v in _drain(rt, rt.topic("ticks"))]
    assert prices == [100.0 + i for i in range(9)]


def test_bad_rows_are_rejected_to_their_topic(rt: RuntimeConfig, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "ts,symbol,price,size,side,bid,ask\n"
        f"{T0},AAA,10,1,buy,,\n"
        f"{T0 + S},AAA,-5,1,buy,,\n"  # line 3: non-positive price
        f"not-a-time,AAA,10,1,buy,,\n"  # line 4
        f"{T0 + 2 * S},AAA,,,,10.2,10.1\n"  # line 5: crossed quote
        f"{T0 + 3 * S},AAA,11,2,sell,,\n"
    )
    summary = replay([path], rt, pack=None)
    assert (summary.sent, summary.rejected, summary.delivery_errors) == (2, 3, 0)
    ticks = [decode_tick(v) for _, _, v in _drain(rt, rt.topic("ticks"))]
    assert [t.ts for t in ticks] == [T0, T0 + 3 * S]
    rejects = [orjson.loads(v) for _, _, v in _drain(rt, rt.topic("rejected"))]
    assert [r["line"] for r in rejects] == [3, 4, 5]
    assert all(r["file"] == str(path) and r["reason"] and r["raw"] for r in rejects)
    assert "price" in rejects[0]["reason"] and "not-a-time" in rejects[1]["raw"]


def test_packed_records_land_where_single_records_do(rt: RuntimeConfig) -> None:
    """The same ticks replayed unpacked (librdkafka's murmur2_random places them by key), then
    packed (streams.partitioner places them): each symbol on one partition, the same one, in
    order, every tick once."""
    expected = list(read_ticks(SAMPLE_FILES))
    single = replay(SAMPLE_FILES, rt, pack=None)
    packed = replay(SAMPLE_FILES, rt, pack=DEFAULT_PACK)
    assert single.sent == packed.sent == len(expected)
    assert (single.records, packed.pack) == (len(expected), DEFAULT_PACK)
    assert len(expected) / DEFAULT_PACK <= packed.records < len(expected) / 10
    got = _drain(rt, rt.topic("ticks"))
    assert len(got) == single.records + packed.records
    by_librdkafka: dict[str, set[int]] = {}
    by_us: dict[str, set[int]] = {}
    ticks: list[Tick] = []  # of the packed records, in per-partition order
    for partition, key, value in got:
        if value.startswith(b"{"):
            by_librdkafka.setdefault(key.decode(), set()).add(partition)
            continue
        assert value.startswith(b"[")
        decoded = decode_tick_record(value)
        items = [t for t in decoded if not isinstance(t, DecodeError)]
        assert len(items) == len(decoded) and 1 <= len(items) <= DEFAULT_PACK, decoded
        symbols = {t.symbol for t in items}
        assert key == (items[0].symbol.encode() if len(symbols) == 1 else b"")  # b"": None
        for tick in items:
            by_us.setdefault(tick.symbol, set()).add(partition)
        ticks += items
    assert (
        by_us
        == by_librdkafka
        == {s: {partition_for(s.encode(), rt.topics.partitions)} for s in ("BTCUSDT", "ETHUSDT")}
    )
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert [t for t in ticks if t.symbol == symbol] == [
            t for t in expected if t.symbol == symbol
        ]
    assert all(0 <= d < 1_000_000 for d in _timestamp_lag(rt, rt.topic("ticks")))


def _signal(sid: str, symbol: str, seq: int) -> Signal:
    stages = (
        StageVote("microstructure", "microstructure:1", 3, 0.62, 0.7),
        StageVote("momentum", "momentum:1", 3, None, 0.3),
    )
    return Signal(sid, symbol, seq, T0 + seq * S, 5 * S, Action.BUY, 0.6, True, stages, (), "h")


def _publish(rt: RuntimeConfig, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({**rt.librdkafka(), "acks": "all", "partitioner": "murmur2_random"})
    for key, value in messages:
        producer.produce(rt.topic("signals"), value, key)
    assert producer.flush(15) == 0


def test_signal_reader_dedups_filters_and_starts_where_asked(rt: RuntimeConfig) -> None:
    syms = ["BTCUSDT", "ETHUSDT", "BTCUSDT"]
    sigs = [_signal(f"{i:032x}", sym, i) for i, sym in enumerate(syms, start=1)]  # seq >= 1
    dup = sigs[0]  # a worker restart re-publishes the same id
    _publish(
        rt,
        [(s.symbol.encode(), encode_signal(s)) for s in [*sigs, dup]]
        + [(b"BTCUSDT", b"not a signal")],
    )

    # two readers at once, each in its own group: both see everything, once
    results: list[list[Signal]] = [[], []]
    stats = [ConsumerStats(), ConsumerStats()]

    def read(i: int) -> None:
        results[i] = list(
            iter_signals(rt, from_beginning=True, follow=False, timeout_s=2.0, stats=stats[i])
        )

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for got, st in zip(results, stats, strict=True):
        assert sorted(s.id for s in got) == sorted(s.id for s in sigs)
        assert got == [s for s in got if s in sigs]  # decoded equal to what was sent
        assert (st.received, st.yielded, st.duplicates, st.bad) == (5, 3, 1, 1)

    btc = list(
        iter_signals(rt, from_beginning=True, follow=False, timeout_s=2.0, symbols=["btcusdt"])
    )
    assert [s.seq for s in btc] == [1, 3]

    # a reader from the latest offset sees only what is published after it joined
    stop = threading.Event()

    def keep_publishing() -> None:
        n = 100
        while not stop.is_set():
            _publish(rt, [(b"ETHUSDT", encode_signal(_signal(f"{n:032x}", "ETHUSDT", n)))])
            n += 1
            time.sleep(0.2)

    publisher = threading.Thread(target=keep_publishing)
    live = iter_signals(rt, from_beginning=False, follow=True)
    try:
        publisher.start()
        first = next(live)
    finally:
        stop.set()
        live.close()
        publisher.join(10)
    assert first.seq >= 100
