"""Throughput, memory and log-loss of quorum against the River baseline, same data, same process.

    python -m bench.bench_backtest                 # the Binance sample and 1M synthetic events
    python -m bench.bench_backtest --sample
    python -m bench.bench_backtest --synthetic 1000000 --symbols 20 --repeat 3

quorum runs as a long backtest would (``keep_signals=False``, signals written to a temporary
directory); its resident memory is sampled through the ``progress`` hook to show it stays flat.
Timings are wall-clock on whatever else the machine is doing: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.synthetic import write as write_synthetic
from quorum import run_backtest
from quorum.baseline import BaselineResult, default_models, run_baseline

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
OUT = ROOT / "bench" / "out"
SYNTHETIC_SEED = 7
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb() -> int:
    """Current resident set size (not the high-water mark), from /proc/self/statm."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE_KB


def max_rss_kb() -> int:
    """The process's peak resident set size so far (kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{cpu}; {os.cpu_count()} cores ({usable} usable){load}; "
        f"Python {platform.python_version()} ({platform.python_implementation()}); "
        f"{platform.system()} {platform.release()}"
    )


@dataclass
class QuorumRun:
    events: int
    elapsed_s: float
    events_per_s: float
    ensemble: dict[str, Any]
    rss_start_kb: int
    rss_samples: list[tuple[int, int]] = field(default_factory=list)  # (events, rss kB)
    max_rss_before_kb: int = 0
    max_rss_after_kb: int = 0

    def rss_at(self, fraction: float) -> tuple[int, int]:
        """The sample nearest to ``fraction`` of the events, as (events, rss kB)."""
        target = fraction * self.events
        return min(self.rss_samples, key=lambda s: abs(s[0] - target))


def run_quorum(paths: Sequence[Path], prefetch: bool = True) -> QuorumRun:
    default_models()  # import River up front: the start RSS then excludes library code
    gc.collect()
    samples: list[tuple[int, int]] = []

    def progress(n: int) -> None:
        samples.append((n, rss_kb()))

    before = max_rss_kb()
    start = rss_kb()
    with tempfile.TemporaryDirectory(prefix="quorum-bench-") as tmp:
        res = run_backtest(
            paths, keep_signals=False, out_dir=tmp, progress=progress, prefetch=prefetch
        )
    rep = res.report
    return QuorumRun(
        events=rep["events"],
        elapsed_s=rep["elapsed_s"],
        events_per_s=rep["events_per_s"] or 0.0,
        ensemble=rep["ensemble"],
        rss_start_kb=start,
        rss_samples=samples or [(rep["events"], rss_kb())],
        max_rss_before_kb=before,
        max_rss_after_kb=max_rss_kb(),
    )


def run_base(paths: Sequence[Path]) -> BaselineResult:
    gc.collect()
    return run_baseline(paths)


def synthetic_path(events: int, symbols: int) -> Path:
    """Generate once, reuse afterwards (the file is deterministic for its arguments)."""
    name = (
        f"synthetic_{events}.jsonl.gz"
        if symbols == 20
        else f"synthetic_{events}_{symbols}sym.jsonl.gz"
    )
    path = OUT / name
    if not path.exists():
        print(f"generating {path.relative_to(ROOT)} ({events:,} events, {symbols} symbols) ...")
        write_synthetic(path, events, symbols, SYNTHETIC_SEED)
    return path


@dataclass
class Row:
    dataset: str
    quorum: QuorumRun
    baseline: BaselineResult
    quorum_one_process: QuorumRun
    # per run, in run order: (quorum / baseline, quorum one-process / baseline) events/s
    run_ratios: list[tuple[float, float]] = field(default_factory=list)


def bench(dataset: str, paths: Sequence[Path], repeat: int) -> Row:
    """Best of ``repeat`` runs of each (least disturbed by other load); quorum runs first so its
    memory samples are not inflated by the baseline's models. quorum runs twice: as shipped
    (input parsed in a child process, overlapping the pipeline) and all in one process."""
    best_q: QuorumRun | None = None
    best_q1: QuorumRun | None = None
    best_b: BaselineResult | None = None
    ratios: list[tuple[float, float]] = []
    for i in range(repeat):
        print(f"[{dataset}] run {i + 1}/{repeat}: quorum ...", flush=True)
        q = run_quorum(paths)
        print(
            f"[{dataset}]   quorum {q.events:,} events in {q.elapsed_s:.1f} s; baseline ...",
            flush=True,
        )
        b = run_base(paths)
        print(f"[{dataset}]   baseline {b.events:,} events in {b.elapsed_s:.1f} s", flush=True)
        q1 = run_quorum(paths, prefetch=False)
        print(f"[{dataset}]   quorum in one process: {q1.elapsed_s:.1f} s", flush=True)
        if b.events_per_s:
            ratios.append((q.events_per_s / b.events_per_s, q1.events_per_s / b.events_per_s))
            print(
                f"[{dataset}]   this run: quorum {q.events_per_s:,.0f} ev/s, one process "
                f"{q1.events_per_s:,.0f}, baseline {b.events_per_s:,.0f}: ratios "
                f"{ratios[-1][0]:.2f} / {ratios[-1][1]:.2f} (1-proc)",
                flush=True,
            )
        if best_q is None or q.elapsed_s < best_q.elapsed_s:
            best_q = q
        if best_q1 is None or q1.elapsed_s < best_q1.elapsed_s:
            best_q1 = q1
        if best_b is None or b.elapsed_s < best_b.elapsed_s:
            best_b = b
    assert best_q is not None and best_b is not None and best_q1 is not None
    return Row(dataset, best_q, best_b, best_q1, ratios)


def _ll(score: dict[str, Any]) -> str:
    v = score.get("log_loss")
    return "-" if v is None else f"{v:.4f}"


def _acc(score: dict[str, Any]) -> str:
    v = score.get("accuracy")
    return "-" if v is None else f"{100 * v:.2f}%"


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def print_table(rows: Sequence[Row], repeat: int) -> None:
    print()
    print(f"machine: {machine()}")
    print(
        f"best of {repeat} run(s) each; ratio = quorum as shipped (prefetch: input parsed in a "
        "child process) / baseline, 1-proc = quorum all in one process / baseline (like for "
        "like); a coin scores log-loss 0.6931, accuracy 50%"
    )
    head = (
        "dataset",
        "events",
        "quorum ev/s",
        "baseline ev/s",
        "ratio q/b",
        "q 1-proc ev/s",
        "ratio 1-proc",
        "quorum acc",
        "baseline acc",
        "quorum ll",
        "baseline ll",
        "q scored",
        "b scored",
    )
    body = []
    for r in rows:
        q, b = r.quorum, r.baseline
        ratio = q.events_per_s / b.events_per_s if b.events_per_s else float("nan")
        q1 = r.quorum_one_process
        ratio1 = q1.events_per_s / b.events_per_s if b.events_per_s else float("nan")
        body.append(
            (
                r.dataset,
                f"{q.events:,}",
                f"{q.events_per_s:,.0f}",
                f"{b.events_per_s or 0:,.0f}",
                f"{ratio:.2f}",
                f"{q1.events_per_s:,.0f}",
                f"{ratio1:.2f}",
                _acc(q.ensemble),
                _acc(b.score),
                _ll(q.ensemble),
                _ll(b.score),
                f"{q.ensemble.get('n_scored', 0):,}",
                f"{b.score.get('n_scored', 0):,}",
            )
        )
    widths = [max(len(h), *(len(x[i]) for x in body)) for i, h in enumerate(head)]
    print(
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    )
    for line in body:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    print()
    print("ratios per run (same run, side by side: quorum / baseline, one-process / baseline)")
    for r in rows:
        per_run = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in r.run_ratios) or "-"
        print(f"  {r.dataset}: {per_run}")
    print()
    print("quorum resident memory (MB): start, at 10% / 50% / 100% of events; peak growth")
    for r in rows:
        q = r.quorum
        pts = "  ".join(
            f"{int(f * 100)}% ({n:,} ev) {_mb(kb)}"
            for f in (0.1, 0.5, 1.0)
            for n, kb in [q.rss_at(f)]
        )
        growth = max(0, q.max_rss_after_kb - q.max_rss_before_kb)
        print(
            f"  {r.dataset}: start {_mb(q.rss_start_kb)}  {pts}  "
            f"ru_maxrss +{_mb(growth)} (peak {_mb(q.max_rss_after_kb)})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bench_backtest",
        description="quorum vs the River baseline: events/s, log-loss, memory.",
    )
    ap.add_argument("--sample", action="store_true", help="the four Binance sample files")
    ap.add_argument("--synthetic", type=int, metavar="N", help="N synthetic events (load only)")
    ap.add_argument("--symbols", type=int, default=20, help="symbols in the synthetic stream")
    ap.add_argument("--repeat", type=int, default=1, help="runs per dataset; the best is kept")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.synthetic is not None and args.synthetic < 1:
        ap.error("--synthetic needs N >= 1")
    both = not args.sample and args.synthetic is None
    datasets: list[tuple[str, list[Path]]] = []
    if args.sample or both:
        if not SAMPLE:
            ap.error(f"no sample files under {ROOT / 'data/binance/spot'}")
        datasets.append(("binance sample", SAMPLE))
    if args.synthetic is not None or both:
        n = args.synthetic if args.synthetic is not None else 1_000_000
        datasets.append((f"synthetic {n:,} x{args.symbols}", [synthetic_path(n, args.symbols)]))
    rows = [bench(name, paths, args.repeat) for name, paths in datasets]
    print_table(rows, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
