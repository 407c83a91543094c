"""Issue 10: the paper agent's throughput next to the worker's, and the embedded paper cost.

    python -m bench.bench_paper [--repeat 3]

One run, side by side, on the bundled spot sample (4 files, 166k ticks):

1. Embedded: the backtest without and with ``--paper`` (the paper session's cost), and the
   paper session alone over pre-computed ticks and signals (no kernel).
2. Kafka: the sample is replayed (packed) into fresh topics and a fused worker (memory state)
   turns it into signals; its ticks/s is timed from its first signal to its last, read off the
   signals topic. Then the paper agent (in this process) reads the pre-loaded ticks and
   signals, timed from its first record to the moment every input is applied (ticks/s and
   fills/s consumed), once with the default paper config and once with a busy one (no rate or
   position limit, so every BUY/SELL trades: ~30x the fills). Each agent run checkpoints to
   Redis on its normal cadence (2 s).

Needs Kafka and Redis (``quorum services up``) for part 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from agents.paper_session import PaperSession
from bench.bench_backtest import machine
from bench.bench_kafka import BENCH_SECRET, fresh_topics, running_worker
from config.paper import PaperConfig
from models.records import Signal, Tick
from quorum import run_backtest
from quorum.paper_cmd import paper_store
from streams.paper_agent import PaperAgent
from streams.readers import read_ticks
from streams.replay import replay
from streams.signal_consumer import iter_signals

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
BUSY = PaperConfig(
    max_orders_per_minute=1_000_000,
    max_position_notional=1e12,
    max_order_notional=1e12,
    daily_loss_limit=1e12,
)


def embedded(repeat: int) -> None:
    plain, paper = [], []
    for _ in range(repeat):  # alternated, so drift in the machine's load hits both
        t0 = time.perf_counter()
        run_backtest(SAMPLE)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = run_backtest(SAMPLE, paper=PaperConfig(), keep_signals=True)
        paper.append(time.perf_counter() - t0)
    n = sum(1 for _ in read_ticks(SAMPLE))
    p, q = statistics.median(plain), statistics.median(paper)
    print(f"backtest            {p:6.2f} s  {n / p:9,.0f} ticks/s")
    print(f"backtest --paper    {q:6.2f} s  {n / q:9,.0f} ticks/s  (paper adds {q / p - 1:+.0%})")

    ticks = list(read_ticks(SAMPLE))
    by_tick: dict[int, Signal] = {}
    signals = iter(res.signals)
    nxt = next(signals, None)
    seqs: dict[str, int] = {}
    for i, t in enumerate(ticks):
        seqs[t.symbol] = seqs.get(t.symbol, 0) + 1
        if nxt is not None and nxt.symbol == t.symbol and nxt.seq == seqs[t.symbol]:
            by_tick[i] = nxt
            nxt = next(signals, None)
    for name, cfg in (("default", PaperConfig()), ("busy", BUSY)):
        times = []
        for _ in range(repeat):
            s = PaperSession(cfg, ("trade",))
            t0 = time.perf_counter()
            for i, t in enumerate(ticks):
                s.tick(0, t)
                sig = by_tick.get(i)
                if sig is not None:
                    s.signal(sig)
                s.drain()
            s.finish()
            times.append(time.perf_counter() - t0)
        e = statistics.median(times)
        fills = s.trader.account.n_fills
        print(
            f"session alone ({name:7}) {e:6.2f} s  {len(ticks) / e:9,.0f} ticks/s  "
            f"{fills:6,} fills  {fills / e:8,.0f} fills/s"
        )


def kafka(repeat: int) -> None:
    os.environ.setdefault("QUORUM_STATE_SECRET", BENCH_SECRET)
    ticks: list[Tick] = list(read_ticks(SAMPLE))
    expected = len(run_backtest(SAMPLE).signals)
    with fresh_topics("paper") as runtime:
        replay(SAMPLE, runtime, speed=None)
        arrivals: list[float] = []
        with running_worker(runtime, "paper", threading.Event(), live=False):
            for _ in iter_signals(runtime, from_beginning=True, follow=False, timeout_s=120):
                arrivals.append(time.perf_counter())
                if len(arrivals) >= expected:
                    break
        assert len(arrivals) == expected, (len(arrivals), expected)
        w = len(ticks) / (arrivals[-1] - arrivals[0])
        print(f"worker (fused, memory)  {w:9,.0f} ticks/s (first to last signal)")
        for name, paper_cfg in (("default", PaperConfig()), ("busy", BUSY)):
            rates, fill_rates, fills = [], [], 0
            for r in range(repeat):
                agent = PaperAgent(
                    runtime, paper_cfg, ("trade",), f"bench-{name}-{r}", paper_store(runtime)
                )
                first: list[float] = []
                done: list[float] = []

                def stop(
                    agent: PaperAgent = agent, first: list[float] = first, done: list[float] = done
                ) -> bool:
                    st = agent.stats
                    if st.records and not first:
                        first.append(time.perf_counter())
                    if (
                        st.ticks >= len(ticks)
                        and st.signals >= expected
                        and agent.state is not None
                        and agent.state.session.merger.pending() == 0
                    ):
                        done.append(time.perf_counter())
                        return True
                    return False

                agent.run(stop)
                elapsed = done[0] - first[0]
                fills = agent.stats.fills
                rates.append(len(ticks) / elapsed)
                fill_rates.append(fills / elapsed)
            print(
                f"paper agent ({name:7})  {statistics.median(rates):9,.0f} ticks/s  "
                f"{fills:6,} fills  {statistics.median(fill_rates):8,.0f} fills/s  "
                f"(+{expected:,} signals; ratio to the worker "
                f"{statistics.median(rates) / w:.2f})"
            )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--part", choices=("all", "embedded", "kafka"), default="all")
    args = ap.parse_args(argv)
    print(machine())
    if args.part in ("all", "embedded"):
        embedded(args.repeat)
    if args.part in ("all", "kafka"):
        kafka(args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
