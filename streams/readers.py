"""Tick readers: Binance websocket recordings, a generic tick CSV, and quorum's own JSONL.

Every reader streams (bounded memory), yields ticks in event-time order per file (a small
reorder buffer absorbs jitter up to a tolerance), and the files are merged by event time,
stable for equal times (file order, then line order). Bad lines become :class:`Reject` records
passed to ``on_reject``; a missing or wholly unreadable file raises :class:`ReaderError`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import heapq
import io
import re
import statistics
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, overload

import orjson

from models.records import Quote, Reject, Side, Tick, Trade
from streams.binance import CONNECTED_META, OFFSET_META, Ids, decimal, frame_tick
from streams.codecs import DecodeError, tick_from_dict
from streams.coinbase import CoinbaseParser
from streams.coinbase import FrameError as CoinbaseFrameError
from streams.timeparse import parse_time_ns
from streams.validation import InvalidTick, validate

RejectSink = Callable[[Reject], None]
Located = tuple[int, int, int, Tick]  # (ts, file index, arrival in the file, tick)

_GZIP_MAGIC = b"\x1f\x8b"
_OFFSET_SAMPLE_TRADES = 2_000
_OFFSET_SCAN_LINES = 50_000


class ReaderError(Exception):
    """Input that cannot be used at all: the message names the file (and line when known)."""


class Format(StrEnum):
    BINANCE = "binance"
    CSV = "csv"
    JSONL = "jsonl"


@dataclass
class ReaderStats:
    """Counters of one read, shared by all files of it."""

    lines: int = 0
    ticks: int = 0
    skipped: int = 0  # frames we knowingly ignore (depth diffs, REST snapshots)
    rejected: int = 0
    filtered: int = 0  # valid ticks outside --symbols/--start/--end
    quote_offset_ns: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0  # repeated frames dropped (a trade or book update id seen before)
    trade_id_gaps: int = 0  # jumps in a symbol's contiguous trade ids
    missing_trade_ids: int = 0


def _open_binary(path: Path) -> IO[bytes]:
    if not path.exists():
        raise ReaderError(f"{path}: no such file")
    if not path.is_file():
        raise ReaderError(f"{path}: not a regular file")
    try:
        with path.open("rb") as f:
            magic = f.read(2)
        if magic == _GZIP_MAGIC:
            # BufferedReader's readline is C code; GzipFile's own is Python
            return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 16)
        return path.open("rb")
    except OSError as e:
        raise ReaderError(f"{path}: cannot read: {e.strerror or e}") from None


def open_text(path: Path) -> IO[str]:
    """Open a plain or gzipped text file (gzip detected by its magic bytes, not its name)."""
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="replace", newline="")


def _first_line(path: Path) -> str:
    try:
        with open_text(path) as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except (OSError, EOFError, zlib.error) as e:
        raise ReaderError(f"{path}:1: unreadable: {e}") from None
    raise ReaderError(f"{path}: empty file")


def detect_format(path: Path) -> Format:
    """Tell the format from the content: ``<ns> {json}`` lines, JSON lines, or a CSV header."""
    line = _first_line(path)
    head, _, rest = line.partition(" ")
    if head.isdigit() and rest.lstrip().startswith("{"):
        return Format.BINANCE
    if line.startswith("{"):
        return Format.JSONL
    cols = {c.strip().lower() for c in line.split(",")}
    if {"ts", "symbol"} <= cols:
        return Format.CSV
    raise ReaderError(
        f"{path}:1: cannot detect the format (expected '<recv_ns> <json>' Binance lines, "
        f"JSON lines, or a CSV header with ts and symbol); got {line[:80]!r}"
    )


# --- per-format line parsers: yield (line_no, tick) or report rejects ------------------------


@overload
def _lines(
    path: Path, on_reject: RejectSink, stats: ReaderStats, binary: Literal[False] = False
) -> Iterator[tuple[int, str]]: ...


@overload
def _lines(
    path: Path, on_reject: RejectSink, stats: ReaderStats, binary: Literal[True]
) -> Iterator[tuple[int, bytes]]: ...


def _lines(
    path: Path, on_reject: RejectSink, stats: ReaderStats, binary: bool = False
) -> Iterator[tuple[int, str]] | Iterator[tuple[int, bytes]]:
    """Numbered non-empty lines; a file that breaks mid-way is rejected from there, not fatal."""
    n = 0
    try:
        f: IO[Any] = _open_binary(path) if binary else open_text(path)
        with f:
            for n, line in enumerate(f, start=1):
                stats.lines += 1
                if line.strip():
                    yield n, line
    except (OSError, EOFError, zlib.error) as e:
        if n == 0:
            raise ReaderError(f"{path}: unreadable: {e}") from None
        stats.rejected += 1
        on_reject(Reject(str(path), n + 1, f"unreadable from here on (truncated or corrupt): {e}"))


def _excerpt(raw: bytes) -> str:
    return raw[:200].decode("utf-8", "replace").rstrip()


def _measure_quote_offset(path: Path) -> int:
    """Median of (exchange trade time - local receive time) over the first trades of a file.

    Spot bookTicker frames carry no exchange time; shifting their receive time by this offset
    puts them on the exchange's clock, deterministically for a given file. A recording made by
    ``quorum feed --record`` carries the offset its connector stamped with (a meta line): the
    first one found is the offset until the next, so a replay stamps exactly as live did.
    """
    samples: list[int] = []
    try:
        with open_text(path) as f:
            for i, line in enumerate(f):
                if i >= _OFFSET_SCAN_LINES or len(samples) >= _OFFSET_SAMPLE_TRADES:
                    break
                head, _, body = line.partition(" ")
                if OFFSET_META in body[:40]:
                    with contextlib.suppress(orjson.JSONDecodeError, TypeError, ValueError):
                        v = orjson.loads(body)[OFFSET_META]
                        if type(v) is int:
                            return v
                if "@trade" not in body[:64] or not head.isdigit():
                    continue
                try:
                    t = orjson.loads(body)["data"]["T"]
                    if type(t) is int:  # a bool or float T is rejected later, not sampled
                        samples.append(t * 1_000_000 - int(head))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
    except (OSError, EOFError, zlib.error):
        return 0
    return int(statistics.median_low(samples)) if samples else 0


_TRADE_NUMBERS: tuple[tuple[str, str], ...] = (("p", "price"), ("q", "size"))
_QUOTE_NUMBERS: tuple[tuple[str, str], ...] = (
    ("b", "bid"),
    ("a", "ask"),
    ("B", "bid_size"),
    ("A", "ask_size"),
)


def _number_problem(data: dict[str, Any], keys: tuple[tuple[str, str], ...]) -> str | None:
    """Name the numeric field ``float()`` choked on (only runs once a line is already bad)."""
    for key, name in keys:
        v = data.get(key)
        try:
            float(decimal(v, key))
        except (ValueError, TypeError, OverflowError):
            return f"{name} (field {key!r}) is not a number: {v!r}"
    return None


def _binance_ticks(
    path: Path, on_reject: RejectSink, stats: ReaderStats
) -> Iterator[tuple[int, Tick]]:
    """Trades and best bid/ask from a websocket recording.

    Field types are checked as Binance sends them (``s`` a string, ``T``/``E`` integer ms,
    ``m`` a JSON bool, prices and sizes decimal strings or numbers), so ``"m": "false"`` is not
    read as truthy and ``"p": true`` is not a price of 1. The checks are type identities on the
    fast path; the reason is worked out only for a line that is already rejected.
    """
    offset = _measure_quote_offset(path)
    stats.quote_offset_ns[str(path)] = offset
    src = str(path)
    ids = Ids()  # per file: files of one symbol are read side by side
    cb: CoinbaseParser | None = None  # a live Coinbase recording's frames, when there are any
    for n, raw in _lines(path, on_reject, stats, binary=True):
        head, _, body = raw.partition(b" ")
        if body.find(b"@depth", 0, 48) >= 0:
            stats.skipped += 1  # depth diffs are not used: skip before paying for the parse
            continue
        try:
            if not head.isdigit():  # int() would take "-5", "+5", "1_0"
                raise ValueError(f"receive time must be integer nanoseconds, got {head[:40]!r}")
            recv = int(head)
            frame = orjson.loads(body)
        except (ValueError, orjson.JSONDecodeError) as e:
            stats.rejected += 1
            on_reject(Reject(src, n, f"malformed line: {e}", _excerpt(raw)))
            continue
        if not isinstance(frame, dict):
            stats.rejected += 1
            on_reject(Reject(src, n, "frame is not a JSON object", _excerpt(raw)))
            continue
        stream = frame.get("stream")
        data = frame.get("data")
        if stream is None:
            if "channel" in frame:  # a Coinbase Advanced Trade envelope (a live recording)
                cb = cb or CoinbaseParser()
                try:
                    got = cb.parse(body, recv)
                except CoinbaseFrameError as e:
                    stats.rejected += 1
                    on_reject(Reject(src, n, str(e), _excerpt(raw)))
                    continue
                stats.duplicates += got.duplicates
                if not got.ticks:
                    stats.skipped += 1
                for made in got.ticks:
                    yield n, made
                continue
            meta = frame.get(OFFSET_META)
            if type(meta) is int:
                offset = meta  # the connector's offset, in force from this line on
            elif CONNECTED_META in frame and cb is not None:
                cb.reset_sequence()  # a new connection: its sequence numbers start again
            stats.skipped += 1  # REST depth snapshot or other non-stream message
            continue
        try:
            tick = frame_tick(stream, data, recv, offset)
            if tick is None:
                stats.skipped += 1  # other streams are not used
                continue
            if not ids.accept(tick, data):
                stats.duplicates += 1  # a repeated frame (same trade or book update id)
                continue
        except KeyError as e:
            stats.rejected += 1
            on_reject(Reject(src, n, f"missing field {e}", _excerpt(raw)))
            continue
        except InvalidTick as e:
            stats.rejected += 1
            on_reject(Reject(src, n, str(e), _excerpt(raw)))
            continue
        except (ValueError, TypeError, OverflowError) as e:
            stats.rejected += 1
            reason = str(e)
            if reason.startswith("could not convert") and isinstance(data, dict):
                keys = _QUOTE_NUMBERS if "bookTicker" in str(stream) else _TRADE_NUMBERS
                reason = _number_problem(data, keys) or reason
            on_reject(Reject(src, n, reason, _excerpt(raw)))
            continue
        yield n, tick
    stats.trade_id_gaps += ids.gaps + (cb.trade_id_gaps if cb else 0)
    stats.missing_trade_ids += ids.missing + (cb.missing_trade_ids if cb else 0)


_CSV_COLUMNS = ("ts", "symbol", "price", "size", "side", "bid", "ask", "bid_size", "ask_size")
# a plain decimal: Python's float() would also take "1_000", " nan", "infinity" and digits of
# other scripts; 1e999 still parses (to inf) and is then refused as not finite, with its field
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _csv_number(text: str, name: str) -> float:
    if not text:
        raise ValueError(f"{name} is empty")
    if _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"{name} is not a number: {text[:40]!r}")
    return float(text)


def _csv_ticks(path: Path, on_reject: RejectSink, stats: ReaderStats) -> Iterator[tuple[int, Tick]]:
    """Rows of a headed tick CSV; a row is a trade (price, size) or a quote (bid, ask)."""
    src = str(path)
    lines = _lines(path, on_reject, stats)
    first = next(lines, None)
    if first is None:
        raise ReaderError(f"{path}: empty file")
    try:
        header = [c.strip().lower() for c in next(csv.reader([first[1]]))]
    except csv.Error as e:
        raise ReaderError(f"{path}:{first[0]}: unreadable CSV header: {e}") from None
    missing = {"ts", "symbol"} - set(header)
    if missing:
        raise ReaderError(f"{path}:{first[0]}: CSV header lacks column(s) {sorted(missing)}")
    idx = {c: header.index(c) for c in _CSV_COLUMNS if c in header}
    width = len(header)

    def col(row: list[str], name: str) -> str:
        i = idx.get(name)
        return row[i].strip() if i is not None else ""

    for n, line in lines:
        try:
            row = next(csv.reader([line]))
        except csv.Error as e:  # e.g. a field over csv.field_size_limit()
            stats.rejected += 1
            on_reject(Reject(src, n, f"malformed CSV row: {e}", line[:200]))
            continue
        if len(row) < width:
            stats.rejected += 1
            on_reject(Reject(src, n, f"expected {width} columns, got {len(row)}", line[:200]))
            continue
        try:
            ts_text = col(row, "ts")
            if not ts_text:
                raise ValueError("ts is empty")
            ts = parse_time_ns(ts_text)
            symbol = col(row, "symbol")
            tick: Tick
            if col(row, "price"):
                side_text = col(row, "side").lower()
                side: Side | None
                if side_text in ("buy", "sell"):
                    side = "buy" if side_text == "buy" else "sell"
                elif not side_text:
                    side = None
                else:
                    raise ValueError(f"side must be buy or sell, got {side_text!r}")
                tick = Trade(
                    symbol,
                    ts,
                    _csv_number(col(row, "price"), "price"),
                    _csv_number(col(row, "size"), "size"),
                    side,
                )
            elif col(row, "bid") or col(row, "ask"):
                bid_size, ask_size = col(row, "bid_size"), col(row, "ask_size")
                tick = Quote(
                    symbol,
                    ts,
                    _csv_number(col(row, "bid"), "bid"),
                    _csv_number(col(row, "ask"), "ask"),
                    _csv_number(bid_size, "bid_size") if bid_size else 0.0,
                    _csv_number(ask_size, "ask_size") if ask_size else 0.0,
                )
            else:
                raise ValueError("row is neither a trade (price, size) nor a quote (bid, ask)")
            validate(tick)
        except ValueError as e:  # InvalidTick is a ValueError
            stats.rejected += 1
            on_reject(Reject(src, n, str(e), line[:200]))
            continue
        yield n, tick


def _jsonl_ticks(
    path: Path, on_reject: RejectSink, stats: ReaderStats
) -> Iterator[tuple[int, Tick]]:
    """quorum's own ticks, decoded exactly as the ticks topic is (``tick.schema.json``).

    Lines are bytes, so invalid UTF-8 is refused by orjson instead of becoming U+FFFD.
    """
    src = str(path)
    for n, line in _lines(path, on_reject, stats, binary=True):
        try:
            tick = tick_from_dict(orjson.loads(line))
        except orjson.JSONDecodeError as e:
            stats.rejected += 1
            on_reject(Reject(src, n, f"malformed JSON: {e}", _excerpt(line)))
            continue
        except DecodeError as e:
            stats.rejected += 1
            on_reject(Reject(src, n, str(e), _excerpt(line)))
            continue
        yield n, tick


_PARSERS = {Format.BINANCE: _binance_ticks, Format.CSV: _csv_ticks, Format.JSONL: _jsonl_ticks}


def _in_order(
    parsed: Iterable[tuple[int, Tick]],
    file_index: int,
    src: str,
    tolerance_ns: int,
    on_reject: RejectSink,
    stats: ReaderStats,
) -> Iterator[Located]:
    """Reorder a nearly sorted stream; ticks later than the tolerance allows are rejected."""
    heap: list[Located] = []
    seq = 0
    released = -1
    newest = -1
    for n, tick in parsed:
        ts = tick.ts
        if ts < released:
            stats.rejected += 1
            on_reject(
                Reject(
                    src,
                    n,
                    f"timestamp went backwards by {(released - ts) / 1e6:.3f} ms "
                    f"(tolerance {tolerance_ns / 1e6:.0f} ms)",
                )
            )
            continue
        seq += 1  # not the line number: a line may hold several ticks (a Coinbase frame)
        heapq.heappush(heap, (ts, file_index, seq, tick))
        newest = max(newest, ts)
        while heap and heap[0][0] <= newest - tolerance_ns:
            item = heapq.heappop(heap)
            released = item[0]
            yield item
    while heap:
        yield heapq.heappop(heap)


def read_ticks(
    paths: Iterable[Path | str],
    *,
    fmt: Format | str | None = None,
    symbols: Iterable[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    tolerance_ns: int = 2_000_000_000,
    on_reject: RejectSink | None = None,
    stats: ReaderStats | None = None,
) -> Iterator[Tick]:
    """Stream valid ticks from ``paths`` merged by event time.

    ``symbols`` filters case-insensitively; ``start_ns`` is inclusive, ``end_ns`` exclusive.
    Every file is checked (exists, readable, format known) before the first tick is yielded.
    """
    sink: RejectSink = on_reject or (lambda r: None)
    st = stats if stats is not None else ReaderStats()
    files = [Path(p) for p in paths]
    if not files:
        raise ReaderError("no input files given")
    formats = [Format(fmt) if fmt else detect_format(p) for p in files]
    for p in files:
        _first_line(p)  # fail fast on missing/unreadable files, naming them
    streams = [
        _in_order(_PARSERS[f](p, sink, st), i, str(p), tolerance_ns, sink, st)
        for i, (p, f) in enumerate(zip(files, formats, strict=True))
    ]
    wanted = {s.upper() for s in symbols} if symbols else None
    for ts, _, _, tick in heapq.merge(*streams):
        if (
            (wanted is not None and tick.symbol.upper() not in wanted)
            or (start_ns is not None and ts < start_ns)
            or (end_ns is not None and ts >= end_ns)
        ):
            st.filtered += 1
            continue
        st.ticks += 1
        yield tick
