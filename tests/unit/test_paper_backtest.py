"""`quorum backtest --paper`: the paper trader driven by the embedded backtest, end to end."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from config.paper import PaperConfig
from quorum import run_backtest
from tests.conftest import SAMPLE_FILES

FILE = SAMPLE_FILES[:1]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("paper")
    rep = run_backtest(FILE, out_dir=out, prefetch=False, paper=PaperConfig()).report
    return out, rep


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_the_signals_do_not_change_when_they_are_paper_traded(
    paper_run: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = paper_run
    run_backtest(FILE, out_dir=tmp_path, prefetch=False)
    assert (out / "signals.jsonl").read_bytes() == (tmp_path / "signals.jsonl").read_bytes()
    assert not (tmp_path / "fills.jsonl").exists()
    # the audit log is deterministic too: same input and config, same bytes (and head)
    assert (out / "audit.jsonl").read_bytes() == (tmp_path / "audit.jsonl").read_bytes()


def test_every_fill_traces_to_an_order_and_a_signal_and_comes_after_the_latency(
    paper_run: tuple[Path, dict],
) -> None:
    out, rep = paper_run
    signals = {s["id"]: s for s in _lines(out / "signals.jsonl")}
    events = _lines(out / "orders.jsonl")
    orders = {o["id"]: o for o in events if o["type"] == "order"}
    fills = _lines(out / "fills.jsonl")
    assert fills and len({f["id"] for f in fills}) == len(fills)
    latency_ns = int(PaperConfig().latency_ms * 1e6)
    for f in fills:
        o = orders[f["order_id"]]
        assert f["signal_id"] == o["signal_id"] and f["side"] == o["side"]
        assert f["ts"] >= o["arrival_ts"] == o["ts"] + latency_ns
        if o["reason"] == "entry":
            s = signals[o["signal_id"]]
            assert o["ts"] == s["ts"]
            assert o["side"] == ("buy" if s["action"] == "BUY" else "sell")
        # the venue's taker fee on the fill's notional (market orders take)
        assert f["fee"] == pytest.approx(f["price"] * f["size"] * 10e-4)
    assert rep["paper"]["n_fills"] == len(fills)
    assert rep["paper"]["fees"] == pytest.approx(sum(f["fee"] for f in fills))


def test_the_report_reconciles_with_the_fills(paper_run: tuple[Path, dict]) -> None:
    out, rep = paper_run
    p = rep["paper"]
    fills = _lines(out / "fills.jsonl")
    # cash flow of the fills: buys pay price x size, sells receive it, every fill pays its fee
    cash = p["starting_cash"] + sum(
        (-1 if f["side"] == "buy" else 1) * f["price"] * f["size"] - f["fee"] for f in fills
    )
    flat = not p["positions"]
    if flat:  # no position left: equity is the cash
        assert p["equity"] == pytest.approx(cash, abs=1e-6)
    assert p["net_pnl"] == pytest.approx(p["equity"] - p["starting_cash"])
    assert p["gross_pnl"] == pytest.approx(p["net_pnl"] + p["fees"])
    assert p["turnover"] == pytest.approx(sum(f["price"] * f["size"] for f in fills))
    eq = _lines(out / "equity.jsonl")
    assert eq[0]["equity"] == p["starting_cash"]
    seconds = [e["ts"] // 1_000_000_000 for e in eq]  # one sample per second of event time
    assert seconds == sorted(set(seconds))
    assert p["signal_to_fill_ms"] >= PaperConfig().latency_ms


def test_a_paper_run_is_deterministic(paper_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = paper_run
    run_backtest(FILE, out_dir=tmp_path, prefetch=False, paper=PaperConfig())
    for name in ("orders.jsonl", "fills.jsonl", "equity.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_the_cli_runs_paper_from_a_config_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from quorum.cli import app

    cfg = tmp_path / "paper.yaml"
    cfg.write_text("paper:\n  notional_per_signal: 500.0\n  latency_ms: 250\n", encoding="utf-8")
    res = CliRunner().invoke(
        app, ["backtest", str(FILE[0]), "--out", str(tmp_path / "o"), "--paper-config", str(cfg)]
    )
    assert res.exit_code == 0, res.output
    assert "paper account" in res.output
    rep = orjson.loads((tmp_path / "o" / "report.json").read_bytes())
    assert rep["paper"]["signal_to_fill_ms"] >= 250.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("paper:\n  latency_ms: -1\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["backtest", str(FILE[0]), "--paper-config", str(bad)])
    assert res.exit_code != 0 and "bad.yaml" in res.output


def test_report_html_shows_the_equity_and_drawdown_only_for_paper_runs(
    paper_run: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = paper_run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Paper account</h2>" in page
    assert "paper equity" in page and "paper drawdown below the high-water mark" in page
    run_backtest(FILE, out_dir=tmp_path, prefetch=False)
    assert "Paper account" not in (tmp_path / "report.html").read_text(encoding="utf-8")
