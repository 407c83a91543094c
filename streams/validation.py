"""Checks that every tick passes before it may touch a model, whatever its source."""

from __future__ import annotations

import math

from streams.records import Quote, Tick, Trade


class InvalidTick(ValueError):
    """A tick that parsed but makes no market sense; the message is the reject reason."""


def _positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0.0:
        raise InvalidTick(f"{name} must be a positive finite number, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0.0:
        raise InvalidTick(f"{name} must be a non-negative finite number, got {value!r}")


def validate(tick: Tick) -> Tick:
    """Return ``tick`` unchanged or raise :class:`InvalidTick` with the reason."""
    if not tick.symbol:
        raise InvalidTick("empty symbol")
    if tick.ts <= 0:
        raise InvalidTick(f"event time must be positive nanoseconds, got {tick.ts}")
    if isinstance(tick, Trade):
        _positive("price", tick.price)
        _positive("size", tick.size)
        if tick.side not in (None, "buy", "sell"):
            raise InvalidTick(f"side must be buy or sell, got {tick.side!r}")
    elif isinstance(tick, Quote):
        _positive("bid", tick.bid)
        _positive("ask", tick.ask)
        _non_negative("bid_size", tick.bid_size)
        _non_negative("ask_size", tick.ask_size)
        if tick.bid >= tick.ask:
            raise InvalidTick(f"crossed or locked quote: bid {tick.bid} >= ask {tick.ask}")
    return tick
