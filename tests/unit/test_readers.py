"""Readers: every format, detection, merging, filters, and every kind of bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from models.records import Quote, Reject, Trade
from streams.codecs import encode_tick
from streams.readers import Format, ReaderError, ReaderStats, detect_format, read_ticks
from tests.conftest import SAMPLE_FILES, S

T0 = 1_723_161_255_000_000_000


def _binance_line(recv: int, stream: str, data: dict[str, object]) -> str:
    return f"{recv} " + orjson.dumps({"stream": stream, "data": data}).decode() + "\n"


def _trade(recv: int, t_ms: int, price: str = "100.0", qty: str = "0.5", m: bool = False) -> str:
    return _binance_line(
        recv,
        "btcusdt@trade",
        {
            "e": "trade",
            "E": t_ms,
            "s": "BTCUSDT",
            "t": recv,
            "p": price,
            "q": qty,
            "T": t_ms,
            "m": m,
        },
    )


def _book(recv: int, b: str = "99.99", a: str = "100.01") -> str:
    return _binance_line(
        recv,
        "btcusdt@bookTicker",
        {"u": recv, "s": "BTCUSDT", "b": b, "B": "1.5", "a": a, "A": "2"},
    )


def _write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _read(paths: list[Path], **kw: object) -> tuple[list[object], list[Reject], ReaderStats]:
    rejects: list[Reject] = []
    stats = ReaderStats()
    ticks = list(read_ticks(paths, on_reject=rejects.append, stats=stats, **kw))  # type: ignore[arg-type]
    return ticks, rejects, stats


def test_sample_counts_match_the_data_readme() -> None:
    ticks, rejects, stats = _read(SAMPLE_FILES)
    assert rejects == []
    assert stats.skipped > 0  # depth diffs and the REST snapshot are ignored, not rejected
    kinds = {(t.symbol, t.kind) for t in ticks}  # type: ignore[attr-defined]
    assert kinds == {
        ("BTCUSDT", "trade"),
        ("BTCUSDT", "quote"),
        ("ETHUSDT", "trade"),
        ("ETHUSDT", "quote"),
    }
    ts = [t.ts for t in ticks]  # type: ignore[attr-defined]
    assert ts == sorted(ts)


def test_binance_trade_and_quote_mapping(tmp_path: Path) -> None:
    offset_ms = 1270
    recv = T0
    text = "".join(
        [
            '{"lastUpdateId":1,"bids":[],"asks":[]}\n'.replace("{", f"{recv} {{", 1),
            _trade(recv, recv // 1_000_000 + offset_ms, m=True),
            _book(recv + 1_000_000),
            _trade(recv + 2_000_000, recv // 1_000_000 + offset_ms + 2, m=False),
        ]
    )
    ticks, rejects, _ = _read([_write(tmp_path / "b.gz", text, gz=True)])
    assert rejects == []
    first, quote, last = ticks
    assert isinstance(first, Trade) and first.side == "sell"  # m: true => buyer was maker
    assert first.ts == (recv // 1_000_000 + offset_ms) * 1_000_000
    assert isinstance(last, Trade) and last.side == "buy"
    assert isinstance(quote, Quote)
    # the quote's receive time is shifted by the file's measured (median) offset
    assert quote.ts == recv + 1_000_000 + offset_ms * 1_000_000
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (99.99, 100.01, 1.5, 2.0)


def test_binance_bad_lines_are_rejected_with_reasons(tmp_path: Path) -> None:
    text = "".join(
        [
            _trade(T0, T0 // 1_000_000),
            "garbage that is not a frame\n",
            _trade(T0 + 1, T0 // 1_000_000 + 1, price="abc"),
            _trade(T0 + 2, T0 // 1_000_000 + 2, price="-5"),
            _trade(T0 + 3, T0 // 1_000_000 + 3, price="NaN"),
            _trade(T0 + 4, T0 // 1_000_000 + 4, qty="-1"),
            _book(T0 + 5, b="101", a="100"),
            _binance_line(T0 + 6, "btcusdt@trade", {"s": "BTCUSDT", "p": "1"}),
            _trade(T0 + 7, T0 // 1_000_000 + 7),
        ]
    )
    ticks, rejects, stats = _read([_write(tmp_path / "bad.txt", text)])
    assert len(ticks) == 2
    assert stats.rejected == len(rejects) == 7
    assert [r.line for r in rejects] == [2, 3, 4, 5, 6, 7, 8]
    reasons = " | ".join(r.reason for r in rejects)
    for fragment in ("malformed", "is not a number", "price", "size", "crossed", "missing field"):
        assert fragment in reasons
    assert all(r.source.endswith("bad.txt") for r in rejects)


CSV_HEADER = "symbol,extra,ts,price,size,side,bid,ask,bid_size,ask_size\n"


def test_csv_trades_quotes_iso_and_ns(tmp_path: Path) -> None:
    text = CSV_HEADER + "".join(
        [
            f"AAA,x,{T0},,,,9.9,10.1,3,4\n",
            "AAA,x,2024-08-09T00:00:00.000000001Z,10.0,2,buy,,,,\n",
            "AAA,x,2024-08-09T02:00:00.5+02:00,10.05,1,,,,,\n",
        ]
    )
    ticks, rejects, _ = _read([_write(tmp_path / "t.csv.gz", text, gz=True)])
    assert rejects == []
    q, t1, t2 = ticks
    assert isinstance(q, Quote) and q.bid_size == 3.0
    assert isinstance(t1, Trade) and t1.ts == 1_723_161_600_000_000_001 and t1.side == "buy"
    assert isinstance(t2, Trade) and t2.ts == 1_723_161_600_500_000_000 and t2.side is None


def test_csv_bad_rows(tmp_path: Path) -> None:
    text = "ts,symbol,price,size,bid,ask\n" + "".join(
        [
            f"{T0},A,10,1,,\n",
            f"{T0 + 1},A,ten,1,,\n",
            "2024-08-09T00:00:00,A,10,1,,\n",  # naive time: ambiguous
            f"{T0 + 2},A,0,1,,\n",
            f"{T0 + 3},A,,,10,9\n",
            f"{T0 + 4},A\n",
            f"{T0 + 5},A,,,,\n",
            f"{T0 + 6},A,10,1,,\n",
        ]
    )
    ticks, rejects, _ = _read([_write(tmp_path / "bad.csv", text)])
    assert len(ticks) == 2
    assert [r.line for r in rejects] == [3, 4, 5, 6, 7, 8]
    assert "UTC offset" in rejects[1].reason
    assert "crossed" in rejects[3].reason


def test_csv_without_required_header_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "nohead.csv", "time,sym,price\n1,A,2\n")
    with pytest.raises(ReaderError, match=r"nohead\.csv:1"):
        list(read_ticks([path]))
    path2 = _write(tmp_path / "nots.csv", "symbol,price,size\nA,2,1\n")
    with pytest.raises(ReaderError, match=r"nots\.csv"):
        list(read_ticks([path2], fmt="csv"))


def test_jsonl_roundtrip_and_rejects(tmp_path: Path) -> None:
    good = [Trade("A", T0, 10.0, 1.0, "sell"), Quote("A", T0 + 1, 9.0, 11.0, 1.0, 2.0)]
    lines = [encode_tick(t).decode() for t in good]
    lines.insert(1, '{"type":"trade","symbol":"A","ts":1,"price":1}')
    lines.insert(2, "{not json")
    path = _write(tmp_path / "t.jsonl", "\n".join(lines) + "\n")
    ticks, rejects, _ = _read([path])
    assert ticks == good
    assert [r.line for r in rejects] == [2, 3]
    assert "size" in rejects[0].reason


def test_format_detection_and_override(tmp_path: Path) -> None:
    assert detect_format(SAMPLE_FILES[0]) is Format.BINANCE
    assert detect_format(_write(tmp_path / "a.csv", CSV_HEADER)) is Format.CSV
    j = _write(tmp_path / "a.dat", encode_tick(Trade("A", T0, 1.0, 1.0)).decode() + "\n")
    assert detect_format(j) is Format.JSONL
    assert len(list(read_ticks([j], fmt="jsonl"))) == 1
    with pytest.raises(ReaderError, match="cannot detect"):
        detect_format(_write(tmp_path / "junk.bin", "\x00\x01binary"))


def test_missing_and_unreadable_files_are_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match=r"nope\.gz: no such file"):
        list(read_ticks([SAMPLE_FILES[0], tmp_path / "nope.gz"]))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(ReaderError, match=r"broken\.gz"):
        list(read_ticks([broken]))
    empty = _write(tmp_path / "empty.csv", "")
    with pytest.raises(ReaderError, match="empty"):
        list(read_ticks([empty]))


def test_truncated_gzip_rejects_the_rest_and_goes_on(tmp_path: Path) -> None:
    data = SAMPLE_FILES[0].read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    ticks, rejects, _ = _read([cut, SAMPLE_FILES[1]])
    assert ticks, "the readable part and the other file still produce ticks"
    assert any("truncated" in r.reason for r in rejects)


def test_timestamps_backwards_beyond_tolerance(tmp_path: Path) -> None:
    rows = [f"{T0 + i * S},A,10,1\n" for i in range(10)]
    rows.insert(5, f"{T0 + 4 * S + S // 2},A,11,1\n")  # 0.5 s late: within tolerance, reordered
    rows.insert(9, f"{T0},A,12,1\n")  # ~7 s backwards: beyond a 1 s tolerance
    path = _write(tmp_path / "jitter.csv", "ts,symbol,price,size\n" + "".join(rows))
    ticks, rejects, _ = _read([path], tolerance_ns=S)
    assert len(ticks) == 11
    assert [t.ts for t in ticks] == sorted(t.ts for t in ticks)  # type: ignore[attr-defined]
    assert len(rejects) == 1 and "backwards" in rejects[0].reason and rejects[0].line == 11


def test_merge_is_stable_for_equal_times_and_filters_apply(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", f"ts,symbol,price,size\n{T0},AAA,1,1\n{T0 + S},AAA,2,1\n")
    b = _write(tmp_path / "b.csv", f"ts,symbol,price,size\n{T0},bbb,3,1\n{T0 + 2 * S},bbb,4,1\n")
    ticks, _, _ = _read([b, a])
    assert [t.price for t in ticks] == [3.0, 1.0, 2.0, 4.0]  # type: ignore[attr-defined]
    only_b, _, stats = _read([a, b], symbols=["BBB"], start_ns=T0 + 1, end_ns=T0 + 3 * S)
    assert [t.price for t in only_b] == [4.0]  # type: ignore[attr-defined]
    assert stats.filtered == 3


def test_binance_repeats_are_dropped_and_trade_id_gaps_counted(tmp_path: Path) -> None:
    """Catches a reader that keeps frames repeated after a reconnect (the live connector drops
    them, so the backtest of its recording would differ) or misses a gap in trade ids."""

    def trade(recv: int, tid: int) -> str:
        data = {"e": "trade", "s": "BTCUSDT", "t": tid, "p": "100", "q": "1", "T": recv // 10**6}
        return _binance_line(recv, "btcusdt@trade", data | {"m": False})

    def book(recv: int, u: int) -> str:
        data = {"u": u, "s": "BTCUSDT", "b": "99", "B": "1", "a": "101", "A": "1"}
        return _binance_line(recv, "btcusdt@bookTicker", data)

    ms = 1_000_000
    text = "".join(
        [
            trade(T0, 10),
            book(T0 + 1 * ms, 500),
            trade(T0 + 2 * ms, 11),
            trade(T0 + 3 * ms, 11),  # repeated: dropped
            book(T0 + 4 * ms, 500),  # repeated: dropped
            trade(T0 + 5 * ms, 14),  # 12 and 13 missing: one gap of two ids
            book(T0 + 6 * ms, 501),
        ]
    )
    ticks, rejects, stats = _read([_write(tmp_path / "d.gz", text, gz=True)])
    assert rejects == []
    assert [type(t).__name__ for t in ticks] == ["Trade", "Quote", "Trade", "Trade", "Quote"]
    assert (stats.duplicates, stats.trade_id_gaps, stats.missing_trade_ids) == (2, 1, 2)


def test_binance_recorded_clock_offset_lines_stamp_the_quotes(tmp_path: Path) -> None:
    """A live recording carries the offset its connector stamped quotes with; catches a reader
    that re-measures instead (a replay would then stamp differently from the live run)."""
    ms = 1_000_000

    def book(recv: int, u: int) -> str:
        data = {"u": u, "s": "BTCUSDT", "b": "99", "B": "1", "a": "101", "A": "1"}
        return _binance_line(recv, "btcusdt@bookTicker", data)

    def meta(recv: int, offset: int) -> str:
        return f'{recv} {{"quorum_clock_offset_ns":{offset}}}\n'

    trade_t = (T0 // ms + 5_000) * ms  # trades alone would measure an offset of +5 s
    trade = _binance_line(
        T0,
        "btcusdt@trade",
        {"e": "trade", "s": "BTCUSDT", "t": 1, "p": "100", "q": "1", "T": trade_t // ms, "m": True},
    )
    lines = [book(T0, 1), trade, meta(T0 + ms, 7 * ms), book(T0 + 2 * ms, 2)]
    lines += [meta(T0 + 3 * ms, 9 * ms), book(T0 + 4 * ms, 3)]
    text = "".join(lines)
    ticks, rejects, stats = _read([_write(tmp_path / "m.gz", text, gz=True)], tolerance_ns=10**10)
    assert rejects == []
    quotes = sorted(t.ts - T0 for t in ticks if isinstance(t, Quote))
    # the first offset line (7 ms) stamps the quote before it too; 9 ms from its line on
    assert quotes == [7 * ms, 2 * ms + 7 * ms, 4 * ms + 9 * ms]
    assert stats.quote_offset_ns[str(tmp_path / "m.gz")] == 7 * ms
