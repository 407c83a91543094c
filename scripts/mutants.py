"""Inject real bugs one at a time and check that ``tests/unit`` catches each (``make mutants``).

Each mutant is one textual edit of the source, applied to a scratch copy of the repository
(the working tree is never touched). The suite must fail on every mutant; the report names
the tests that caught it. A mutant whose edit no longer applies is an error: update it with
the code it targets.

    python scripts/mutants.py              # all mutants
    python scripts/mutants.py -k label     # those whose name contains "label"
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str


_PEEK = """        n = 0
        ticks = list(ticks)  # MUTANT: each trade's stages first see the next tick of its symbol
        after: dict[int, Any] = {}
        last: dict[str, int] = {}
        for i, t in enumerate(ticks):
            if t.symbol in last:
                after[last[t.symbol]] = t
            last[t.symbol] = i
        for i, tick in enumerate(ticks):
            if i in after and isinstance(tick, Trade):
                for stage in pipeline.stages:
                    st = stage.state(tick.symbol)
                    st.extractor.update(after[i], pipeline.labels(tick.symbol).ref.value)
"""

MUTANTS = [
    Mutant(
        "stage sees the next tick of its symbol before it predicts (one-tick lookahead)",
        "quorum/backtest.py",
        "        n = 0\n        for tick in ticks:\n",
        _PEEK,
    ),
    Mutant(
        "label from the first tick after the deadline, not the last one at or before it",
        "agents/stage.py",
        "        queue = labeler.pending\n",
        "        labeler.ref.update(tick)\n        queue = labeler.pending\n",
    ),
    Mutant(
        "fused kernel: label from the first tick after the deadline, not the last at or before",
        "agents/pipeline.py",
        "        queue = labels.pending\n",
        "        labels.ref.update(tick)\n        queue = labels.pending\n",
    ),
    Mutant(
        "voter ignores its learned weights (a plain mean)",
        "models/ensemble.py",
        "            total += w\n            acc += w * p\n",
        "            total += 1.0\n            acc += p\n",
    ),
    Mutant(
        "stack ignores its learned weights (equal weights in log-odds)",
        "models/ensemble.py",
        "                z += w * logit(p)\n",
        "                z += logit(p) / len(self.weights)\n",
    ),
    Mutant(
        "stack steps not scaled by the outcomes within a horizon",
        "models/ensemble.py",
        "        share = 1.0 / m  # each outcome is 1/m of an independent observation\n",
        "        share = 1.0\n",
    ),
    Mutant(
        "calibration silently bypassed",
        "agents/stage.py",
        "p_up = st.calibrator.predict_one(raw) if st.calibrator is not None else raw",
        "p_up = raw",
    ),
    Mutant(
        "feature loses its sign (ewma_1s_5s)",
        "agents/features.py",
        "out[name] = (e1 - e5) / ref * 1e4",
        "out[name] = (e5 - e1) / ref * 1e4",
    ),
    Mutant(
        "feature loses its sign (imbalance)",
        "agents/features.py",
        "out[name] = (self.bid_size - self.ask_size) / depth",
        "out[name] = (self.ask_size - self.bid_size) / depth",
    ),
    Mutant(
        "feature reads the wrong horizon (ret_5s from the 30 s history)",
        "agents/features.py",
        'if name == "ret_5s":\n                out[name] = self._ret(1)',
        'if name == "ret_5s":\n                out[name] = self._ret(2)',
    ),
    Mutant(
        "feature reads the wrong horizon (flow_2s from the 10 s sums)",
        "agents/features.py",
        "out[name] = self._flow(self.buy_2s, self.sell_2s)",
        "out[name] = self._flow(self.buy_10s, self.sell_10s)",
    ),
    Mutant(
        "infinite prices accepted",
        "streams/validation.py",
        "if not PRICE_MIN <= tick.price <= PRICE_MAX:",
        "if not PRICE_MIN <= tick.price:",
    ),
    Mutant(
        "infinite sizes accepted",
        "streams/validation.py",
        "if not 0.0 < tick.size <= SIZE_MAX:",
        "if not 0.0 < tick.size:",
    ),
    Mutant(
        "negative or NaN quote sizes accepted",
        "streams/validation.py",
        "if not 0.0 <= tick.bid_size <= SIZE_MAX:",
        "if tick.bid_size > SIZE_MAX:",
    ),
    Mutant(
        "locked quotes accepted",
        "streams/validation.py",
        "if tick.bid >= tick.ask:",
        "if tick.bid > tick.ask:",
    ),
    Mutant(
        "voter's pending map grows without bound",
        "agents/voting.py",
        "if len(st.pending) > self.cfg.max_pending:",
        "if False:",
    ),
    Mutant(
        "iterating a set of stage names while summing",
        "models/ensemble.py",
        "        for name, w in self.weights.items():\n",
        "        for name, w in [(n, self.weights[n]) for n in set(self.weights)]:\n",
    ),
    Mutant(
        "report.html draws BUY markers at the SELL points",
        "quorum/report_html.py",
        '_Series("BUY", _BUY_COLOR, buy, kind="up"),\n'
        '                    _Series("SELL", _SELL_COLOR, sell, kind="down"),',
        '_Series("BUY", _BUY_COLOR, sell, kind="up"),\n'
        '                    _Series("SELL", _SELL_COLOR, buy, kind="down"),',
    ),
    Mutant(
        "report.html price axis upside down",
        "quorum/report_html.py",
        "return py0 - (v - y0) / (y1 - y0) * (py0 - py1)",
        "return py1 + (v - y0) / (y1 - y0) * (py0 - py1)",
    ),
]


def _scratch_copy(dst: Path) -> None:
    """The tracked and untracked (not ignored) files of the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (p.decode() for p in listed)):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def run(mutant: Mutant | None, python: str) -> tuple[bool, list[str], float]:
    """Apply ``mutant`` (None: none) in a scratch copy; return (failed, failing tests, seconds).

    Python imports the copy's packages: the current directory comes first on ``sys.path``.
    """
    with tempfile.TemporaryDirectory(prefix="quorum-mutant-") as tmp:
        work = Path(tmp)
        _scratch_copy(work)
        if mutant is not None:
            target = work / mutant.path
            text = target.read_text()
            if text.count(mutant.old) != 1:
                raise SystemExit(f"{mutant.name}: the edit no longer applies to {mutant.path}")
            target.write_text(text.replace(mutant.old, mutant.new))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [python, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider", "-rf"],
            cwd=work,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - t0
        failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)))
        return proc.returncode != 0, failed, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    args = parser.parse_args(argv)
    python = str(ROOT / ".venv" / "bin" / "python")
    broken, failed, secs = run(None, python)
    if broken:
        print(f"the unmutated suite fails ({secs:.0f} s): {failed}; fix that first")
        return 2
    print(f"unmutated suite passes ({secs:.0f} s)")
    survived = 0
    for m in MUTANTS:
        if args.k not in m.name:
            continue
        caught, failed, secs = run(m, python)
        survived += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {m.name}  ({secs:.0f} s)")
        for test in failed:
            print(f"           {test}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
