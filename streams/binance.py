"""Binance market-data frames: one parser for the file reader and the live connector.

Both turn a combined-stream frame (``{"stream": "btcusdt@trade", "data": {...}}``) into a tick
by :func:`frame_tick`, drop repeats and find trade-id gaps with :class:`Ids`, and stamp a
spot ``bookTicker`` (which carries no exchange time) with its receive time shifted by the
clock offset. A live session therefore makes the same ticks as ``quorum backtest`` on its
recording: the connector writes the offset it stamps with into the recording as a meta line
(:func:`offset_meta`), and the reader honours it (a recording without one, like the bundled
sample, is stamped with the offset measured over its first trades).

Field types are checked as Binance sends them (``s`` a string, ``T``/``E`` integer ms, ``m`` a
JSON bool, prices and sizes decimal strings or numbers), so ``"m": "false"`` is not read as
truthy and ``"p": true`` is not a price of 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.records import Quote, Side, Tick, Trade
from streams.validation import validate

URL = "wss://stream.binance.com:9443/stream"
#: the key of a recording's meta line: the clock offset (ns) quotes are stamped with from there
OFFSET_META = "quorum_clock_offset_ns"


def stream_names(symbols: Iterable[str]) -> list[str]:
    """The combined streams of ``symbols``: trades and best bid/ask, lower case."""
    return [f"{s.lower()}@{kind}" for s in symbols for kind in ("trade", "bookTicker")]


def stream_url(base: str, symbols: Iterable[str]) -> str:
    return f"{base.rstrip('/')}?streams=" + "/".join(stream_names(symbols))


#: the key of a recording's meta line where a connection opened (per-connection state restarts)
CONNECTED_META = "quorum_connected"


def connected_meta(n: int) -> bytes:
    return orjson.dumps({CONNECTED_META: n})


def offset_meta(offset_ns: int) -> bytes:
    """The meta frame a recording carries where the quote clock offset takes (new) effect."""
    return orjson.dumps({OFFSET_META: offset_ns})


def decimal(v: object, key: str) -> str | float:
    """Slow path of a numeric field that is not a string: a JSON number, never a bool."""
    if isinstance(v, str | float) or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise ValueError(f"field {key!r} must be a decimal string or a number, got {v!r}")


def frame_tick(stream: str, data: Any, recv_ns: int, offset_ns: int) -> Tick | None:
    """The tick of one combined-stream frame, or None for a stream we do not use. Raises
    KeyError (a missing field), ValueError/TypeError/OverflowError (a bad value) or
    InvalidTick (a tick that cannot be)."""
    if type(stream) is not str:
        raise ValueError(f"field 'stream' must be a string, got {stream!r}")
    if not isinstance(data, dict):
        raise ValueError("frame has no data object")
    tick: Tick
    if stream.endswith("@trade"):
        sym, t, m, p, q = data["s"], data["T"], data["m"], data["p"], data["q"]
        if type(sym) is not str:
            raise ValueError(f"field 's' (symbol) must be a string, got {sym!r}")
        if type(t) is not int:
            raise ValueError(f"field 'T' (trade time) must be integer ms, got {t!r}")
        if m is True:
            side: Side = "sell"
        elif m is False:
            side = "buy"
        else:
            raise ValueError(f"field 'm' (buyer is maker) must be true or false, got {m!r}")
        if type(p) is not str or type(q) is not str:
            p, q = decimal(p, "p"), decimal(q, "q")
        tick = Trade(sym, t * 1_000_000, float(p), float(q), side)
    elif stream.endswith("@bookTicker"):
        sym, b, a, bs, az = data["s"], data["b"], data["a"], data["B"], data["A"]
        if type(sym) is not str:
            raise ValueError(f"field 's' (symbol) must be a string, got {sym!r}")
        exch = data.get("T")
        if exch is None:
            exch = data.get("E")
        if exch is None:
            ts = recv_ns + offset_ns
        elif type(exch) is int:
            ts = exch * 1_000_000
        else:
            raise ValueError(f"field 'T'/'E' (event time) must be integer ms, got {exch!r}")
        if type(b) is not str or type(a) is not str or type(bs) is not str:
            b, a, bs = decimal(b, "b"), decimal(a, "a"), decimal(bs, "B")
        if type(az) is not str:
            az = decimal(az, "A")
        tick = Quote(sym, ts, float(b), float(a), float(bs), float(az))
    else:
        return None
    validate(tick)
    return tick


@dataclass(slots=True)
class Ids:
    """Per symbol, the last trade id (``t``) and book update id (``u``) accepted.

    A frame at or below them is a repeat — the overlap of a rotated connection, frames re-sent
    after a reconnect, or a duplicated line in a recording — and is dropped (counted). Trade
    ids are contiguous per symbol, so a jump is a gap: counted with the ids it misses. A frame
    without the id is always accepted.
    """

    trade: dict[str, int] = field(default_factory=dict)
    book: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    gaps: int = 0
    missing: int = 0
    last_gap: tuple[str, int, int] | None = None  # (symbol, first missing id, last missing id)

    def accept(self, tick: Tick, data: Any) -> bool:
        """False for a repeat (drop it); records a gap in trade ids."""
        if isinstance(tick, Trade):
            tid, last_of = data.get("t"), self.trade
        else:
            tid, last_of = data.get("u"), self.book
        if type(tid) is not int:
            return True
        last = last_of.get(tick.symbol)
        if last is not None:
            if tid <= last:
                self.duplicates += 1
                return False
            if isinstance(tick, Trade) and tid > last + 1:
                self.gaps += 1
                self.missing += tid - last - 1
                self.last_gap = (tick.symbol, last + 1, tid - 1)
        last_of[tick.symbol] = tid
        return True
