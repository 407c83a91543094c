"""Every feature of every extractor, by value, on tiny hand-made streams.

Each expectation is worked out by hand from the definitions (the arithmetic is in the comments
and written out as literal expressions, never by calling the code under test). The streams are
built so that a feature that loses its sign, reads the wrong horizon or tau, uses the wrong side
of the book, or decays by tick count instead of event time gets another value and fails.

The extractors are driven the way a stage drives them: ``update(tick, ref)`` with ``ref`` the
reference price after the tick as :class:`models.labels.ReferencePrice` computes it (mid once a
quote is known, else the last trade).
"""

from __future__ import annotations

from math import exp, log, sqrt

import pytest

from agents.features import Microstructure, Momentum, Volatility
from agents.stage import Stage
from config.settings import load_config
from models.records import Tick
from tests.ticks import SYM, approx, q, run, tr

CFG = load_config()
# a momentum stage (not in the default pipeline any more: the extractor is there to swap in)
MOMENTUM_CFG = CFG.model_copy(
    update={
        "stages": (
            CFG.stages[0].model_copy(
                update={"name": "momentum", "extractor": "momentum", "features": Momentum.FEATURES}
            ),
        )
    }
)


# --- Microstructure -----------------------------------------------------------------------

MICRO_STREAM: list[Tick] = [
    q(1.0, 99.0, 101.0, 3.0, 1.0),
    tr(2.0, 101.0, 2.0, "buy"),
    tr(3.0, 99.0, 1.0, "sell"),  # 1 s after the buy
    q(4.0, 100.0, 102.0, 1.0, 4.0),  # the book the features must read
    q(4.5, 100.0, 102.0, 1.0, 4.0),  # a repeated quote: flows must not decay on quotes
    tr(5.0, 100.0, 1.0, "sell"),  # 2 s after the previous trade
]


def test_microstructure_book_features_read_the_latest_quote_on_the_right_sides() -> None:
    f = run(Microstructure(), MICRO_STREAM).features(Microstructure.FEATURES)
    # latest book: bid 100 x 1, ask 102 x 4; mid 101
    # spread = (102 - 100) / 101 * 1e4 = 198.0198...
    assert f["spread_bps"] == approx(2.0 / 101.0 * 1e4)
    # imbalance = (bid_size - ask_size) / depth = (1 - 4) / 5 = -0.6 (sides swapped: +0.6)
    assert f["imbalance"] == approx(-0.6)
    # weighted mid = (bid * ask_size + ask * bid_size) / depth = (100*4 + 102*1) / 5 = 100.4,
    # below the mid since the ask is the heavy side: (100.4 - 101) / 101 * 1e4 = -59.4059...
    # (sizes on the wrong sides: (100*1 + 102*4) / 5 = 101.6, +59.4)
    assert f["weighted_mid_bps"] == approx((100.4 - 101.0) / 101.0 * 1e4)
    assert f["weighted_mid_bps"] == approx(-0.6 / 101.0 * 1e4)


def test_microstructure_flows_decay_on_event_time_with_their_own_tau() -> None:
    f = run(Microstructure(), MICRO_STREAM).features(Microstructure.FEATURES)
    # trades: buy 2 @ 2 s, sell 1 @ 3 s, sell 1 @ 5 s; the decay is exp(-gap / tau) per gap
    # between trades (1 s, then 2 s), so at 5 s:
    #   tau 2 s:  buy = 2 e^(-1/2) e^(-2/2) = 2 e^-1.5 = 0.44626,  sell = e^-1 + 1 = 1.36788
    #   tau 10 s: buy = 2 e^(-0.1) e^(-0.2) = 2 e^-0.3 = 1.48164, sell = e^-0.2 + 1 = 1.81873
    # flow = (buy - sell) / (buy + sell)
    buy2, sell2 = 2 * exp(-1.5), exp(-1.0) + 1.0
    buy10, sell10 = 2 * exp(-0.3), exp(-0.2) + 1.0
    assert f["flow_2s"] == approx((buy2 - sell2) / (buy2 + sell2))  # -0.50802
    assert f["flow_10s"] == approx((buy10 - sell10) / (buy10 + sell10))  # -0.10214
    assert f["flow_2s"] == approx(-0.5080199113924145)
    assert f["flow_10s"] == approx(-0.10213842637943163)
    # the last trade was a sell
    assert f["trade_sign"] == -1.0


def test_microstructure_trade_sign_and_one_sided_flow() -> None:
    m = run(Microstructure(), [tr(1.0, 100.0, 3.0, "buy")])
    f = m.features(("flow_2s", "flow_10s", "trade_sign"))
    assert f == {"flow_2s": 1.0, "flow_10s": 1.0, "trade_sign": 1.0}
    run(m, [tr(2.0, 100.0, 1.0, None)])  # no aggressor side: no flow, no sign
    g = m.features(("flow_2s", "trade_sign"))
    assert g["trade_sign"] == 0.0 and g["flow_2s"] == 1.0


# --- Momentum: returns ----------------------------------------------------------------------

# mid: 100 @ 100 s, 98 @ 102 s, 104 @ 110 s, 101 @ 127 s, 102 @ 131 s
RET_STREAM: list[Tick] = [
    q(100.0, 99.5, 100.5),
    q(102.0, 97.5, 98.5),
    q(110.0, 103.5, 104.5),
    q(127.0, 100.5, 101.5),
    q(131.0, 101.5, 102.5),
]
RET_NAMES = ("ret_1s", "ret_5s", "ret_30s")


def test_momentum_returns_each_read_their_own_horizon() -> None:
    f = run(Momentum(), RET_STREAM).features(RET_NAMES)
    # at 131 s the reference is 102; return vs the reference in force at 131 s - h:
    #   1 s:  at 130 s the mid was 101 -> (102/101 - 1) * 1e4 = +99.0099
    #   5 s:  at 126 s the mid was 104 -> (102/104 - 1) * 1e4 = -192.3077
    #   30 s: at 101 s the mid was 100 -> (102/100 - 1) * 1e4 = +200
    assert f["ret_1s"] == approx((102 / 101 - 1) * 1e4)
    assert f["ret_5s"] == approx((102 / 104 - 1) * 1e4)
    assert f["ret_30s"] == approx((102 / 100 - 1) * 1e4)


def test_momentum_returns_are_measured_from_now_not_from_the_last_price_change() -> None:
    # a trade 1.5 s after the last mid change: the reference (the mid, 102) did not move, but the
    # horizons did: the returns at the trade's time are
    #   1 s:  mid at 131.5 s = 102 -> 0
    #   5 s:  mid at 127.5 s = 101 -> (102/101 - 1) * 1e4 = +99.0099
    #   30 s: mid at 102.5 s = 98  -> (102/98 - 1) * 1e4 = +408.1633
    m = run(Momentum(), [*RET_STREAM, tr(132.5, 102.5, 1.0, "buy")])
    f = m.features(RET_NAMES)
    assert f["ret_1s"] == 0.0
    assert f["ret_5s"] == approx((102 / 101 - 1) * 1e4)
    assert f["ret_30s"] == approx((102 / 98 - 1) * 1e4)


def test_momentum_return_horizon_boundary_is_inclusive() -> None:
    # mid 100 @ 10 s, 101 @ 11 s; a trade at 12 s: the mid in force at 12 s - 1 s = 11 s is the
    # one set at 11 s (101), so ret_1s = 0; ret_5s reaches back to the base: +100 bps
    m = run(Momentum(), [q(10.0, 99.5, 100.5), q(11.0, 100.5, 101.5), tr(12.0, 101.0)])
    f = m.features(RET_NAMES)
    assert f["ret_1s"] == 0.0
    assert f["ret_5s"] == approx((101 / 100 - 1) * 1e4)


def test_momentum_reference_is_the_last_trade_until_a_quote_is_known() -> None:
    m = run(Momentum(), [tr(10.0, 200.0), tr(10.5, 202.0)])
    # ref 200 @ 10 s, 202 @ 10.5 s; no entry is 1 s old yet: the oldest one is the base
    assert m.features(("ret_1s",))["ret_1s"] == approx((202 / 200 - 1) * 1e4)  # +100 bps


# --- Momentum: EWMAs --------------------------------------------------------------------------

# reference: 100 (trade) @ 100 s, 110 (trade) @ 102 s, then a quote mid 110 @ 102.5 s, then a
# trade at 111 @ 104 s that leaves the reference at the mid, 110. Three steps over 4 s: a
# tick-count decay cannot match event time here.
EWMA_STREAM: list[Tick] = [
    tr(100.0, 100.0, 1.0, "buy"),
    tr(102.0, 110.0, 1.0, "buy"),
    q(102.5, 109.5, 110.5),
    tr(104.0, 111.0, 1.0, "buy"),
]


def test_momentum_ewmas_on_event_time_with_taus_1_5_30() -> None:
    f = run(Momentum(), EWMA_STREAM).features(Momentum.FEATURES)
    # every EWMA starts at the first reference (100); each tick moves it by
    # (1 - e^(-gap/tau)) towards the reference after the tick. The reference is 110 from 102 s
    # on, so after gaps of 2 s, 0.5 s and 1.5 s, e_tau = 110 - 10 e^(-4/tau):
    #   e1  = 110 - 10 e^-4      = 109.81684
    #   e5  = 110 - 10 e^-0.8    = 105.50671
    #   e30 = 110 - 10 e^(-4/30) = 101.24827
    e1, e5, e30 = 110 - 10 * exp(-4.0), 110 - 10 * exp(-0.8), 110 - 10 * exp(-4 / 30)
    assert f["ewma_1s_5s"] == approx((e1 - e5) / 110 * 1e4)  # +391.83
    assert f["ewma_5s_30s"] == approx((e5 - e30) / 110 * 1e4)  # +387.13
    assert f["dev_ewma_5s"] == approx((110 - e5) / 110 * 1e4)  # +408.48
    assert f["ewma_1s_5s"] == approx(10 * (exp(-0.8) - exp(-4.0)) / 110 * 1e4)
    assert f["ewma_5s_30s"] == approx(10 * (exp(-4 / 30) - exp(-0.8)) / 110 * 1e4)
    assert f["dev_ewma_5s"] == approx(10 * exp(-0.8) / 110 * 1e4)


def test_momentum_ewma_after_a_fall_is_negative() -> None:
    m = run(Momentum(), [tr(50.0, 100.0), tr(51.0, 90.0)])
    f = m.features(("ewma_1s_5s", "ewma_5s_30s", "dev_ewma_5s"))
    # e_tau = 90 + 10 e^(-1/tau): e1 = 93.67879, e5 = 98.18731, e30 = 99.67216
    e1, e5, e30 = 90 + 10 * exp(-1.0), 90 + 10 * exp(-0.2), 90 + 10 * exp(-1 / 30)
    assert f["ewma_1s_5s"] == approx((e1 - e5) / 90 * 1e4)
    assert f["ewma_5s_30s"] == approx((e5 - e30) / 90 * 1e4)
    assert f["dev_ewma_5s"] == approx((90 - e5) / 90 * 1e4)
    assert all(v < 0 for v in f.values())


# --- Volatility -------------------------------------------------------------------------------

# trades only at first, so the reference is the last trade price:
#   T1 @ 100 s: 100, size 1, buy      T2 @ 102 s: 101, size 2, sell     T3 @ 103 s: 99, size 8, sell
VOL_HEAD: list[Tick] = [
    tr(100.0, 100.0, 1.0, "buy"),
    tr(102.0, 101.0, 2.0, "sell"),
    tr(103.0, 99.0, 8.0, "sell"),
]
# then a quote (mid 100 becomes the reference: a price move, but not a trade), and a small buy
# whose price (99) is not the reference any more:
#   Q @ 104.5 s: 99.5 / 100.5          T4 @ 106 s: 99, size 1, buy
VOL_TAIL: list[Tick] = [q(104.5, 99.5, 100.5, 5.0, 5.0), tr(106.0, 99.0, 1.0, "buy")]

# log returns in bps of the reference moves
R2 = log(101 / 100) * 1e4  # +99.50 @ 102 s (2 s after the first price)
R3 = log(99 / 101) * 1e4  # -200.00 @ 103 s (1 s later)
R4 = log(100 / 99) * 1e4  # +100.50 @ 104.5 s (1.5 s later)
# the volume statistics (EW mean / variance of log size, alpha = 1 - e^(-gap/60 s)):
#   T1: first trade: alpha 1 -> mean 0 (log 1), var 0
#   T2: alpha a2 = 1 - e^(-2/60); diff = ln 2; mean = a2 ln 2; var = (1 - a2) a2 (ln 2)^2
#   T3: z = (ln 8 - mean) / sqrt(var) = (3 - a2) / sqrt(e^(-1/30) a2) = 16.663 (two trades seen)
#       then alpha a3 = 1 - e^(-1/60); diff = 3 ln 2 - mean; mean += a3 diff;
#       var = (1 - a3)(var + a3 diff^2)
#   T4: z = (ln 1 - mean) / sqrt(var)
A2 = 1 - exp(-2 / 60)
MEAN2, VAR2 = A2 * log(2), (1 - A2) * A2 * log(2) ** 2
Z3 = (3 * log(2) - MEAN2) / sqrt(VAR2)
A3 = 1 - exp(-1 / 60)
DIFF3 = 3 * log(2) - MEAN2
MEAN3 = MEAN2 + A3 * DIFF3
VAR3 = (1 - A3) * (VAR2 + A3 * DIFF3**2)
Z4 = (0.0 - MEAN3) / sqrt(VAR3)


def test_volatility_at_a_trade_that_moved_the_price() -> None:
    f = run(Volatility(), VOL_HEAD).features(Volatility.FEATURES)
    # squared returns decay by e^(-gap/tau) between price moves: gap 1 s between R2 and R3
    var10 = R2**2 * exp(-1 / 10) + R3**2
    var60 = R2**2 * exp(-1 / 60) + R3**2
    # read right at the last move (no further decay): rv = sqrt(var / tau)
    rv10, rv60 = sqrt(var10 / 10), sqrt(var60 / 60)
    assert f["rv_10s"] == approx(rv10)  # 77.69
    assert f["rv_60s"] == approx(rv60)  # 31.93
    assert f["rv_ratio"] == approx(rv10 / rv60)
    # trade counts decay on the gaps between trades (2 s, 1 s): n = (e^(-2/tau) + 1) e^(-1/tau) + 1
    n10 = (exp(-2 / 10) + 1) * exp(-1 / 10) + 1  # 2.64889
    n60 = (exp(-2 / 60) + 1) * exp(-1 / 60) + 1  # 2.95083
    assert f["intensity_10s"] == approx(n10 / 10)
    assert f["intensity_ratio"] == approx((n10 / 10) / (n60 / 60))
    # a big sell: a large positive surprise, signed by the aggressor (sell: -1)
    assert f["volume_z"] == approx(Z3)
    assert f["volume_z"] == approx((3 - A2) / sqrt(exp(-1 / 30) * A2))
    assert f["signed_volume_z"] == approx(-Z3)
    assert Z3 > 10


def test_volatility_decays_to_the_current_tick_and_ignores_quotes_for_intensity() -> None:
    f = run(Volatility(), [*VOL_HEAD, *VOL_TAIL]).features(Volatility.FEATURES)
    # the quote at 104.5 s moved the reference 99 -> 100 (gap 1.5 s); the trade at 106 s did
    # not move it (its price is not the reference), so the sums decay 1.5 s more to now
    var10 = (R2**2 * exp(-1 / 10) + R3**2) * exp(-1.5 / 10) + R4**2
    var60 = (R2**2 * exp(-1 / 60) + R3**2) * exp(-1.5 / 60) + R4**2
    rv10 = sqrt(var10 * exp(-1.5 / 10) / 10)
    rv60 = sqrt(var60 * exp(-1.5 / 60) / 60)
    assert f["rv_10s"] == approx(rv10)
    assert f["rv_60s"] == approx(rv60)
    assert f["rv_ratio"] == approx(rv10 / rv60)
    # four trades (the quote is not one); the last gap is 3 s
    n10 = ((exp(-2 / 10) + 1) * exp(-1 / 10) + 1) * exp(-3 / 10) + 1
    n60 = ((exp(-2 / 60) + 1) * exp(-1 / 60) + 1) * exp(-3 / 60) + 1
    assert f["intensity_10s"] == approx(n10 / 10)
    assert f["intensity_ratio"] == approx((n10 / 10) / (n60 / 60))
    # a small buy after a big trade: a negative surprise, signed +1
    assert f["volume_z"] == approx(Z4)
    assert f["signed_volume_z"] == approx(Z4)
    assert Z4 < 0


def test_volatility_read_at_a_quote_decays_the_trade_count_to_now() -> None:
    # with `trigger: [quote]` features are read at quotes: 1.5 s after the last trade (T3) the
    # counts have decayed by e^(-1.5/tau); the quote moved the reference (R4) just now
    f = run(Volatility(), [*VOL_HEAD, VOL_TAIL[0]]).features(Volatility.FEATURES)
    n10 = ((exp(-2 / 10) + 1) * exp(-1 / 10) + 1) * exp(-1.5 / 10)
    n60 = ((exp(-2 / 60) + 1) * exp(-1 / 60) + 1) * exp(-1.5 / 60)
    assert f["intensity_10s"] == approx(n10 / 10)
    assert f["intensity_ratio"] == approx((n10 / 10) / (n60 / 60))
    var10 = (R2**2 * exp(-1 / 10) + R3**2) * exp(-1.5 / 10) + R4**2
    assert f["rv_10s"] == approx(sqrt(var10 / 10))
    assert f["volume_z"] == approx(Z3)  # the last trade's surprise until the next trade


def test_volatility_defaults_before_any_move() -> None:
    f = run(Volatility(), [tr(1.0, 100.0, 1.0, "buy")]).features(Volatility.FEATURES)
    assert f["rv_10s"] == 0.0 and f["rv_60s"] == 0.0 and f["rv_ratio"] == 1.0
    assert f["intensity_10s"] == approx(0.1) and f["intensity_ratio"] == approx(6.0)
    assert f["volume_z"] == 0.0 and f["signed_volume_z"] == 0.0


# --- What a stage feeds its model -----------------------------------------------------------

# one stream for all three stages: the trigger is the last trade of the head; its successor (a
# quote 0.25 s later, strictly later) changes the book, the mid and hence every family's state
STAGE_HEAD: list[Tick] = [
    *VOL_HEAD[:1],
    q(101.0, 99.5, 100.5, 3.0, 1.0),
    tr(102.0, 100.5, 2.0, "buy"),
    q(102.5, 100.5, 101.5, 1.0, 4.0),
    tr(103.0, 101.0, 8.0, "sell"),  # the trigger
]
SUCCESSOR = q(103.25, 90.0, 91.0, 9.0, 1.0)


@pytest.mark.parametrize("name", [s.name for s in CFG.stages])
def test_stage_features_for_a_trigger_exclude_its_successor(name: str) -> None:
    sc = next(s for s in CFG.stages if s.name == name)
    stage = Stage(sc, CFG)
    # the tick-sign family reads trades only: its successor is a trade that flips the sign
    successor = tr(103.25, 90.0, 1.0, "sell") if sc.extractor == "tick_sign" else SUCCESSOR
    for t in [*STAGE_HEAD, successor, tr(103.5, 91.0, 1.0, "sell")]:
        stage.process(t)
    trigger_seq = len(STAGE_HEAD)  # per-symbol sequence of the trigger tick
    (pending,) = [p for p in stage.state(SYM).labeler.pending if p.seq == trigger_seq]
    x, _raw, _p = pending.payload
    cls = type(stage.state(SYM).extractor)
    upto = run(cls(), STAGE_HEAD).features(sc.features)
    peeked = run(cls(), [*STAGE_HEAD, successor]).features(sc.features)
    assert upto != peeked, "the successor changes the features, so a peek would show"
    assert x == upto
    assert pending.deadline == STAGE_HEAD[-1].ts + CFG.horizon_ns


def test_stage_feeds_hand_computed_momentum_features() -> None:
    sc = next(s for s in MOMENTUM_CFG.stages if s.extractor == "momentum")
    stage = Stage(sc, MOMENTUM_CFG)
    for t in [*EWMA_STREAM, q(104.5, 119.5, 120.5)]:  # successor: the mid jumps to 120
        stage.process(t)
    (pending,) = [p for p in stage.state(SYM).labeler.pending if p.seq == len(EWMA_STREAM)]
    x = pending.payload[0]
    e1, e5, e30 = 110 - 10 * exp(-4.0), 110 - 10 * exp(-0.8), 110 - 10 * exp(-4 / 30)
    assert x["ewma_1s_5s"] == approx((e1 - e5) / 110 * 1e4)
    assert x["ewma_5s_30s"] == approx((e5 - e30) / 110 * 1e4)
    assert x["dev_ewma_5s"] == approx((110 - e5) / 110 * 1e4)
    assert x["ret_1s"] == 0.0  # the reference has been 110 since 102 s
    assert x["ret_5s"] == approx((110 / 100 - 1) * 1e4)  # history shorter than 5 s: the base
    assert x["ret_30s"] == approx((110 / 100 - 1) * 1e4)
