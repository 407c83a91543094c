"""One order of events for the paper trader, whichever driver feeds it.

The trader keeps one account across symbols (cash, the day's loss, the order rate), so the
order in which different symbols' events reach it matters. The canonical order is: by event
time, then by symbol, then by the symbol's own order; a trigger tick is followed at once by its
signal, the one with the same per-symbol sequence number (the kernel's ``seq``: the count of
the symbol's ticks up to and including the trigger), so the signal sees the book its tick made.

The embedded backtest reads ticks merged by event time, so there this is a stable sort of its
stream by (ts, symbol). On Kafka, symbols come from several partitions at their own pace and
signals come later than their ticks. The merger holds every event until no partition can still
deliver an earlier one: each partition has delivered a strictly later tick, or the driver says
it is idle (caught up and quiet for a grace period). Only an idle partition that then delivers
an older tick breaks the order; such a tick is applied late and counted (``late_ticks``).

Pairing is by sequence number. A signal at or below the last sequence number taken in for its
symbol is a duplicate (as after a worker restart) and is dropped. A trigger tick whose
signal is overtaken by a later one is released alone (``unpaired``); a signal older than the
waiting tick is released alone (``late_signals``). Both mean the worker and this reader count a
symbol's ticks differently (they must read the ticks topic from the same start); they are
counted so a status shows them, never silently absorbed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from models.records import Signal, Tick

__all__ = ["MergeCounters", "Merger", "Released"]

#: A released step: a tick with its signal (None: not a trigger, or unpaired), or a signal
#: alone (tick None: a late signal).
Released = tuple[Tick | None, Signal | None]


@dataclass(slots=True)
class MergeCounters:
    ticks: int = 0
    signals: int = 0
    paired: int = 0
    unpaired: int = 0
    late_signals: int = 0
    duplicates: int = 0
    mismatched_ts: int = 0  # paired, but the signal's event time is not its tick's
    late_ticks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Symbol:
    seq: int = 0  # ticks taken in
    released: int = 0  # sequence number of the last tick released
    signalled: int = 0  # sequence number of the last signal taken in
    ticks: deque[tuple[int, Tick]] = field(default_factory=deque)
    signals: deque[Signal] = field(default_factory=deque)


@dataclass(slots=True)
class Merger:
    """Ticks and signals in, the canonical order out (see the module doc). Pickles."""

    triggers: frozenset[str]
    counters: MergeCounters = field(default_factory=MergeCounters)
    _symbols: dict[str, _Symbol] = field(default_factory=dict)
    _newest: dict[int, int | None] = field(default_factory=dict)  # partition -> newest tick ts
    _partition_of: dict[str, int] = field(default_factory=dict)  # a symbol lives on one
    _held: dict[int, int] = field(default_factory=dict)  # partition -> ticks held
    _released: tuple[int, str] | None = None  # (ts, symbol) of the last tick released

    def add_partition(self, partition: int) -> None:
        """A partition that may deliver ticks: nothing is released before it has delivered
        one later than the event, or is idle."""
        self._newest.setdefault(partition, None)

    def partitions(self) -> list[int]:
        return list(self._newest)

    def held(self, partition: int) -> int:
        """Ticks of ``partition`` taken in and not released yet (a driver pauses a partition
        that runs far ahead, e.g. of the signals its ticks wait for)."""
        return self._held.get(partition, 0)

    def tick(self, partition: int, tick: Tick) -> None:
        self.counters.ticks += 1
        st = self._symbols.get(tick.symbol)
        if st is None:
            st = self._symbols[tick.symbol] = _Symbol()
        st.seq += 1
        st.ticks.append((st.seq, tick))
        self._partition_of[tick.symbol] = partition
        self._held[partition] = self._held.get(partition, 0) + 1
        newest = self._newest.get(partition)
        if newest is None or tick.ts > newest:
            self._newest[partition] = tick.ts
        if self._released is not None and (tick.ts, tick.symbol) < self._released:
            self.counters.late_ticks += 1  # its place in the order has gone by

    def signal(self, signal: Signal) -> None:
        self.counters.signals += 1
        st = self._symbols.get(signal.symbol)
        if st is None:
            st = self._symbols[signal.symbol] = _Symbol()
        if signal.seq <= st.signalled:
            self.counters.duplicates += 1
            return
        st.signalled = signal.seq
        st.signals.append(signal)

    def pending(self) -> int:
        """Events held: ticks and signals not released yet."""
        return sum(len(st.ticks) + len(st.signals) for st in self._symbols.values())

    def ready(self, idle: Collection[int] = ()) -> Iterator[Released]:
        """Release what can go now, in order; ``idle`` partitions hold nothing back."""
        c = self.counters
        for st in self._symbols.values():  # signals whose tick went without them
            while st.signals and st.signals[0].seq <= st.released:
                c.late_signals += 1
                yield None, st.signals.popleft()
        while True:
            best: tuple[int, str] | None = None
            for sym, st in self._symbols.items():
                if st.ticks:
                    key = (st.ticks[0][1].ts, sym)
                    if best is None or key < best:
                        best = key
            if best is None:
                return
            ts, sym = best
            for partition, newest in self._newest.items():
                if (newest is None or newest <= ts) and partition not in idle:
                    return  # it may still deliver a tick at or before ts
            st = self._symbols[sym]
            seq, tick = st.ticks[0]
            signal: Signal | None = None
            while st.signals and st.signals[0].seq < seq:  # its tick went without it
                c.late_signals += 1
                yield None, st.signals.popleft()
            if tick.kind in self.triggers:
                if not st.signals:
                    return  # its signal is on its way: everything waits for it
                if st.signals[0].seq == seq:
                    signal = st.signals.popleft()
                    c.paired += 1
                    if signal.ts != tick.ts:
                        c.mismatched_ts += 1
                else:
                    c.unpaired += 1
            st.ticks.popleft()
            part = self._partition_of[sym]
            self._held[part] -= 1
            st.released = seq
            if self._released is None or best > self._released:
                self._released = best
            yield tick, signal
