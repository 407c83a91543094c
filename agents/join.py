"""Joins the stages' votes for one tick before the voting agent sees them (Kafka driver).

Votes for a symbol arrive from independent stage agents in any interleaving, but each stage's
votes come in tick order. The join releases a tick's votes when every stage has voted, strictly
in tick order per symbol (the voter learns from outcomes, so order is part of determinism). A
tick still incomplete after ``timeout_s`` is released with what it has, so a dead stage cannot
stall the pipeline; its signal names the missing stages.

``now`` is passed in by the driver: this module never reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from streams.records import Vote


@dataclass
class _Symbol:
    pending: OrderedDict[int, tuple[float, dict[str, Vote]]] = field(default_factory=OrderedDict)
    released: int = 0  # highest seq already released


class VoteJoin:
    def __init__(self, stages: tuple[str, ...], timeout_s: float) -> None:
        self.stages = stages
        self.timeout_s = timeout_s
        self._symbols: dict[str, _Symbol] = {}
        self.late = 0  # votes that arrived after their tick was released
        self.timed_out = 0

    def add(self, vote: Vote, now: float) -> list[list[Vote]]:
        """Take one vote; return the ticks (lists of votes in stage order) now ready."""
        sym = self._symbols.setdefault(vote.symbol, _Symbol())
        if vote.seq <= sym.released:
            self.late += 1
            return []
        entry = sym.pending.get(vote.seq)
        if entry is None:
            entry = (now, {})
            sym.pending[vote.seq] = entry
            if len(sym.pending) > 1 and next(reversed(sym.pending)) != vote.seq:
                sym.pending = OrderedDict(sorted(sym.pending.items()))
        entry[1][vote.stage] = vote
        return self._release(sym, now, expire=False)

    def expire(self, now: float) -> list[list[Vote]]:
        """Release ticks waiting longer than the timeout (and complete ones queued behind)."""
        out: list[list[Vote]] = []
        for sym in self._symbols.values():
            out.extend(self._release(sym, now, expire=True))
        return out

    def _release(self, sym: _Symbol, now: float, *, expire: bool) -> list[list[Vote]]:
        out: list[list[Vote]] = []
        n = len(self.stages)
        while sym.pending:
            seq, (first_seen, votes) = next(iter(sym.pending.items()))
            if len(votes) < n:
                if not (expire and now - first_seen >= self.timeout_s):
                    break
                self.timed_out += 1
            sym.pending.popitem(last=False)
            sym.released = seq
            out.append([votes[s] for s in self.stages if s in votes])
        return out

    def waiting(self) -> int:
        return sum(len(s.pending) for s in self._symbols.values())
