"""The L1 fill model of the paper trader: a per-symbol book and the displayed-size walk.

A taker walks a virtual ladder built from the touch: level 0 is the displayed size at the touch,
each further level the same displayed size one step worse (a step is one tick, or
``impact_bps`` of the touch). Orders filled against the same quote share its displayed size
(``consumed``), so two simulated orders cannot both take the same liquidity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.records import Quote, Side, Trade

MAX_LEVELS = 10_000  # a guard: the protection cap or the order size stops a walk long before


@dataclass(slots=True)
class Book:
    """The touch of one symbol, with what simulated takers already consumed of it."""

    bid: float | None = None
    ask: float | None = None
    bid_size: float = 0.0
    ask_size: float = 0.0
    quote_ts: int | None = None
    quote_seq: int = 0
    consumed_bid: float = 0.0
    consumed_ask: float = 0.0
    last_trade: float | None = None
    tick: float | None = None  # the smallest positive price increment seen
    _prices: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    def _see(self, i: int, price: float) -> None:
        prev = self._prices[i]
        if not math.isnan(prev):
            d = abs(price - prev)
            # round away float noise (prices are decimals): 12 significant digits of the price
            d = round(d, max(0, 11 - math.floor(math.log10(abs(price) or 1.0))))
            if d > 0 and (self.tick is None or d < self.tick):
                self.tick = d
        p = list(self._prices)
        p[i] = price
        self._prices = (p[0], p[1], p[2])

    def on_quote(self, q: Quote) -> None:
        self._see(0, q.bid)
        self._see(1, q.ask)
        if q.ask > q.bid > 0:
            self._see(0, q.ask)  # the spread is an increment too (a one-tick spread)
            self._prices = (q.bid, q.ask, self._prices[2])
        self.bid, self.ask = q.bid, q.ask
        self.bid_size, self.ask_size = q.bid_size, q.ask_size
        self.quote_ts = q.ts
        self.quote_seq += 1
        self.consumed_bid = self.consumed_ask = 0.0

    def on_trade(self, t: Trade) -> None:
        self._see(2, t.price)
        self.last_trade = t.price

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) * 0.5

    def touch(self, side: Side) -> float | None:
        """The price a taker of ``side`` meets: the ask for a buy, the bid for a sell."""
        return self.ask if side == "buy" else self.bid

    def step(self, price: float, impact_bps: float | None) -> float:
        if impact_bps is not None:
            return price * impact_bps * 1e-4
        return self.tick if self.tick is not None else price * 1e-4


def walk(
    book: Book, side: Side, size: float, worst: float, impact_bps: float | None
) -> list[tuple[float, float]]:
    """Take up to ``size`` from the book's current quote, never at a price worse than
    ``worst``: a list of (price, size), one per level, best first. Consumes the book."""
    touch = book.touch(side)
    shown = book.ask_size if side == "buy" else book.bid_size
    if touch is None or shown <= 0.0 or size <= 0.0:
        return []
    step = book.step(touch, impact_bps)
    used = book.consumed_ask if side == "buy" else book.consumed_bid
    sign = 1.0 if side == "buy" else -1.0
    out: list[tuple[float, float]] = []
    left = size
    level = int(used // shown)
    while left > 0.0 and level < MAX_LEVELS:
        price = touch + sign * level * step
        if (price - worst) * sign > 1e-12 * abs(worst):
            break
        room = (level + 1) * shown - used
        take = min(left, room)
        if take > 0.0:
            out.append((price, take))
            left -= take
            used += take
        level += 1
    if side == "buy":
        book.consumed_ask = used
    else:
        book.consumed_bid = used
    return out
