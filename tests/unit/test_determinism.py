"""Same input + config => byte-identical signals; the API and the files agree."""

from __future__ import annotations

from pathlib import Path

import orjson

from quorum import run_backtest
from streams.codecs import decode_signal, encode_signal
from tests.conftest import SAMPLE_FILES


def test_two_runs_write_identical_signal_files(tmp_path: Path) -> None:
    a = run_backtest(SAMPLE_FILES, out_dir=tmp_path / "a")
    b = run_backtest(SAMPLE_FILES, out_dir=tmp_path / "b", keep_signals=False)
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
    a = run_backtest(SAMPLE_FILES, end_ns=1_723_161_300_000_000_000)
    b = run_backtest(SAMPLE_FILES, end_ns=1_723_161_300_000_000_000, horizon_s=2.0)
    assert a.signals and len(a.signals) == len(b.signals)
    assert {s.id for s in a.signals}.isdisjoint({s.id for s in b.signals})
