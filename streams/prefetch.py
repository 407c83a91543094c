"""Read ticks in a child process, so parsing overlaps processing on a second core.

Parsing the raw recordings costs about as much as the pipeline itself; in one process the two
add up. Here the child runs :func:`streams.readers.read_ticks` unchanged and ships compact
batches through a bounded queue (memory stays flat); the parent rebuilds the records. Order,
rejects and counters are exactly those of the single-process reader.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from models.records import Quote, Reject, Tick, Trade
from streams.readers import Format, ReaderError, ReaderStats, RejectSink, read_ticks

BATCH = 4096
QUEUE_BATCHES = 16

_TRADE = 0
_QUOTE = 1


def _pack(t: Tick) -> tuple[Any, ...]:
    if type(t) is Trade:
        return (_TRADE, t.symbol, t.ts, t.price, t.size, t.side)
    q: Quote = t  # type: ignore[assignment]
    return (_QUOTE, q.symbol, q.ts, q.bid, q.ask, q.bid_size, q.ask_size)


def _child(out: Any, paths: list[str], kwargs: dict[str, Any]) -> None:
    rejects: list[tuple[str, int, str, str]] = []
    stats = ReaderStats()
    try:
        batch: list[tuple[Any, ...]] = []
        for tick in read_ticks(
            paths,
            on_reject=lambda r: rejects.append((r.source, r.line, r.reason, r.raw)),
            stats=stats,
            **kwargs,
        ):
            batch.append(_pack(tick))
            if len(batch) >= BATCH:
                out.put(("batch", batch, list(rejects)))
                batch = []
                rejects.clear()
        out.put(("batch", batch, rejects))
        out.put(("done", {f.name: getattr(stats, f.name) for f in fields(stats)}, None))
    except ReaderError as e:
        out.put(("error", str(e), None))
    except BaseException as e:  # report anything else too: the parent must not hang
        out.put(("crash", f"{type(e).__name__}: {e}", None))


def read_ticks_prefetched(
    paths: Iterable[Path | str],
    *,
    fmt: Format | str | None = None,
    symbols: list[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    tolerance_ns: int = 2_000_000_000,
    on_reject: RejectSink | None = None,
    stats: ReaderStats | None = None,
) -> Iterator[Tick]:
    """Same contract as :func:`read_ticks`, parsed by a child process."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx: Any = mp.get_context(method)  # typeshed's BaseContext lacks Process
    out = ctx.Queue(maxsize=QUEUE_BATCHES)
    kwargs = {
        "fmt": fmt,
        "symbols": symbols,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "tolerance_ns": tolerance_ns,
    }
    proc = ctx.Process(target=_child, args=(out, [str(p) for p in paths], kwargs), daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, payload, rejects = out.get(timeout=5.0)
            except queue_mod.Empty:
                if not proc.is_alive():
                    raise ReaderError(
                        f"tick reader process died (exit code {proc.exitcode})"
                    ) from None
                continue
            if kind == "batch":
                if on_reject is not None:
                    for r in rejects:
                        on_reject(Reject(*r))
                for p in payload:
                    if p[0] == _TRADE:
                        yield Trade(p[1], p[2], p[3], p[4], p[5])
                    else:
                        yield Quote(p[1], p[2], p[3], p[4], p[5], p[6])
            elif kind == "done":
                if stats is not None:
                    for name, value in payload.items():
                        setattr(stats, name, value)
                return
            elif kind == "error":
                raise ReaderError(payload)
            else:
                raise RuntimeError(f"tick reader process failed: {payload}")
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=5.0)
        out.close()
        out.join_thread()
