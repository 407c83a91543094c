"""Paper account by hand and by property (random fill sequences), and the report metrics on
a hand-made equity curve."""

from __future__ import annotations

import math
import pickle
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.paper import Account, metrics
from agents.paper_account import NS_PER_DAY
from agents.paper_metrics import max_drawdown, minute_returns
from models.orders import Fill, RoundTrip

MIN = 60_000_000_000
S = 1_000_000_000


def fill(side: str, price: float, size: float, fee: float = 0.0, ts: int = 0) -> Fill:
    return Fill("f", "o", "s", "BTC", ts, side, price, size, fee, "taker")  # type: ignore[arg-type]


def test_average_entry_realised_on_reduction_and_flip() -> None:
    a = Account(1_000.0)
    a.apply(fill("buy", 100.0, 2.0, 0.2, ts=1))  # long 2 @ 100, cash 1000 - 200 - 0.2
    a.apply(fill("buy", 110.0, 2.0, 0.2, ts=2))  # long 4, avg (200 + 220) / 4 = 105
    pos = a.positions["BTC"]
    assert (pos.size, pos.avg_price) == (4.0, 105.0)
    a.apply(fill("sell", 120.0, 3.0, 0.3, ts=3))  # closes 3: realised 3 × (120 - 105) = 45
    assert (pos.size, pos.avg_price, pos.realised_pnl) == (1.0, 105.0, 45.0)
    a.apply(fill("sell", 100.0, 3.0, 0.3, ts=4))  # closes 1 (-5), flips to short 2 @ 100
    assert (pos.size, pos.avg_price, pos.realised_pnl) == (-2.0, 100.0, 40.0)
    assert pos.fees == pytest.approx(1.0)
    # cash: 1000 - 200 - 220 + 360 + 300 - 1.0 fees = 1239; equity at 90: 1239 - 180 = 1059
    assert a.cash == pytest.approx(1239.0)
    assert a.equity({"BTC": 90.0}) == pytest.approx(1059.0)
    assert a.unrealised({"BTC": 90.0}) == pytest.approx(20.0)  # short 2 from 100 to 90
    # one round trip closed at the flip: realised 40 minus its fees (0.2+0.2+0.3 + 1/3 of 0.3)
    (rt,) = a.round_trips
    assert (rt.side, rt.open_ts, rt.close_ts, rt.max_size) == ("buy", 1, 4, 4.0)
    assert rt.pnl == pytest.approx(40.0 - 0.8) and rt.fees == pytest.approx(0.8)
    a.apply(fill("buy", 90.0, 2.0, 0.0, ts=5))  # closes the short: +20
    assert a.round_trips[-1].pnl == pytest.approx(20.0 - 0.2)  # the flip's other 2/3 of 0.3
    assert pos.size == 0.0 and pos.avg_price == 0.0 and pos.realised_pnl == pytest.approx(60.0)


def test_marks_high_water_drawdown_and_day_start() -> None:
    a = Account(100.0)
    a.mark(10, 110.0)
    a.mark(20, 99.0)  # 10 % below 110
    assert a.high_water == 110.0 and a.drawdown == pytest.approx(0.1)
    assert a.day_pnl == pytest.approx(-1.0)  # the day opened at 100
    a.mark(NS_PER_DAY + 5, 98.0)  # a new UTC day opens at the previous equity, 99
    assert a.day_start_equity == 99.0 and a.day_pnl == pytest.approx(-1.0)
    assert a.max_drawdown == pytest.approx(12.0 / 110.0)


fill_seq = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.floats(1.0, 1_000.0),
        st.floats(0.001, 10.0),
        st.floats(0.0, 5.0),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(fill_seq, st.floats(1.0, 1_000.0))
def test_accounting_invariants(seq: list[tuple[str, float, float, float]], mark: float) -> None:
    a = Account(10_000.0)
    for i, (side, price, size, fee) in enumerate(seq):
        pos = a.positions.get("BTC")
        before_size = pos.size if pos else 0.0
        before_avg = pos.avg_price if pos else 0.0
        before_realised = pos.realised_pnl if pos else 0.0
        a.apply(fill(side, price, size, fee, ts=i))
        pos = a.positions["BTC"]
        q = size if side == "buy" else -size
        # flipping (or reducing) realises exactly the closed part at the old average
        closed = min(size, abs(before_size)) if before_size * q < 0 else 0.0
        expect = closed * (price - before_avg) * math.copysign(1.0, before_size)
        assert pos.realised_pnl - before_realised == pytest.approx(expect, rel=1e-9, abs=1e-6)
        assert pos.size == pytest.approx(before_size + q, rel=1e-9, abs=1e-9)
        if pos.size != 0 and before_size * q < 0 and size > abs(before_size):
            assert pos.avg_price == price  # the flipped rest opens at the fill price
    pos = a.positions["BTC"]
    marks = {"BTC": mark}
    assert a.equity(marks) == pytest.approx(a.cash + pos.size * mark, rel=1e-12)
    # realised - fees reconciles with the cash change (average cost: the open part at cost)
    change = a.cash - 10_000.0
    assert change == pytest.approx(
        pos.realised_pnl - pos.fees - pos.size * pos.avg_price, rel=1e-9, abs=1e-6
    )
    assert pos.fees == pytest.approx(sum(f for *_, f in seq))
    # round trips (closed) + the open one account for every realised dollar and fee
    open_trip = a._trips.get("BTC")
    open_net = open_trip.realised - open_trip.fees if open_trip else 0.0
    assert sum(t.pnl for t in a.round_trips) + open_net == pytest.approx(
        pos.realised_pnl - pos.fees, rel=1e-9, abs=1e-6
    )
    assert pickle.loads(pickle.dumps(a)) == a


# --- metrics on a hand-made equity curve ---------------------------------------------------
# minute:   0     1     2    3 (no sample)   4      5
# equity:  (90) 100   110    99   (99)         108.9   110
CURVE = [(0, 90.0), (30 * S, 100.0), (MIN, 110.0), (2 * MIN, 99.0), (4 * MIN, 108.9)]
CURVE.append((5 * MIN, 110.0))


def test_minute_returns_take_the_last_sample_and_carry_gaps() -> None:
    r = minute_returns(CURVE)
    # 110/100 - 1, 99/110 - 1, 99/99 - 1 (carried), 108.9/99 - 1, 110/108.9 - 1
    assert r == pytest.approx([0.1, -0.1, 0.0, 0.1, 110 / 108.9 - 1])


def test_sharpe_sortino_drawdown_profit_factor() -> None:
    trips = [RoundTrip("BTC", 0, 1, "buy", 1.0, pnl, 0.0) for pnl in (30.0, -10.0, 20.0, -5.0)]
    fills = [fill("buy", 100.0, 2.0, 0.2), fill("sell", 110.0, 2.0, 0.22)]
    m = metrics(CURVE, fills, trips)
    r = [0.1, -0.1, 0.0, 0.1, 110 / 108.9 - 1]
    mean = sum(r) / 5  # 0.0220202
    sd = statistics.stdev(r)  # sample std, ddof 1: 0.083183
    down = math.sqrt((0.1**2) / 5)  # one negative return: sqrt(0.01 / 5) = 0.044721
    ann = math.sqrt(365 * 1440)  # 724.98
    assert m["sharpe"] == pytest.approx(mean / sd * ann)
    assert m["sharpe"] == pytest.approx(191.92, abs=0.01)
    assert m["sortino"] == pytest.approx(mean / down * ann)
    assert m["sortino"] == pytest.approx(356.97, abs=0.05)
    # peak 110 at 60 s, trough 99: 11/110 = 10 %; back to 110 at 300 s: 240 s
    assert m["max_drawdown"] == pytest.approx(0.1) and m["max_drawdown_s"] == 240.0
    # profits 50 / losses 15; 2 wins of 4
    assert m["profit_factor"] == pytest.approx(50 / 15) and m["hit_rate"] == 0.5
    assert m["turnover"] == pytest.approx(420.0) and m["turnover_ratio"] == pytest.approx(420 / 90)
    assert m["fees"] == pytest.approx(0.42) and m["n_round_trips"] == 4


def test_drawdown_never_recovered_runs_to_the_last_sample() -> None:
    dd, secs = max_drawdown([(0, 100.0), (10 * S, 80.0), (20 * S, 90.0), (35 * S, 85.0)])
    assert dd == pytest.approx(0.2) and secs == 35.0


def test_metrics_undefined_cases() -> None:
    m = metrics([(0, 100.0)], [], [RoundTrip("BTC", 0, 1, "buy", 1.0, 5.0, 0.0)])
    assert m["sharpe"] is None and m["sortino"] is None and m["max_drawdown"] == 0.0
    assert m["profit_factor"] is None and m["hit_rate"] == 1.0
    flat = metrics([(0, 100.0), (MIN, 100.0), (2 * MIN, 100.0)], [], [])
    assert flat["sharpe"] is None and flat["hit_rate"] is None
