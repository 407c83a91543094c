"""Trade signing and Roll's spread: the aggressor side when the venue does not give it.

Both are per symbol, pure event logic (no clock), and plain slotted dataclasses so that the
states holding them pickle (seal) like the rest. ``models.labels`` uses them for the
bounce-corrected reference price of trades-only data, ``agents.features`` for signed flow.

- :class:`TradeSigner` signs a trade: the exchange's aggressor flag when given; otherwise
  Lee & Ready (1991) when a quote is known (above the mid = buy, below = sell, at the mid the
  tick rule); otherwise the tick rule (the sign of the last non-zero price change; a zero tick
  keeps the previous sign). It counts which rule signed how many trades.
- :class:`RollSpread` is Roll's (1984) estimate Ŝ = 2·sqrt(−cov(Δpₜ, Δpₜ₋₁)), 0 when the
  autocovariance is not negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from models.records import Trade

#: The rules a :class:`TradeSigner` reports, in the order a report prints them.
RULES = ("exchange", "quote", "tick_at_mid", "tick", "none")


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(RULES, 0)


@dataclass(slots=True)
class TradeSigner:
    """Signs one symbol's trades: +1.0 buy, −1.0 sell, 0.0 unknown; counts the rules used.

    ``tick`` is the sign of the last non-zero change of this symbol's trade prices (0.0 before
    the first change). It is updated on every trade, also those the exchange signs, so the tick
    rule is ready the moment sides go missing. Rules: ``exchange`` (the trade's side),
    ``quote`` (Lee–Ready: price above/below the mid of a known quote), ``tick_at_mid``
    (Lee–Ready at the mid: the tick rule), ``tick`` (no quote: the tick rule), ``none``
    (the tick rule had no price change yet, with or without a quote: sign 0.0).
    """

    last_price: float = 0.0
    tick: float = 0.0
    counts: dict[str, int] = field(default_factory=_zero_counts)

    def observe(self, price: float) -> float:
        """The tick rule alone: move the tick memory with a trade price; the sign after it."""
        last = self.last_price
        if price != last and last > 0.0:
            self.tick = 1.0 if price > last else -1.0
        self.last_price = price
        return self.tick

    def sign(self, trade: Trade, bid: float = 0.0, ask: float = 0.0) -> tuple[float, str]:
        """Sign ``trade`` given the best bid/ask in force (0.0 when no quote is known)."""
        price = trade.price
        self.observe(price)
        side = trade.side
        if side is not None:
            s, rule = (1.0 if side == "buy" else -1.0), "exchange"
        elif bid > 0.0 and ask > 0.0:
            mid = (bid + ask) * 0.5
            if price > mid:
                s, rule = 1.0, "quote"
            elif price < mid:
                s, rule = -1.0, "quote"
            else:
                s = self.tick
                rule = "tick_at_mid" if s != 0.0 else "none"
        else:
            s = self.tick
            rule = "tick" if s != 0.0 else "none"
        self.counts[rule] += 1
        return s, rule


@dataclass(slots=True)
class RollSpread:
    """Roll's spread from one symbol's trade prices, on a fixed-alpha EWMA over trades.

    Each trade gives the price change Δpₜ = pₜ − pₜ₋₁; each pair of consecutive changes one
    product Δpₜ·Δpₜ₋₁. ``cov`` is their mean: the exact running mean of the first
    ``1/alpha`` products, then an EWMA with weight ``alpha`` per trade (memory ≈ 1/alpha
    trades): cₙ = cₙ₋₁ + aₙ(xₙ − cₙ₋₁), aₙ = max(alpha, 1/n). The products are not centred:
    at tick scale the mean price change is negligible against the bounce, and an EWMA mean
    estimate would only add noise. Counting trades (not seconds) is Roll's model: the bounce
    is a property of consecutive prints however far apart they are. Zero changes count too
    (they are part of the model); split fills of one order at one price dilute the estimate
    towards 0 (it is then a lower bound).

    ``spread`` = 2·sqrt(−cov) when cov < 0, else 0.0 (price units); also 0.0 until ``warmup``
    products have been averaged (an estimate from one or two products is noise, and a
    trades-only label would be corrected by it).
    """

    alpha: float = 0.01
    warmup: int = 20
    last_price: float = 0.0
    last_change: float = 0.0
    changes: int = 0  # price changes seen (trades − 1)
    n: int = 0  # products averaged
    cov: float = 0.0

    def update(self, price: float) -> None:
        last = self.last_price
        self.last_price = price
        if last <= 0.0:
            return
        change = price - last
        if self.changes:
            self.n += 1
            a = 1.0 / self.n
            if a < self.alpha:
                a = self.alpha
            self.cov += a * (change * self.last_change - self.cov)
        self.changes += 1
        self.last_change = change

    @property
    def spread(self) -> float:
        cov = self.cov
        return 2.0 * math.sqrt(-cov) if cov < 0.0 and self.n >= self.warmup else 0.0

    def spread_bps(self, ref: float) -> float:
        """The spread in basis points of ``ref`` (0.0 without a reference price)."""
        return self.spread / ref * 1e4 if ref > 0.0 else 0.0
