"""Same input + config => byte-identical signals; the API and the files agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from quorum import run_backtest
from streams.codecs import decode_signal, encode_signal
from tests.conftest import SAMPLE_FILES

#: The first 45 s of the fixture (1,603 signals): enough to mix symbols, warm-ups and outcomes,
#: at a third of the full fixture's cost (these tests run several backtests each).
END = 1_723_161_300_000_000_000


def test_two_runs_write_identical_signal_files(tmp_path: Path) -> None:
    a = run_backtest(SAMPLE_FILES, out_dir=tmp_path / "a", end_ns=END)
    # the second run in one process: as shipped (prefetch child) and in-process agree too
    b = run_backtest(
        SAMPLE_FILES, out_dir=tmp_path / "b", keep_signals=False, prefetch=False, end_ns=END
    )
    sa = (tmp_path / "a" / "signals.jsonl").read_bytes()
    assert sa == (tmp_path / "b" / "signals.jsonl").read_bytes()
    lines = sa.splitlines()
    assert len(lines) == len(a.signals) == a.report["trades"] > 1000
    assert [encode_signal(s) for s in a.signals] == lines
    assert decode_signal(lines[-1]) == a.signals[-1]
    assert len({s.id for s in a.signals}) == len(a.signals)
    assert b.signals == []
    report = orjson.loads((tmp_path / "a" / "report.json").read_bytes())
    for key in ("events", "trades", "quotes", "rejected", "elapsed_s", "events_per_s"):
        assert key in report
    for block in [report["ensemble"], *report["stages"].values()]:
        assert {"n_scored", "accuracy", "log_loss", "brier"} <= set(block)
    assert report["ensemble"]["n_scored"] > 1000
    assert set(report["signals"]) >= {"BUY", "SELL", "HOLD", "hit_rate"}
    assert (tmp_path / "a" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "a" / "rejects.jsonl").read_bytes() == b""


def test_signal_ids_depend_on_config(tmp_path: Path) -> None:
    a = run_backtest(SAMPLE_FILES, end_ns=END, prefetch=False)
    b = run_backtest(SAMPLE_FILES, end_ns=END, horizon_s=2.0, prefetch=False)
    assert a.signals and len(a.signals) == len(b.signals)
    assert {s.id for s in a.signals}.isdisjoint({s.id for s in b.signals})


@pytest.mark.timeout(120)
def test_separate_processes_with_different_hash_seeds_agree(tmp_path: Path) -> None:
    """Iterating a set or a dict keyed by str while summing would differ between these runs.

    Each backtest runs in its own interpreter with its own ``PYTHONHASHSEED`` (string hashes,
    hence set order, differ), through the CLI a user runs.
    """
    procs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        cmd = [sys.executable, "-m", "quorum.cli", "backtest", *map(str, SAMPLE_FILES)]
        cmd += ["--end", str(END), "--out", str(tmp_path / seed)]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    for proc in procs:
        out, _ = proc.communicate(timeout=100)
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    a, b = (tmp_path / "1", tmp_path / "2")
    signals = (a / "signals.jsonl").read_bytes()
    assert len(signals.splitlines()) > 1000
    assert signals == (b / "signals.jsonl").read_bytes()
    ra = orjson.loads((a / "report.json").read_bytes())
    rb = orjson.loads((b / "report.json").read_bytes())
    for key in ("ensemble", "stages", "signals", "labels", "per_symbol", "config_hash"):
        assert ra[key] == rb[key], key
