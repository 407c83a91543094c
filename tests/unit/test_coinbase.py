"""Coinbase Advanced Trade parser: every field of every frame kind against hand-computed values,
sequence and trade-id continuity across a reconnect, bad frames, and properties (the RFC 3339
parser round-trips any nanosecond; no input raises anything but FrameError).

Times are computed by hand: 2024-05-14 is day 19857 since 1970-01-01 (54 years, 13 of them
leap, plus 134 days into 2024), so 2024-05-14T12:00:00Z is 19857 * 86400 + 43200 =
1_715_688_000 s.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.records import Quote, Trade
from streams.coinbase import (
    CHANNELS,
    URL,
    CoinbaseParser,
    Frame,
    FrameError,
    format_rfc3339_ns,
    parse_rfc3339_ns,
    subscribe_messages,
)
from streams.validation import validate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "coinbase_advanced" / "frames.jsonl"
LINES = FIXTURE.read_bytes().splitlines()
RECONNECT = 18  # index of the first line of connection 2 (sequence_num restarts at 0)
NS = 1_000_000_000
NOON = 1_715_688_000 * NS  # 2024-05-14T12:00:00Z
RECV = 1_800_000_000 * NS  # a receive time unlike any exchange time, to tell them apart

FAST = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def replay(parser: CoinbaseParser, lines: list[bytes]) -> list[Frame]:
    return [parser.parse(line, RECV) for line in lines]


def after_connection_1() -> CoinbaseParser:
    parser = CoinbaseParser()
    replay(parser, LINES[:RECONNECT])
    return parser


def envelope(channel: str, seq: int, events: list[Any], ts: str | None = None) -> bytes:
    msg: dict[str, Any] = {"channel": channel, "client_id": "", "sequence_num": seq}
    if ts is not None:
        msg["timestamp"] = ts
    msg["events"] = events
    return orjson.dumps(msg)


def trade(tid: Any, product: str = "BTC-USD", **over: Any) -> dict[str, Any]:
    t = {
        "trade_id": tid,
        "product_id": product,
        "price": "61520.01",
        "size": "0.5",
        "side": "SELL",
        "time": "2024-05-14T12:00:10.000001Z",
    }
    t.update(over)
    return t


def trades_frame(seq: int, *trades: Any, typ: str = "update") -> bytes:
    return envelope(
        "market_trades", seq, [{"type": typ, "trades": list(trades)}], "2024-05-14T12:00:10Z"
    )


def ticker(product: str = "BTC-USD", **over: Any) -> dict[str, Any]:
    t = {
        "type": "ticker",
        "product_id": product,
        "price": "61520.01",
        "best_bid": "61520",
        "best_bid_quantity": "0.51",
        "best_ask": "61520.01",
        "best_ask_quantity": "0.12",
    }
    t.update(over)
    return t


def ticker_frame(
    seq: int, *tickers: dict[str, Any], ts: str | None = "2024-05-14T12:00:11Z"
) -> bytes:
    return envelope("ticker", seq, [{"type": "update", "tickers": list(tickers)}], ts)


# --- subscribe messages ------------------------------------------------------------------------


def test_subscribe_messages_one_channel_each_heartbeats_first() -> None:
    """The venue takes one channel per subscribe and closes quiet channels without heartbeats:
    catches a combined message, a lost channel or a wrong field name."""
    assert URL == "wss://advanced-trade-ws.coinbase.com"
    msgs = [orjson.loads(m) for m in subscribe_messages(("BTC-USD", "ETH-USD"))]
    assert msgs == [
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": channel}
        for channel in ("heartbeats", "market_trades", "ticker")
    ]
    assert CHANNELS == ("heartbeats", "market_trades", "ticker")


@pytest.mark.parametrize("products", [[], [""], ["BTC-USD", 7]])
def test_subscribe_messages_refuse_empty_products(products: list[Any]) -> None:
    """An empty product list subscribes to nothing and the server drops us after 5 s."""
    with pytest.raises(ValueError, match="product_ids"):
        subscribe_messages(products)


# --- the fixture, frame by frame ---------------------------------------------------------------


def test_fixture_replays_clean_across_the_reconnect() -> None:
    """The documented story: every kind parses, trade ids come out contiguous and once each,
    the re-sent snapshot gives exactly its new trades. Catches dedupe, ordering or state lost
    on reset_sequence()."""
    parser = CoinbaseParser()
    frames = replay(parser, LINES[:RECONNECT])
    parser.reset_sequence()
    frames += replay(parser, LINES[RECONNECT:])
    assert [f.kind for f in frames[:7]] == [
        "subscriptions",
        "heartbeats",
        "subscriptions",
        "market_trades",
        "market_trades",
        "subscriptions",
        "ticker",
    ]
    assert frames[-1].kind == "error"
    assert all(f.gaps == [] for f in frames)
    trades = [t for f in frames for t in f.ticks if isinstance(t, Trade)]
    quotes = [t for f in frames for t in f.ticks if isinstance(t, Quote)]
    assert len(trades) == 24 and len(quotes) == 12
    # BTC-USD 1001-1016 once each, in time order (ETH-USD likewise: 8 trades)
    btc = [t.ts for t in trades if t.symbol == "BTC-USD"]
    assert len(btc) == 16 and btc == sorted(btc)
    assert sum(f.duplicates for f in frames) == 8
    assert (parser.frames, parser.trades, parser.quotes, parser.duplicates) == (34, 24, 12, 8)
    assert (parser.sequence_gaps, parser.sequence_repeats) == (0, 0)
    assert (parser.trade_id_gaps, parser.missing_trade_ids, parser.errors) == (0, 0, 1)
    for tick in trades + quotes:
        validate(tick)


def test_snapshot_fields_by_hand_oldest_first_and_side_is_the_aggressor() -> None:
    """Line 4, a BTC-USD snapshot listed newest first (1005..1001). Catches unsorted output,
    float-rounded nanoseconds, the envelope time used for trades, and the side not inverted
    (Coinbase's side is the maker's: SELL means a buyer lifted the ask)."""
    parser = CoinbaseParser()
    frame = replay(parser, LINES[:4])[3]
    assert frame.kind == "market_trades"
    assert frame.exchange_ns == NOON + 812_000_000  # 12:00:00.812000000
    assert frame.duplicates == 0 and frame.gaps == []
    s = NOON - 2 * NS  # 11:59:58
    assert frame.ticks == [
        Trade("BTC-USD", s + 100_000_000, 61521.0, 1.25, "buy"),  # 1001 .100000 SELL
        Trade("BTC-USD", s + 350_000_000, 61519.5, 0.00011, "sell"),  # 1002 .35 BUY
        Trade("BTC-USD", s + NS + 1_234_000, 61519.5, 0.2, "sell"),  # 1003 59.001234 BUY
        Trade("BTC-USD", s + NS + 500_000_000, 61520.01, 0.015, "buy"),  # 1004 59.5 SELL
        Trade("BTC-USD", s + NS + 987_654_000, 61520.01, 0.0042, "buy"),  # 1005 .987654 SELL
    ]


def test_ticker_snapshot_fields_by_hand() -> None:
    """Line 7: both products; a quote's time is the envelope timestamp (not the receive time)
    and best_bid_quantity/best_ask_quantity land in bid_size/ask_size, not swapped."""
    frame = replay(CoinbaseParser(), LINES[:7])[6]
    ts = NOON + NS + 10_000_000  # 12:00:01.010000000
    assert frame.kind == "ticker" and frame.exchange_ns == ts
    assert frame.ticks == [
        Quote("BTC-USD", ts, 61520.0, 61520.01, 0.51, 0.12345678),
        Quote("ETH-USD", ts, 2905.16, 2905.17, 12.5, 3.2),
    ]


def test_update_with_two_products_by_hand() -> None:
    """Line 14 carries a BTC-USD and an ETH-USD trade: each keeps its own product and time."""
    frame = replay(CoinbaseParser(), LINES[:14])[13]
    assert frame.ticks == [
        Trade("BTC-USD", NOON + 2 * NS + 850_000_000, 61520.0, 0.25, "sell"),  # BUY = maker bid
        Trade("ETH-USD", NOON + 2 * NS + 860_000_000, 2905.17, 0.4, "buy"),
    ]


@pytest.mark.parametrize(
    ("index", "kind", "exchange_ns"),
    [
        (0, "subscriptions", NOON + 100_000_000),
        (1, "heartbeats", NOON + 612_345_678),
        (17, "heartbeats", NOON + 3 * NS + 612_345_678),
    ],
)
def test_control_frames_give_no_ticks(index: int, kind: str, exchange_ns: int) -> None:
    """Heartbeats and acks carry no market data but their 9-digit timestamps stay exact."""
    frame = replay(CoinbaseParser(), LINES[: index + 1])[index]
    assert (frame.kind, frame.ticks, frame.gaps, frame.duplicates) == (kind, [], [], 0)
    assert frame.exchange_ns == exchange_ns


def test_error_frame_is_reported_not_raised() -> None:
    """The connector logs venue errors; raising would dead-letter them as garbage."""
    parser = CoinbaseParser()
    frame = parser.parse(LINES[-1], RECV)
    assert (frame.kind, frame.ticks, frame.exchange_ns) == ("error", [], None)
    assert frame.message == "failure to subscribe"
    both = parser.parse(b'{"type":"error","message":"Failed to subscribe","reason":"bad jwt"}', 0)
    assert both.message == "Failed to subscribe: bad jwt"
    assert parser.errors == 2 and parser.frames == 2


def test_quote_without_envelope_timestamp_uses_receive_time() -> None:
    """The documented fallback; catches a quote stamped 0 or a crash on a missing timestamp."""
    frame = CoinbaseParser().parse(ticker_frame(0, ticker(), ts=None), RECV)
    assert frame.exchange_ns is None
    assert frame.ticks == [Quote("BTC-USD", RECV, 61520.0, 61520.01, 0.51, 0.12)]


def test_trade_time_is_the_trade_not_the_envelope() -> None:
    frame = CoinbaseParser().parse(trades_frame(0, trade("1")), RECV)
    assert frame.exchange_ns == NOON + 10 * NS
    assert [t.ts for t in frame.ticks] == [NOON + 10 * NS + 1_000]


@pytest.mark.parametrize(
    ("side", "aggressor"), [("BUY", "sell"), ("SELL", "buy"), ("UNKNOWN_ORDER_SIDE", None)]
)
def test_side_is_the_makers_so_the_aggressor_is_the_opposite(side: str, aggressor: str) -> None:
    frame = CoinbaseParser().parse(trades_frame(0, trade("1", side=side)), RECV)
    assert [t.side for t in frame.ticks if isinstance(t, Trade)] == [aggressor]


def test_unknown_channel_or_type_is_other_but_keeps_the_sequence() -> None:
    """New message types must be ignored (the docs say so), yet they still count on the
    connection's sequence: skipping them would report a false gap on the next frame."""
    parser = CoinbaseParser()
    level2 = envelope("l2_data", 0, [{"type": "snapshot", "updates": []}], "2024-05-14T12:00:00Z")
    assert parser.parse(level2, RECV).kind == "other"
    assert parser.parse(b'{"type":"something_new"}', RECV).kind == "other"
    assert parser.parse(trades_frame(1, trade("1")), RECV).gaps == []


# --- sequence_num ------------------------------------------------------------------------------


def test_sequence_gap_is_described_and_counted() -> None:
    parser = CoinbaseParser()
    parser.parse(trades_frame(3, trade("1")), RECV)  # the first frame sets the baseline
    frame = parser.parse(trades_frame(7, trade("2")), RECV)
    assert frame.gaps == ["sequence_num gap: 3 -> 7 (3 messages missing)"]
    assert parser.sequence_gaps == 1
    assert len(frame.ticks) == 1  # a gap loses nothing of the frame itself


def test_repeated_sequence_drops_stale_quotes_and_is_described() -> None:
    """A repeat or a step back is an old message: its quotes would move the book back in time.
    The baseline stays at the highest number, so the next in-order frame is no gap."""
    parser = CoinbaseParser()
    assert len(parser.parse(ticker_frame(5, ticker()), RECV).ticks) == 1
    repeat = parser.parse(ticker_frame(5, ticker()), RECV)
    older = parser.parse(ticker_frame(2, ticker()), RECV)
    assert repeat.ticks == [] and older.ticks == []
    assert repeat.gaps == ["sequence_num 5 after 5: repeated or out-of-order message"]
    assert older.gaps == ["sequence_num 2 after 5: repeated or out-of-order message"]
    assert (parser.sequence_repeats, parser.stale_quotes, parser.quotes) == (2, 2, 1)
    assert parser.parse(ticker_frame(6, ticker()), RECV).gaps == []


def test_repeated_sequence_still_passes_new_trades() -> None:
    """Trades have ids, so a stale-numbered frame cannot re-emit a known trade; a new one in it
    must not be lost."""
    parser = CoinbaseParser()
    parser.parse(trades_frame(5, trade("10")), RECV)
    frame = parser.parse(trades_frame(5, trade("10"), trade("11")), RECV)
    assert [t.ts for t in frame.ticks] == [NOON + 10 * NS + 1_000]
    assert frame.duplicates == 1


def test_reset_sequence_starts_a_new_baseline() -> None:
    """Without it a reconnect (numbers restart at 0) reads as an out-of-order frame."""
    parser = after_connection_1()
    parser.reset_sequence()
    assert parser.parse(LINES[RECONNECT], RECV).gaps == []
    stale = after_connection_1()
    assert stale.parse(LINES[RECONNECT], RECV).gaps == [
        "sequence_num 0 after 17: repeated or out-of-order message"
    ]


# --- trade ids ---------------------------------------------------------------------------------


def test_snapshot_resent_after_reconnect_yields_only_new_trades() -> None:
    """Line 21 re-sends BTC-USD 1007..1011 and adds 1012, 1013 (listed newest first). Catches
    ids reset by reset_sequence(), or a newest-first walk that drops 1012 as 'below 1013'."""
    parser = after_connection_1()
    parser.reset_sequence()
    frames = replay(parser, LINES[RECONNECT : RECONNECT + 3])
    snap = frames[2]
    assert snap.duplicates == 5 and snap.gaps == []
    assert snap.ticks == [
        Trade("BTC-USD", NOON + 4 * NS + 100_000_000, 61520.01, 0.04195678, "buy"),  # 1012
        Trade("BTC-USD", NOON + 4 * NS + 900_000_000, 61520.02, 0.1, "buy"),  # 1013
    ]
    assert parser.duplicates == 5


def test_trade_id_gap_counts_the_missing_ids() -> None:
    parser = CoinbaseParser()
    parser.parse(trades_frame(0, trade("100"), trade("101", "ETH-USD")), RECV)
    frame = parser.parse(trades_frame(1, trade("105"), trade("102", "ETH-USD")), RECV)
    assert frame.gaps == ["trade_id gap on BTC-USD: 100 -> 105 (4 missing)"]
    assert (parser.trade_id_gaps, parser.missing_trade_ids) == (1, 4)
    assert len(frame.ticks) == 2  # ETH-USD 101 -> 102 is contiguous: ids are per product


def test_duplicate_within_one_frame_is_dropped() -> None:
    frame = CoinbaseParser().parse(trades_frame(0, trade("7"), trade("7")), RECV)
    assert (len(frame.ticks), frame.duplicates) == (1, 1)


def test_same_time_trades_keep_id_order() -> None:
    """Two trades at one instant (line 31: 1015, 1016) must come out in id order."""
    a = trade("9", size="0.1", time="2024-05-14T12:00:06.9Z")
    b = trade("8", size="0.3", time="2024-05-14T12:00:06.9Z")
    frame = CoinbaseParser().parse(trades_frame(0, a, b), RECV)
    assert [t.size for t in frame.ticks if isinstance(t, Trade)] == [0.3, 0.1]


def test_trades_of_several_products_come_out_in_time_order() -> None:
    """Dedupe walks products in id order; the output must still be in event time, or the
    pipeline sees time step back between products."""
    late = trade("5", "BTC-USD", time="2024-05-14T12:00:02Z")
    early = trade("9", "ETH-USD", time="2024-05-14T12:00:01Z")
    frame = CoinbaseParser().parse(trades_frame(0, late, early), RECV)
    assert [(t.symbol, t.ts) for t in frame.ticks] == [
        ("ETH-USD", NOON + NS),
        ("BTC-USD", NOON + 2 * NS),
    ]


def test_leading_zero_ids_compare_as_numbers() -> None:
    """The docs' example id is "000000000"; string comparison would call "10" a duplicate of
    "9"."""
    parser = CoinbaseParser()
    parser.parse(trades_frame(0, trade("000000009")), RECV)
    frame = parser.parse(trades_frame(1, trade("10")), RECV)
    assert len(frame.ticks) == 1 and frame.gaps == []


# --- bad frames --------------------------------------------------------------------------------


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD_FRAMES: list[tuple[str, bytes, str]] = [
    ("not json", b'{"channel": "ticker",', "not JSON"),
    ("empty", b"", "not JSON"),
    ("array", b"[1, 2]", "JSON object"),
    ("string", b'"ticker"', "JSON object"),
    ("no channel or type", b'{"sequence_num": 1}', "neither a 'channel' nor a 'type'"),
    ("channel not str", b'{"channel": 5, "sequence_num": 0}', "'channel'"),
    ("no sequence_num", b'{"channel": "heartbeats", "events": []}', "'sequence_num'"),
    ("sequence_num str", envelope("heartbeats", 0, []).replace(b":0,", b':"0",'), "sequence_num"),
    ("sequence_num bool", b'{"channel":"heartbeats","sequence_num":true}', "sequence_num"),
    ("sequence_num < 0", envelope("heartbeats", -1, []), "sequence_num"),
    ("bad timestamp", envelope("heartbeats", 0, [], "2024-05-14 12:00:00Z"), "'timestamp'"),
    ("timestamp not str", b'{"channel":"heartbeats","sequence_num":0,"timestamp":1}', "timestamp"),
    ("events not list", b'{"channel":"ticker","sequence_num":0,"events":{}}', "'events'"),
    ("trades missing", envelope("market_trades", 0, [{"type": "update"}]), "'trades'"),
    ("event not object", envelope("market_trades", 0, [[]]), "event 0 must be an object"),
    ("trade not object", trades_frame(0, "x"), "trade must be an object"),
    ("no price", trades_frame(0, without(trade("1"), "price")), "'price'"),
    ("price word", trades_frame(0, trade("1", price="abc")), "'price'"),
    ("price NaN", trades_frame(0, trade("1", price="NaN")), "'price'"),
    ("price inf", trades_frame(0, trade("1", price="inf")), "'price'"),
    ("price overflow", trades_frame(0, trade("1", price="1e999")), "'price' must be finite"),
    ("price negative", trades_frame(0, trade("1", price="-5")), "'price' must not be negative"),
    ("price number < 0", trades_frame(0, trade("1", price=-5)), "'price' must not be negative"),
    ("price bool", trades_frame(0, trade("1", price=True)), "'price'"),
    ("price blank", trades_frame(0, trade("1", price=" 5")), "'price'"),
    ("price underscore", trades_frame(0, trade("1", price="1_000")), "'price'"),
    ("price arabic digits", trades_frame(0, trade("1", price="٥")), "'price'"),
    ("price zero", trades_frame(0, trade("1", price="0")), "'price'"),
    ("size empty", trades_frame(0, trade("1", size="")), "'size'"),
    ("size zero", trades_frame(0, trade("1", size="0")), "'size'"),
    ("no trade_id", trades_frame(0, without(trade("1"), "trade_id")), "'trade_id'"),
    ("trade_id word", trades_frame(0, trade("abc")), "'trade_id'"),
    ("trade_id negative", trades_frame(0, trade("-1")), "'trade_id'"),
    ("trade_id bool", trades_frame(0, trade(True)), "'trade_id'"),
    ("trade_id arabic digits", trades_frame(0, trade("١٢")), "'trade_id'"),
    ("trade_id huge", trades_frame(0, trade("9" * 5000)), "'trade_id'"),
    ("no product_id", trades_frame(0, without(trade("1"), "product_id")), "'product_id'"),
    ("empty product_id", trades_frame(0, trade("1", product_id="")), "'product_id'"),
    ("side lower case", trades_frame(0, trade("1", side="buy")), "'side'"),
    ("no side", trades_frame(0, without(trade("1"), "side")), "'side'"),
    ("no time", trades_frame(0, without(trade("1"), "time")), "'time'"),
    ("time no offset", trades_frame(0, trade("1", time="2024-05-14T12:00:00")), "'time'"),
    ("time before 1990", trades_frame(0, trade("1", time="1970-01-01T00:00:01Z")), "'time'"),
    ("tickers missing", envelope("ticker", 0, [{"type": "update"}]), "'tickers'"),
    ("no bid quantity", ticker_frame(0, without(ticker(), "best_bid_quantity")), "best_bid_q"),
    ("no ask quantity", ticker_frame(0, without(ticker(), "best_ask_quantity")), "best_ask_q"),
    ("no best_bid", ticker_frame(0, without(ticker(), "best_bid")), "'best_bid'"),
    ("ask word", ticker_frame(0, ticker(best_ask="x")), "'best_ask'"),
    ("crossed", ticker_frame(0, ticker(best_bid="61521")), "best_bid/best_ask"),
    ("zero bid", ticker_frame(0, ticker(best_bid="0")), "'best_bid'"),
    ("huge bid size", ticker_frame(0, ticker(best_bid_quantity="1e16")), "'best_bid_quantity'"),
    ("huge ask size", ticker_frame(0, ticker(best_ask_quantity="1e16")), "'best_ask_quantity'"),
    ("huge trade size", trades_frame(0, trade("1", size="1e16")), "field 'size'"),
    ("ticker product", ticker_frame(0, ticker(product_id=None)), "'product_id'"),
]


@pytest.mark.parametrize(
    ("raw", "field"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES]
)
def test_bad_frame_raises_frame_error_naming_the_field(raw: bytes, field: str) -> None:
    """Each reason must say what to fix; each case is a value float() or a lax reader would
    have let through (or crashed on with another exception)."""
    with pytest.raises(FrameError) as err:
        CoinbaseParser().parse(raw, RECV)
    assert field in str(err.value)


def test_bad_frame_changes_no_state() -> None:
    """A frame whose second trade is bad is dead-lettered whole: its first trade's id must not
    be recorded, or the good re-send after the fix would be dropped as a duplicate."""
    parser = CoinbaseParser()
    parser.parse(trades_frame(0, trade("1")), RECV)
    before = copy.deepcopy(vars(parser))
    with pytest.raises(FrameError, match="trade 1"):
        parser.parse(trades_frame(1, trade("2"), trade("3", price="x")), RECV)
    assert vars(parser) == before
    assert len(parser.parse(trades_frame(1, trade("2"), trade("3")), RECV).ticks) == 2


# --- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-05-14T12:00:00Z", NOON),
        ("2024-05-14T12:00:00.5Z", NOON + 500_000_000),
        ("2024-05-14T12:00:00.000000001Z", NOON + 1),
        ("2024-05-14T12:00:00.123456789Z", NOON + 123_456_789),
        ("2024-05-14t12:00:00.1z", NOON + 100_000_000),
        ("2024-05-14T12:00:00+00:00", NOON),
        ("2024-05-14T12:00:00-00:00", NOON),
        ("2024-05-14T17:30:00.25+05:30", NOON + 250_000_000),
        ("2024-05-14T07:00:00-05:00", NOON),
        ("2024-05-15T01:00:00+13:00", NOON),
        ("2023-02-09T20:32:50.714964855Z", 1_675_974_770_714_964_855),  # float gives ...965e18
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999999999Z", -1),
        ("2000-02-29T00:00:00Z", 951_782_400 * NS),  # 30 years, 7 leap, +59 days
        ("2024-02-29T23:59:59Z", (19_782 * 86_400 + 86_399) * NS),
        ("0000-01-01T00:00:00Z", -62_167_219_200 * NS),
        ("9999-12-31T23:59:59.999999999Z", 253_402_300_800 * NS - 1),
    ],
)
def test_rfc3339_exact(text: str, ns: int) -> None:
    assert parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-14T12:00:00",  # no offset: ambiguous local time
        "2024-05-14 12:00:00Z",  # space separator
        "2024-05-14T12:00:00.Z",
        "2024-05-14T12:00:00.1234567891Z",  # 10 fractional digits cannot be exact
        "2024-05-14T12:00Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",  # not a leap year
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-05-00T00:00:00Z",
        "2024-05-14T24:00:00Z",
        "2024-05-14T12:60:00Z",
        "2016-12-31T23:59:60Z",  # leap second: no epoch time
        "2024-05-14T12:00:00+24:00",
        "2024-05-14T12:00:00+05:60",
        "2024-05-14T12:00:00+0530",
        "２０２４-05-14T12:00:00Z",  # fullwidth digits int() would take
        " 2024-05-14T12:00:00Z",
        "2024-05-14T12:00:00Z ",
        "2024-05-14T12:00:00ZZ",
        "",
    ],
)
def test_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns(text)


def test_bad_trade_time_is_a_frame_error_naming_time() -> None:
    raw = trades_frame(0, trade("1", time="2024-02-30T00:00:00Z"))
    with pytest.raises(FrameError, match="'time': day 30 out of range"):
        CoinbaseParser().parse(raw, RECV)


@FAST
@given(st.integers(-62_167_219_200 * NS, 253_402_300_800 * NS - 1))
def test_rfc3339_round_trips_any_nanosecond(ns: int) -> None:
    text = format_rfc3339_ns(ns)
    assert len(text) == 30 and text.endswith("Z")
    assert parse_rfc3339_ns(text) == ns


@FAST
@given(
    st.integers(0, 4_000_000_000 * NS),
    st.integers(-23, 23),
    st.sampled_from([0, 30, 45]),
)
def test_rfc3339_offsets_name_the_same_instant(ns: int, hours: int, minutes: int) -> None:
    """Rewriting a UTC time in another offset must not move it (sign errors move it by 2x)."""
    offset_s = hours * 3600 + (minutes if hours >= 0 else -minutes) * 60
    local = format_rfc3339_ns(ns + offset_s * NS)[:-1]
    sign = "+" if offset_s >= 0 else "-"
    text = f"{local}{sign}{abs(hours):02d}:{minutes:02d}"
    assert parse_rfc3339_ns(text) == ns


def test_format_refuses_years_past_9999() -> None:
    with pytest.raises(ValueError, match="0000-9999"):
        format_rfc3339_ns(253_402_300_800 * NS)


# --- properties: nothing but FrameError, and a FrameError changes nothing ----------------------

KEYS = [
    "channel",
    "type",
    "sequence_num",
    "timestamp",
    "events",
    "trades",
    "tickers",
    "trade_id",
    "product_id",
    "price",
    "size",
    "side",
    "time",
    "best_bid",
    "best_ask",
    "best_bid_quantity",
    "best_ask_quantity",
    "message",
    "reason",
]
WORDS = [
    "market_trades",
    "ticker",
    "heartbeats",
    "subscriptions",
    "error",
    "snapshot",
    "update",
    "BUY",
    "SELL",
    "BTC-USD",
    "2024-05-14T12:00:00.5Z",
    "1970-01-01T00:00:00Z",
    "1.5",
    "0",
    "-1",
    "1e999",
    "NaN",
    "42",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=24,
)


def assert_frame_or_frame_error(parser: CoinbaseParser, raw: bytes) -> None:
    before = copy.deepcopy(vars(parser))
    try:
        frame = parser.parse(raw, RECV)
    except FrameError:
        assert vars(parser) == before
        return
    for tick in frame.ticks:
        validate(tick)


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_raise_only_frame_error(raw: bytes) -> None:
    assert_frame_or_frame_error(CoinbaseParser(), raw)


@FAST
@given(json_values)
def test_any_json_raises_only_frame_error(value: Any) -> None:
    assert_frame_or_frame_error(after_connection_1(), orjson.dumps(value))


def mutate(value: Any, draw: st.DrawFn) -> Any:
    """``value`` with one node (somewhere down its tree) replaced, removed or kept."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        out = dict(value)
        if draw(st.integers(0, 4)) == 0:
            del out[key]
        else:
            out[key] = mutate(value[key], draw)
        return out
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], mutate(value[i], draw), *value[i + 1 :]]
    return draw(json_values)


@FAST
@given(st.data())
def test_mutated_fixture_frames_raise_only_frame_error(data: st.DataObject) -> None:
    """Near-valid frames reach the deep paths (trades, tickers, dedupe) random JSON rarely
    does."""
    index = data.draw(st.integers(0, len(LINES) - 1))
    parser = after_connection_1()
    value = mutate(orjson.loads(LINES[index]), data.draw)
    assert_frame_or_frame_error(parser, orjson.dumps(value))


# --- speed -------------------------------------------------------------------------------------


def test_parses_well_over_a_thousand_frames_per_second() -> None:
    """The live feed peaks around 1000 frames/s; a 10x slower parser (the json module plus a
    datetime per field, say) would fall behind. The bound is loose for slow CI machines."""
    lines = LINES[:RECONNECT] * 60
    parser = CoinbaseParser()
    start = time.perf_counter()
    for i, line in enumerate(lines):
        if i % RECONNECT == 0:
            parser.reset_sequence()
        parser.parse(line, RECV)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{len(lines)} frames took {elapsed:.3f} s"
