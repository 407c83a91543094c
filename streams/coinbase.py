"""Coinbase Advanced Trade market-data frames: subscribe messages and a stateful frame parser.

Pure logic (no I/O), shared by the live connector and any replay of recorded frames, so both
make the same ticks. Wire format, from the venue's documentation
(https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-overview and
.../websocket-channels):

- endpoint :data:`URL`; one ``{"type": "subscribe", "product_ids": [...], "channel": ...}`` per
  channel, sent within 5 s of connecting or the server disconnects; ``heartbeats`` keeps quiet
  subscriptions open (most channels close after 60-90 s without updates);
- every data message is an envelope ``{"channel", "client_id", "timestamp", "sequence_num",
  "events"}``; ``sequence_num`` counts the messages of one connection (all channels together)
  up by 1, restarting on a new connection;
- ``market_trades`` events (``type`` snapshot/update) carry ``trades`` of ``{trade_id,
  product_id, price, size, side, time}``, ids being decimal digit strings; a snapshot lists
  recent trades newest first;
- ``ticker`` events carry ``tickers`` with ``best_bid``/``best_bid_quantity``/``best_ask``/
  ``best_ask_quantity`` (the quantities are a 2024 addition, per ccxt's adapter notes);
- errors are ``{"type": "error", "message": ...}`` without an envelope (a ``reason``, as the
  Exchange feed adds, is appended to the message if present).

Decisions where the docs leave room (each one pinned by a unit test):

- **Trade side.** The Advanced Trade pages show ``"side": "BUY"``/``"SELL"`` without saying
  whose side it is. The one Coinbase document that defines ``side`` on a public trade feed, the
  Exchange WebSocket ``match`` message (https://docs.cdp.coinbase.com/exchange/websocket-feed/
  channels#match), says it "indicates the maker order side"; NautilusTrader's Coinbase adapter
  (``coinbase_side_to_aggressor``) also documents that "Coinbase reports the maker side on public
  market trades" (an earlier version of it, and ccxt, take ``side`` as the taker's). We follow
  the documented meaning: the aggressor (our ``Trade.side``) is the opposite of ``side``. This
  is uncertain; :data:`SIDE_IS_MAKER` is the one switch to flip if a live check (do trades at
  the best ask say ``SELL``? then it is the maker's) ever says otherwise.
  ``UNKNOWN_ORDER_SIDE`` becomes ``None``; any other value is a bad frame.
- **Ticker without sizes.** Our Quote needs sizes, so a ticker missing a best bid/ask price or
  quantity is a bad frame (:class:`FrameError` naming the field), not a silently dropped quote:
  a schema change then shows up in the dead letters at once.
- **Unknown messages.** Malformed JSON, a non-object, or an object with neither ``channel`` nor
  ``type`` raise :class:`FrameError`. A well-formed envelope of a channel we do not parse
  (``l2_data``, ``status``, ...) or a message of another ``type`` is kind ``"other"``: the docs
  say new message types may appear and clients should ignore them.
- **Stale frames.** A ``sequence_num`` at or below the last one (a repeat or an out-of-order
  message) is counted and described; its trades still pass the trade-id dedupe (so nothing new
  is lost), its quotes are dropped because they are older than quotes already emitted.
- **Quote time** is the envelope ``timestamp`` (the venue's send time); only an envelope without
  one falls back to the receive time. Trades use their own ``time``.
- **Atomicity.** A :class:`FrameError` leaves the parser exactly as it was (sequence baseline,
  trade ids, counters), so the next frame after a dead-lettered one reports the sequence gap the
  dead letter left.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from models.records import Quote, Side, Tick, Trade
from streams.validation import InvalidTick, validate

URL = "wss://advanced-trade-ws.coinbase.com"
CHANNELS = ("heartbeats", "market_trades", "ticker")
#: whether ``market_trades`` ``side`` is the maker's (see the module docstring for the source)
SIDE_IS_MAKER = True
_SIDES: dict[str, Side | None] = (
    {"BUY": "sell", "SELL": "buy", "UNKNOWN_ORDER_SIDE": None}
    if SIDE_IS_MAKER
    else {"BUY": "buy", "SELL": "sell", "UNKNOWN_ORDER_SIDE": None}
)

NS = 1_000_000_000
_DAY_S = 86_400
#: RFC 3339 ``date-time``: ASCII digits only (``re.ASCII``), up to 9 fractional digits, ``Z`` or
#: a numeric offset; ``T``/``Z`` may be lower case (RFC 3339 section 5.6)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MIN_NS = -62_167_219_200 * NS  # 0000-01-01T00:00:00Z
_MAX_NS = 253_402_300_800 * NS  # 10000-01-01T00:00:00Z, exclusive
# the Tick field a validation message starts with -> the Coinbase field it came from
_TRADE_FIELDS = {"price": "price", "size": "size", "event": "time", "side": "side"}
_QUOTE_FIELDS = {
    "bid": "best_bid",
    "ask": "best_ask",
    "bid_size": "best_bid_quantity",
    "ask_size": "best_ask_quantity",
    "locked": "best_bid/best_ask",
    "crossed": "best_bid/best_ask",
    "event": "timestamp",
}


class FrameError(ValueError):
    """A frame that cannot be used; str(e) is the reason (dead-lettered with the raw bytes)."""


@dataclass(slots=True)
class Frame:
    """What one frame gave: its ticks and what it says about the feed's continuity."""

    kind: str  # "market_trades" | "ticker" | "heartbeats" | "subscriptions" | "error" | "other"
    ticks: list[Tick]  # models.records.Trade / Quote made from it (new ones only, see dedupe)
    gaps: list[str]  # human-readable descriptions of gaps detected by this frame
    duplicates: int  # trades dropped as already seen
    exchange_ns: int | None  # the envelope timestamp in integer ns (None if absent)
    message: str = ""  # an error frame's message (and reason), for the connector's log


def subscribe_messages(product_ids: Sequence[str]) -> list[bytes]:
    """One orjson-encoded subscribe message per channel (heartbeats first)."""
    products = list(product_ids)
    if not products or not all(isinstance(p, str) and p for p in products):
        raise ValueError(f"product_ids must be non-empty strings, got {product_ids!r}")
    return [
        orjson.dumps({"type": "subscribe", "product_ids": products, "channel": channel})
        for channel in CHANNELS
    ]


# --- exact RFC 3339 <-> integer nanoseconds ----------------------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """The inverse of :func:`_days_from_civil`."""
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def parse_rfc3339_ns(text: str) -> int:
    """Integer nanoseconds since the epoch (UTC) of an RFC 3339 date-time, exactly.

    ``datetime`` keeps only microseconds and a float loses nanoseconds past 2**53, so the
    fields are read as integers. Raises ValueError with the reason.

    >>> parse_rfc3339_ns("2023-02-09T20:32:50.714964855Z")
    1675974770714964855
    """
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(
            f"not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.1-9 digits] then Z or ±hh:mm): "
            f"{text[:60]!r}"
        )
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    hour, minute, second = int(m[4]), int(m[5]), int(m[6])
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} out of range in {text!r}")
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _MONTH_DAYS[month - 1] + leap:
        raise ValueError(f"day {day} out of range in {text!r}")
    if hour > 23 or minute > 59 or second > 59:  # a leap second (60) has no epoch time
        raise ValueError(f"time of day out of range in {text!r}")
    frac = m[7]
    nanos = int(frac.ljust(9, "0")) if frac else 0
    offset = 0
    if m[8]:
        oh, om = int(m[9]), int(m[10])
        if oh > 23 or om > 59:
            raise ValueError(f"UTC offset out of range in {text!r}")
        offset = (oh * 3600 + om * 60) * (1 if m[8] == "+" else -1)
    seconds = _days_from_civil(year, month, day) * _DAY_S + hour * 3600 + minute * 60 + second
    return (seconds - offset) * NS + nanos


def format_rfc3339_ns(ns: int) -> str:
    """``ns`` as RFC 3339 UTC with all 9 fractional digits (the inverse of the parser)."""
    if not _MIN_NS <= ns < _MAX_NS:
        raise ValueError(f"{ns} ns is outside years 0000-9999")
    seconds, nanos = divmod(ns, NS)
    days, sod = divmod(seconds, _DAY_S)
    y, mo, d = _civil_from_days(days)
    hh, rem = divmod(sod, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{nanos:09d}Z"


# --- field readers: each raises FrameError naming the field --------------------------------------


def _time(v: Any, name: str) -> int:
    if type(v) is not str:
        raise FrameError(f"field {name!r} must be an RFC 3339 string, got {_show(v)}")
    try:
        return parse_rfc3339_ns(v)
    except ValueError as e:
        raise FrameError(f"field {name!r}: {e}") from None


def _number(v: Any, name: str) -> float:
    """A non-negative finite decimal: a plain decimal string (Coinbase's form) or a JSON number;
    never a bool, ``"NaN"``, ``"inf"``, ``" 1"``, ``"1_000"`` or other digits than ASCII, all of
    which ``float`` would accept."""
    if type(v) is str:
        if _DECIMAL.fullmatch(v) is None:
            if v[:1] == "-" and _DECIMAL.fullmatch(v[1:]) is not None:
                raise FrameError(f"field {name!r} must not be negative, got {v!r}")
            raise FrameError(f"field {name!r} must be a decimal string, got {_show(v)}")
        x = float(v)
    elif type(v) is float or type(v) is int:
        x = float(v)
        if x < 0:
            raise FrameError(f"field {name!r} must not be negative, got {v!r}")
    else:
        raise FrameError(f"field {name!r} must be a decimal string, got {_show(v)}")
    if not math.isfinite(x):
        raise FrameError(f"field {name!r} must be finite, got {_show(v)}")
    return x


def _trade_id(v: Any) -> int:
    if type(v) is str and 0 < len(v) <= 20 and v.isascii() and v.isdigit():
        return int(v)
    if type(v) is int and v >= 0:
        return v
    raise FrameError(f"field 'trade_id' must be a string of decimal digits, got {_show(v)}")


def _product(v: Any) -> str:
    if type(v) is not str or not v:
        raise FrameError(f"field 'product_id' must be a non-empty string, got {_show(v)}")
    return v


def _list(obj: dict[str, Any], key: str, what: str) -> list[Any]:
    v = obj.get(key)
    if type(v) is not list:
        raise FrameError(f"{what} field {key!r} must be a list, got {_show(v)}")
    return v


def _object(v: Any, what: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise FrameError(f"{what} must be an object, got {_show(v)}")
    return v


def _show(v: Any) -> str:
    """A short rendering of a bad value for a reason (``missing`` for an absent key)."""
    if v is None:
        return "missing (or null)"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked(tick: Tick, fields: dict[str, str], where: str) -> None:
    """Validate ``tick``; the reason names the Coinbase field the bad value came from."""
    try:
        validate(tick)
    except InvalidTick as e:
        reason = str(e)
        source = fields.get(reason.split(" ", 1)[0], "?")
        raise FrameError(f"{where}: field {source!r}: {reason}") from None


class CoinbaseParser:
    """Stateful per connection set: sequence_num gaps (per connection — call reset_sequence() on
    reconnect), trade-id dedupe and gaps per product (survive reconnects)."""

    def __init__(self) -> None:
        self.frames = 0
        self.trades = 0
        self.quotes = 0
        self.duplicates = 0
        self.sequence_gaps = 0
        self.trade_id_gaps = 0
        self.missing_trade_ids = 0
        self.sequence_repeats = 0  # sequence_num at or below the last one (repeat/out of order)
        self.stale_quotes = 0  # quotes dropped because their frame was such a repeat
        self.errors = 0  # {"type": "error"} frames
        self._seq: int | None = None
        self._last_trade_id: dict[str, int] = {}

    def reset_sequence(self) -> None:
        """A new connection restarts sequence_num: its first frame sets the baseline."""
        self._seq = None

    def parse(self, raw: bytes | str, recv_ns: int) -> Frame:
        """The ticks and continuity findings of one frame; raises FrameError for a bad frame
        (then nothing here changes)."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise FrameError(f"not JSON: {e}") from None
        if type(msg) is not dict:
            raise FrameError(f"frame must be a JSON object, got {type(msg).__name__}")
        channel = msg.get("channel")
        typ = msg.get("type")
        if typ == "error":
            return self._error(msg)
        if channel is None:
            if type(typ) is str:  # a message type we do not know: ignore it, as the docs say
                self.frames += 1
                return Frame("other", [], [], 0, None)
            raise FrameError("frame has neither a 'channel' nor a 'type' field")
        if type(channel) is not str:
            raise FrameError(f"field 'channel' must be a string, got {_show(channel)}")
        seq = msg.get("sequence_num")
        if type(seq) is not int or seq < 0:
            raise FrameError(f"field 'sequence_num' must be an integer >= 0, got {_show(seq)}")
        stamp = msg.get("timestamp")
        exchange_ns = None if stamp is None else _time(stamp, "timestamp")

        ticks: list[Tick] = []
        if channel == "market_trades":
            kind = channel
            parsed = self._trades(msg)
        elif channel == "ticker":
            kind = channel
            quote_ns = recv_ns if exchange_ns is None else exchange_ns
            ticks = self._quotes(msg, quote_ns)
        elif channel == "heartbeats" or channel == "subscriptions":
            kind = channel
        else:
            kind = "other"
        # nothing below raises: commit the frame's effects on the state
        gaps: list[str] = []
        last = self._seq
        stale = last is not None and seq <= last
        if last is None or seq > last:
            self._seq = seq
            if last is not None and seq > last + 1:
                self.sequence_gaps += 1
                gaps.append(
                    f"sequence_num gap: {last} -> {seq} ({seq - last - 1} messages missing)"
                )
        else:
            self.sequence_repeats += 1
            gaps.append(f"sequence_num {seq} after {last}: repeated or out-of-order message")
        duplicates = 0
        if kind == "market_trades":
            ticks, duplicates = self._dedupe(parsed, gaps)
            self.trades += len(ticks)
        elif kind == "ticker":
            if stale:
                self.stale_quotes += len(ticks)
                ticks = []
            self.quotes += len(ticks)
        self.frames += 1
        return Frame(kind, ticks, gaps, duplicates, exchange_ns)

    def _error(self, msg: dict[str, Any]) -> Frame:
        text = msg.get("message")
        reason = msg.get("reason")
        message = text if type(text) is str else _show(text)
        if type(reason) is str and reason:
            message = f"{message}: {reason}"
        self.errors += 1
        self.frames += 1
        return Frame("error", [], [], 0, None, message)

    def _trades(self, msg: dict[str, Any]) -> list[list[tuple[str, int, Trade]]]:
        """Per event, its validated trades as (product, trade id, trade) in id order; pure."""
        out = []
        for e, event in enumerate(_list(msg, "events", "market_trades")):
            event = _object(event, f"market_trades event {e}")
            rows = []
            for i, t in enumerate(_list(event, "trades", f"market_trades event {e}")):
                where = f"market_trades event {e} trade {i}"
                try:
                    t = _object(t, "trade")
                    product = _product(t.get("product_id"))
                    tid = _trade_id(t.get("trade_id"))
                    raw_side = t.get("side")
                    if type(raw_side) is not str or raw_side not in _SIDES:
                        raise FrameError(
                            f"field 'side' must be BUY, SELL or UNKNOWN_ORDER_SIDE, "
                            f"got {_show(raw_side)}"
                        )
                    trade = Trade(
                        product,
                        _time(t.get("time"), "time"),
                        _number(t.get("price"), "price"),
                        _number(t.get("size"), "size"),
                        _SIDES[raw_side],
                    )
                except FrameError as err:
                    raise FrameError(f"{where}: {err}") from None
                _checked(trade, _TRADE_FIELDS, f"{where} ({product} #{tid})")
                rows.append((product, tid, trade))
            rows.sort(key=lambda r: (r[0], r[1]))  # a snapshot comes newest first
            out.append(rows)
        return out

    def _quotes(self, msg: dict[str, Any], ts: int) -> list[Tick]:
        quotes: list[Tick] = []
        for e, event in enumerate(_list(msg, "events", "ticker")):
            event = _object(event, f"ticker event {e}")
            for i, t in enumerate(_list(event, "tickers", f"ticker event {e}")):
                where = f"ticker event {e} ticker {i}"
                try:
                    t = _object(t, "ticker")
                    quote = Quote(
                        _product(t.get("product_id")),
                        ts,
                        _number(t.get("best_bid"), "best_bid"),
                        _number(t.get("best_ask"), "best_ask"),
                        _number(t.get("best_bid_quantity"), "best_bid_quantity"),
                        _number(t.get("best_ask_quantity"), "best_ask_quantity"),
                    )
                except FrameError as err:
                    raise FrameError(f"{where}: {err}") from None
                _checked(quote, _QUOTE_FIELDS, f"{where} ({quote.symbol})")
                quotes.append(quote)
        return quotes

    def _dedupe(
        self, events: list[list[tuple[str, int, Trade]]], gaps: list[str]
    ) -> tuple[list[Tick], int]:
        """Drop trades at or below the last accepted id of their product; count id jumps.

        Runs after validation (it mutates the state). Output is in event-time order, stable on
        trade-id order, so a snapshot's trades come out oldest first.
        """
        last_of = self._last_trade_id
        kept: list[Tick] = []
        duplicates = 0
        for rows in events:
            for product, tid, trade in rows:
                last = last_of.get(product)
                if last is not None:
                    if tid <= last:
                        duplicates += 1
                        continue
                    if tid > last + 1:
                        missing = tid - last - 1
                        self.trade_id_gaps += 1
                        self.missing_trade_ids += missing
                        gaps.append(
                            f"trade_id gap on {product}: {last} -> {tid} ({missing} missing)"
                        )
                last_of[product] = tid
                kept.append(trade)
        kept.sort(key=lambda t: t.ts)
        self.duplicates += duplicates
        return kept, duplicates


__all__ = [
    "CHANNELS",
    "SIDE_IS_MAKER",
    "URL",
    "CoinbaseParser",
    "Frame",
    "FrameError",
    "format_rfc3339_ns",
    "parse_rfc3339_ns",
    "subscribe_messages",
]
