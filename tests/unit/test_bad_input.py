"""Bad input, every format and every numeric field: rejected with a reason, counted, located.

Each case writes a tiny file: a good trade on line 1, a blank line 2, the bad line 3, then a good
quote and a good trade (lines 4 and 5). It reads it through ``read_ticks`` and checks that only
line 3 is rejected, with the expected reason, the file's path, a count of one, and that the
three good ticks still come through unchanged. The expectations are written by hand.

The bugs these catch (each was real before this module): a ts at or past 2**63 ns (or year 9999)
was accepted and crashed the run in the report's ``array('q')``; a finite 1.7e308 quote was
accepted and crashed ``math.log`` in the features; ``"m": "false"`` was read as a sell;
``"T": true`` or ``"p": true`` became 1; ``"s": null`` became the symbol ``'None'``; a non-string
``stream`` raised AttributeError; numeric strings, unknown fields, ``1_000``, non-ASCII digits and
ms/µs timestamps were accepted; a CSV field over 128 KiB raised ``csv.Error``.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from models.records import Quote, Reject, Tick, Trade
from quorum import run_backtest
from streams.readers import ReaderStats, read_ticks

S = 1_000_000_000
MS = 1_000_000
T0 = 1_723_161_255_000 * MS  # 2024-08-08T23:54:15Z, a whole millisecond
U64 = str(2**64 - 1)  # orjson still reads it as an int; * 1e6 or as is: far past int64

GOOD = [
    Trade("BTCUSDT", T0, 100.0, 0.5, "buy"),
    Quote("BTCUSDT", T0 + 2 * S, 99.5, 100.5, 1.5, 2.0),
    Trade("BTCUSDT", T0 + 3 * S, 101.0, 0.25, "sell"),
]
BAD_TS = T0 + S


# --- the three formats, as text templates with raw tokens substituted ----------------------


def _id(recv: str) -> str:
    """Trade and book update ids grow with the receive time (the reader drops repeats)."""
    return recv if recv.isdigit() else "7"


def _bin_trade(**kw: str) -> str:
    f = {"recv": str(BAD_TS), "T": str(BAD_TS // MS), "p": '"100.0"', "q": '"0.5"', "m": "false"}
    f |= {"s": '"BTCUSDT"', "stream": '"btcusdt@trade"'} | kw
    tid = f.get("t") or _id(f["recv"])
    data = f'"s":{f["s"]},"t":{tid},"p":{f["p"]},"q":{f["q"]},"T":{f["T"]},"m":{f["m"]}'
    return f'{f["recv"]} {{"stream":{f["stream"]},"data":{{"e":"trade",{data}}}}}'


def _bin_book(**kw: str) -> str:
    f = {"recv": str(BAD_TS), "b": '"99.5"', "a": '"100.5"', "B": '"1.5"', "A": '"2"'} | kw
    data = f'"u":{_id(f["recv"])},"s":"BTCUSDT","b":{f["b"]},"B":{f["B"]},"a":{f["a"]},"A":{f["A"]}'
    extra = f',"T":{f["T"]}' if "T" in f else ""
    return f'{f["recv"]} {{"stream":"btcusdt@bookTicker","data":{{{data}{extra}}}}}'


def _bin_good() -> list[str]:
    t1, q, t2 = GOOD
    return [
        _bin_trade(recv=str(t1.ts), T=str(t1.ts // MS)),
        _bin_book(recv=str(q.ts)),  # offset measured from the trades: 0 here
        _bin_trade(recv=str(t2.ts), T=str(t2.ts // MS), p='"101.0"', q='"0.25"', m="true"),
    ]


def _jsonl_trade(**kw: str) -> str:
    f = {"type": '"trade"', "symbol": '"BTCUSDT"', "ts": str(BAD_TS), "price": "100.0"}
    f |= {"size": "0.5", "side": '"buy"'} | kw
    return "{" + ",".join(f'"{k}":{v}' for k, v in f.items() if v != "<absent>") + "}"


def _jsonl_quote(**kw: str) -> str:
    f = {"type": '"quote"', "symbol": '"BTCUSDT"', "ts": str(BAD_TS), "bid": "99.5"}
    f |= {"ask": "100.5", "bid_size": "1.5", "ask_size": "2.0"} | kw
    return "{" + ",".join(f'"{k}":{v}' for k, v in f.items() if v != "<absent>") + "}"


def _jsonl_good() -> list[str]:
    t1, q, t2 = GOOD
    return [
        _jsonl_trade(ts=str(t1.ts)),
        _jsonl_quote(ts=str(q.ts)),
        _jsonl_trade(ts=str(t2.ts), price="101.0", size="0.25", side='"sell"'),
    ]


CSV_HEADER = "ts,symbol,price,size,side,bid,ask,bid_size,ask_size"


def _csv_trade(**kw: str) -> str:
    f = {"ts": str(BAD_TS), "symbol": "BTCUSDT", "price": "100.0", "size": "0.5"} | kw
    return f"{f['ts']},{f['symbol']},{f['price']},{f['size']},buy,,,,"


def _csv_quote(**kw: str) -> str:
    f = {"ts": str(BAD_TS), "bid": "99.5", "ask": "100.5", "bid_size": "1.5", "ask_size": "2"}
    f |= kw
    return f"{f['ts']},BTCUSDT,,,,{f['bid']},{f['ask']},{f['bid_size']},{f['ask_size']}"


def _csv_good() -> list[str]:
    t1, q, t2 = GOOD
    return [
        _csv_trade(ts=str(t1.ts)),
        _csv_quote(ts=str(q.ts)),
        f"{t2.ts},BTCUSDT,101.0,0.25,sell,,,,",
    ]


def _file(tmp_path: Path, fmt: str, bad: str) -> tuple[Path, int]:
    """The file and the line number of ``bad`` in it: good, blank, bad, good, good."""
    good = {"binance": _bin_good, "jsonl": _jsonl_good, "csv": _csv_good}[fmt]()
    lines = [good[0], "", bad, good[1], good[2]]
    if fmt == "csv":
        lines.insert(0, CSV_HEADER)
    path = tmp_path / f"in.{fmt}"
    # surrogateescape: a "\udcff" in a case is written as the invalid UTF-8 byte 0xff
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    return path, lines.index(bad) + 1


def _read(path: Path, **kw: object) -> tuple[list[Tick], list[Reject], ReaderStats]:
    rejects: list[Reject] = []
    stats = ReaderStats()
    ticks = list(read_ticks([path], on_reject=rejects.append, stats=stats, **kw))  # type: ignore[arg-type]
    return ticks, rejects, stats


# --- the cases: (id, format, bad line, expected reason fragment) ---------------------------

P_RANGE = "must be a finite number in [1e-15, 1e15]"
TS_RANGE = "outside [1990-01-01, 2100-01-01)"
_BRACKET = {
    "price": "[1e-15, 1e15]",
    "bid": "[1e-15, 1e15]",
    "ask": "[1e-15, 1e15]",
    "size": "(0, 1e15]",
    "bid_size": "[0, 1e15]",
    "ask_size": "[0, 1e15]",
}

CASES: list[tuple[str, str, str, str]] = []

# tick CSV: every numeric field
for field, maker in (("price", _csv_trade), ("bid", _csv_quote), ("ask", _csv_quote)):
    CASES += [
        (f"csv-{field}-nan", "csv", maker(**{field: "nan"}), f"{field} is not a number"),
        (f"csv-{field}-inf", "csv", maker(**{field: "inf"}), f"{field} is not a number"),
        (f"csv-{field}--inf", "csv", maker(**{field: "-inf"}), f"{field} is not a number"),
        (f"csv-{field}-negative", "csv", maker(**{field: "-1"}), f"{field} {P_RANGE}"),
        (f"csv-{field}-zero", "csv", maker(**{field: "0"}), f"{field} {P_RANGE}"),
        (f"csv-{field}-abc", "csv", maker(**{field: "abc"}), f"{field} is not a number"),
        (f"csv-{field}-1e999", "csv", maker(**{field: "1e999"}), f"{field} {P_RANGE}, got inf"),
        (f"csv-{field}--1e999", "csv", maker(**{field: "-1e999"}), f"{P_RANGE}, got -inf"),
        # finite but huge: (bid + ask) / 2 overflowed and math.log crashed the run
        (f"csv-{field}-1e300", "csv", maker(**{field: "1e300"}), f"{field} {P_RANGE}"),
        # subnormal: a return underflowed to 0 and math.log crashed the run
        (f"csv-{field}-5e-324", "csv", maker(**{field: "5e-324"}), f"{field} {P_RANGE}"),
        # float() takes these; they are not decimals
        (f"csv-{field}-underscore", "csv", maker(**{field: "1_00"}), "is not a number"),
        (f"csv-{field}-arabic-digits", "csv", maker(**{field: "١٠٠"}), "is not a number"),
    ]
for field, maker, empty in (
    ("size", _csv_trade, "size is empty"),
    ("bid_size", _csv_quote, None),  # an empty quote size reads as 0 (documented)
    ("ask_size", _csv_quote, None),
):
    rng = f"{field} must be a finite number in " + ("(0, 1e15]" if field == "size" else "[0, 1e15]")
    CASES += [
        (f"csv-{field}-nan", "csv", maker(**{field: "NaN"}), f"{field} is not a number"),
        (f"csv-{field}-inf", "csv", maker(**{field: "inf"}), f"{field} is not a number"),
        (f"csv-{field}-negative", "csv", maker(**{field: "-0.5"}), f"{rng}, got -0.5"),
        (f"csv-{field}-abc", "csv", maker(**{field: "x1"}), f"{field} is not a number"),
        (f"csv-{field}-1e999", "csv", maker(**{field: "1e999"}), f"{rng}, got inf"),
        (f"csv-{field}--1e999", "csv", maker(**{field: "-1e999"}), f"{rng}, got -inf"),
        (f"csv-{field}-1e300", "csv", maker(**{field: "1e300"}), f"{rng}, got 1e+300"),
    ]
    if empty:
        CASES.append((f"csv-{field}-empty", "csv", maker(**{field: ""}), empty))
CASES += [
    ("csv-size-zero", "csv", _csv_trade(size="0"), "size must be a finite number in (0, 1e15]"),
    ("csv-price-empty-no-quote", "csv", _csv_trade(price="", size=""), "neither a trade"),
    ("csv-bid-empty", "csv", _csv_quote(bid=""), "bid is empty"),
    ("csv-ask-empty", "csv", _csv_quote(ask=""), "ask is empty"),
    ("csv-locked", "csv", _csv_quote(bid="100", ask="100"), "locked quote: bid 100.0 >= ask"),
    ("csv-crossed", "csv", _csv_quote(bid="101", ask="100"), "crossed quote: bid 101.0 >= ask"),
    ("csv-ts-missing", "csv", _csv_trade(ts=""), "ts is empty"),
    ("csv-ts-abc", "csv", _csv_trade(ts="soon"), "not a timestamp"),
    ("csv-ts-negative", "csv", _csv_trade(ts="-5"), "not a timestamp"),
    ("csv-ts-zero", "csv", _csv_trade(ts="0"), f"event time 0 ns is {TS_RANGE}"),
    ("csv-ts-ms", "csv", _csv_trade(ts=str(BAD_TS // MS)), TS_RANGE),  # ms read as ns: 1970
    ("csv-ts-int64", "csv", _csv_trade(ts=str(2**63)), TS_RANGE),  # crashed array('q')
    ("csv-ts-20-digits", "csv", _csv_trade(ts="9" * 20), TS_RANGE),
    ("csv-ts-5000-digits", "csv", _csv_trade(ts="9" * 5000), "digits"),
    ("csv-ts-float", "csv", _csv_trade(ts="1.723161256e18"), "not a timestamp"),
    ("csv-ts-float-literal", "csv", _csv_trade(ts=f"{BAD_TS}.0"), "not a timestamp"),
    ("csv-ts-year-9999", "csv", _csv_trade(ts="9999-01-01T00:00:00Z"), TS_RANGE),  # crashed
    ("csv-ts-year-1969", "csv", _csv_trade(ts="1969-12-31T23:59:59Z"), TS_RANGE),
    ("csv-ts-year-1989", "csv", _csv_trade(ts="1989-12-31T23:59:59.999999999Z"), TS_RANGE),
    ("csv-ts-year-2100", "csv", _csv_trade(ts="2100-01-01T00:00:00Z"), TS_RANGE),
    ("csv-ts-naive", "csv", _csv_trade(ts="2024-08-09T00:00:56"), "UTC offset"),
    ("csv-ts-arabic-digits", "csv", _csv_trade(ts="١" * 19), "not a timestamp"),
    ("csv-ts-nan", "csv", _csv_trade(ts="nan"), "not a timestamp"),
    ("csv-side", "csv", _csv_trade().replace(",buy,", ",long,"), "side must be buy or sell"),
    ("csv-symbol-empty", "csv", _csv_trade(symbol=""), "empty symbol"),
    ("csv-short-row", "csv", f"{BAD_TS},BTCUSDT,1", "expected 9 columns, got 3"),
    ("csv-field-over-limit", "csv", _csv_trade(symbol="X" * 200_000), "malformed CSV row"),
]

# quorum JSONL: JSON numbers only, no strings, no bools, no unknown fields
for field, maker in (
    ("price", _jsonl_trade),
    ("size", _jsonl_trade),
    ("bid", _jsonl_quote),
    ("ask", _jsonl_quote),
    ("bid_size", _jsonl_quote),
    ("ask_size", _jsonl_quote),
):
    typed = f"field '{field}' must be a JSON number"
    rng = f"{field} must be a finite number in " + _BRACKET[field]
    CASES += [
        (f"jsonl-{field}-nan-token", "jsonl", maker(**{field: "NaN"}), "malformed JSON"),
        (f"jsonl-{field}-1e999", "jsonl", maker(**{field: "1e999"}), "malformed JSON"),
        (f"jsonl-{field}--1e999", "jsonl", maker(**{field: "-1e999"}), "malformed JSON"),
        (f"jsonl-{field}-negative", "jsonl", maker(**{field: "-1"}), f"{rng}, got -1.0"),
        (f"jsonl-{field}-1e300", "jsonl", maker(**{field: "1e300"}), f"{rng}, got 1e+300"),
        (f"jsonl-{field}-empty", "jsonl", maker(**{field: '""'}), typed),
        (f"jsonl-{field}-abc", "jsonl", maker(**{field: '"abc"'}), typed),
        (f"jsonl-{field}-numeric-string", "jsonl", maker(**{field: '"1.5"'}), typed),
        (f"jsonl-{field}-nan-string", "jsonl", maker(**{field: '"NaN"'}), typed),
        (f"jsonl-{field}-bool", "jsonl", maker(**{field: "true"}), typed),
        (f"jsonl-{field}-null", "jsonl", maker(**{field: "null"}), typed),
        (f"jsonl-{field}-missing", "jsonl", maker(**{field: "<absent>"}), "missing field"),
    ]
CASES += [
    ("jsonl-price-zero", "jsonl", _jsonl_trade(price="0"), f"price {P_RANGE}"),
    ("jsonl-size-zero", "jsonl", _jsonl_trade(size="0"), "size must be a finite number in (0"),
    ("jsonl-locked", "jsonl", _jsonl_quote(bid="100.5"), "locked quote"),
    ("jsonl-crossed", "jsonl", _jsonl_quote(bid="101"), "crossed quote"),
    ("jsonl-ts-missing", "jsonl", _jsonl_trade(ts="<absent>"), "field 'ts' must be integer"),
    ("jsonl-ts-string", "jsonl", _jsonl_trade(ts=f'"{BAD_TS}"'), "field 'ts' must be integer"),
    ("jsonl-ts-float", "jsonl", _jsonl_trade(ts="1.723161256e18"), "field 'ts' must be integer"),
    ("jsonl-ts-bool", "jsonl", _jsonl_trade(ts="true"), "field 'ts' must be integer"),
    ("jsonl-ts-zero", "jsonl", _jsonl_trade(ts="0"), TS_RANGE),
    ("jsonl-ts-negative", "jsonl", _jsonl_trade(ts="-5"), TS_RANGE),
    ("jsonl-ts-us", "jsonl", _jsonl_trade(ts=str(BAD_TS // 1000)), TS_RANGE),
    ("jsonl-ts-u64", "jsonl", _jsonl_trade(ts=U64), TS_RANGE),  # crashed array('q')
    ("jsonl-ts-past-u64", "jsonl", _jsonl_trade(ts=U64 + "0"), "field 'ts' must be integer"),
    ("jsonl-unknown-field", "jsonl", _jsonl_trade(venue='"x"'), "unknown field 'venue'"),
    ("jsonl-quote-field-on-trade", "jsonl", _jsonl_trade(bid="1"), "unknown field 'bid'"),
    ("jsonl-side-upper", "jsonl", _jsonl_trade(side='"BUY"'), "field 'side'"),
    ("jsonl-side-bool", "jsonl", _jsonl_trade(side="true"), "field 'side'"),
    ("jsonl-type", "jsonl", _jsonl_trade(type='"print"'), "field 'type'"),
    ("jsonl-symbol-empty", "jsonl", _jsonl_trade(symbol='""'), "field 'symbol'"),
    ("jsonl-symbol-number", "jsonl", _jsonl_trade(symbol="5"), "field 'symbol'"),
    ("jsonl-array", "jsonl", "[1, 2]", "tick must be a JSON object"),
    ("jsonl-invalid-utf8", "jsonl", _jsonl_trade(symbol='"BTC\udcff"'), "malformed JSON"),
]

# Binance recordings: p/q/b/a/B/A decimal strings, T integer ms, m a JSON bool
for key, name, maker in (
    ("p", "price", _bin_trade),
    ("q", "size", _bin_trade),
    ("b", "bid", _bin_book),
    ("a", "ask", _bin_book),
    ("B", "bid_size", _bin_book),
    ("A", "ask_size", _bin_book),
):
    rng = f"{name} must be a finite number in " + _BRACKET[name]
    typed = f"field '{key}' must be a decimal string or a number"
    nan_msg = f"{name} (field '{key}') is not a number"
    CASES += [
        (f"binance-{name}-nan", "binance", maker(**{key: '"NaN"'}), f"{rng}, got nan"),
        (f"binance-{name}-inf", "binance", maker(**{key: '"Infinity"'}), f"{rng}, got inf"),
        (f"binance-{name}--inf", "binance", maker(**{key: '"-Infinity"'}), f"{rng}, got -inf"),
        (f"binance-{name}-negative", "binance", maker(**{key: '"-1"'}), f"{rng}, got -1.0"),
        (f"binance-{name}-1e999", "binance", maker(**{key: '"1e999"'}), f"{rng}, got inf"),
        (f"binance-{name}--1e999", "binance", maker(**{key: '"-1e999"'}), f"{rng}, got -inf"),
        (f"binance-{name}-1e300", "binance", maker(**{key: '"1e300"'}), f"{rng}, got 1e+300"),
        (f"binance-{name}-empty", "binance", maker(**{key: '""'}), f"{nan_msg}: ''"),
        (f"binance-{name}-abc", "binance", maker(**{key: '"abc"'}), f"{nan_msg}: 'abc'"),
        (f"binance-{name}-bool", "binance", maker(**{key: "true"}), typed),  # was 1.0
        (f"binance-{name}-null", "binance", maker(**{key: "null"}), typed),
        (f"binance-{name}-number-token-nan", "binance", maker(**{key: "NaN"}), "malformed line"),
        (f"binance-{name}-number-1e999", "binance", maker(**{key: "1e999"}), "malformed line"),
    ]
CASES += [
    ("binance-price-zero", "binance", _bin_trade(p='"0.00000000"'), f"price {P_RANGE}"),
    ("binance-size-zero", "binance", _bin_trade(q='"0"'), "size must be a finite number in (0"),
    ("binance-bid-zero", "binance", _bin_book(b='"0"'), f"bid {P_RANGE}"),
    ("binance-locked", "binance", _bin_book(b='"100.5"'), "locked quote: bid 100.5 >= ask 100.5"),
    ("binance-crossed", "binance", _bin_book(b='"100.6"'), "crossed quote: bid 100.6 >= ask 100.5"),
    ("binance-m-string", "binance", _bin_trade(m='"false"'), "field 'm'"),  # was a sell
    ("binance-m-null", "binance", _bin_trade(m="null"), "field 'm'"),
    ("binance-m-int", "binance", _bin_trade(m="0"), "field 'm'"),
    ("binance-m-missing", "binance", _bin_trade().replace(',"m":false', ""), "missing field 'm'"),
    (
        "binance-T-missing",
        "binance",
        _bin_trade().replace(f',"T":{BAD_TS // MS}', ""),
        "missing field 'T'",
    ),
    ("binance-T-bool", "binance", _bin_trade(T="true"), "field 'T'"),  # was 1 ms after 1970
    ("binance-T-float", "binance", _bin_trade(T=f"{BAD_TS // MS}.5"), "field 'T'"),
    ("binance-T-string", "binance", _bin_trade(T=f'"{BAD_TS // MS}"'), "field 'T'"),
    ("binance-T-zero", "binance", _bin_trade(T="0"), TS_RANGE),
    ("binance-T-negative", "binance", _bin_trade(T="-1"), TS_RANGE),
    ("binance-T-in-ns", "binance", _bin_trade(T=str(BAD_TS)), TS_RANGE),  # crashed array('q')
    ("binance-T-u64", "binance", _bin_trade(T=U64), TS_RANGE),
    ("binance-T-1e300", "binance", _bin_trade(T="1e300"), "field 'T'"),
    ("binance-book-T-string", "binance", _bin_book(T='"x"'), "field 'T'/'E'"),
    ("binance-book-T-zero", "binance", _bin_book(T="0"), TS_RANGE),
    ("binance-book-recv-zero", "binance", _bin_book(recv="0"), TS_RANGE),
    ("binance-book-recv-negative", "binance", _bin_book(recv="-5"), "receive time must be"),
    ("binance-recv-plus", "binance", _bin_trade(recv=f"+{BAD_TS}"), "receive time must be"),
    ("binance-recv-underscore", "binance", _bin_trade(recv="1_7"), "receive time must be"),
    ("binance-s-null", "binance", _bin_trade(s="null"), "field 's'"),  # was the symbol 'None'
    ("binance-s-number", "binance", _bin_trade(s="5"), "field 's'"),
    ("binance-s-empty", "binance", _bin_trade(s='""'), "empty symbol"),
    ("binance-stream-number", "binance", _bin_trade(stream="5"), "field 'stream'"),  # crashed
    ("binance-data-list", "binance", f'{BAD_TS} {{"stream":"x@trade","data":[]}}', "no data"),
    ("binance-not-object", "binance", f"{BAD_TS} [1]", "frame is not a JSON object"),
    ("binance-garbage", "binance", "garbage", "malformed line"),
]


@pytest.mark.parametrize(
    ("fmt", "bad", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_line_is_rejected_located_and_counted(
    tmp_path: Path, fmt: str, bad: str, fragment: str
) -> None:
    path, line = _file(tmp_path, fmt, bad)
    ticks, rejects, stats = _read(path)
    assert [(r.source, r.line) for r in rejects] == [(str(path), line)]
    assert fragment in rejects[0].reason, rejects[0].reason
    assert stats.rejected == 1
    assert ticks == GOOD  # the good lines around the bad one come through unchanged


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


# --- values that are valid and must stay accepted (a too-strict fix would break these) -----

OK_CASES: list[tuple[str, str, str, Tick]] = [
    (
        "csv-quote-size-zero",
        "csv",
        _csv_quote(bid_size="0", ask_size="0"),
        Quote("BTCUSDT", BAD_TS, 99.5, 100.5, 0.0, 0.0),
    ),
    (
        "csv-quote-size-empty",
        "csv",
        _csv_quote(bid_size="", ask_size=""),
        Quote("BTCUSDT", BAD_TS, 99.5, 100.5, 0.0, 0.0),
    ),
    (
        "csv-exponent",
        "csv",
        _csv_trade(price="1.5E+2", size=".5"),
        Trade("BTCUSDT", BAD_TS, 150.0, 0.5, "buy"),
    ),
    (
        "csv-iso-ts",
        "csv",
        _csv_trade(ts="2024-08-09T01:54:16+02:00"),
        Trade("BTCUSDT", BAD_TS, 100.0, 0.5, "buy"),
    ),
    (
        "csv-ts-lowest",
        "csv",
        _csv_trade(ts="1990-01-01T00:00:00Z"),
        Trade("BTCUSDT", 631_152_000 * S, 100.0, 0.5, "buy"),
    ),
    (
        "csv-price-bounds",
        "csv",
        _csv_trade(price="1e15", size="1e-15"),
        Trade("BTCUSDT", BAD_TS, 1e15, 1e-15, "buy"),
    ),
    (
        "jsonl-side-null",
        "jsonl",
        _jsonl_trade(side="null"),
        Trade("BTCUSDT", BAD_TS, 100.0, 0.5, None),
    ),
    (
        "jsonl-side-absent",
        "jsonl",
        _jsonl_trade(side="<absent>"),
        Trade("BTCUSDT", BAD_TS, 100.0, 0.5, None),
    ),
    (
        "jsonl-int-price",
        "jsonl",
        _jsonl_trade(price="100"),
        Trade("BTCUSDT", BAD_TS, 100.0, 0.5, "buy"),
    ),
    (
        "jsonl-quote-size-zero",
        "jsonl",
        _jsonl_quote(bid_size="0"),
        Quote("BTCUSDT", BAD_TS, 99.5, 100.5, 0.0, 2.0),
    ),
    (
        "binance-number-price",
        "binance",
        _bin_trade(p="100.0"),
        Trade("BTCUSDT", BAD_TS, 100.0, 0.5, "buy"),
    ),
    (
        "binance-m-true",
        "binance",
        _bin_trade(m="true"),
        Trade("BTCUSDT", BAD_TS, 100.0, 0.5, "sell"),
    ),
    (
        "binance-book-exchange-T",
        "binance",
        _bin_book(T=str(BAD_TS // MS + 7)),
        Quote("BTCUSDT", BAD_TS + 7 * MS, 99.5, 100.5, 1.5, 2.0),
    ),
    (
        "binance-book-size-zero",
        "binance",
        _bin_book(B='"0.00000000"'),
        Quote("BTCUSDT", BAD_TS, 99.5, 100.5, 0.0, 2.0),
    ),
]


@pytest.mark.parametrize(
    ("fmt", "line", "tick"), [c[1:] for c in OK_CASES], ids=[c[0] for c in OK_CASES]
)
def test_edge_values_that_are_valid_are_accepted(
    tmp_path: Path, fmt: str, line: str, tick: Tick
) -> None:
    path, _ = _file(tmp_path, fmt, line)
    ticks, rejects, _ = _read(path)
    assert rejects == []
    assert ticks == sorted([*GOOD, tick], key=lambda t: t.ts)


# --- timestamps going backwards beyond the reorder tolerance, every format -------------------


def _at(fmt: str, ts: int, price: str) -> str:
    if fmt == "csv":
        return _csv_trade(ts=str(ts), price=price)
    if fmt == "jsonl":
        return _jsonl_trade(ts=str(ts), price=price)
    # trade ids follow the line order, as Binance's do, even where the trade time goes back
    return _bin_trade(recv=str(ts), T=str(ts // MS), p=f'"{price}"', t=price)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "binance"])
def test_backwards_beyond_the_tolerance_is_rejected_within_it_reordered(
    tmp_path: Path, fmt: str
) -> None:
    # 2 s tolerance. Line ts (s after T0): 10, 13, 12.5 (late by 0.5 s: reordered), 5 (10 - 5 s
    # behind the last released tick, at 10 s: rejected), 14. Released once 13 arrives: only 10.
    rows = [(10 * S, "1"), (13 * S, "2"), (12 * S + S // 2, "3"), (5 * S, "4"), (14 * S, "5")]
    lines = [_at(fmt, T0 + ts, p) for ts, p in rows]
    if fmt == "csv":
        lines.insert(0, CSV_HEADER)
    path = tmp_path / f"jitter.{fmt}"
    path.write_text("\n".join(lines) + "\n")
    ticks, rejects, stats = _read(path, tolerance_ns=2 * S)
    assert [t.price for t in ticks] == [1.0, 3.0, 2.0, 5.0]  # type: ignore[union-attr]
    expected_line = 4 + (fmt == "csv")
    assert [(r.source, r.line) for r in rejects] == [(str(path), expected_line)]
    assert rejects[0].reason == "timestamp went backwards by 5000.000 ms (tolerance 2000 ms)"
    assert stats.rejected == 1


# --- through the backtest: rejects.jsonl and report.json ------------------------------------


def test_backtest_writes_each_reject_with_file_line_reason_and_counts_them(tmp_path: Path) -> None:
    # the u64 timestamp crashed run_backtest (OverflowError in the report's array('q'));
    # the 1.7e308 quote crashed it in math.log; both are now just rejects
    lines = _jsonl_good()
    lines.insert(1, _jsonl_trade(ts=U64))
    lines.insert(3, _jsonl_quote(bid="1.7e308", ask="1.79e308"))
    lines.insert(4, '{"type":"trade","symbol":"BTCUSDT","ts":1,"price":1,"size":1}')
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_backtest([path], out_dir=tmp_path / "out")
    rows = [orjson.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_bytes().splitlines()]
    assert [(r["file"], r["line"]) for r in rows] == [
        (str(path), 2),
        (str(path), 4),
        (str(path), 5),
    ]
    assert TS_RANGE in rows[0]["reason"]
    assert f"bid {P_RANGE}, got 1.7e+308" in rows[1]["reason"]
    assert "event time 1 ns" in rows[2]["reason"]
    assert all(r["raw"] for r in rows)
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert report["rejected"] == 3
    assert report["events"] == 3 == result.report["events"]
