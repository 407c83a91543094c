"""No lookahead, proved as a black box: through the real readers and the backtest driver.

Two inputs identical up to event time T and different after it (every later price, size, side
and quote changed) must give identical signals at or before T. T is a trade whose next tick is
strictly later, so a stage that peeks at the next tick of its symbol sees a changed tick. The
same recorded ticks are written in each input format; all three must also agree with each other.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from models.records import Quote, Side, Signal, Tick, Trade
from quorum import run_backtest
from streams.codecs import encode_tick
from streams.readers import _measure_quote_offset, read_ticks
from tests.conftest import SAMPLE_FILES, S

SPAN_S = 45  # seconds of each fixture used: enough for every stage to vote, quick to run
PRICE = 1.003  # every later price is moved by +0.3 % ...
SIZE = 1.7  # ... every size by x1.7, and every side is flipped

Key = tuple[str, int, int]  # a signal's (symbol, event time, per-symbol seq)
Seen = tuple[str, str, float, tuple[float | None, ...]]  # id, action, p_up, stages' p_up


def _event_ns(recv: int, frame: dict[str, object], offset: int) -> int:
    """The event time the Binance reader gives a frame (trades: T; spot quotes: recv + offset)."""
    data = frame.get("data")
    if isinstance(data, dict) and str(frame.get("stream", "")).endswith("@trade"):
        return int(data["T"]) * 1_000_000
    return recv + offset


def _binance_head(src: Path, dst: Path) -> Path:
    """The first ``SPAN_S`` seconds of a recording, lines as recorded."""
    lines = gzip.decompress(src.read_bytes()).splitlines()
    start = int(lines[0].split(b" ", 1)[0])
    kept = [ln for ln in lines if int(ln.split(b" ", 1)[0]) < start + SPAN_S * S]
    dst.write_bytes(b"\n".join(kept) + b"\n")
    return dst


def _change_binance(src: Path, dst: Path, cut: int) -> int:
    """Copy ``src`` changing every trade and quote frame stamped after ``cut``; count them."""
    offset = _measure_quote_offset(src)
    changed = 0
    out: list[bytes] = []
    for line in src.read_bytes().splitlines():
        head, body = line.split(b" ", 1)
        frame = orjson.loads(body)
        data = frame.get("data")
        stream = str(frame.get("stream", ""))
        if _event_ns(int(head), frame, offset) > cut and isinstance(data, dict):
            if stream.endswith("@trade"):
                data["p"] = repr(float(data["p"]) * PRICE)
                data["q"] = repr(float(data["q"]) * SIZE)
                data["m"] = not data["m"]
                changed += 1
            elif stream.endswith("@bookTicker"):
                bid, ask = float(data["b"]), float(data["a"])
                data["b"], data["a"] = repr(bid * PRICE), repr(ask * PRICE * 1.0001)
                data["B"], data["A"] = repr(float(data["A"]) * SIZE), repr(float(data["B"]))
                changed += 1
            line = head + b" " + orjson.dumps(frame)
        out.append(line)
    dst.write_bytes(b"\n".join(out) + b"\n")
    return changed


def _change_tick(t: Tick) -> Tick:
    if isinstance(t, Trade):
        side: Side | None = None if t.side is None else "sell" if t.side == "buy" else "buy"
        return Trade(t.symbol, t.ts, t.price * PRICE, t.size * SIZE, side)
    return Quote(
        t.symbol, t.ts, t.bid * PRICE, t.ask * PRICE * 1.0001, t.ask_size * SIZE, t.bid_size
    )


def _write_csv(ticks: list[Tick], path: Path) -> None:
    rows = ["side,ask_size,ts,price,symbol,size,bid,ask,bid_size"]  # any column order
    for t in ticks:
        if isinstance(t, Trade):
            rows.append(f"{t.side or ''},,{t.ts},{t.price!r},{t.symbol},{t.size!r},,,")
        else:
            rows.append(f",{t.ask_size!r},{t.ts},,{t.symbol},,{t.bid!r},{t.ask!r},{t.bid_size!r}")
    path.write_text("\n".join(rows) + "\n")


def _write_jsonl(ticks: list[Tick], path: Path) -> None:
    path.write_bytes(b"".join(encode_tick(t) + b"\n" for t in ticks))


Writer = Callable[[list[Tick], Path], None]
WRITERS: dict[str, Writer] = {"csv": _write_csv, "jsonl": _write_jsonl}


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("heads")
    return [_binance_head(p, root / f"{p.name.split('_')[0]}.binance") for p in SAMPLE_FILES]


@pytest.fixture(scope="module")
def ticks(heads: list[Path]) -> list[list[Tick]]:
    """Each head's ticks as the Binance reader gives them (what the other formats carry)."""
    return [list(read_ticks([p])) for p in heads]


def _cuts(ticks: list[list[Tick]]) -> list[int]:
    """Two cut times: trades (after warm-up) whose next tick in the merged input is later."""
    merged = sorted((t for f in ticks for t in f), key=lambda t: t.ts)  # stable: file order
    start = merged[0].ts
    cuts: list[int] = []
    for want in (20 * S, 32 * S):
        for a, b in itertools.pairwise(merged):
            if a.ts >= start + want and isinstance(a, Trade) and b.ts > a.ts:
                cuts.append(a.ts)
                break
    assert len(cuts) == 2
    return cuts


def _signals(paths: list[Path], fmt: str) -> dict[Key, Seen]:
    result = run_backtest(paths, fmt=fmt, prefetch=False)  # the kernel's lookahead, one process
    assert result.report["rejected"] == 0
    return {(s.symbol, s.ts, s.seq): _seen(s) for s in result.signals}


def _seen(s: Signal) -> Seen:
    return s.id, s.action.value, s.p_up, tuple(sv.p_up for sv in s.stages)


def _assert_past_unchanged(base: dict[Key, Seen], changed: dict[Key, Seen], cut: int) -> None:
    past = {k: v for k, v in base.items() if k[1] <= cut}
    at_cut = [v for k, v in past.items() if k[1] == cut]
    assert at_cut and all(p is not None for p in at_cut[0][3]), "every stage voted at the cut"
    assert len(past) > 300
    assert {k: v for k, v in changed.items() if k[1] <= cut} == past
    later_base = {k: v for k, v in base.items() if k[1] > cut}
    later_changed = {k: v for k, v in changed.items() if k[1] > cut}
    assert later_base.keys() == later_changed.keys()  # times were kept: same trigger ticks
    differ = sum(later_base[k][2:] != later_changed[k][2:] for k in later_base)
    assert differ > len(later_base) // 2, "the future did change: the test has teeth"


@pytest.fixture(scope="module")
def reference(heads: list[Path]) -> dict[Key, Seen]:
    return _signals(heads, "binance")


def test_binance_recording_changed_after_the_cut(
    heads: list[Path], ticks: list[list[Tick]], reference: dict[Key, Seen], tmp_path: Path
) -> None:
    for cut in _cuts(ticks):
        changed_files = [tmp_path / f"{cut}-{p.name}" for p in heads]
        n = sum(_change_binance(p, q, cut) for p, q in zip(heads, changed_files, strict=True))
        assert n > 1000
        _assert_past_unchanged(reference, _signals(changed_files, "binance"), cut)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_other_formats_agree_and_are_changed_after_the_cut(
    fmt: str,
    ticks: list[list[Tick]],
    reference: dict[Key, Seen],
    tmp_path: Path,
) -> None:
    write = WRITERS[fmt]
    files = []
    for i, f in enumerate(ticks):
        files.append(tmp_path / f"{i}.{fmt}")
        write(f, files[-1])
    base = _signals(files, fmt)
    assert base == reference, f"{fmt} carries the same ticks as the recording: same signals"
    for cut in _cuts(ticks):
        changed_files = []
        for i, f in enumerate(ticks):
            changed_files.append(tmp_path / f"{i}-{cut}.{fmt}")
            write([_change_tick(t) if t.ts > cut else t for t in f], changed_files[-1])
        _assert_past_unchanged(base, _signals(changed_files, fmt), cut)
