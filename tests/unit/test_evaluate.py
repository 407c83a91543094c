"""quorum evaluate and the backtest options it needs: on_scored, trades_only, weight stability."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from agents.voting import Scored
from config.settings import load_config
from models.records import Quote, Tick, Trade
from quorum.backtest import StripStats, WeightStability, run_backtest, strip_to_trades
from quorum.cli import app
from quorum.evaluate import Dataset, evaluate, parse_dataset, render
from quorum.stats import effective_n, hac_se
from tests.conftest import FIXTURES, SAMPLE_FILES

S = 1_000_000_000
T0 = 1_723_075_200 * S  # a minute boundary (2024-08-08 00:00:00 UTC)
ROWS = ("ensemble", *(s.name for s in load_config().stages), "tick-sign", "River baseline", "coin")


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    # one fixture file, a 2 s horizon: quick, and still hundreds of outcomes
    return evaluate([Dataset("btc", (FIXTURES / "btcusdt_head.gz",))], horizon_s=2.0)


@pytest.fixture(scope="module")
def stripped() -> dict[str, Any]:
    return evaluate(
        [Dataset("btc", (FIXTURES / "btcusdt_head.gz",))], horizon_s=2.0, trades_only=True
    )


def test_every_row_is_scored_and_the_coin_is_ln2(result: dict[str, Any]) -> None:
    (ds,) = result["datasets"]
    assert tuple(ds["models"]) == ROWS
    for name, s in ds["models"].items():
        assert s["n"] > 100, name
        assert set(s) == {"n", "log_loss", "accuracy", "brier", "ece"}
    coin = ds["models"]["coin"]
    assert coin["log_loss"] == pytest.approx(math.log(2.0))
    assert coin["brier"] == pytest.approx(0.25) and coin["accuracy"] == pytest.approx(0.5)
    assert coin["n"] == ds["models"]["ensemble"]["n"]
    labels = [d["label"] for d in ds["differences"]]
    assert labels[0] == f"ensemble − best member ({ds['best_member']})"
    assert labels[1:] == ["ensemble − River baseline", "ensemble − tick-sign", "ensemble − coin"]
    stage_ll = {n: ds["models"][n]["log_loss"] for n in ROWS[1:4]}
    assert ds["best_member"] == min(stage_ll, key=lambda n: stage_ll[n])


def test_differences_are_on_matched_outcomes(result: dict[str, Any]) -> None:
    (ds,) = result["datasets"]
    ens = ds["models"]["ensemble"]
    for d in ds["differences"]:
        assert d["label_mismatch"] == 0  # same (symbol, seq) -> the same label everywhere
        assert 0 < d["n"] <= ens["n"]
        assert d["n"] + d["only_a"] == ens["n"]
        assert d["hac_se"] > 0 and 1 <= d["n_eff"] <= d["n"]
        assert d["lag"] > 1  # overlapping 2-s horizons: many outcomes resolve together
    coin = ds["differences"][-1]
    assert coin["n"] == ens["n"]  # the coin is scored on exactly the ensemble's outcomes
    # mean(ll_ens - ln 2) = ll_ens - ln 2
    assert coin["mean"] == pytest.approx(ens["log_loss"] - math.log(2.0))
    # the baselines score (almost) the same trigger ticks: at most the last horizon's differ
    river = ds["differences"][1]
    assert river["n"] >= 0.95 * ens["n"]


def test_json_keys(result: dict[str, Any]) -> None:
    blob = orjson.loads(orjson.dumps(result))
    assert set(blob) == {"config_name", "config_hash", "ece_bins", "datasets"}
    (ds,) = blob["datasets"]
    assert {"name", "inputs", "trades_only", "horizon_s", "models", "differences",
            "weights_stability", "best_member", "elapsed_s"} <= set(ds)  # fmt: skip
    assert set(ds["differences"][0]) >= {"label", "n", "mean", "hac_se", "lag", "n_eff", "z"}
    assert set(ds["weights_stability"]) == {"window_s", "median", "minutes", "per_symbol"}
    assert "stripped" not in ds


def test_render_prints_every_row(result: dict[str, Any]) -> None:
    buf = io.StringIO()
    render(result, Console(file=buf, width=160))
    text = buf.getvalue()
    for row in (*ROWS, "ensemble − coin", "HAC SE", "n_eff", "weights' stability"):
        assert row in text, row
    assert "0.6931" in text


def test_trades_only_strips_quotes_and_sides(stripped: dict[str, Any]) -> None:
    (ds,) = stripped["datasets"]
    assert ds["trades_only"] is True
    s = ds["stripped"]
    assert s == ds["stripped_baselines"]  # the baselines saw the same stripped ticks
    assert s["quotes_dropped"] == 8637 and s["sides_removed"] == 2278  # the fixture's counts
    assert all(ds["models"][n]["n"] > 100 for n in ROWS)


def test_strip_to_trades_by_hand() -> None:
    ticks: list[Tick] = [
        Quote("X", 1, 99.0, 101.0, 1.0, 2.0),
        Trade("X", 2, 100.0, 1.0, "buy"),
        Trade("X", 3, 100.5, 2.0, None),
        Quote("X", 4, 99.0, 101.0, 1.0, 2.0),
        Trade("X", 5, 99.5, 3.0, "sell"),
    ]
    st = StripStats()
    out = list(strip_to_trades(ticks, st))
    assert out == [Trade("X", 2, 100.0, 1.0), Trade("X", 3, 100.5, 2.0), Trade("X", 5, 99.5, 3.0)]
    assert st.as_dict() == {"quotes_dropped": 2, "sides_removed": 2}
    assert ticks[1] == Trade("X", 2, 100.0, 1.0, "buy")  # the input is not mutated


def test_backtest_options_off_change_nothing_and_on_scored_sees_every_outcome() -> None:
    seen: list[Scored] = []
    a = run_backtest(SAMPLE_FILES[:1], prefetch=False)
    b = run_backtest(SAMPLE_FILES[:1], prefetch=False, on_scored=seen.append)
    assert a.signals == b.signals
    assert len(seen) == b.report["ensemble"]["n_scored"] > 100
    assert "trades_only" not in a.report
    ts = {}
    for sc in seen:  # in order per symbol, each once
        assert sc.ts >= ts.get(sc.symbol, 0)
        ts[sc.symbol] = sc.ts
    assert len({(sc.symbol, sc.seq) for sc in seen}) == len(seen)
    c = run_backtest(SAMPLE_FILES[:1], prefetch=False, trades_only=True)
    assert c.report["trades_only"]["quotes_dropped"] == a.report["quotes"]
    assert c.report["trades"] == a.report["trades"]
    assert "weights_stability" in a.report and a.report["weights_stability"]["minutes"] > 0


def test_weight_stability_by_hand() -> None:
    ws = WeightStability()
    # minute 0: signals at 0, 10, 50 s; minute 1: at 70 s; minute 3: at 200 s
    ws.add(T0, [0.5, 0.5])
    ws.add(T0 + 10 * S, [0.6, 0.4])
    ws.add(T0 + 50 * S, [0.9, 0.1])
    ws.add(T0 + 70 * S, [0.2, 0.8])
    ws.add(T0 + 200 * S, [0.3, 0.7])
    # window from 0 s holds 0, 10, 50 (70 > 60): stage 0 range 0.9 - 0.5 = 0.4, stage 1 0.4
    # from 10 s: 10, 50, 70 -> stage 0: 0.9 - 0.2 = 0.7 (stage 1 the same): minute 0 = 0.7
    # from 50 s: 50, 70 -> 0.7; from 70 s: 70 alone -> 0 (minute 1); from 200 s: 0 (minute 3)
    assert ws.finish() == [pytest.approx(0.7), 0.0, 0.0]
    # the window's end is in: a signal exactly 60 s later counts
    ws2 = WeightStability()
    ws2.add(T0, [0.1])
    ws2.add(T0 + 60 * S, [0.4])
    ws2.add(T0 + 60 * S + 1, [0.9])
    assert ws2.finish() == [pytest.approx(0.3), pytest.approx(0.5)]


def test_hac_on_an_ar1_like_loss_series() -> None:
    # d = 2 2 2 0 0 0 (mean 1, e = 1 1 1 -1 -1 -1): γ0 = 6/6 = 1
    # γ1: 5 neighbour pairs, 4 same sign, 1 across -> 3/6 = 0.5
    # γ2: e2e0 +, e3e1 -, e4e2 -, e5e3 + -> 0
    d = [2.0, 2.0, 2.0, 0.0, 0.0, 0.0]
    # lag 2, weights 2/3 and 1/3: (1 + 2·(2/3)·0.5 + 0) / 6 = (5/3) / 6 = 5/18
    assert hac_se(d, 2) == pytest.approx(math.sqrt(5 / 18))
    assert effective_n(d, 2) == pytest.approx(18 / 5)  # 3.6 of 6
    assert hac_se(d, 0) == pytest.approx(math.sqrt(1 / 6))  # the iid SE is too small


def test_parse_dataset_forms(tmp_path: Path) -> None:
    (tmp_path / "a.gz").write_bytes(b"")
    (tmp_path / "b.gz").write_bytes(b"")
    (tmp_path / "c.txt").write_bytes(b"")
    d = parse_dataset(str(tmp_path))
    assert d.name == tmp_path.name and [p.name for p in d.paths] == ["a.gz", "b.gz"]
    n = parse_dataset(f"mine={tmp_path}/a.gz,{tmp_path}/c.txt")
    assert n.name == "mine" and [p.name for p in n.paths] == ["a.gz", "c.txt"]
    g = parse_dataset(f"{tmp_path}/*.gz")
    assert len(g.paths) == 2
    s = parse_dataset("sample")
    assert s.name == "sample" and len(s.paths) >= 1
    assert all(p.suffix == ".gz" and "spot" in str(p) for p in s.paths)
    with pytest.raises(ValueError, match="no files"):
        parse_dataset(f"{tmp_path}/*.nothing")


def test_cli_evaluate_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    r = CliRunner().invoke(
        app,
        ["evaluate", f"eth={FIXTURES / 'ethusdt_head.gz'}", "--horizon", "2", "--trades-only",
         "--json", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "River baseline" in r.output and "tick-sign" in r.output
    blob = orjson.loads(out.read_bytes())
    (ds,) = blob["datasets"]
    assert ds["name"] == "eth" and ds["trades_only"] is True and ds["horizon_s"] == 2.0
    bad = CliRunner().invoke(app, ["evaluate", str(tmp_path / "none*.gz")])
    assert bad.exit_code != 0
