"""The regression golden of the fixture run: what `make golden` rewrites and a test compares.

The golden holds the sha256 of ``signals.jsonl`` and the report's scores (ensemble, every stage,
the hit rate and the action counts) of the default config on ``tests/fixtures`` (all HOLD) and on
the whole bundled sample ``data/binance/spot`` (BUY and SELL too). Any change to a signal changes
it, so rewriting it is a deliberate act that shows up in review:

    make golden        # = python -m tests.goldens --write; prints old and new scores side by side
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from quorum import run_backtest
from tests.conftest import FIXTURES, SAMPLE_FILES

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = FIXTURES / "golden.json"
SCORES = ("n_scored", "accuracy", "log_loss", "brier")
RUNS: dict[str, list[Path]] = {
    "fixtures": list(SAMPLE_FILES),
    "sample": sorted((ROOT / "data" / "binance" / "spot").glob("*.gz")),
}


def compute(run: str) -> dict[str, Any]:
    """Run the default config on one golden input set and summarise what the golden pins."""
    files = RUNS[run]
    with tempfile.TemporaryDirectory() as tmp:
        result = run_backtest(files, out_dir=tmp, keep_signals=False)
        digest = hashlib.sha256((Path(tmp) / "signals.jsonl").read_bytes()).hexdigest()
    return summarise(result.report, digest, files)


def summarise(report: dict[str, Any], digest: str, files: list[Path]) -> dict[str, Any]:
    sig = report["signals"]
    return {
        "inputs": [p.name for p in files],
        "config_hash": report["config_hash"],
        "events": report["events"],
        "rejected": report["rejected"],
        "signals_sha256": digest,
        "signals": {k: sig[k] for k in ("total", "BUY", "SELL", "HOLD")},
        "hit_rate": sig["hit_rate"],
        "n_hits_scored": sig["n_hits_scored"],
        "ensemble": {k: report["ensemble"][k] for k in SCORES},
        "stages": {
            name: {k: block[k] for k in SCORES} for name, block in sorted(report["stages"].items())
        },
    }


def load() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = orjson.loads(GOLDEN.read_bytes())
    return data


def _rows(g: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "config_hash": g["config_hash"],
        "signals_sha256": g["signals_sha256"][:16],
        "events": g["events"],
        "rejected": g["rejected"],
        **{f"signals.{k}": v for k, v in g["signals"].items()},
        "hit_rate": g["hit_rate"],
        "n_hits_scored": g["n_hits_scored"],
    }
    for who, block in [("ensemble", g["ensemble"]), *sorted(g["stages"].items())]:
        for k, v in block.items():
            rows[f"{who}.{k}"] = v
    return rows


def side_by_side(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Old and new values in two columns, changed rows marked with '*'."""
    a = _rows(old) if old is not None else {}
    b = _rows(new)
    lines = [f"  {'':28} {'old':>20} {'new':>20}"]
    for key in dict.fromkeys([*a, *b]):
        va, vb = a.get(key, "-"), b.get(key, "-")
        mark = " " if va == vb else "*"
        fa = f"{va:.6f}" if isinstance(va, float) else str(va)
        fb = f"{vb:.6f}" if isinstance(vb, float) else str(vb)
        lines.append(f"{mark} {key:28} {fa:>20} {fb:>20}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the golden file")
    args = parser.parse_args(argv)
    old = load() if GOLDEN.exists() else {}
    new = {run: compute(run) for run in RUNS}
    for run in RUNS:
        print(f"== {run}: {' '.join(new[run]['inputs'])}")
        print(side_by_side(old.get(run), new[run]))
    if old == new:
        print(f"\n{GOLDEN.name}: unchanged")
        return 0
    if args.write:
        GOLDEN.write_bytes(orjson.dumps(new, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"\n{GOLDEN} rewritten: commit it with a message that says why the signals changed")
        return 0
    print(f"\n{GOLDEN.name} differs; rerun with --write (make golden) if the change is intended")
    return 1


if __name__ == "__main__":
    sys.exit(main())
