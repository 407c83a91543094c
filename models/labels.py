"""Delayed labels without lookahead.

A trigger tick at time ``t`` is labelled once event time has moved *past* ``t + horizon``:
only then are all ticks stamped at or before the deadline known. The label compares the
reference price at the deadline with the one at ``t`` (mid when a quote is known, else the
last trade price corrected for bid-ask bounce: see :class:`ReferencePrice`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from models.records import Label, Quote, Tick
from models.trade_sign import RollSpread, TradeSigner


@dataclass(slots=True)
class ReferencePrice:
    """Mid when a quote is known, else the last trade price corrected for bid-ask bounce.

    Once a quote has been seen the value is the mid, computed exactly as it always was (trades
    then only record ``last_trade``). While no quote has been seen (trades-only data), the value
    is the last trade price minus ``sign · Ŝ/2``: a buy prints at the ask, half a spread above
    the unobserved mid, a sell half a spread below. The sign comes from a :class:`TradeSigner`
    without quotes (the exchange's side when the print has one, else the tick rule) and Ŝ is
    Roll's estimate (0 until the price changes are negatively autocorrelated), so the label
    does not reward the bounce, which cannot be traded.
    """

    mid: float = 0.0
    last_trade: float = 0.0
    corrected: float = 0.0  # last_trade − sign·Ŝ/2, maintained while no quote has been seen
    signer: TradeSigner = field(default_factory=TradeSigner)
    roll: RollSpread = field(default_factory=RollSpread)

    def update(self, tick: Tick) -> None:
        if isinstance(tick, Quote):
            self.mid = (tick.bid + tick.ask) * 0.5
        else:
            price = self.last_trade = tick.price
            if self.mid == 0.0:  # no quote yet: the bounce-corrected trade price
                sign = self.signer.sign(tick)[0]
                roll = self.roll
                roll.update(price)
                self.corrected = price - sign * roll.spread * 0.5

    @property
    def value(self) -> float:
        return self.mid if self.mid > 0.0 else self.corrected


def label_of(before: float, after: float, dead_band_bps: float) -> Label:
    """Up, down or flat by the relative move, with a symmetric dead-band in basis points."""
    if dead_band_bps > 0.0:
        move_bps = (after / before - 1.0) * 1e4
        if move_bps > dead_band_bps:
            return Label.UP
        if move_bps < -dead_band_bps:
            return Label.DOWN
        return Label.FLAT
    if after > before:
        return Label.UP
    if after < before:
        return Label.DOWN
    return Label.FLAT


@dataclass(slots=True)
class Pending:
    deadline: int
    seq: int
    ref: float
    payload: Any


@dataclass(slots=True)
class Labeler:
    """Holds trigger ticks until their horizon has passed, then labels each exactly once.

    Memory is bounded by ``max_pending``; the oldest entries are dropped (and counted) beyond it.
    """

    horizon_ns: int
    dead_band_bps: float = 0.0
    max_pending: int = 100_000
    ref: ReferencePrice = field(default_factory=ReferencePrice)
    pending: deque[Pending] = field(default_factory=deque)
    dropped: int = 0

    def resolve(self, now: int) -> list[tuple[Pending, Label]]:
        """Label every pending tick whose deadline lies strictly before ``now``.

        Call it *before* applying the tick stamped ``now``: the reference price then is the
        one at the deadline.
        """
        out: list[tuple[Pending, Label]] = []
        pending = self.pending
        if not pending or pending[0].deadline >= now:
            return out
        price = self.ref.value
        while pending and pending[0].deadline < now:
            p = pending.popleft()
            out.append((p, label_of(p.ref, price, self.dead_band_bps)))
        return out

    def observe(self, tick: Tick) -> None:
        self.ref.update(tick)

    def add(self, seq: int, ts: int, payload: Any) -> None:
        """Register the trigger tick ``seq`` at ``ts`` (after :meth:`observe` of that tick)."""
        self.pending.append(Pending(ts + self.horizon_ns, seq, self.ref.value, payload))
        if len(self.pending) > self.max_pending:
            self.pending.popleft()
            self.dropped += 1
