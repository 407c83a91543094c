"""The backtest's events/s of this checkout against an earlier revision, alternating, same data.

    python -m bench.bench_revisions 76c0c77               # the Binance sample, 3 pairs
    python -m bench.bench_revisions 76c0c77 --repeat 5 FILES...

The earlier revision is checked out into a temporary git worktree and run with this checkout's
virtualenv; each run is a fresh process (`run_backtest(prefetch=False, keep_signals=False)`),
old then new, ``--repeat`` times. Compare the paired ratios, not the absolute rates: the machine
is shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.bench_backtest import ROOT, SAMPLE, machine

_RUN = """
import json, sys, tempfile
from quorum import run_backtest
with tempfile.TemporaryDirectory() as d:
    r = run_backtest(sys.argv[1:], out_dir=d, keep_signals=False, prefetch=False).report
print(json.dumps({"events_per_s": r["events_per_s"], "log_loss": r["ensemble"]["log_loss"]}))
"""


def run_once(tree: Path, files: Sequence[Path]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _RUN, *map(str, files)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_revisions", description=__doc__)
    ap.add_argument("revision", help="the earlier git revision to compare against")
    ap.add_argument("files", nargs="*", type=Path, help="inputs (default: the Binance sample)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    files = [f.resolve() for f in args.files] or SAMPLE
    with tempfile.TemporaryDirectory(prefix="quorum-rev-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.revision],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            ratios = []
            for i in range(args.repeat):
                a = run_once(old, files)
                b = run_once(ROOT, files)
                ratios.append(b["events_per_s"] / a["events_per_s"])
                print(
                    f"pair {i + 1}: {args.revision} {a['events_per_s']:,.0f} ev/s "
                    f"(log-loss {a['log_loss']:.4f}), this checkout {b['events_per_s']:,.0f} "
                    f"(log-loss {b['log_loss']:.4f}): ratio {ratios[-1]:.2f}",
                    flush=True,
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
            )
    print(f"machine: {machine()}")
    print(
        f"this checkout / {args.revision}, events/s: median {statistics.median(ratios):.2f} "
        f"(pairs {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
