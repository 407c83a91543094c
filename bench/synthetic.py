"""Synthetic tick streams for LOAD tests only: the prices are noise, never judge models on them.

Writes quorum's own ticks JSONL (:func:`streams.codecs.encode_tick`), gzipped, sorted by event
time, deterministic for a seed (same seed => same bytes), generated and written in chunks so
memory stays bounded however many events are asked for.

    python -m bench.synthetic --events 1000000 --symbols 20 --seed 7 \\
        --out bench/out/synthetic_1m.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.records import Quote, Tick, Trade
from streams.codecs import encode_tick

START_NS = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z, near the sample data
TRADE_SHARE = 0.2  # ~80% quotes, ~20% trades, like the Binance sample
MEAN_GAP_MS = 2.0  # all symbols together: ~500 events/s
CHUNK = 100_000

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class _Book:
    """One symbol's running state between chunks: bid and spread on its tick grid."""

    symbol: str
    tick: float
    decimals: int
    bid: int  # in ticks
    spread: int  # in ticks, >= 1
    size_scale: float


def _books(rng: np.random.Generator, n_symbols: int) -> list[_Book]:
    books = []
    for i in range(n_symbols):
        price = float(math.exp(rng.uniform(math.log(0.5), math.log(60_000.0))))
        decimals = max(0, 4 - math.floor(math.log10(price)))  # ~1e-4..1e-5 relative tick
        tick = 10.0**-decimals
        books.append(
            _Book(
                symbol=f"SYN{i:02d}USDT",
                tick=tick,
                decimals=decimals,
                bid=max(1, round(price / tick)),
                spread=1,
                size_scale=float(1_000.0 / price),  # ~1000 USDT a print on average
            )
        )
    return books


def _ffill(values: IntArray, is_set: npt.NDArray[np.bool_], carry: int) -> IntArray:
    """Carry the last set value forward; before the first set one, ``carry``."""
    idx = np.where(is_set, np.arange(len(values)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], carry)


def _chunk(rng: np.random.Generator, books: list[_Book], n: int, t0: int) -> tuple[list[Tick], int]:
    """``n`` events after time ``t0``, in time order; returns them and the last time."""
    gaps = np.ceil(rng.exponential(MEAN_GAP_MS * 1e6, n)).astype(np.int64) + 1
    ts = t0 + np.cumsum(gaps)
    weights = np.linspace(2.0, 0.5, len(books))  # some symbols busier than others
    sym = rng.choice(len(books), size=n, p=weights / weights.sum())
    is_trade = rng.random(n) < TRADE_SHARE
    step = rng.choice(np.array([-1, 0, 1], dtype=np.int64), size=n, p=[0.2, 0.6, 0.2])
    new_spread = rng.geometric(0.6, n).astype(np.int64)
    buy = rng.random(n) < 0.5
    size = rng.lognormal(0.0, 1.0, n)
    bid_size = rng.lognormal(1.0, 1.0, n)
    ask_size = rng.lognormal(1.0, 1.0, n)

    bid_t = np.empty(n, dtype=np.int64)
    spread_t = np.empty(n, dtype=np.int64)
    for k, book in enumerate(books):
        at = np.flatnonzero(sym == k)
        if not len(at):
            continue
        quote = ~is_trade[at]
        walk = book.bid + np.cumsum(np.where(quote, step[at], 0))  # quotes move the book
        walk = np.maximum(walk, 1)
        bid_t[at] = walk
        spread_t[at] = _ffill(new_spread[at], quote, book.spread)
        book.bid = int(walk[-1])
        book.spread = int(spread_t[at][-1])

    ticks: list[Tick] = []
    for i in range(n):
        book = books[int(sym[i])]
        d = book.decimals
        bid = round(int(bid_t[i]) * book.tick, d)
        ask = round((int(bid_t[i]) + int(spread_t[i])) * book.tick, d)
        t = int(ts[i])
        if is_trade[i]:
            qty = max(round(float(size[i]) * book.size_scale, 6), 1e-6)
            if buy[i]:  # an aggressive buyer lifts the ask, a seller hits the bid
                ticks.append(Trade(book.symbol, t, ask, qty, "buy"))
            else:
                ticks.append(Trade(book.symbol, t, bid, qty, "sell"))
        else:
            ticks.append(
                Quote(
                    book.symbol,
                    t,
                    bid,
                    ask,
                    round(float(bid_size[i]), 4),
                    round(float(ask_size[i]), 4),
                )
            )
    return ticks, int(ts[-1])


def generate(events: int, symbols: int = 20, seed: int = 7) -> Iterator[list[Tick]]:
    """Yield the stream in chunks of at most :data:`CHUNK` ticks, in event-time order."""
    if events < 0 or symbols < 1:
        raise ValueError("need events >= 0 and symbols >= 1")
    rng = np.random.default_rng(seed)
    books = _books(rng, symbols)
    t = START_NS
    left = events
    while left > 0:
        n = min(CHUNK, left)
        ticks, t = _chunk(rng, books, n, t)
        left -= n
        yield ticks


def write(out: Path, events: int, symbols: int = 20, seed: int = 7) -> Path:
    """Write the gzipped JSONL to ``out`` atomically (a partial file never has the final name).

    The gzip header carries no name or mtime, so equal arguments give equal bytes.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with (
            tmp.open("wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
        ):
            for ticks in generate(events, symbols, seed):
                gz.write(b"".join(encode_tick(t) + b"\n" for t in ticks))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.synthetic",
        description="Write a synthetic tick stream (quorum JSONL, gzip) for load tests.",
    )
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("bench/out/synthetic_1m.jsonl.gz"))
    args = ap.parse_args(argv)
    path = write(args.out, args.events, args.symbols, args.seed)
    print(f"wrote {args.events:,} events, {args.symbols} symbols, seed {args.seed}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
