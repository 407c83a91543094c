"""Replay without Kafka: pacing on a fake clock, packing, and the producer loop against a fake
producer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import streams.replay as replay_mod
from config.runtime import RuntimeConfig
from models.records import Quote, Tick, Trade
from quorum.cli import app
from streams.codecs import DecodeError, decode_tick, decode_tick_record
from streams.partitioner import partition_for
from streams.readers import ReaderError, read_ticks
from streams.replay import (
    DEFAULT_PACK,
    PACK_WINDOW_S,
    Pacer,
    Pack,
    ReplayError,
    ReplaySummary,
    TickPacker,
    replay,
)
from streams.signal_consumer import RecentIds, consumer_config

S = 1_000_000_000
T0 = 1_723_161_255_000_000_000


class FakeClock:
    """A monotonic clock that only moves when someone sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


# --- Pacer ----------------------------------------------------------------------------------


def test_max_speed_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock, clock.sleep)
    for ts in (T0, T0 + 10 * S, T0 + 3600 * S):
        assert pacer.wait(ts) == 0.0
    assert clock.sleeps == []


def test_spacing_divided_by_speed() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock, clock.sleep)
    for i in range(9):  # 2 s of event time, a tick every 250 ms
        pacer.wait(T0 + i * S // 4)
    assert clock.now - 100.0 == pytest.approx(0.5)
    assert clock.sleeps == pytest.approx([1 / 16] * 8)


def test_paced_against_the_first_tick_not_the_previous() -> None:
    """Oversleeping or slow producing is caught up, never accumulated."""
    clock = FakeClock()
    pacer = Pacer(1.0, clock, clock.sleep)
    pacer.wait(T0)
    clock.now += 1.5  # producing took 1.5 s: the tick at +1 s is already late
    assert pacer.wait(T0 + 1 * S) == 0.0
    assert pacer.wait(T0 + 2 * S) == pytest.approx(0.5)  # due at 102.0, now 101.5
    assert clock.now == pytest.approx(102.0)


def test_equal_or_earlier_times_do_not_wait() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock, clock.sleep)
    pacer.wait(T0 + S)
    assert pacer.wait(T0 + S) == 0.0
    assert pacer.wait(T0) == 0.0
    assert clock.sleeps == []


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan")])
def test_bad_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed, FakeClock(), FakeClock().sleep)


# --- the producer loop, against a fake producer ------------------------------------------------


class FakeMessage:
    def __init__(self, topic: str, value: bytes) -> None:
        self._topic = topic
        self._value = value

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value


class FakeError:
    def str(self) -> str:
        return "Broker: Message size too large"


class FakeProducer:
    """Queues produce() calls; poll/flush deliver them (failing the ones the test picked)."""

    instances: ClassVar[list[FakeProducer]] = []
    PARTITIONS = 6

    def __init__(self, conf: dict[str, Any], **kwargs: Any) -> None:
        self.conf = conf
        self.queue: list[tuple[str, bytes, bytes, int, Any]] = []
        self.delivered: list[tuple[str, bytes, bytes, int]] = []
        self.partition_of: list[int | None] = []  # per delivered message: explicit partition
        self._queued_partitions: list[int | None] = []
        self.topics = {"t.ticks", "t.ticks.rejected"}
        self.fail_values: set[bytes] = set()
        self.full_every = 0  # raise BufferError on every n-th produce attempt
        self.attempts = 0
        self.stuck = 0  # messages flush() never gets out
        FakeProducer.instances.append(self)

    def list_topics(self, timeout: float = -1) -> Any:
        parts = SimpleNamespace(partitions={i: None for i in range(self.PARTITIONS)})
        return SimpleNamespace(topics={t: parts for t in self.topics})

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        partition: int | None = None,
        *,
        on_delivery: Any,
        timestamp: int = 0,
    ) -> None:
        self.attempts += 1
        if self.full_every and self.attempts % self.full_every == 0:
            raise BufferError("Local: Queue full")
        self.queue.append((topic, value, key, timestamp, on_delivery))
        self._queued_partitions.append(partition)

    def poll(self, timeout: float = -1) -> int:
        n = len(self.queue)
        for (topic, value, key, ts, cb), part in zip(
            self.queue, self._queued_partitions, strict=True
        ):
            if any(v in value for v in self.fail_values):
                cb(FakeError(), FakeMessage(topic, value))
            else:
                self.delivered.append((topic, value, key, ts))
                self.partition_of.append(part)
        self.queue.clear()
        self._queued_partitions.clear()
        return n

    def queued_ticks(self) -> int:
        """Ticks handed to the producer so far, delivered or queued."""
        values = [m[1] for m in self.delivered if m[0] == "t.ticks"]
        values += [m[1] for m in self.queue if m[0] == "t.ticks"]
        return sum(len(decode_tick_record(v)) for v in values)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return self.stuck

    def purge(self) -> None:
        self.queue.clear()
        self._queued_partitions.clear()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    FakeProducer.instances = []
    monkeypatch.setattr(replay_mod, "Producer", FakeProducer)
    return FakeProducer


RT = RuntimeConfig().with_env({"QUORUM_TOPIC_PREFIX": "t."})


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "ticks.csv"
    p.write_text("ts,symbol,price,size,side\n" + "".join(r + "\n" for r in rows))
    return p


def test_produces_every_tick_keyed_and_stamped(
    fake: type[FakeProducer], sample_files: list[Path]
) -> None:
    summary = replay(sample_files, RT, pack=None)
    expected = list(read_ticks(sample_files))
    (producer,) = fake.instances
    ticks = [m for m in producer.delivered if m[0] == "t.ticks"]
    assert [decode_tick(v) for _, v, _, _ in ticks] == expected
    assert all(k == t.symbol.encode() for (_, _, k, _), t in zip(ticks, expected, strict=True))
    assert all(ms == t.ts // 1_000_000 for (_, _, _, ms), t in zip(ticks, expected, strict=True))
    assert summary.sent == len(expected) and summary.delivery_errors == 0
    assert summary.first_ts == expected[0].ts and summary.last_ts == expected[-1].ts
    assert sum(summary.per_symbol.values()) == len(expected)
    assert producer.conf["acks"] == "all" and producer.conf["enable.idempotence"] is True
    # unpacked is exactly the old behaviour: librdkafka places each record by its key
    assert producer.partition_of == [None] * len(producer.delivered)
    assert summary.records == summary.sent and summary.pack is None


def test_the_library_packs_by_default_like_the_cli(
    fake: type[FakeProducer], sample_files: list[Path]
) -> None:
    # catches: Python callers (backtests feeding the stream, benchmarks) silently sending one
    # record per tick, paying the worker's per-record cost the CLI avoids
    summary = replay(sample_files, RT)
    assert summary.pack == DEFAULT_PACK and summary.records * 10 < summary.sent


@pytest.mark.parametrize("pack", [None, DEFAULT_PACK])
def test_rejects_go_to_the_rejected_topic(
    fake: type[FakeProducer], tmp_path: Path, pack: int | None
) -> None:
    path = _csv(tmp_path, [f"{T0},AAA,10,1,buy", f"{T0 + S},AAA,-1,1,buy", "x,AAA,1,1,buy"])
    summary = replay([path], RT, pack=pack)
    (producer,) = fake.instances
    rejects = [orjson.loads(v) for t, v, _, _ in producer.delivered if t == "t.ticks.rejected"]
    assert summary.sent == 1 and summary.rejected == 2 == len(rejects)
    assert [r["line"] for r in rejects] == [3, 4]
    assert all(r["file"] == str(path) and r["reason"] and r["raw"] for r in rejects)


def test_queue_full_is_retried_not_dropped(
    fake: type[FakeProducer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_every_third(conf: dict[str, Any], **kw: Any) -> FakeProducer:
        p = FakeProducer(conf, **kw)
        p.full_every = 3
        return p

    monkeypatch.setattr(replay_mod, "Producer", full_every_third)
    path = _csv(tmp_path, [f"{T0 + i * S},AAA,{10 + i},1,buy" for i in range(20)])
    summary = replay([path], RT, pack=None)
    (producer,) = fake.instances
    assert summary.sent == 20
    prices = [orjson.loads(v)["price"] for _, v, _, _ in producer.delivered]
    assert prices == [10.0 + i for i in range(20)]  # all of them, in order


def test_delivery_errors_are_counted(
    fake: type[FakeProducer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(conf: dict[str, Any], **kw: Any) -> FakeProducer:
        p = FakeProducer(conf, **kw)
        p.fail_values = {b'"price":12.0'}
        return p

    monkeypatch.setattr(replay_mod, "Producer", failing)
    path = _csv(tmp_path, [f"{T0 + i * S},AAA,{10 + i},1,buy" for i in range(5)])
    summary = replay([path], RT, pack=None)
    assert summary.delivery_errors == 1 and summary.sent == 4
    assert summary.errors == ("t.ticks: Broker: Message size too large",)


def test_unflushed_messages_fail_loudly(
    fake: type[FakeProducer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(conf: dict[str, Any], **kw: Any) -> FakeProducer:
        p = FakeProducer(conf, **kw)
        p.stuck = 3
        return p

    monkeypatch.setattr(replay_mod, "Producer", stuck)
    with pytest.raises(ReplayError, match="3 message"):
        replay([_csv(tmp_path, [f"{T0},AAA,10,1,buy"])], RT, flush_timeout_s=0.1)


def test_missing_topics_and_files(fake: type[FakeProducer], tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match=r"nope\.csv"):
        replay([tmp_path / "nope.csv"], RT)
    assert fake.instances == []  # an unusable file fails before Kafka is touched
    with pytest.raises(ReplayError, match=r"other\.ticks.*quorum topics create"):
        replay(
            [_csv(tmp_path, [f"{T0},AAA,10,1,buy"])], RT.with_env({"QUORUM_TOPIC_PREFIX": "other."})
        )


def test_paced_replay_on_a_fake_clock(fake: type[FakeProducer], tmp_path: Path) -> None:
    path = _csv(tmp_path, [f"{T0 + i * S // 4},AAA,10,1,buy" for i in range(9)])  # 2 s
    clock = FakeClock()
    summary = replay([path], RT, speed=4.0, clock=clock, sleep=clock.sleep, pack=None)
    assert summary.sent == 9
    assert clock.now - 100.0 == pytest.approx(0.5)
    assert summary.elapsed_s == pytest.approx(0.5)
    assert max(clock.sleeps) <= replay_mod.IDLE_SLICE_S + 1e-9


# --- packing: the TickPacker on a fake clock ---------------------------------------------------


def _trade(symbol: str, i: int) -> Trade:
    return Trade(symbol, T0 + i * S, 100.0 + i, 1.0, "buy")


def _decoded(value: bytes) -> list[Tick]:
    """The ticks of a record we produced: all of them must decode."""
    got = decode_tick_record(value)
    ticks = [x for x in got if not isinstance(x, DecodeError)]
    assert len(ticks) == len(got), got
    return ticks


def _ticks_of(packs: list[Pack]) -> list[Tick]:
    out: list[Tick] = []
    for pk in packs:
        got = _decoded(pk.value)
        assert len(got) == pk.ticks
        out += got
    return out


def test_a_pack_goes_out_when_it_holds_max_ticks() -> None:
    packer = TickPacker(partitions=1, max_ticks=3, window_s=1.0)
    ticks = [_trade("AAA", i) for i in range(7)]
    out = [packer.add(t, now=0.0) for t in ticks]
    assert [len(o) for o in out] == [0, 0, 1, 0, 0, 1, 0]
    assert packer.held == 1
    rest = packer.flush_all()
    assert [pk.ticks for pk in [*out[2], *out[5], *rest]] == [3, 3, 1]
    assert _ticks_of([*out[2], *out[5], *rest]) == ticks
    assert packer.held == 0 and packer.flush_all() == []


def test_a_pack_goes_out_once_its_first_tick_waited_the_window() -> None:
    packer = TickPacker(partitions=1, max_ticks=100)  # the default 1 ms window
    assert packer.window_s == PACK_WINDOW_S == 0.001
    a, b, c, d = (_trade("AAA", i) for i in range(4))
    assert packer.add(a, now=0.0) == []
    assert packer.add(b, now=0.0005) == []
    assert packer.flush_due(0.000999) == []
    (due,) = packer.add(c, now=0.001)  # a has waited 1 ms: a and b go, c opens a new pack
    assert _ticks_of([due]) == [a, b]
    assert packer.flush_due(0.0015) == []
    (due,) = packer.flush_due(0.002)
    assert _ticks_of([due]) == [c]
    assert packer.add(d, now=0.002) == [] and packer.held == 1


def test_packs_are_per_partition_and_due_oldest_first() -> None:
    packer = TickPacker(partitions=4, max_ticks=100, window_s=0.001)
    syms = {}
    for sym in ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF"):  # find two on different partitions
        syms.setdefault(packer.partition_of(sym), sym)
    (p1, s1), (p2, s2) = list(syms.items())[:2]
    assert packer.add(_trade(s1, 0), now=0.0) == []
    assert packer.add(_trade(s2, 1), now=0.0006) == []
    assert packer.add(_trade(s1, 2), now=0.0007) == []
    (due,) = packer.flush_due(0.0012)  # only the first pack has waited 1 ms
    assert due.partition == p1 and _ticks_of([due]) == [_trade(s1, 0), _trade(s1, 2)]
    (due,) = packer.flush_due(0.0016)
    assert due.partition == p2 and _ticks_of([due]) == [_trade(s2, 1)]


def test_a_pack_is_keyed_by_its_symbol_and_stamped_with_its_first_tick() -> None:
    packer = TickPacker(partitions=1, max_ticks=100)
    for i in range(3):
        packer.add(_trade("AAA", i), now=0.0)
    (one,) = packer.flush_all()
    assert one.key == b"AAA" and one.partition == 0
    assert one.timestamp_ms == _trade("AAA", 0).ts // 1_000_000
    packer.add(_trade("AAA", 5), now=0.0)
    packer.add(Quote("BBB", T0 + 7 * S + 999_999, 1.0, 2.0, 1.0, 1.0), now=0.0)
    (mixed,) = packer.flush_all()
    assert mixed.key is None and mixed.timestamp_ms == (T0 + 5 * S) // 1_000_000


def test_a_symbol_is_packed_on_the_partition_its_key_hashes_to() -> None:
    packer = TickPacker(partitions=6, max_ticks=1)
    for sym in ("BTCUSDT", "ETHUSDT", "A", "é", "x" * 40):
        (pk,) = packer.add(Trade(sym, T0, 1.0, 1.0), now=0.0)
        assert pk.partition == partition_for(sym.encode(), 6) == packer.partition_of(sym)


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"partitions": 0}, "partitions"),
        ({"max_ticks": 0}, "max_ticks"),
        ({"window_s": -1}, "window"),
        ({"window_s": float("nan")}, "window"),
    ],
)
def test_bad_packer_settings(kwargs: dict[str, Any], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        TickPacker(**{"partitions": 1, **kwargs})


# one step: a tick (symbol index, seconds the clock moves before it) or a flush_due check
steps = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 7), st.sampled_from([0.0, 0.0001, 0.0004, 0.001, 0.003])),
        st.just(None),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(steps, st.integers(1, 6), st.integers(1, 9))
def test_packer_keeps_order_bounds_and_emits_every_tick_once(
    plan: list[tuple[int, float] | None], partitions: int, max_ticks: int
) -> None:
    # catches a pack mixing partitions, reordering a partition's ticks, exceeding max_ticks,
    # holding a tick past the window once the packer was asked, or losing or doubling a tick
    packer = TickPacker(partitions, max_ticks, window_s=0.001)
    now, sent, packs = 0.0, [], []
    for i, step in enumerate(plan):
        if step is None:
            packs += packer.flush_due(now)
        else:
            sym, dt = step
            now += dt
            tick = Trade(f"S{sym}", T0 + i, 1.0 + i, 1.0)
            sent.append(tick)
            packs += packer.add(tick, now)
        assert packer.flush_due(now) == []  # nothing due is left behind at any moment
        assert packer.held == len(sent) - sum(pk.ticks for pk in packs)
    packs += packer.flush_all()
    assert packer.held == 0
    by_partition: dict[int, list[Tick]] = {}
    for pk in packs:
        got = _ticks_of([pk])
        assert 1 <= len(got) <= max_ticks
        assert {packer.partition_of(t.symbol) for t in got} == {pk.partition}
        by_partition.setdefault(pk.partition, []).extend(got)
    for p, got in by_partition.items():
        assert got == [t for t in sent if packer.partition_of(t.symbol) == p]  # in input order
    assert sum(len(v) for v in by_partition.values()) == len(sent)  # every tick exactly once


# --- packing in replay, against the fake producer ------------------------------------------------


def _price(tick: Tick) -> float:
    assert isinstance(tick, Trade)
    return tick.price


class FrozenClock(FakeClock):
    """Never moves unless slept: no pack ever becomes due by time."""


class SteppingClock(FakeClock):
    """Moves one window per reading: every open pack is due at the next tick."""

    def __call__(self) -> float:
        self.now += PACK_WINDOW_S
        return self.now


def _records(producer: FakeProducer) -> list[tuple[int | None, bytes | None, list[Tick], int]]:
    """The ticks records delivered: (explicit partition, key, ticks, timestamp ms)."""
    out = []
    for (topic, value, key, ms), part in zip(
        producer.delivered, producer.partition_of, strict=True
    ):
        if topic == "t.ticks":
            assert value.startswith(b"[")
            out.append((part, key, _decoded(value), ms))
    return out


@pytest.mark.parametrize("clock_type", [FrozenClock, SteppingClock])
def test_packed_replay_puts_each_tick_once_on_its_symbols_partition(
    fake: type[FakeProducer], sample_files: list[Path], clock_type: type[FakeClock]
) -> None:
    clock = clock_type()
    n = 50
    summary = replay(sample_files, RT, pack=n, clock=clock, sleep=clock.sleep)
    expected = list(read_ticks(sample_files))
    (producer,) = fake.instances
    records = _records(producer)
    assert summary.sent == len(expected) and summary.delivery_errors == 0
    assert summary.records == len(records) and summary.pack == n
    assert sum(summary.per_symbol.values()) == len(expected)
    per_partition: dict[int, list[Tick]] = {}
    for part, key, got, ms in records:
        assert part is not None and 1 <= len(got) <= n
        assert {partition_for(t.symbol.encode(), FakeProducer.PARTITIONS) for t in got} == {part}
        assert key == (got[0].symbol.encode() if len({t.symbol for t in got}) == 1 else None)
        assert ms == got[0].ts // 1_000_000
        per_partition.setdefault(part, []).extend(got)
    for part, got in per_partition.items():
        assert got == [
            t for t in expected if partition_for(t.symbol.encode(), FakeProducer.PARTITIONS) == part
        ]
    if clock_type is FrozenClock:  # never due by time: full packs but for each partition's last
        assert len(records) == sum(-(-len(v) // n) for v in per_partition.values())
    else:  # every pack is due when the next tick comes: one tick per record
        assert len(records) == len(expected)


def test_a_paced_replay_never_holds_ticks_while_it_sleeps(
    fake: type[FakeProducer], tmp_path: Path
) -> None:
    path = _csv(tmp_path, [f"{T0 + i * S // 4},AAA,{10 + i},1,buy" for i in range(9)])
    clock = FrozenClock()  # only sleeping moves it: packs could wait forever but for the flush
    seen: list[int] = []

    def sleep(seconds: float) -> None:
        seen.append(fake.instances[0].queued_ticks())
        clock.sleep(seconds)

    summary = replay([path], RT, speed=4.0, clock=clock, sleep=sleep, pack=DEFAULT_PACK)
    assert summary.sent == 9 and summary.records == 9  # every wait sent the tick before it
    assert seen == sorted(seen) and set(seen) == set(range(1, 9))
    prices = [_price(t) for _, _, got, _ in _records(fake.instances[0]) for t in got]
    assert prices == [10.0 + i for i in range(9)]


def test_a_failed_pack_counts_all_its_ticks(
    fake: type[FakeProducer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(conf: dict[str, Any], **kw: Any) -> FakeProducer:
        p = FakeProducer(conf, **kw)
        p.fail_values = {b'"price":12.0'}
        return p

    monkeypatch.setattr(replay_mod, "Producer", failing)
    path = _csv(tmp_path, [f"{T0 + i * S},AAA,{10 + i},1,buy" for i in range(7)])
    clock = FrozenClock()
    summary = replay([path], RT, pack=3, clock=clock, sleep=clock.sleep)
    # records [10 11 12] [13 14 15] [16]: the first is lost with its three ticks
    assert summary.delivery_errors == 3 and summary.sent == 4 and summary.records == 2
    assert summary.errors == ("t.ticks: Broker: Message size too large",)


def test_packed_queue_full_is_retried_not_dropped(
    fake: type[FakeProducer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_every_second(conf: dict[str, Any], **kw: Any) -> FakeProducer:
        p = FakeProducer(conf, **kw)
        p.full_every = 2
        return p

    monkeypatch.setattr(replay_mod, "Producer", full_every_second)
    path = _csv(tmp_path, [f"{T0 + i * S},AAA,{10 + i},1,buy" for i in range(20)])
    clock = FrozenClock()
    summary = replay([path], RT, pack=3, clock=clock, sleep=clock.sleep)
    assert summary.sent == 20 and summary.records == 7
    prices = [_price(t) for _, _, got, _ in _records(fake.instances[0]) for t in got]
    assert prices == [10.0 + i for i in range(20)]


def test_bad_pack_sizes(fake: type[FakeProducer], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pack"):
        replay([_csv(tmp_path, [f"{T0},AAA,10,1,buy"])], RT, pack=0)
    assert fake.instances == []


# --- the replay command's packing options --------------------------------------------------------


@pytest.fixture
def replay_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_replay(paths: Any, runtime: Any, **kw: Any) -> ReplaySummary:
        calls.append(kw)
        pack = kw["pack"]
        records = 3 if pack else 300
        return ReplaySummary(300, 0, 0, 1.0, 300.0, T0, T0 + S, {"AAA": 300}, (), records, pack)

    monkeypatch.setattr(replay_mod, "replay", fake_replay)
    return calls


@pytest.mark.parametrize(
    ("args", "pack", "shown"),
    [
        ([], DEFAULT_PACK, f"300 ticks, 3 records of <= {DEFAULT_PACK}"),
        (["--pack", "50"], 50, "300 ticks, 3 records of <= 50"),
        (["--no-pack"], None, "300 ticks, one per record"),
    ],
)
def test_replay_packs_by_default(
    replay_calls: list[dict[str, Any]], args: list[str], pack: int | None, shown: str
) -> None:
    result = CliRunner().invoke(app, ["replay", "x.gz", *args])
    assert result.exit_code == 0, result.output
    assert [c["pack"] for c in replay_calls] == [pack]
    assert shown in result.output


def test_replay_pack_option_errors(replay_calls: list[dict[str, Any]]) -> None:
    runner = CliRunner()
    for args in (["--pack", "0"], ["--pack", "5", "--no-pack"]):
        result = runner.invoke(app, ["replay", "x.gz", *args])
        assert result.exit_code == 2 and "--pack" in result.output, result.output
    assert replay_calls == []
    assert f"default {DEFAULT_PACK}" in runner.invoke(app, ["replay", "--help"]).output


# --- signal consumer helpers ---------------------------------------------------------------------


def test_recent_ids_is_a_bounded_lru() -> None:
    ids = RecentIds(capacity=3)
    assert [ids.seen(x) for x in "abc"] == [False] * 3
    assert ids.seen("a") is True  # refreshes a
    assert ids.seen("d") is False  # evicts b, the least recently seen
    assert len(ids) == 3
    assert ids.seen("b") is False and ids.seen("a") is True


def test_consumer_groups_are_prefixed_and_unique() -> None:
    a = consumer_config(RT, from_beginning=True, group=None)
    b = consumer_config(RT, from_beginning=False, group=None)
    assert a["group.id"].startswith("t.signals-cli-") and a["group.id"] != b["group.id"]
    assert a["auto.offset.reset"] == "earliest" and b["auto.offset.reset"] == "latest"
    assert a["enable.auto.commit"] is False
    named = consumer_config(RT, from_beginning=False, group="desk")
    assert named["group.id"] == "t.desk" and named["enable.auto.commit"] is True
