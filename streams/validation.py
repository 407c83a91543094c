"""Checks that every tick passes before it may touch a model, whatever its source.

The accepted ranges are deliberately wide but finite, because every bound below stops a real
failure further down, not a matter of taste:

- event time in [1990-01-01, 2100-01-01) UTC as integer nanoseconds: timestamps in seconds,
  milliseconds or microseconds read as nanoseconds land in 1970 and are caught; anything at or
  past 2**63 ns (year 2262) would overflow the int64 arrays of the report (``array('q')``);
- prices (price, bid, ask) in [1e-15, 1e15]: a finite but huge quote such as bid 1.7e308 makes
  the mid overflow to inf, and a subnormal price makes a return underflow to 0, either of which
  crashes ``math.log`` in the volatility features;
- sizes at most 1e15 (a trade size > 0, quote sizes >= 0), so notionals stay finite.
"""

from __future__ import annotations

from models.records import Quote, Tick, Trade

TS_MIN_NS = 631_152_000 * 1_000_000_000  # 1990-01-01T00:00:00Z, inclusive
TS_MAX_NS = 4_102_444_800 * 1_000_000_000  # 2100-01-01T00:00:00Z, exclusive
PRICE_MIN = 1e-15
PRICE_MAX = 1e15
SIZE_MAX = 1e15


class InvalidTick(ValueError):
    """A tick that parsed but makes no market sense; the message is the reject reason."""


def validate(tick: Tick) -> Tick:
    """Return ``tick`` unchanged or raise :class:`InvalidTick` with the reason.

    Comparisons are written so that NaN fails them (``x <= nan`` is False): this runs on every
    tick, so it avoids helper calls.
    """
    if not tick.symbol:
        raise InvalidTick("empty symbol")
    if not TS_MIN_NS <= tick.ts < TS_MAX_NS:
        raise InvalidTick(
            f"event time {tick.ts} ns is outside [1990-01-01, 2100-01-01) UTC "
            f"(integer nanoseconds since the epoch)"
        )
    if type(tick) is Trade:
        if not PRICE_MIN <= tick.price <= PRICE_MAX:
            raise InvalidTick(f"price must be a finite number in [1e-15, 1e15], got {tick.price!r}")
        if not 0.0 < tick.size <= SIZE_MAX:
            raise InvalidTick(f"size must be a finite number in (0, 1e15], got {tick.size!r}")
        if tick.side is not None and tick.side != "buy" and tick.side != "sell":
            raise InvalidTick(f"side must be buy or sell, got {tick.side!r}")
    elif type(tick) is Quote:
        if not PRICE_MIN <= tick.bid <= PRICE_MAX:
            raise InvalidTick(f"bid must be a finite number in [1e-15, 1e15], got {tick.bid!r}")
        if not PRICE_MIN <= tick.ask <= PRICE_MAX:
            raise InvalidTick(f"ask must be a finite number in [1e-15, 1e15], got {tick.ask!r}")
        if not 0.0 <= tick.bid_size <= SIZE_MAX:
            raise InvalidTick(
                f"bid_size must be a finite number in [0, 1e15], got {tick.bid_size!r}"
            )
        if not 0.0 <= tick.ask_size <= SIZE_MAX:
            raise InvalidTick(
                f"ask_size must be a finite number in [0, 1e15], got {tick.ask_size!r}"
            )
        if tick.bid >= tick.ask:
            kind = "locked" if tick.bid == tick.ask else "crossed"
            raise InvalidTick(f"{kind} quote: bid {tick.bid!r} >= ask {tick.ask!r}")
    return tick
