"""The streaming commands' argument handling and rendering, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from models.records import Action, Signal, StageVote
from quorum.cli import _signal_row, _speed, app

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "speed"), [("max", None), ("MAX", None), ("1", 1.0), ("10x", 10.0)]
)
def test_speed_values(text: str, speed: float | None) -> None:
    assert _speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-2", "fast", "inf", "nan"])
def test_bad_speeds(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="a number > 0"):
        _speed(text)


def test_replay_of_a_missing_file_fails_before_kafka(tmp_path: Path) -> None:
    # an address where nothing listens: the file error must come first, not a Kafka one
    env = {"QUORUM_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    result = runner.invoke(app, ["replay", str(tmp_path / "nope.gz")], env=env)
    assert result.exit_code == 2
    assert "nope.gz" in result.output


def test_bad_options(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", "x.gz", "--speed", "warp"])
    assert result.exit_code != 0 and "--speed" in result.output
    result = runner.invoke(app, ["signals", "--timeout", "0"])
    assert result.exit_code != 0 and "--timeout" in result.output
    result = runner.invoke(app, ["signals"], env={"QUORUM_WEB_PORT": "many"})
    assert result.exit_code == 2 and "QUORUM_WEB_PORT" in result.output
    result = runner.invoke(app, ["services", "status", "--only", "zookeeper"])
    assert result.exit_code != 0 and "--only" in result.output


def test_signal_table_row() -> None:
    sig = Signal(
        "0" * 32,
        "BTCUSDT",
        7,
        1_723_161_255_342_000_000,
        5_000_000_000,
        Action.SELL,
        0.4123,
        True,
        (
            StageVote("microstructure", "m:1", 3, 0.38, 0.71),
            StageVote("momentum", "x:1", 1, None, 0.29),
        ),
        ("momentum",),
        "h",
    )
    table, width = _signal_row(sig, ["microstructure", "momentum", "volatility"], header=True)
    console = Console(record=True, width=width, color_system=None)
    console.print(table)
    text = console.export_text()
    header, row = text.splitlines()[:2]
    assert header.split() == [
        "time",
        "(UTC)",
        "symbol",
        "action",
        "p_up",
        "microstructure",
        "momentum",
        "volatility",
    ]
    assert row.split() == [
        "2024-08-08",
        "23:54:15.342",
        "BTCUSDT",
        "SELL",
        "0.412",
        "0.380",
        "w0.71",
        "-",
        "w0.29",
        "absent",
    ]
