"""The flow extractor and the signed Microstructure by hand on tiny streams; a flow stage run.

Every expectation is worked out from the definitions (arithmetic in the comments, written as
literal expressions); the extractors are driven as a stage drives them (reference price first).
"""

from __future__ import annotations

from math import exp
from pathlib import Path

import pytest

from agents.features import EXTRACTORS, Flow, Microstructure
from config.settings import PipelineConfig, load_config
from models.labels import ReferencePrice
from models.records import Quote, Tick, Trade
from quorum import run_backtest
from tests.conftest import SAMPLE_FILES, handmade_ticks
from tests.ticks import approx, q, run, tr

QUOTE_FEATURES = ("ofi_1s", "ofi_5s", "microprice_bps")


def flow(ticks: list[Tick]) -> Flow:
    f = run(Flow(), ticks)
    assert isinstance(f, Flow)
    return f


def test_flow_is_registered() -> None:
    assert EXTRACTORS["flow"] is Flow


# --- signed size and count ----------------------------------------------------------------


def test_signed_size_and_count_decay_on_event_time() -> None:
    f = flow([tr(1.0, 100.0, 2.0, "buy"), tr(2.0, 101.0, 1.0, "sell"), tr(2.0, 101.0, 3.0, "buy")])
    x = f.features(Flow.FEATURES)
    # the buy of 2 is 1 s older: weight e^(-1/2) (tau 2 s), e^(-1/10) (tau 10 s); the others 1
    # signed size: (2w - 1 + 3) / (2w + 1 + 3); signed count: (w - 1 + 1) / (w + 1 + 1)
    w2, w10 = exp(-0.5), exp(-0.1)
    assert x["signed_size_2s"] == approx((2 * w2 + 2) / (2 * w2 + 4))
    assert x["signed_size_10s"] == approx((2 * w10 + 2) / (2 * w10 + 4))
    assert x["signed_count_2s"] == approx(w2 / (w2 + 2))
    assert x["signed_count_10s"] == approx(w10 / (w10 + 2))
    assert x["run_length"] == 1.0  # buy, sell, buy
    assert x["tick_sign"] == 1.0  # 100 -> 101, then a zero tick keeps +1
    assert f.signing["exchange"] == 3


def test_signed_features_are_bounded_and_zero_before_a_trade() -> None:
    f = Flow()
    assert f.features(Flow.FEATURES) == dict.fromkeys(Flow.FEATURES, 0.0)
    f = flow([tr(0.1 * i, 100.0 + i % 3, 1.0 + i, "buy" if i % 4 else "sell") for i in range(40)])
    x = f.features(Flow.FEATURES)
    for name in ("signed_size_2s", "signed_size_10s", "signed_count_2s", "signed_count_10s"):
        assert -1.0 <= x[name] <= 1.0


# --- run length ---------------------------------------------------------------------------


def test_run_length_follows_sign_changes_and_is_capped() -> None:
    f = Flow()
    ref = ReferencePrice()
    runs = []
    for i, side in enumerate(["buy", "buy", "buy", "sell", "sell", "buy", "sell"]):
        t = tr(float(i), 100.0, 1.0, side)
        ref.update(t)
        f.update(t, ref.value)
        runs.append(f.features(("run_length",))["run_length"])
    assert runs == [1.0, 2.0, 3.0, -1.0, -2.0, 1.0, -1.0]
    for i in range(60):
        f.update(tr(10.0 + i, 100.0, 1.0, "sell"), 100.0)
    assert f.features(("run_length",))["run_length"] == -50.0  # -1 then 60 more sells: capped
    for i in range(60):
        f.update(tr(100.0 + i, 100.0, 1.0, "buy"), 100.0)
    assert f.features(("run_length",))["run_length"] == 50.0
    f.update(tr(200.0, 100.0, 1.0, "sell"), 100.0)
    assert f.features(("run_length",))["run_length"] == -1.0


def test_an_unsigned_trade_leaves_the_run_alone() -> None:
    # 100 with no side and no change yet: sign 0 -> run stays 0; 101 up tick -> +1;
    # 101 zero tick keeps +1 -> +2; 100 down -> -1
    f = flow([tr(1.0, 100.0), tr(2.0, 101.0), tr(3.0, 101.0), tr(4.0, 100.0)])
    assert f.features(("run_length",))["run_length"] == -1.0
    assert f.signing == {"exchange": 0, "quote": 0, "tick_at_mid": 0, "tick": 3, "none": 1}


# --- trades only --------------------------------------------------------------------------


def test_trades_only_signs_by_the_tick_rule_and_quote_features_are_zero() -> None:
    # all at one time: no decay. signs: 100 none (0), 101 +1, 101 +1 (zero tick), 100 -1
    f = flow([tr(1.0, 100.0, 1.0), tr(1.0, 101.0, 2.0), tr(1.0, 101.0, 3.0), tr(1.0, 100.0, 4.0)])
    x = f.features(Flow.FEATURES)
    assert x["signed_count_2s"] == approx((0 + 1 + 1 - 1) / 4)
    assert x["signed_size_10s"] == approx((0 + 2 + 3 - 4) / (1 + 2 + 3 + 4))
    assert x["tick_sign"] == -1.0
    for name in QUOTE_FEATURES:
        assert x[name] == 0.0  # exactly: absent features contribute nothing
    assert x["roll_spread_bps"] == 0.0  # Roll still warming up (2 products < 20)


def test_roll_spread_bps_on_a_bounce() -> None:
    # 23 trades alternating 100, 101: 22 changes of +-1, 21 products of -1 -> cov -1, S = 2;
    # the reference price (trades only) is the corrected last trade: 100 is a down tick
    # (sign -1) -> 100 + 2/2 = 101 -> 2 / 101 * 1e4 bps
    f = flow([tr(float(i), 100.0 + i % 2) for i in range(23)])
    assert f.roll.n == 21
    assert f.features(("roll_spread_bps",))["roll_spread_bps"] == approx(2.0 / 101.0 * 1e4)


# --- order-flow imbalance -----------------------------------------------------------------

PREV = (100.0, 101.0, 2.0, 3.0)  # bid 100 x 2, ask 101 x 3 (depth 5)


@pytest.mark.parametrize(
    ("bid", "ask", "bid_size", "ask_size", "e"),
    [
        # bid up: +qb_n = +4; ask equal: -qa_n + qa_(n-1) = -5 + 3 -> e = 2
        (100.5, 101.0, 4.0, 5.0, 4.0 - 5.0 + 3.0),
        # bid equal: qb_n - qb_(n-1) = 7 - 2; ask equal, same size: -3 + 3 -> e = 5
        (100.0, 101.0, 7.0, 3.0, 7.0 - 2.0),
        # bid down: -qb_(n-1) = -2; ask down: -qa_n = -6 -> e = -8
        (99.5, 100.5, 1.0, 6.0, -2.0 - 6.0),
        # bid equal: 2 - 2 = 0; ask up: +qa_(n-1) = +3 -> e = 3
        (100.0, 101.5, 2.0, 4.0, 3.0),
    ],
)
def test_ofi_the_four_cases(
    bid: float, ask: float, bid_size: float, ask_size: float, e: float
) -> None:
    f = flow([q(1.0, *PREV), q(1.0, bid, ask, bid_size, ask_size)])
    # no time passes: the sum is e; the mean depth of the two quotes is (5 + depth_n) / 2
    depth = bid_size + ask_size
    x = f.features(("ofi_1s", "ofi_5s"))
    assert x["ofi_1s"] == approx(e / ((5.0 + depth) / 2))
    assert x["ofi_5s"] == approx(e / ((5.0 + depth) / 2))


def test_ofi_decays_to_the_current_tick() -> None:
    # quote at 1 s (e = 0, the first), quote at 2 s (bid up: +4, ask equal: -5 + 3 -> e = 2),
    # a trade at 3 s: the sum decays e^(-1/tau) per second
    f = flow([q(1.0, *PREV), q(2.0, 100.5, 101.0, 4.0, 5.0), tr(3.0, 100.7, 1.0, "buy")])
    # tau 1: sum 2w at 3 s (w = e^-1); quotes w + 1; depth 5w + 9 -> 2w * (w + 1) / (5w + 9)
    w = exp(-1.0)
    assert f.features(("ofi_1s",))["ofi_1s"] == approx(2 * w * (w + 1) / (5 * w + 9))
    v = exp(-0.2)
    assert f.features(("ofi_5s",))["ofi_5s"] == approx(2 * v * (v + 1) / (5 * v + 9))


# --- microprice ---------------------------------------------------------------------------


def test_microprice_from_credited_mid_changes() -> None:
    f = Flow()

    def quote(s: float, bid: float, ask: float, qb: float, qa: float) -> float:
        f.update(q(s, bid, ask, qb, qa), (bid + ask) / 2)
        return f.features(("microprice_bps",))["microprice_bps"]

    # tick = 1 (the smallest spread). States: imbalance qb/(qb+qa) in 5 buckets, + 5 if wide.
    assert quote(1.0, 100.0, 101.0, 9.0, 1.0) == 0.0  # I 0.9 -> bucket 4; nothing credited
    assert quote(2.0, 100.0, 101.0, 9.5, 0.5) == 0.0  # bucket 4 again (seen twice)
    # the mid moves 100.5 -> 101.5: m bps credited twice to bucket 4, -m twice to its mirror 0
    m = (101.5 / 100.5 - 1.0) * 1e4
    assert quote(3.0, 101.0, 102.0, 5.0, 5.0) == 0.0  # I 0.5 -> bucket 2: never credited
    assert quote(4.0, 101.0, 102.0, 9.0, 1.0) == approx(m)  # bucket 4: 2m / 2
    assert quote(5.0, 101.0, 102.0, 1.0, 9.0) == approx(-m)  # bucket 0: -2m / 2
    assert quote(6.0, 101.0, 103.0, 9.0, 1.0) == 0.0  # spread 2 > 1.5 ticks: state 9
    # mid 102 -> 100.5 (m2): seen since the last change: bucket 2 once, 4 once, 0 once, 9 once
    m2 = (100.5 / 102.0 - 1.0) * 1e4
    # bucket 4: 2m + m2 (itself) - m2 (mirror of 0) over 2 + 2 -> m / 2
    assert quote(7.0, 100.0, 101.0, 9.0, 1.0) == approx((2 * m + m2 - m2) / 4)
    assert f.move_sum[9] == approx(m2) and f.move_n[9] == 1  # the wide state, once
    assert f.move_sum[5] == approx(-m2) and f.move_n[5] == 1  # its mirror
    assert f.move_sum[2] == 0.0 and f.move_n[2] == 2  # the middle is its own mirror: 0


def test_microprice_is_zero_with_trades_only() -> None:
    f = flow([tr(float(i), 100.0 + i % 3) for i in range(30)])
    assert f.features(QUOTE_FEATURES) == dict.fromkeys(QUOTE_FEATURES, 0.0)


# --- Microstructure: signed unsigned trades, bit-identical with sides ---------------------


class OldMicrostructure:
    """Microstructure's trade path before the signer (sides from the exchange only)."""

    def __init__(self) -> None:
        self.last_ts = 0
        self.buy_2s = self.sell_2s = self.buy_10s = self.sell_10s = self.trade_sign = 0.0

    def update(self, tick: Tick) -> None:
        if isinstance(tick, Quote):
            return
        dt = tick.ts - self.last_ts
        self.last_ts = tick.ts
        d2 = exp(-dt / 2e9) if dt > 0 else 1.0
        d10 = exp(-dt / 10e9) if dt > 0 else 1.0
        buy = tick.size if tick.side == "buy" else 0.0
        sell = tick.size if tick.side == "sell" else 0.0
        self.buy_2s = self.buy_2s * d2 + buy
        self.sell_2s = self.sell_2s * d2 + sell
        self.buy_10s = self.buy_10s * d10 + buy
        self.sell_10s = self.sell_10s * d10 + sell
        self.trade_sign = 1.0 if tick.side == "buy" else -1.0 if tick.side == "sell" else 0.0


def test_microstructure_is_bit_identical_when_sides_are_given() -> None:
    new, old = Microstructure(), OldMicrostructure()
    ref = ReferencePrice()
    for t in handmade_ticks(300):
        ref.update(t)
        new.update(t, ref.value)
        old.update(t)
        assert (new.buy_2s, new.sell_2s, new.buy_10s, new.sell_10s, new.trade_sign) == (
            old.buy_2s,
            old.sell_2s,
            old.buy_10s,
            old.sell_10s,
            old.trade_sign,
        )
    assert new.signing["exchange"] == 300 and sum(new.signing.values()) == 300


def test_microstructure_signs_trades_without_a_side() -> None:
    m = Microstructure()
    # quote 99/101 (mid 100): 100.5 above the mid -> buy (quote rule); 100 at the mid after
    # 100.5: down tick -> sell (tick at mid); both at one time: flow (1 - 2) / 3
    run(m, [q(1.0, 99.0, 101.0), tr(2.0, 100.5, 1.0), tr(2.0, 100.0, 2.0)])
    x = m.features(("flow_2s", "flow_10s", "trade_sign"))
    assert x == {"flow_2s": approx(-1 / 3), "flow_10s": approx(-1 / 3), "trade_sign": -1.0}
    assert m.signing == {"exchange": 0, "quote": 1, "tick_at_mid": 1, "tick": 0, "none": 0}


def test_microstructure_trades_only_uses_the_tick_rule() -> None:
    m = Microstructure()
    run(m, [tr(1.0, 100.0), tr(1.0, 99.0)])  # none (0), then a down tick (-1)
    x = m.features(Microstructure.FEATURES)
    assert x["trade_sign"] == -1.0 and x["flow_2s"] == -1.0
    assert x["spread_bps"] == x["imbalance"] == x["weighted_mid_bps"] == 0.0


# --- a flow stage end to end --------------------------------------------------------------


def flow_config() -> PipelineConfig:
    base = load_config()
    data = base.model_dump()
    micro = next(s for s in data["stages"] if s["name"] == "microstructure")
    data["stages"] = [
        *data["stages"],
        {**micro, "name": "flow_all", "extractor": "flow", "features": list(Flow.FEATURES)},
    ]
    return PipelineConfig.model_validate(data)


def test_a_flow_stage_runs_end_to_end(tmp_path: Path) -> None:
    result = run_backtest(SAMPLE_FILES[:1], config=flow_config(), out_dir=tmp_path, prefetch=False)
    stage = result.report["stages"]["flow_all"]
    assert stage["n_scored"] > 100 and stage["features"] == list(Flow.FEATURES)
    votes = [sv for s in result.signals for sv in s.stages if sv.name == "flow_all"]
    assert len(votes) == len(result.signals)
    assert sum(v.p_up is not None for v in votes) > 100
    assert all(0.0 <= v.p_up <= 1.0 for v in votes if v.p_up is not None)


def test_tick_sign_extractor_agrees_with_flow_on_the_last_nonzero_change() -> None:
    from agents.features import Flow, TickSign

    # prices 100, 100, 101, 101, 99.5, 99.5: signs 0 (first), 0 (no change yet), +1, +1 (zero
    # tick keeps it), -1, -1
    ts, fl = TickSign(), Flow()
    got = []
    for i, p in enumerate([100.0, 100.0, 101.0, 101.0, 99.5, 99.5]):
        t = Trade("A", (i + 1) * 1_000_000, p, 1.0)
        ts.update(t, p)
        fl.update(t, p)
        got.append(ts.features(("tick_sign",))["tick_sign"])
        assert got[-1] == fl.features(("tick_sign",))["tick_sign"]
    assert got == [0.0, 0.0, 1.0, 1.0, -1.0, -1.0]
