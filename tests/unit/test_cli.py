"""The quorum command line: the backtest's files, summary and errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from quorum.cli import app
from tests.conftest import SAMPLE_FILES

runner = CliRunner()


def test_backtest_writes_outputs_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "backtest",
            *map(str, SAMPLE_FILES),
            "--out",
            str(out),
            "--symbols",
            "btcusdt",
            "--end",
            "2024-08-08T23:56:00Z",
            "--horizon",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("signals.jsonl", "report.json", "report.html", "rejects.jsonl"):
        assert (out / name).exists()
    assert "ensemble" in result.output and "fair coin" in result.output
    assert "ETHUSDT" not in (out / "signals.jsonl").read_text()
    assert '"horizon_s": 3.0' in (out / "report.json").read_text()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", str(tmp_path / "nope.gz"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope.gz" in result.output


def test_bad_time_and_bad_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["backtest", str(SAMPLE_FILES[0]), "--start", "yesterday"])
    assert result.exit_code != 0 and "--start" in result.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stages: []\nbogus: 1\n")
    result = runner.invoke(app, ["backtest", str(SAMPLE_FILES[0]), "--config", str(cfg)])
    assert result.exit_code == 2 and "bogus" in result.output
