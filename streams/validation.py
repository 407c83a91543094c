"""Checks that every tick passes before it may touch a model, whatever its source."""

from __future__ import annotations

import math

from streams.records import Quote, Tick, Trade

_INF = math.inf


class InvalidTick(ValueError):
    """A tick that parsed but makes no market sense; the message is the reject reason."""


def validate(tick: Tick) -> Tick:
    """Return ``tick`` unchanged or raise :class:`InvalidTick` with the reason.

    Comparisons are written so that NaN fails them (``0 < nan`` is False): this runs on every
    tick, so it avoids helper calls.
    """
    if not tick.symbol:
        raise InvalidTick("empty symbol")
    if tick.ts <= 0:
        raise InvalidTick(f"event time must be positive nanoseconds, got {tick.ts}")
    if type(tick) is Trade:
        if not 0.0 < tick.price < _INF:
            raise InvalidTick(f"price must be a positive finite number, got {tick.price!r}")
        if not 0.0 < tick.size < _INF:
            raise InvalidTick(f"size must be a positive finite number, got {tick.size!r}")
        if tick.side is not None and tick.side != "buy" and tick.side != "sell":
            raise InvalidTick(f"side must be buy or sell, got {tick.side!r}")
    elif type(tick) is Quote:
        if not 0.0 < tick.bid < _INF:
            raise InvalidTick(f"bid must be a positive finite number, got {tick.bid!r}")
        if not 0.0 < tick.ask < _INF:
            raise InvalidTick(f"ask must be a positive finite number, got {tick.ask!r}")
        if not 0.0 <= tick.bid_size < _INF:
            raise InvalidTick(
                f"bid_size must be a non-negative finite number, got {tick.bid_size!r}"
            )
        if not 0.0 <= tick.ask_size < _INF:
            raise InvalidTick(
                f"ask_size must be a non-negative finite number, got {tick.ask_size!r}"
            )
        if tick.bid >= tick.ask:
            raise InvalidTick(f"crossed or locked quote: bid {tick.bid} >= ask {tick.ask}")
    return tick
