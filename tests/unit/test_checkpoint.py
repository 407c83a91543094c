"""The worker's checkpoint logic without a broker: save, then release; backoff; fencing; cadence.

Each test names the real bug it catches. Expectations are hand-checked: the backoff doubles
from 0.25 s and stops at 5 s; N held inputs or T seconds since the last try make a checkpoint
due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from streams.checkpoint import Checkpointer, WorkerCounters, next_backoff
from streams.outputs import OutputsPending
from streams.redis_store import CheckpointStats, StateFencedError


@dataclass
class Event:
    name: str
    acked: int = 0

    def ack(self) -> None:
        self.acked += 1


@dataclass
class Store:
    """Fails while ``down``, is fenced while ``fenced``; records the order of calls."""

    log: list[str]
    down: bool = False
    fenced: bool = False
    saves: int = 0

    def touch_all(self) -> None:
        self.log.append("touch")

    def prepare(self) -> str:
        self.log.append("sealed")
        return "snapshot"

    def committed(self, prepared: str) -> None:
        assert prepared == "snapshot"

    def failed(self, prepared: str) -> None:
        self.log.append("retry later")

    def commit(self, prepared: str) -> CheckpointStats:
        assert prepared == "snapshot"
        if self.fenced:
            raise StateFencedError(["momentum/BTCUSDT"])
        if self.down:
            self.log.append("save failed")
            raise redis.ConnectionError("Connection refused")
        self.saves += 1
        self.log.append("saved")
        return CheckpointStats(keys=8, bytes=100, elapsed_ms=1.0)


@dataclass
class Clock:
    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def make(
    every: int = 3, interval_s: float = 2.0
) -> tuple[Checkpointer, Store, Clock, list[StateFencedError]]:
    calls: list[str] = []
    store = Store(calls)
    clock = Clock()
    fenced: list[StateFencedError] = []

    async def flush() -> None:
        calls.append("flush")

    cp = Checkpointer(
        store,
        flush,
        every=every,
        interval_s=interval_s,
        on_fenced=fenced.append,
        counters=WorkerCounters(),
        clock=clock,
        sleep=clock.sleep,
    )
    return cp, store, clock, fenced


def events(*names: str) -> list[Event]:
    return [Event(n) for n in names]


def test_acks_are_released_only_after_a_successful_save_in_that_order() -> None:
    # catches: acking before the save (Kafka commits offsets past saved state: a crash loses
    # inputs), or saving before the outputs are flushed (a crash loses their votes/signals)
    cp, store, _, _ = make()
    batch = events("t1", "t2")
    cp.hold(batch)
    assert [e.acked for e in batch] == [0, 0]  # held, not acked
    order: list[str] = []
    batch[0].ack = lambda: order.append(f"ack after {store.log[-1]}")  # type: ignore[method-assign]
    assert run(cp.checkpoint("events")) is True
    assert store.log == ["touch", "sealed", "flush", "saved"]
    assert order == ["ack after saved"]
    assert batch[1].acked == 1 and cp.held == []
    assert cp.counters.checkpoints == 1 and cp.counters.checkpoint_failures == 0


def test_a_failed_save_releases_nothing_and_the_next_success_releases_everything() -> None:
    # catches: acks released after a failed save (offsets committed for unsaved state), and
    # held inputs forgotten after a failure (never acked: the group stalls or re-reads forever)
    cp, store, clock, _ = make(every=2)
    first = events("a", "b")
    assert cp.hold(first) is True
    store.down = True
    assert run(cp.checkpoint("events")) is False
    assert [e.acked for e in first] == [0, 0]
    assert cp.held == first
    assert cp.counters.checkpoint_failures == 1 and cp.counters.checkpoints == 0
    later = events("c")
    cp.hold(later)
    clock.now += 10  # past the backoff
    store.down = False
    assert run(cp.checkpoint("events")) is True
    assert [e.acked for e in first + later] == [1, 1, 1]  # each exactly once
    assert cp.held == []
    assert (cp.counters.checkpoints, cp.counters.checkpoint_failures) == (1, 1)
    assert run(cp.checkpoint("events")) is True  # nothing held: nothing to do, no double ack
    assert [e.acked for e in first + later] == [1, 1, 1] and store.saves == 1


def test_backoff_doubles_from_a_quarter_second_and_is_capped() -> None:
    # catches: retrying every batch while Redis is down (a hot loop of failing saves), and a
    # backoff that grows without bound (the worker would wait hours after a long outage)
    assert [next_backoff(d) for d in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0)] == [
        0.25,
        0.5,
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
    ]
    cp, store, clock, _ = make(every=1)
    cp.hold(events("a"))
    store.down = True
    waits = []
    for _ in range(7):
        assert run(cp.checkpoint("events")) is False
        waits.append(cp.retry_at - clock.now)
        assert cp.due() is None  # inside the backoff: a cadence checkpoint is not tried
        assert run(cp.checkpoint("interval")) is False  # ...and not attempted either
        clock.now = cp.retry_at
        assert cp.due() == "events"
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert cp.counters.checkpoint_failures == 7  # the skipped ones are not failures
    store.down = False
    assert run(cp.checkpoint("events")) is True
    assert cp.delay == 0.0 and cp.retry_at == 0.0  # back to normal: the next failure starts low


def test_revocation_and_shutdown_checkpoints_ignore_the_backoff() -> None:
    # catches: a revoke during backoff handing over partitions without trying to save
    cp, store, _, _ = make(every=1)
    cp.hold(events("a"))
    store.down = True
    run(cp.checkpoint("events"))
    store.down = False
    assert run(cp.checkpoint("interval")) is False  # still backing off
    assert run(cp.checkpoint("revoked")) is True
    assert cp.counters.checkpoints == 1


def test_state_load_failures_back_off_and_share_the_delay() -> None:
    # catches: state loads retried in a hot loop while Redis is down
    cp, _, clock, _ = make()
    for _ in range(3):
        run(cp.load_failed(redis.ConnectionError("down"), "momentum"))
    assert clock.slept == [0.25, 0.5, 1.0]


def test_a_fenced_save_is_reported_and_releases_nothing() -> None:
    # catches: a fenced worker acking its inputs (its successor's saved state does not cover
    # them) or carrying on as if it had saved, instead of stopping (exit 3 in the worker)
    cp, store, _, fenced = make()
    batch = events("a", "b", "c")
    cp.hold(batch)
    store.fenced = True
    assert run(cp.checkpoint("events")) is False
    assert len(fenced) == 1 and "momentum/BTCUSDT" in str(fenced[0])
    assert [e.acked for e in batch] == [0, 0, 0] and cp.held == batch
    assert cp.counters.fenced == 1 and cp.counters.checkpoints == 0
    assert cp.counters.checkpoint_failures == 0  # not a Redis outage: no backoff, no retry
    assert cp.retry_at == 0.0


def test_cadence_every_n_inputs_and_every_t_seconds() -> None:
    # catches: checkpoints only at shutdown (a crash repeats everything since the start), a
    # count threshold that is off by one, or an interval that never fires on a quiet stream
    cp, _, clock, _ = make(every=3, interval_s=2.0)
    assert cp.due() is None  # nothing held, nothing to save
    assert cp.hold(events("a", "b")) is False
    assert cp.due() is None
    assert cp.hold(events("c")) is True  # the third input
    assert cp.due() == "events"
    assert run(cp.tick()) is True and cp.held == []
    start = clock.now
    cp.hold(events("d"))
    clock.now = start + 1.99
    assert cp.due() is None and run(cp.tick()) is False
    clock.now = start + 2.0
    assert cp.due() == "interval"
    assert run(cp.tick()) is True
    assert cp.counters.checkpoints == 2
    clock.now += 100.0
    assert cp.due() is None  # a quiet stream with nothing held does not write


def test_skipped_redelivered_inputs_are_counted() -> None:
    # catches: re-delivered inputs learned twice (skip off by one at the saved offset), inputs
    # of another partition skipped, and a skipped counter that never counts
    cp, _, _, _ = make()
    assert cp.skip(None, 0, 5) is False  # nothing saved yet
    assert cp.skip((2, 10), 2, 9) is True
    assert cp.skip((2, 10), 2, 10) is True  # the saved position itself was applied
    assert cp.skip((2, 10), 2, 11) is False
    assert cp.skip((2, 10), 3, 1) is False  # another partition's offsets are unrelated
    assert cp.counters.skipped == 2


def test_dropped_inputs_of_revoked_partitions_are_never_acked() -> None:
    # catches: a revoke acking the lost partitions' inputs (their new owner would skip them)
    cp, _, _, _ = make(every=100)
    keep, lose = events("keep1", "keep2"), events("lose")
    cp.hold(keep + lose)
    assert cp.drop(lambda e: e.name.startswith("lose")) == 1
    assert run(cp.checkpoint("revoked")) is True
    assert [e.acked for e in keep] == [1, 1] and lose[0].acked == 0


def test_the_counters_line_is_parseable() -> None:
    # catches: a log format change that silently blinds the integration tests' log parser
    c = WorkerCounters(checkpoints=4, checkpoint_failures=2, loaded=8, skipped=120)
    fields = dict(kv.split("=") for kv in c.line().removeprefix("counters: ").split())
    assert fields["checkpoints_ok"] == "4" and fields["checkpoints_failed"] == "2"
    assert fields["state_keys_loaded"] == "8" and fields["skipped"] == "120"


@pytest.mark.parametrize("every", [1, 2, 5])
def test_nothing_is_acked_twice_over_many_checkpoints(every: int) -> None:
    # catches: a held list not cleared after a save (inputs acked again at the next one)
    cp, _, _, _ = make(every=every)
    all_events = []
    for i in range(11):
        batch = events(f"e{i}")
        all_events += batch
        if cp.hold(batch):
            run(cp.checkpoint("events"))
    run(cp.checkpoint("shutdown"))
    assert [e.acked for e in all_events] == [1] * 11


class SeekingConsumer:
    """Stands in for Faust's consumer: committed offsets as aiokafka reports them, and seeks."""

    def __init__(self, committed: dict[str, int | None]) -> None:
        self.committed = committed
        self.seeks: list[dict[str, int]] = []
        self.asked = 0

    async def seek_to_committed(self) -> dict[str, int | None]:
        self.asked += 1
        return dict(self.committed)

    async def seek_wait(self, partitions: dict[str, int]) -> None:
        self.seeks.append(dict(partitions))


def test_partitions_without_a_committed_offset_are_rewound_to_the_start() -> None:
    # catches: aiokafka's seek_to_committed leaving an uncommitted partition where a fetch
    # dropped around a rebalance left it (the successor skipped every tick its dead owner had
    # not committed: thousands of signals with other sequence numbers)
    from streams.faust_app import seek_uncommitted_to_start

    consumer = SeekingConsumer({"ticks-0": None, "ticks-1": 1200, "votes-0": 0})
    seek_uncommitted_to_start(consumer)
    seek_uncommitted_to_start(consumer)  # installing twice must not wrap twice
    assert run(consumer.seek_to_committed()) == {"ticks-0": None, "ticks-1": 1200, "votes-0": 0}
    assert consumer.asked == 1
    assert consumer.seeks == [{"ticks-0": 0, "votes-0": 0}]  # committed ones stay with Faust
    consumer.committed = {"ticks-1": 1300}
    run(consumer.seek_to_committed())
    assert consumer.seeks == [{"ticks-0": 0, "votes-0": 0}]  # nothing to rewind: no seek


def test_a_revoke_with_nothing_held_still_meets_the_fence() -> None:
    # catches: a zombie that slept right after a checkpoint (nothing held) waking up, skipping
    # the save on revoke and carrying on without ever learning it was replaced
    cp, store, _, fenced = make(every=100)
    assert run(cp.checkpoint("events")) is True and store.log == []  # cadence: no write
    assert run(cp.checkpoint("revoked")) is True
    assert store.log == ["touch", "sealed", "flush", "saved"]
    store.fenced = True
    assert run(cp.checkpoint("revoked")) is False
    assert cp.counters.fenced == 1 and len(fenced) == 1


def test_inside_a_batch_record_the_skip_resumes_after_the_last_applied_element() -> None:
    # catches: a re-delivered batch skipped whole (its unapplied tail lost) or replayed whole
    # (its applied head learned twice) after a crash in the middle of it
    cp, _, _, _ = make()
    saved = (2, 10, 1)  # elements 0 and 1 of the record at offset 10 were applied
    assert [cp.skip(saved, 2, 10, i) for i in range(4)] == [True, True, False, False]
    assert cp.skip(saved, 2, 9, 199) is True  # every element of an earlier record
    assert cp.skip(saved, 2, 11, 0) is False
    assert cp.skip(saved, 3, 10, 0) is False
    assert cp.counters.skipped == 3


def test_the_redis_write_runs_with_the_gate_open_and_acks_wait_for_it() -> None:
    # catches: a checkpoint that blocks the agents (or the event loop) for the Redis round
    # trip, and one that acks before its write has landed
    calls: list[str] = []
    store = Store(calls)
    gate = asyncio.Lock()
    release = asyncio.Event()

    async def write(fn: Any) -> Any:
        calls.append("writing")
        await release.wait()  # Redis is slow: the write is still in flight
        return fn()

    async def flush() -> None:
        calls.append("flush")

    cp = Checkpointer(
        store, flush, every=2, interval_s=1.0, on_fenced=print, gate=gate, write=write
    )
    batch = events("t1", "t2")

    async def scenario() -> None:
        cp.hold(batch)
        task = asyncio.create_task(cp.checkpoint("events"))
        while "writing" not in calls:
            await asyncio.sleep(0)
        async with gate:  # the agents can process the next batch meanwhile
            cp.hold(events("t3"))
            calls.append("processed t3")
        assert [e.acked for e in batch] == [0, 0]  # not before the write landed
        release.set()
        assert await task is True

    run(scenario())
    assert calls == ["touch", "sealed", "flush", "writing", "processed t3", "saved"]
    assert [e.acked for e in batch] == [1, 1]
    assert [e.name for e in cp.held] == ["t3"]  # covered by the next checkpoint, not this one


def test_outputs_still_in_flight_fail_the_checkpoint_and_release_nothing() -> None:
    # catches: acking inputs (and saving state past them) while their signals are still
    # queued in the producer: a crash then would lose those signals for good
    calls: list[str] = []
    store = Store(calls)
    pending = [True]

    async def flush() -> None:
        calls.append("flush")
        if pending[0]:
            raise OutputsPending("3 output record(s) still in flight after 30 s")

    clock = Clock()
    cp = Checkpointer(
        store, flush, every=2, interval_s=1.0, on_fenced=print, clock=clock, sleep=clock.sleep
    )
    batch = events("t1", "t2")
    cp.hold(batch)
    assert run(cp.checkpoint("events")) is False
    assert "saved" not in calls and "retry later" in calls  # nothing written, re-dirtied
    assert [e.acked for e in batch] == [0, 0]
    assert cp.counters.checkpoint_failures == 1 and cp.delay == 0.25
    pending[0] = False
    clock.now += 1.0
    assert run(cp.checkpoint("events")) is True
    assert [e.acked for e in batch] == [1, 1]
