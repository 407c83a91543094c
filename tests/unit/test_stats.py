"""quorum.stats: Newey–West SE, effective n, horizon lag, equal-mass ECE — all by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quorum.stats import (
    ReliabilityHistogram,
    calibration,
    ece,
    effective_n,
    hac_se,
    hac_var,
    horizon_lag,
    reliability,
)


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


# --------------------------------------------------------------------------- Brier decomposition
# p = .2 .4 .3 .6 .8 .7, y = F T F T T F. Sorted: .2F .3F .4T | .6T .7F .8T; up rate ȳ = 1/2.
# Brier by hand: (.04 + .36 + .09 + .16 + .04 + .49) / 6 = 1.18 / 6 = 177/900 = 0.196667.
CAL_P = [0.2, 0.4, 0.3, 0.6, 0.8, 0.7]
CAL_Y = [False, True, False, True, True, False]


def _histogram(p: list[float], y: list[bool], buckets: int = 4000) -> ReliabilityHistogram:
    h = ReliabilityHistogram(buckets)
    for pi, yi in zip(p, y, strict=True):
        h.add(pi, yi)
    return h


def test_decomposition_two_bins_by_hand() -> None:
    # Catches: ECE or REL weighted wrongly, RES against 0.5 instead of the up rate, the
    # within-bin terms left out or centred on the wrong mean, a bin edge off by one.
    # bin 0: p̄ .3, ȳ 1/3; bin 1: p̄ .7, ȳ 2/3 (3 outcomes each)
    # ECE = ½·|.3 − 1/3| + ½·|.7 − 2/3| = 1/30
    # REL = ½·(1/30)² + ½·(1/30)² = 1/900;  RES = ½·(1/6)² + ½·(1/6)² = 1/36;  UNC = 1/4
    # WBV = ((.1² + 0 + .1²) + (.1² + 0 + .1²)) / 6 = .04 / 6 = 1/150
    # WBC: bin 0 (p − p̄)(y − ȳ_b) = (−.1)(−1/3) + 0 + (.1)(2/3) = .1; bin 1 (−.1)(1/3) + 0 +
    #      (.1)(1/3) = 0 -> WBC = .1 / 6 = 1/60
    # identity: 1/900 − 1/36 + 1/4 + 1/150 − 2/60 = (1 − 25 + 225 + 6 − 30) / 900 = 177/900 ✓
    for c in (calibration(CAL_P, CAL_Y, 2), _histogram(CAL_P, CAL_Y).calibration(2)):
        assert c.n == 6
        assert c.ece == pytest.approx(1 / 30, abs=1e-12)
        assert c.reliability == pytest.approx(1 / 900, abs=1e-12)
        assert c.resolution == pytest.approx(1 / 36, abs=1e-12)
        assert c.uncertainty == pytest.approx(0.25, abs=1e-12)
        assert c.within_bin_variance == pytest.approx(1 / 150, abs=1e-12)
        assert c.within_bin_covariance == pytest.approx(1 / 60, abs=1e-12)
        assert c.brier == pytest.approx(177 / 900, abs=1e-12)
        assert [m for _, _, m in c.bins] == [3, 3]
        assert c.bins[0][:2] == pytest.approx((0.3, 1 / 3)) and c.bins[1][:2] == pytest.approx(
            (0.7, 2 / 3)
        )


def test_decomposition_three_bins_by_hand() -> None:
    # Catches: the same terms with bins of two, where the within-bin covariance sits in the
    # last bin only and REL is large (an over-confident middle bin).
    # bins (.2F .3F) (.4T .6T) (.7F .8T): p̄ .25 .5 .75, ȳ 0 1 .5
    # ECE = (.25 + .5 + .25) / 3 = 1/3;  REL = (.0625 + .25 + .0625) / 3 = .125
    # RES = ((−.5)² + (.5)² + 0) / 3 = 1/6;  WBV = (2·.05² + 2·.1² + 2·.05²) / 6 = .03 / 6 = .005
    # WBC = (0 + 0 + (−.05)(−.5) + (.05)(.5)) / 6 = .05 / 6 = 1/120
    # identity: .125 − 1/6 + .25 + .005 − 1/60 = .196667 ✓
    for c in (calibration(CAL_P, CAL_Y, 3), _histogram(CAL_P, CAL_Y).calibration(3)):
        assert (c.ece, c.reliability, c.resolution) == pytest.approx((1 / 3, 0.125, 1 / 6))
        assert (c.within_bin_variance, c.within_bin_covariance) == pytest.approx((0.005, 1 / 120))
        assert c.brier == pytest.approx(177 / 900, abs=1e-12)
        assert c.ece == pytest.approx(ece(CAL_P, CAL_Y, 3))  # the same bins as ece()


def test_decomposition_of_nothing_and_of_a_constant_forecast() -> None:
    # Catches: a division by zero on a stage that always abstained; NaN leaking into JSON.
    empty = calibration([], [], 10)
    assert empty.n == 0 and empty.bins == [] and math.isnan(empty.brier)
    assert _histogram([], []).calibration().as_dict() == {
        "n": 0, "ece": None, "brier": None, "reliability": None, "resolution": None,
        "uncertainty": None, "within_bin_variance": None, "within_bin_covariance": None,
        "bins": [],
    }  # fmt: skip
    # a coin on 3 ups of 4: one bin, REL = (.5 − .75)² = RES + ... ; Brier = .25 exactly
    c = _histogram([0.5] * 4, [True, True, True, False]).calibration()
    assert c.bins == [(0.5, 0.75, 4)] and c.resolution == 0.0
    assert c.reliability == pytest.approx(0.0625) and c.uncertainty == pytest.approx(0.1875)
    assert c.within_bin_variance == 0.0 and c.within_bin_covariance == pytest.approx(0.0)
    assert c.brier == pytest.approx(0.25) and "bins" not in c.as_dict(bins=False)


_pairs = st.lists(
    st.tuples(
        st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 1.0])),  # ties and the ends
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(pairs=_pairs, bins=st.integers(1, 6), buckets=st.sampled_from([1, 7, 400]))
def test_brier_identity_holds_for_any_binning(
    pairs: list[tuple[float, bool]], bins: int, buckets: int
) -> None:
    # Catches: a term dropped or with the wrong sign or factor (the identity then fails on
    # almost any input), sums mixed up between buckets, merge losing or doubling outcomes.
    p, y = [a for a, _ in pairs], [b for _, b in pairs]
    h = _histogram(p, y, buckets)
    half = len(pairs) // 2
    merged = _histogram(p[:half], y[:half], buckets)
    merged.merge(_histogram(p[half:], y[half:], buckets))
    # add_both: the fine one exactly as add() makes it, the coarse one holding the same outcomes
    fine, coarse = ReliabilityHistogram(buckets * 10), ReliabilityHistogram(buckets)
    for a, b in pairs:
        fine.add_both(coarse, a, b)
    alone = _histogram(p, y, buckets * 10)
    assert (fine.n, fine.sum_p, fine.sum_pp, fine.sum_y, fine.sum_py) == (
        alone.n, alone.sum_p, alone.sum_pp, alone.sum_y, alone.sum_py,
    )  # fmt: skip
    direct = sum((a - b) ** 2 for a, b in zip(p, y, strict=True)) / len(p) if p else math.nan
    cals = (calibration(p, y, bins), h.calibration(bins), merged.calibration(bins))
    for c in (*cals, coarse.calibration(bins)):
        assert c.n == len(p) == sum(m for _, _, m in c.bins)
        if not p:
            continue
        assert len(c.bins) <= bins
        terms = (
            c.reliability - c.resolution + c.uncertainty
            + c.within_bin_variance - 2.0 * c.within_bin_covariance
        )  # fmt: skip
        assert terms == pytest.approx(direct, abs=1e-12)
        assert c.brier == pytest.approx(direct, abs=1e-12)
        assert c.ece == pytest.approx(sum(m / len(p) * abs(a - b) for a, b, m in c.bins))
        assert min(c.reliability, c.resolution, c.within_bin_variance) >= 0.0
    flat = [v for row in h.bin_sums(bins) for v in row]
    assert [v for row in merged.bin_sums(bins) for v in row] == pytest.approx(flat)
