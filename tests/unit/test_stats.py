"""quorum.stats: Newey–West SE, effective n, horizon lag, equal-mass ECE — all by hand."""

from __future__ import annotations

import math

import pytest

from quorum.stats import ece, effective_n, hac_se, hac_var, horizon_lag, reliability


def test_hac_of_a_ramp_by_hand() -> None:
    # d = 1 2 3 4: mean 2.5, e = -1.5 -0.5 0.5 1.5, n = 4
    # γ0 = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    # γ1 = (e1e0 + e2e1 + e3e2) / 4 = (0.75 - 0.25 + 0.75) / 4 = 0.3125
    # γ2 = (e2e0 + e3e1) / 4 = (-0.75 - 0.75) / 4 = -0.375
    d = [1.0, 2.0, 3.0, 4.0]
    # lag 0: the iid variance γ0 / n = 0.3125
    assert hac_var(d, 0) == pytest.approx(0.3125)
    assert hac_se(d, 0) == pytest.approx(math.sqrt(0.3125))
    assert effective_n(d, 0) == pytest.approx(4.0)
    # lag 1: (1.25 + 2 · (1 - 1/2) · 0.3125) / 4 = 1.5625 / 4 = 0.390625, se 0.625
    assert hac_var(d, 1) == pytest.approx(0.390625)
    assert hac_se(d, 1) == pytest.approx(0.625)
    # n_eff = γ0 / var = 1.25 / 0.390625 = 3.2
    assert effective_n(d, 1) == pytest.approx(3.2)
    # lag 2: (1.25 + 2·(2/3)·0.3125 + 2·(1/3)·(-0.375)) / 4 = (1.25 + 0.41667 - 0.25) / 4
    assert hac_var(d, 2) == pytest.approx((1.25 + 0.3125 * 4 / 3 - 0.25) / 4)
    # a lag beyond n - 1 is clipped to n - 1 = 3
    assert hac_var(d, 99) == pytest.approx(hac_var(d, 3))


def test_hac_of_a_blocky_ar1_like_series_by_hand() -> None:
    # runs of four: d = 1 1 1 1 -1 -1 -1 -1 (mean 0, positively autocorrelated like AR(1))
    # γ0 = 8/8 = 1; γ1: 7 neighbour pairs, 6 same sign, 1 across: (6 - 1)/8 = 0.625
    # γ2: 6 pairs, 4 same, 2 across: 2/8 = 0.25; γ3: 5 pairs, 2 same, 3 across: -1/8 = -0.125
    d = [1.0] * 4 + [-1.0] * 4
    # lag 1: (1 + 2·0.5·0.625) / 8 = 1.625 / 8 = 0.203125
    assert hac_var(d, 1) == pytest.approx(0.203125)
    assert hac_se(d, 1) == pytest.approx(math.sqrt(0.203125))
    assert effective_n(d, 1) == pytest.approx(1 / 0.203125)  # 4.923
    # lag 3, weights 3/4, 1/2, 1/4: 1 + 2·(0.75·0.625 + 0.5·0.25 - 0.25·0.125) = 2.125; / 8
    assert hac_var(d, 3) == pytest.approx(0.265625)
    assert effective_n(d, 3) == pytest.approx(1 / 0.265625)  # 3.765
    # larger than the iid SE: sqrt(1/8) = 0.354
    assert hac_se(d, 3) > hac_se(d, 0) == pytest.approx(math.sqrt(1 / 8))


def test_negative_autocorrelation_caps_n_eff_at_n() -> None:
    # 1 -1 1 -1: γ0 = 1, γ1 = -3/4; lag 1: (1 + 2·0.5·(-0.75)) / 4 = 0.0625 -> γ0/var = 16 > 4
    d = [1.0, -1.0, 1.0, -1.0]
    assert hac_var(d, 1) == pytest.approx(0.0625)
    assert hac_se(d, 1) == pytest.approx(0.25)
    assert effective_n(d, 1) == 4.0


def test_degenerate_series() -> None:
    assert math.isnan(hac_se([], 3))
    assert effective_n([], 3) == 0.0
    assert hac_se([2.0, 2.0, 2.0], 2) == 0.0
    assert effective_n([2.0, 2.0, 2.0], 2) == 3.0
    assert hac_se([5.0], 4) == 0.0


def test_horizon_lag_two_pointers() -> None:
    assert horizon_lag([], 5) == 0
    assert horizon_lag([7], 5) == 1
    # windows of length 3 (both ends in): [10, 13] holds 10 11 12 13 -> 4; [0, 3] holds 3
    assert horizon_lag([0, 1, 2, 10, 11, 12, 13], 3) == 4
    # equal stamps are within 0 of each other
    assert horizon_lag([5, 5, 5, 6], 0) == 3
    assert horizon_lag([0, 4, 8], 3) == 1
    assert horizon_lag([0, 4, 8], 4) == 2


def test_ece_equal_mass_by_hand() -> None:
    # sorted p: 0.1 0.2 0.3 | 0.4 0.8 0.9, y: F T F | F T T (given shuffled)
    p = [0.8, 0.1, 0.4, 0.9, 0.3, 0.2]
    y = [True, False, False, True, False, True]
    # bin 0: mean p 0.2, freq 1/3 -> |1/3 - 0.2| = 0.13333; bin 1: mean p 0.7, freq 2/3 -> 0.03333
    rows = reliability(p, y, 2)
    assert [m for _, _, m in rows] == [3, 3]
    assert rows[0][:2] == pytest.approx((0.2, 1 / 3))
    assert rows[1][:2] == pytest.approx((0.7, 2 / 3))
    assert ece(p, y, 2) == pytest.approx(0.5 * (1 / 3 - 0.2) + 0.5 * (0.7 - 2 / 3))  # 0.08333
    # 4 bins over 6: cuts at ⌊b·6/4⌋ = 0 1 3 4 6 -> sizes 1 2 1 2
    rows4 = reliability(p, y, 4)
    assert [m for _, _, m in rows4] == [1, 2, 1, 2]
    assert rows4[1][:2] == pytest.approx((0.25, 0.5))  # p 0.2 0.3, y T F
    # |0 - .1|·1/6 + |.5 - .25|·2/6 + |0 - .4|·1/6 + |1 - .85|·2/6
    assert ece(p, y, 4) == pytest.approx((0.1 + 0.5 + 0.4 + 0.3) / 6)


def test_ece_ties_are_deterministic_and_bins_never_empty() -> None:
    # all p tied: the stable sort keeps input order -> bins (T, F) and (F, F)
    p = [0.5, 0.5, 0.5, 0.5]
    y = [True, False, False, False]
    assert ece(p, y, 2) == pytest.approx(0.5 * 0.0 + 0.5 * 0.5)
    # fewer outcomes than bins: one outcome a bin, the empty ones left out
    assert [m for _, _, m in reliability([0.3, 0.7], [False, True], 10)] == [1, 1]
    assert ece([0.3, 0.7], [False, True], 10) == pytest.approx(0.3)
    assert math.isnan(ece([], [], 10))
    with pytest.raises(ValueError):
        ece([0.5], [True, False])
    # a perfectly calibrated pair of bins has ECE 0
    assert ece([0.5, 0.5, 1.0, 1.0], [True, False, True, True], 2) == pytest.approx(0.0)


def test_tied_predictions_share_a_bin_so_a_constant_forecast_is_judged_on_the_base_rate() -> None:
    # a coin on a drifting series: first half all up, second half all down. Binned in input
    # order it would look wildly miscalibrated (|1 - 0.5| in half the bins, |0 - 0.5| in the
    # rest: ECE 0.5); with ties kept together there is one bin and |0.5 - 0.5| = 0.
    y = [True] * 50 + [False] * 50
    assert reliability([0.5] * 100, y, 10) == [(0.5, 0.5, 100)]
    assert ece([0.5] * 100, y, 10) == 0.0
    # p = 0.2 x 3 (ups: 1), 0.6 x 1 (up): 2 bins asked, the cut at 2 moves to 3 (end of the tie)
    rows = reliability([0.2, 0.6, 0.2, 0.2], [True, True, False, False], 2)
    assert rows == [(pytest.approx(0.2), pytest.approx(1 / 3), 3), (0.6, 1.0, 1)]
    # ECE = 3/4 * |1/3 - 0.2| + 1/4 * |1 - 0.6| = 0.1 + 0.1 = 0.2
    assert ece([0.2, 0.6, 0.2, 0.2], [True, True, False, False], 2) == pytest.approx(0.2)


def test_reliability_histogram_by_hand_and_against_the_exact_bins() -> None:
    import random

    from quorum.stats import ReliabilityHistogram

    h = ReliabilityHistogram()
    for p, y in [(0.1, True), (0.2, False), (0.3, True), (0.4, True)]:
        h.add(p, y)
    # 2 bins of 4: closes after 2 outcomes (2*2 >= 1*4) and after 4 (4*2 >= 2*4)
    assert h.bins(2) == [(pytest.approx(0.15), 0.5, 2), (pytest.approx(0.35), 1.0, 2)]
    # ties share one bin (a constant forecast is one bin), as in the exact version
    c = ReliabilityHistogram()
    for i in range(100):
        c.add(0.5, i < 50)
    assert c.bins(10) == [(0.5, 0.5, 100)]
    # on 20,000 distinct predictions the ECE of the bucketed bins is the exact one to 1e-3,
    # and the memory does not grow with the outcomes
    rng = random.Random(3)
    ps = [rng.random() for _ in range(20_000)]
    ys = [rng.random() < 0.3 + 0.4 * p for p in ps]
    big = ReliabilityHistogram()
    for p, y in zip(ps, ys, strict=True):
        big.add(p, y)
    rows = big.bins(10)
    assert sum(n for _, _, n in rows) == 20_000 and len(rows) == 10
    approx_ece = sum(n / 20_000 * abs(fy - mp) for mp, fy, n in rows)
    assert approx_ece == pytest.approx(ece(ps, ys, 10), abs=1e-3)
    assert len(big.n) == len(h.n) == 4000
