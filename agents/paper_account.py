"""Paper account: cash, one net position per symbol (average entry), PnL, fees, drawdown.

Invariants (tested): ``equity(marks) == cash + Σ size × mark``, and
``cash - starting_cash == Σ realised - Σ fees - Σ size × avg_price`` (average-cost accounting).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from models.orders import Fill, Position, RoundTrip

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(slots=True)
class _Trip:
    open_ts: int
    sign: int
    max_size: float = 0.0
    realised: float = 0.0
    fees: float = 0.0


@dataclass(slots=True)
class Account:
    starting_cash: float
    cash: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    high_water: float = 0.0
    last_equity: float = 0.0
    max_drawdown: float = 0.0
    day: int | None = None
    day_start_equity: float = 0.0
    denials: dict[str, int] = field(default_factory=dict)
    n_orders: int = 0
    n_fills: int = 0
    turnover: float = 0.0
    round_trips: list[RoundTrip] = field(default_factory=list)
    _trips: dict[str, _Trip] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.positions and self.cash == 0.0 and self.high_water == 0.0:
            self.cash = self.starting_cash
            self.high_water = self.starting_cash
            self.last_equity = self.starting_cash
            self.day_start_equity = self.starting_cash

    # --- valuation -------------------------------------------------------------------------
    def equity(self, marks: Mapping[str, float]) -> float:
        """Cash plus every position at its mark (its average price when unmarked)."""
        total = self.cash
        for sym, pos in self.positions.items():
            if pos.size:
                total += pos.size * marks.get(sym, pos.avg_price)
        return total

    def unrealised(self, marks: Mapping[str, float]) -> float:
        return sum(
            pos.size * (marks.get(sym, pos.avg_price) - pos.avg_price)
            for sym, pos in self.positions.items()
        )

    @property
    def realised(self) -> float:
        return sum(p.realised_pnl for p in self.positions.values())

    @property
    def fees(self) -> float:
        return sum(p.fees for p in self.positions.values())

    @property
    def drawdown(self) -> float:
        """The current drawdown, a fraction of the high-water mark."""
        return (self.high_water - self.last_equity) / self.high_water if self.high_water else 0.0

    @property
    def day_pnl(self) -> float:
        """Realised + unrealised since the UTC day started (as of the last ``mark``)."""
        return self.last_equity - self.day_start_equity

    def mark(self, ts: int, equity: float) -> None:
        """Record the equity at event time ``ts``: high-water mark, drawdown, UTC day start."""
        day = ts // NS_PER_DAY
        if day != self.day:
            # the equity before this event is the day's opening equity
            self.day_start_equity = self.last_equity
            self.day = day
        self.last_equity = equity
        if equity > self.high_water:
            self.high_water = equity
        self.max_drawdown = max(self.max_drawdown, self.drawdown)

    def count_denial(self, reason: str) -> None:
        self.denials[reason] = self.denials.get(reason, 0) + 1

    # --- fills -----------------------------------------------------------------------------
    def apply(self, fill: Fill) -> None:
        """Book a fill: cash, the net position and its average price, realised PnL on the
        closed part of a reduction or flip, fees, turnover and round trips."""
        pos = self.positions.get(fill.symbol)
        if pos is None:
            pos = self.positions[fill.symbol] = Position(fill.symbol)
        q = fill.size if fill.side == "buy" else -fill.size
        self.cash -= q * fill.price + fill.fee
        self.turnover += fill.size * fill.price
        self.n_fills += 1
        pos.fees += fill.fee
        trip = self._trips.get(fill.symbol)
        if pos.size == 0.0 or (pos.size > 0) == (q > 0):
            new = abs(pos.size) + fill.size
            pos.avg_price = (abs(pos.size) * pos.avg_price + fill.size * fill.price) / new
            pos.size = new if q > 0 else -new
            if trip is None:
                trip = self._trips[fill.symbol] = _Trip(fill.ts, 1 if q > 0 else -1)
            trip.max_size = max(trip.max_size, new)
            trip.fees += fill.fee
            return
        sign = 1.0 if pos.size > 0 else -1.0
        closed = min(fill.size, abs(pos.size))
        pnl = closed * (fill.price - pos.avg_price) * sign
        pos.realised_pnl += pnl
        rest = fill.size - closed
        closed_fee = fill.fee * closed / fill.size
        if trip is None:  # a restored account without its trip: open it now
            trip = self._trips[fill.symbol] = _Trip(fill.ts, int(sign), abs(pos.size))
        trip.realised += pnl
        trip.fees += closed_fee
        if closed < abs(pos.size):
            pos.size = sign * (abs(pos.size) - closed)
            return
        self._close_trip(fill.symbol, fill.ts)
        if rest > 0.0:  # a flip: the rest opens the other way at the fill price
            pos.size = -sign * rest
            pos.avg_price = fill.price
            self._trips[fill.symbol] = _Trip(fill.ts, -int(sign), rest, 0.0, fill.fee - closed_fee)
        else:
            pos.size = 0.0
            pos.avg_price = 0.0

    def _close_trip(self, symbol: str, ts: int) -> None:
        t = self._trips.pop(symbol)
        self.round_trips.append(
            RoundTrip(
                symbol=symbol,
                open_ts=t.open_ts,
                close_ts=ts,
                side="buy" if t.sign > 0 else "sell",
                max_size=t.max_size,
                pnl=t.realised - t.fees,
                fees=t.fees,
            )
        )
