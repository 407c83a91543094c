"""Joins the stages' votes for one tick before the voting agent sees them (Kafka driver).

Votes for a symbol arrive from independent stage agents in any interleaving, but each stage's
votes come in tick order. The join releases a tick's votes when every stage has voted, strictly
in tick order per symbol (the voter learns from outcomes, so order is part of determinism). A
tick still incomplete after ``timeout_s`` is released with what it has once its missing stages
have also sent no vote at all (for any symbol) for ``timeout_s``: a dead stage cannot stall the
pipeline, and its signal names the missing stages; a stage that is only behind, busy with a
backlog and still voting, is waited for, so a backlog never changes a signal.

Memory is bounded: at most ``max_waiting`` ticks wait per symbol. One more and the oldest
waiting tick is decided with the votes it has (counted in ``overflowed``; its signal lists the
missing stages): a stage that is very far behind costs signals their full quorum, never
memory without end, and no tick is ever dropped silently.

``now`` is passed in by the driver: this module never reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from models.records import Vote
from models.state import MemoryStateStore, StateStore, state_key

JOIN = "join"


@dataclass
class JoinState:
    """One symbol's votes waiting for their tick to complete; what a checkpoint saves."""

    pending: OrderedDict[int, tuple[float, dict[str, Vote]]] = field(default_factory=OrderedDict)
    released: int = 0  # highest seq already released


class VoteJoin:
    def __init__(
        self,
        stages: tuple[str, ...],
        timeout_s: float,
        store: StateStore | None = None,
        *,
        max_waiting: int = 100_000,
    ) -> None:
        if max_waiting < 1:
            raise ValueError(f"max_waiting must be >= 1, got {max_waiting}")
        self.stages = stages
        self.timeout_s = timeout_s
        self.max_waiting = max_waiting
        self.overflowed = 0  # ticks decided incomplete because too many were waiting
        self.store: StateStore = store if store is not None else MemoryStateStore()
        self._symbols: dict[str, JoinState] = {}
        self.late = 0  # votes that arrived after their tick was released
        self.timed_out = 0
        self._heard: dict[str, float] = {}  # stage -> when its last vote (any symbol) came
        self._since: float | None = None  # first call: a stage never heard counts from here

    def state(self, symbol: str) -> JoinState:
        sym = self._symbols.get(symbol)
        if sym is None:
            key = state_key(JOIN, symbol)
            sym = self.store.get(key)
            if sym is None:
                sym = JoinState()
                self.store.put(key, sym)
            else:
                # restored after a restart: the downtime must not count against the timeout,
                # so the waiting ticks' clocks restart at the next call (marked with -1)
                sym.pending = OrderedDict((k, (-1.0, v)) for k, (_, v) in sym.pending.items())
            self._symbols[symbol] = sym
        return sym

    def forget(self) -> None:
        self._symbols.clear()

    def add(self, vote: Vote, now: float) -> list[list[Vote]]:
        """Take one vote; return the ticks (lists of votes in stage order) now ready."""
        sym = self.state(vote.symbol)
        self._heard[vote.stage] = now
        if self._since is None:
            self._since = now
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
        if self._since is None:
            self._since = now
        out: list[list[Vote]] = []
        for sym in self._symbols.values():
            out.extend(self._release(sym, now, expire=True))
        return out

    def _silent(self, votes: dict[str, Vote], now: float) -> bool:
        """Every stage missing from ``votes`` has sent nothing for the timeout."""
        since = self._since if self._since is not None else now
        return all(
            now - self._heard.get(s, since) >= self.timeout_s for s in self.stages if s not in votes
        )

    def _release(self, sym: JoinState, now: float, *, expire: bool) -> list[list[Vote]]:
        out: list[list[Vote]] = []
        n = len(self.stages)
        while sym.pending:
            seq, (first_seen, votes) = next(iter(sym.pending.items()))
            if first_seen < 0.0:
                for k, (_, v) in list(sym.pending.items()):
                    sym.pending[k] = (now, v)
                first_seen = now
            if len(votes) < n:
                if len(sym.pending) > self.max_waiting:
                    self.overflowed += 1
                elif expire and now - first_seen >= self.timeout_s and self._silent(votes, now):
                    self.timed_out += 1
                else:
                    break
            sym.pending.popitem(last=False)
            sym.released = seq
            out.append([votes[s] for s in self.stages if s in votes])
        return out

    def shift(self, by: float) -> None:
        """Move every clock of the join forward by ``by`` seconds: the driver itself was not
        running (frozen, paused), so the stages were not silent meanwhile, and a tick must not
        time out for the driver's own stall (it would be decided without votes that are on
        their way, differently from the backtest)."""
        self._heard = {s: t + by for s, t in self._heard.items()}
        if self._since is not None:
            self._since += by
        for sym in self._symbols.values():
            for seq, (first_seen, votes) in sym.pending.items():
                if first_seen >= 0.0:
                    sym.pending[seq] = (first_seen + by, votes)

    def waiting(self) -> int:
        return sum(len(s.pending) for s in self._symbols.values())
