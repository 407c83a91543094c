"""The worker's checkpoint logic, free of Faust and Kafka so it can be tested without a broker.

A durable worker keeps every processed input unacknowledged ("held") until the state that
covers it is saved. A checkpoint flushes the produced outputs, saves all state in one fenced
transaction, and only then releases (acks) the held inputs: Kafka never commits an offset past
saved state. While Redis is down the save fails, nothing is released, and the next tries wait
with a growing, capped backoff. A fenced save (another worker wrote our keys since we loaded
them) releases nothing and is reported to ``on_fenced`` (the worker exits with code 3).

The event loop is never blocked by Redis: the snapshot is sealed while the agents are paused
(the ``gate``); then, while they go on, the outputs are flushed and the snapshot is written by
``write`` (a thread in the worker); the inputs it covers are acked after the write, and
checkpoints never overlap. The order stays outputs flushed → state saved → acks released:
outputs still in flight (:class:`~streams.outputs.OutputsPending`) fail the checkpoint like a
Redis outage.

Time comes from an injected clock and sleeps from an injected ``sleep``, so tests drive both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from streams.outputs import OutputsPending
from streams.redis_store import StateFencedError

log = logging.getLogger("quorum.worker")

#: Backoff between retries while Redis is down: doubles from MIN_BACKOFF_S, capped at MAX.
MIN_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0


class Ackable(Protocol):
    """A processed input (a Faust event in the worker) that may be acknowledged once."""

    def ack(self) -> Any: ...


class SavedStats(Protocol):
    @property
    def keys(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    @property
    def elapsed_ms(self) -> float: ...


class CheckpointStore(Protocol):
    """What a checkpoint needs of the state store (a :class:`RedisStateStore` in the worker):
    seal a snapshot while inputs are paused, write it (in a thread), then record or retry it."""

    def touch_all(self) -> None: ...

    def prepare(self) -> Any: ...

    def commit(self, prepared: Any) -> SavedStats: ...

    def committed(self, prepared: Any) -> None: ...

    def failed(self, prepared: Any) -> None: ...


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking I/O (a Redis round trip) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn)


@dataclass
class WorkerCounters:
    """What the worker did; logged by its periodic report and at shutdown (tests parse it)."""

    ticks: int = 0
    rejected: int = 0
    votes: int = 0
    signals: int = 0
    skipped: int = 0  # re-delivered inputs at or before a checkpointed position
    checkpoints: int = 0  # successful saves
    checkpoint_failures: int = 0  # saves that failed (Redis unavailable)
    fenced: int = 0  # saves refused because another worker wrote our keys
    loaded: int = 0  # saved state keys loaded on partition assignment
    held: int = 0

    def line(self) -> str:
        """One ``key=value`` line, stable for log parsers (see tests/integration)."""
        return (
            f"counters: checkpoints_ok={self.checkpoints} "
            f"checkpoints_failed={self.checkpoint_failures} fenced={self.fenced} "
            f"state_keys_loaded={self.loaded} skipped={self.skipped} ticks={self.ticks} "
            f"votes={self.votes} signals={self.signals} unacked={self.held}"
        )


def next_backoff(delay: float) -> float:
    """The wait after one more failure: doubling from MIN_BACKOFF_S, never above MAX."""
    return min(max(delay * 2, MIN_BACKOFF_S), MAX_BACKOFF_S)


class Checkpointer:
    """Held inputs, checkpoint cadence, save-then-release, backoff and fencing.

    ``flush`` delivers the produced outputs (they must be on the broker before the inputs that
    caused them are acked); ``gate`` is the lock the agents hold while processing a batch, so a
    checkpoint never sees half a batch.
    """

    def __init__(
        self,
        store: CheckpointStore,
        flush: Callable[[], Awaitable[Any]],
        *,
        every: int,
        interval_s: float,
        on_fenced: Callable[[StateFencedError], None],
        counters: WorkerCounters | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        gate: asyncio.Lock | None = None,
        write: Callable[[Callable[[], Any]], Awaitable[Any]] = in_thread,
        before_seal: Callable[[], None] | None = None,
        on_saved: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.flush = flush
        self.every = every
        self.interval_s = interval_s
        self.on_fenced = on_fenced
        self.counters = counters if counters is not None else WorkerCounters()
        self.clock = clock
        self.sleep = sleep
        self.gate = gate if gate is not None else asyncio.Lock()
        self.write = write
        self.before_seal = before_seal  # the driver's metadata (positions) into the store
        self.on_saved = on_saved  # a saved checkpoint's latency in seconds (the metrics)
        self._one_at_a_time = asyncio.Lock()  # a checkpoint builds on the versions of the last
        self.held: list[Any] = []
        self.delay = 0.0  # current backoff; 0 while Redis answers
        self.retry_at = 0.0  # no cadence checkpoint before this (backoff)
        self.last = clock()  # when the last checkpoint was tried: the interval counts from it
        self._announce = True  # log the next success at INFO (first since start/assignment)

    def announce_next(self) -> None:
        """Log the next successful checkpoint at INFO: after an assignment, the log then shows
        when the new owner of the partitions first saved their state."""
        self._announce = True

    # --- held inputs ---------------------------------------------------------------------

    def hold(self, events: Iterable[Ackable]) -> bool:
        """Keep processed inputs unacknowledged until a checkpoint; True when N are held."""
        self.held.extend(events)
        self.counters.held = len(self.held)
        return len(self.held) >= self.every

    def drop(self, lost: Callable[[Any], bool]) -> int:
        """Forget held inputs (of revoked partitions) without acking: their owner re-reads."""
        before = len(self.held)
        self.held[:] = [e for e in self.held if not lost(e)]
        self.counters.held = len(self.held)
        return before - len(self.held)

    def skip(
        self, position: Sequence[int] | None, partition: int, offset: int, index: int = 0
    ) -> bool:
        """True (and counted) for a re-delivered input at or before the saved position.

        Positions are (partition, offset, index): the index of a tick inside a batch record,
        so a batch re-delivered after a crash resumes after its last applied element.
        """
        if (
            position is not None
            and position[0] == partition
            and (offset, index) <= (position[1], position[2] if len(position) > 2 else index)
        ):
            self.counters.skipped += 1
            return True
        return False

    # --- cadence ---------------------------------------------------------------------------

    def due(self) -> str | None:
        """Why a cadence checkpoint is due now ("events" or "interval"), or None."""
        if not self.held:
            return None
        now = self.clock()
        if now < self.retry_at:
            return None  # Redis was down a moment ago: retry with backoff, not every batch
        if len(self.held) >= self.every:
            return "events"
        if now - self.last >= self.interval_s:
            return "interval"
        return None

    async def tick(self) -> bool:
        """Checkpoint if the cadence says so (called by a timer and after every batch)."""
        reason = self.due()
        return await self.checkpoint(reason) if reason is not None else False

    # --- the checkpoint ----------------------------------------------------------------------

    async def checkpoint(self, reason: str) -> bool:
        """Flush outputs, save all state atomically, then release the acks it covers.

        True when everything held when it started is now saved and acknowledged. Cadence
        reasons ("events", "interval") respect the backoff; "revoked" and "shutdown" always
        try. A revoke saves the live state even with nothing held: the save is fenced, so a
        worker that slept past its session (its partitions reassigned and their state written
        by the successor) learns it here and exits, whether or not it had unsaved inputs.
        """
        verify = reason == "revoked"
        if not self.held and not verify:
            return True
        if reason in ("events", "interval") and self.clock() < self.retry_at:
            return False
        async with self._one_at_a_time:
            async with self.gate:  # inputs paused: the snapshot matches the held inputs exactly
                if not self.held and not verify:  # another checkpoint got there first
                    return True
                self.last = started = self.clock()
                covered = list(self.held)
                if self.before_seal is not None:
                    self.before_seal()
                self.store.touch_all()
                prepared = self.store.prepare()
            # inputs flow again while outputs are flushed and Redis writes; what they change
            # goes in the next checkpoint
            try:
                await self.flush()  # the outputs of every covered input are delivered first
            except OutputsPending as e:
                self.store.failed(prepared)
                self._failed(reason, e)
                return False
            try:
                stats = await self.write(lambda: self.store.commit(prepared))
            except StateFencedError as e:
                self.counters.fenced += 1
                self.on_fenced(e)
                return False
            except redis.RedisError as e:
                self.store.failed(prepared)
                self._failed(reason, e)
                return False
            self.store.committed(prepared)
            if not covered and stats.keys == 0:
                return True  # a revoke with no live state: nothing was written
            if self.on_saved is not None:  # sealed (inputs paused), flushed and written
                self.on_saved(self.clock() - started)
            for event in covered:
                event.ack()
            acked = {id(e) for e in covered}
            self.held[:] = [e for e in self.held if id(e) not in acked]
            self.counters.held = len(self.held)
            self.counters.checkpoints += 1
            if self.delay:
                log.info("checkpoint (%s) succeeded again; offsets are committed again", reason)
            elif self._announce:
                log.info(
                    "first checkpoint since start or assignment saved (%s): %d keys; %s",
                    reason,
                    stats.keys,
                    self.counters.line(),
                )
            self._announce = False
            self.delay = 0.0
            self.retry_at = 0.0
            log.debug(
                "checkpoint (%s): %d keys, %d bytes, %.1f ms",
                reason,
                stats.keys,
                stats.bytes,
                stats.elapsed_ms,
            )
            return True

    def _failed(self, reason: str, error: Exception) -> None:
        self.counters.checkpoint_failures += 1
        self.delay = next_backoff(self.delay)
        self.retry_at = self.clock() + self.delay
        log.error(
            "checkpoint (%s) failed, %d inputs stay unacknowledged and offsets are not "
            "committed until it succeeds (%d failed so far): %s",
            reason,
            len(self.held),
            self.counters.checkpoint_failures,
            error,
        )

    async def load_failed(self, error: redis.RedisError, what: str) -> None:
        """Wait before retrying a state load: the input is retried, never skipped."""
        self.delay = next_backoff(self.delay)
        log.error(
            "Redis unavailable loading %s state; retrying in %.2f s: %s", what, self.delay, error
        )
        await self.sleep(self.delay)
