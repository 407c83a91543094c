"""Where the one-process backtest's time goes, and the best ratio to the baseline it could reach.

    python -m bench.bench_bound                  # the Binance sample, 3 alternating repeats
    python -m bench.bench_bound --repeat 5 FILES...

Per repeat, in one process, side by side:

- ``read``: :func:`read_ticks` alone (the baseline pays it too: same reader);
- ``river``: the exact ``learn_one`` / ``predict_proba_one`` calls quorum's kernel made on this
  input, in the same order, replayed on fresh models: the models' own cost, nothing else;
- ``kernel``: :meth:`Pipeline.process` over the ticks already read;
- ``backtest``: ``run_backtest(prefetch=False)`` end to end (reader, kernel, scoring, files);
- ``baseline``: :func:`quorum.baseline.run_baseline` end to end.

``bound = baseline / (read + river)`` is the ratio a backtest would reach if everything but
reading and the River models cost nothing: a kernel cannot beat it without cheaper models or a
cheaper reader (which helps the baseline too).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.pipeline import Pipeline
from agents.stage import StageState
from bench.bench_backtest import SAMPLE, machine
from config.settings import load_config
from models.records import Tick
from quorum import run_backtest
from quorum.baseline import run_baseline
from streams.readers import ReaderStats, read_ticks

Call = tuple[int, bool, dict[str, float], bool]  # (model index, learn?, x, y)


class _Recorder:
    """Stands in for a stage's River model: forwards every call and logs it for the replay."""

    def __init__(self, model: Any, index: int, log: list[Call]) -> None:
        self.model, self.index, self.log = model, index, log

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.log.append((self.index, True, x, y))
        self.model.learn_one(x, y)

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        self.log.append((self.index, False, x, False))
        proba: dict[bool, float] = self.model.predict_proba_one(x)
        return proba


def record_calls(ticks: Sequence[Tick]) -> tuple[list[Call], list[Callable[[], StageState]]]:
    """Run the kernel with every stage model wrapped: the calls it made, and for each model
    the stage's own factory of a fresh state (to build an untrained twin for the replay)."""
    cfg = load_config(None)
    pipeline = Pipeline(cfg)
    log: list[Call] = []
    makers: list[Callable[[], StageState]] = []
    for stage in pipeline.stages:
        make = stage.new_state

        def wrapped(make: Callable[[], StageState] = make) -> StageState:
            st = make()
            st.model = _Recorder(st.model, len(makers), log)
            makers.append(make)
            return st

        stage.new_state = wrapped  # type: ignore[method-assign]
    for tick in ticks:
        pipeline.process(tick)
    return log, makers


def replay_river(log: Sequence[Call], makers: Sequence[Callable[[], StageState]]) -> float:
    """Seconds the recorded calls take on fresh copies of the same models (no kernel around)."""
    by_index = [make().model for make in makers]
    learn = [m.learn_one for m in by_index]
    predict = [m.predict_proba_one for m in by_index]
    gc.collect()
    t0 = time.perf_counter()
    for i, is_learn, x, y in log:
        if is_learn:
            learn[i](x, y)
        else:
            predict[i](x)
    return time.perf_counter() - t0


def _timed_read(paths: Sequence[Path]) -> tuple[float, list[Tick]]:
    gc.collect()
    t0 = time.perf_counter()
    ticks = list(read_ticks(paths, stats=ReaderStats()))
    return time.perf_counter() - t0, ticks


def _timed_kernel(ticks: Sequence[Tick]) -> float:
    pipeline = Pipeline(load_config(None))
    gc.collect()
    t0 = time.perf_counter()
    for tick in ticks:
        pipeline.process(tick)
    return time.perf_counter() - t0


def _timed_backtest(paths: Sequence[Path]) -> float:
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="quorum-bound-") as tmp:
        t0 = time.perf_counter()
        run_backtest(paths, keep_signals=False, out_dir=tmp, prefetch=False)
        return time.perf_counter() - t0


def _timed_baseline(paths: Sequence[Path]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    run_baseline(paths)
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_bound", description=__doc__)
    ap.add_argument("files", nargs="*", type=Path, help="inputs (default: the Binance sample)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating repeats; medians shown")
    args = ap.parse_args(argv)
    paths = list(args.files) or SAMPLE
    _timed_baseline(paths[:1])  # import River and warm the file cache before timing
    rows: dict[str, list[float]] = {
        k: [] for k in ("read", "river", "kernel", "backtest", "baseline")
    }
    events = 0
    calls = 0
    for i in range(args.repeat):
        read_s, ticks = _timed_read(paths)
        events = len(ticks)
        log, makers = record_calls(ticks)
        calls = len(log)
        rows["read"].append(read_s)
        rows["river"].append(replay_river(log, makers))
        del log, makers
        rows["kernel"].append(_timed_kernel(ticks))
        rows["backtest"].append(_timed_backtest(paths))
        rows["baseline"].append(_timed_baseline(paths))
        r = {k: v[-1] for k, v in rows.items()}
        print(
            f"run {i + 1}/{args.repeat}: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in r.items())
            + f"; ratio {r['baseline'] / r['backtest']:.2f}, bound "
            f"{r['baseline'] / (r['read'] + r['river']):.2f}",
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in rows.items()}
    print()
    print(f"machine: {machine()}")
    print(f"input: {len(paths)} file(s), {events:,} events; {calls:,} River calls")
    print(f"medians of {args.repeat} alternating repeats (seconds):")
    for k, v in med.items():
        print(f"  {k:9s} {v:6.2f}")
    print(f"  kernel beyond River        {med['kernel'] - med['river']:6.2f}")
    print(f"  backtest beyond read+kernel {med['backtest'] - med['read'] - med['kernel']:5.2f}")
    ratios = [b / q for b, q in zip(rows["baseline"], rows["backtest"], strict=True)]
    bounds = [
        b / (r + m) for b, r, m in zip(rows["baseline"], rows["read"], rows["river"], strict=True)
    ]
    print(
        f"ratio backtest/baseline (events/s): median {statistics.median(ratios):.2f} "
        f"(runs {', '.join(f'{x:.2f}' for x in ratios)})"
    )
    print(
        f"bound baseline/(read+river): median {statistics.median(bounds):.2f} "
        f"(runs {', '.join(f'{x:.2f}' for x in bounds)}): the ratio if the kernel, scoring "
        "and output cost nothing"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
