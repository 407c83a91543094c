"""Replay without Kafka: pacing on a fake clock, and the producer loop against a fake producer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson
import pytest

import streams.replay as replay_mod
from config.runtime import RuntimeConfig
from streams.codecs import decode_tick
from streams.readers import ReaderError, read_ticks
from streams.replay import Pacer, ReplayError, replay
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
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeError:
    def str(self) -> str:
        return "Broker: Message size too large"


class FakeProducer:
    """Queues produce() calls; poll/flush deliver them (failing the ones the test picked)."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, conf: dict[str, Any], **kwargs: Any) -> None:
        self.conf = conf
        self.queue: list[tuple[str, bytes, bytes, int, Any]] = []
        self.delivered: list[tuple[str, bytes, bytes, int]] = []
        self.topics = {"t.ticks", "t.ticks.rejected"}
        self.fail_values: set[bytes] = set()
        self.full_every = 0  # raise BufferError on every n-th produce attempt
        self.attempts = 0
        self.stuck = 0  # messages flush() never gets out
        FakeProducer.instances.append(self)

    def list_topics(self, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={t: None for t in self.topics})

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        *,
        on_delivery: Any,
        timestamp: int = 0,
    ) -> None:
        self.attempts += 1
        if self.full_every and self.attempts % self.full_every == 0:
            raise BufferError("Local: Queue full")
        self.queue.append((topic, value, key, timestamp, on_delivery))

    def poll(self, timeout: float = -1) -> int:
        n = len(self.queue)
        for topic, value, key, ts, cb in self.queue:
            if any(v in value for v in self.fail_values):
                cb(FakeError(), FakeMessage(topic))
            else:
                self.delivered.append((topic, value, key, ts))
        self.queue.clear()
        return n

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return self.stuck

    def purge(self) -> None:
        self.queue.clear()


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
    summary = replay(sample_files, RT)
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


def test_rejects_go_to_the_rejected_topic(fake: type[FakeProducer], tmp_path: Path) -> None:
    path = _csv(tmp_path, [f"{T0},AAA,10,1,buy", f"{T0 + S},AAA,-1,1,buy", "x,AAA,1,1,buy"])
    summary = replay([path], RT)
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
    summary = replay([path], RT)
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
    summary = replay([path], RT)
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
    summary = replay([path], RT, speed=4.0, clock=clock, sleep=clock.sleep)
    assert summary.sent == 9
    assert clock.now - 100.0 == pytest.approx(0.5)
    assert summary.elapsed_s == pytest.approx(0.5)
    assert max(clock.sleeps) <= replay_mod.IDLE_SLICE_S + 1e-9


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
