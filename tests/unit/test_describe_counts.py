"""What `quorum state show` prints of the new members: the count table and the signing rules."""

from __future__ import annotations

from agents.describe import describe
from agents.pipeline import Pipeline
from config.settings import load_config
from models.records import Quote, Trade
from quorum import run_backtest
from tests.conftest import SAMPLE_FILES

S = 1_000_000_000


def test_a_count_stage_prints_its_table() -> None:
    pipe = Pipeline(load_config().with_overrides(horizon_s=1.0))
    # trades only, so the reference is the last trade (Roll's correction is still warming up)
    for t, p in [(1, 100.0), (2, 101.0), (3, 100.0), (5, 99.0)]:
        pipe.process(Trade("A", t * S, p, 1.0, "buy"))
    # tick signs 0 (first trade), +1, -1. At 3 s the 1 s trade resolves (101 > 100: up, cell
    # 1); at 5 s the 2 s trade (100 < 101: down, cell 2) and the 3 s one (100 = 100: flat)
    table = describe(next(s for s in pipe.stages if s.name == "counts").state("A"))["table"]
    # default prior 1: (1 + 1) / (1 + 2) and (0 + 1) / (1 + 2)
    assert table == [
        {"cell": [1], "ranges": {"tick_sign": [-0.5, 0.5]}, "ups": 1.0, "n": 1.0, "p_up": 2 / 3},
        {"cell": [2], "ranges": {"tick_sign": [0.5, None]}, "ups": 0.0, "n": 1.0, "p_up": 1 / 3},
    ]


def test_a_flow_stage_prints_which_rule_signed_its_trades() -> None:
    pipe = Pipeline(load_config())
    pipe.process(Quote("A", 1 * S, 99.0, 101.0, 1.0, 1.0))
    pipe.process(Trade("A", 2 * S, 100.5, 1.0))  # no side, above the mid: Lee-Ready, buy
    pipe.process(Trade("A", 3 * S, 100.0, 1.0, "sell"))  # the exchange's side
    flow = describe(next(s for s in pipe.stages if s.name == "flow").state("A"))
    assert flow["table"] is None
    assert flow["signing"]["quote"] == 1 and flow["signing"]["exchange"] == 1


def test_the_report_says_which_rule_signed_the_trades() -> None:
    rep = run_backtest(SAMPLE_FILES[:1], trades_only=True, prefetch=False).report
    signing = rep["stages"]["flow"]["signing"]
    (sym,) = signing
    # trades only: no side, no quote, so everything but the first trades is the tick rule
    assert signing[sym]["exchange"] == 0 and signing[sym]["quote"] == 0
    assert signing[sym]["tick"] > 0.9 * rep["trades"]
    assert "signing" not in rep["stages"]["counts"]
