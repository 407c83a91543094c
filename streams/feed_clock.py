"""The pure parts of a live feed: the clock offset and the event-time reorder buffer.

Both are deterministic functions of what arrived, in arrival order, so a replay of the
recording (``streams.readers``) can reproduce them: the offset is written into the recording
where it changes, and the reorder buffer releases in the reader's order, (event time, arrival).
"""

from __future__ import annotations

import heapq
import statistics
from collections import deque
from dataclasses import dataclass, field

from models.records import Tick


@dataclass(slots=True)
class ClockOffset:
    """Exchange time − receive time, from trades (which carry the exchange's time).

    Fixed first as the low median of the first ``first`` trades, then re-fixed every ``every``
    trades to the low median of the last ``window``: a median ignores the odd slow frame, and
    a value that changes only now and then is cheap to write into a recording.
    """

    first: int = 20
    every: int = 1_000
    window: int = 1_000
    value: int | None = None
    samples: deque[int] = field(default_factory=deque)
    seen: int = 0
    changes: int = 0

    def add(self, exchange_ns: int, recv_ns: int) -> int | None:
        """Take one trade's sample; the new offset when it changed, else None."""
        self.samples.append(exchange_ns - recv_ns)
        if len(self.samples) > self.window:
            self.samples.popleft()
        self.seen += 1
        due = self.seen == self.first if self.value is None else self.seen % self.every == 0
        if not due:
            return None
        new = int(statistics.median_low(self.samples))
        if new == self.value:
            return None
        self.value = new
        self.changes += 1
        return new

    def fix(self, value: int) -> None:
        """Fix the offset without trades (a feed that has none yet after a while)."""
        self.value = value
        self.changes += 1


@dataclass(slots=True)
class Reorder:
    """Release ticks in (event time, arrival) order once a tick ``window_ns`` later has
    arrived; a tick older than one already released is late (the reader's rule, with its
    tolerance). ``flush_older`` releases by wall time, so a quiet feed holds nothing long."""

    window_ns: int
    _heap: list[tuple[int, int, int, int, Tick]] = field(default_factory=list)
    _seq: int = 0
    newest: int = -1
    released: int = -1
    late: int = 0

    def push(self, tick: Tick, wall_ns: int, tag: int = 0) -> list[tuple[Tick, int]]:
        """Hold ``tick`` (pushed at ``wall_ns``); the (tick, tag) pairs now due. A late tick is
        dropped and counted (the caller dead-letters it: see :meth:`is_late`)."""
        if tick.ts < self.released:
            self.late += 1
            return []
        self._seq += 1
        heapq.heappush(self._heap, (tick.ts, self._seq, wall_ns, tag, tick))
        if tick.ts > self.newest:
            self.newest = tick.ts
        return self._release(self.newest - self.window_ns, None)

    def is_late(self, tick: Tick) -> bool:
        return tick.ts < self.released

    def flush_older(self, wall_ns: int) -> list[tuple[Tick, int]]:
        """Release what was pushed ``window_ns`` of wall time ago or earlier (and what is
        before it in event time): a quiet feed holds nothing long. Call it only while nothing
        waits to be pushed, or a backlog would be released ahead of its stragglers."""
        return self._release(None, wall_ns - self.window_ns)

    def flush_all(self) -> list[tuple[Tick, int]]:
        return self._release(None, None, everything=True)

    def __len__(self) -> int:
        return len(self._heap)

    def _release(
        self, ts_limit: int | None, wall_limit: int | None, everything: bool = False
    ) -> list[tuple[Tick, int]]:
        out: list[tuple[Tick, int]] = []
        heap = self._heap
        if wall_limit is not None and heap:
            # the oldest arrival held: release through its event time
            oldest = min(item[2] for item in heap)
            if oldest <= wall_limit:
                ts_limit = max(item[0] for item in heap if item[2] <= wall_limit)
        while heap and (everything or (ts_limit is not None and heap[0][0] <= ts_limit)):
            ts, _, _, tag, tick = heapq.heappop(heap)
            self.released = ts
            out.append((tick, tag))
        return out
