"""Statistics for honest evaluation: HAC standard errors, effective sample size, calibration.

Pure functions over plain sequences. Outcomes whose horizons overlap share a price path, so a
series of per-outcome losses is strongly autocorrelated and the iid standard error of its mean
is far too small; :func:`hac_se` is the Newey–West (Bartlett kernel) estimate instead, with a
lag of at least the number of outcomes that resolve within one horizon (:func:`horizon_lag`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ece", "effective_n", "hac_se", "hac_var", "horizon_lag", "reliability"]


def hac_var(d: Sequence[float] | np.ndarray[Any, Any], lag: int) -> float:
    """Newey–West variance of the mean of ``d`` (Bartlett kernel, ``lag`` autocovariances).

    var = (γ0 + 2 Σ_{k=1..L} (1 − k/(L+1)) γk) / n with γk = (1/n) Σ_{t≥k} (d_t − d̄)(d_{t−k} − d̄);
    the lag is clipped to n − 1. Bartlett weights keep it non-negative in exact arithmetic; it
    is floored at 0 against rounding. NaN for an empty series.
    """
    x = np.asarray(d, dtype=np.float64)
    n = x.size
    if n == 0:
        return math.nan
    e = x - x.mean()
    lag = max(0, min(int(lag), n - 1))
    total = float(e @ e) / n
    for k in range(1, lag + 1):
        gk = float(e[k:] @ e[:-k]) / n
        total += 2.0 * (1.0 - k / (lag + 1)) * gk
    return max(total / n, 0.0)


def hac_se(d: Sequence[float], lag: int) -> float:
    """Newey–West standard error of the mean of ``d``: sqrt(max(:func:`hac_var`, 0))."""
    return math.sqrt(hac_var(d, lag))


def effective_n(d: Sequence[float], lag: int) -> float:
    """The sample size for which the iid standard error equals the HAC one, capped at n.

    With n_eff outcomes the iid variance of the mean would be γ0/n_eff; setting it equal to
    :func:`hac_var` gives n_eff = γ0 / var_hac. Capped at n (negative autocorrelation would
    otherwise report more outcomes than there are); n when the HAC variance is 0 (a constant
    series); 0 for an empty series.
    """
    x = np.asarray(d, dtype=np.float64)
    n = x.size
    if n == 0:
        return 0.0
    e = x - x.mean()
    gamma0 = float(e @ e) / n
    var = hac_var(x, lag)
    if var <= 0.0:
        return float(n)
    return min(gamma0 / var, float(n))


def horizon_lag(ts_sorted: Sequence[int], horizon_ns: int) -> int:
    """The most outcomes in any window of event time of length ``horizon_ns`` (both ends in).

    Two pointers over ascending stamps: for each j, the count of i ≤ j with
    ts[j] − ts[i] ≤ horizon_ns. These outcomes overlap (their horizons share a price path), so
    this is the lag to give :func:`hac_se`. 0 for no outcomes.
    """
    best = 0
    i = 0
    for j, t in enumerate(ts_sorted):
        while t - ts_sorted[i] > horizon_ns:
            i += 1
        best = max(best, j - i + 1)
    return best


def _bins(p: Sequence[float], y: Sequence[bool], bins: int) -> list[tuple[float, float, int]]:
    if len(p) != len(y):
        raise ValueError(f"p and y differ in length: {len(p)} != {len(y)}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    n = len(p)
    order = sorted(range(n), key=lambda i: p[i])
    out: list[tuple[float, float, int]] = []
    lo = 0
    for b in range(bins):
        hi = (b + 1) * n // bins
        # a tie never straddles two bins: the cut moves up to the end of the run of equal p
        # (else a constant forecaster would be "miscalibrated" by the drift of the up-rate
        # over time, its ties binned in input order)
        while 0 < hi < n and p[order[hi]] == p[order[hi - 1]]:
            hi += 1
        if hi <= lo:
            continue  # fewer outcomes than bins, or this bin was swallowed by a tie
        idx = order[lo:hi]
        m = hi - lo
        out.append((sum(p[i] for i in idx) / m, sum(1.0 for i in idx if y[i]) / m, m))
        lo = hi
    return out


def reliability(
    p: Sequence[float], y: Sequence[bool], bins: int = 10
) -> list[tuple[float, float, int]]:
    """Equal-mass reliability bins: (mean predicted p, observed frequency of up, count) per bin.

    Outcomes are sorted by p and bin b ends at sorted position ⌊(b+1)·n/bins⌋ − 1, moved up to
    the end of a run of equal p so that tied predictions share one bin (sizes then differ by
    more than one). Empty bins are left out: a constant forecaster has one bin.
    """
    return _bins(p, y, bins)


def ece(p: Sequence[float], y: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error over :func:`reliability`'s equal-mass bins.

    ECE = Σ_b (n_b/n) |mean(y_b) − mean(p_b)|; NaN for no outcomes.
    """
    rows = _bins(p, y, bins)
    n = len(p)
    if n == 0:
        return math.nan
    return sum(m / n * abs(fy - fp) for fp, fy, m in rows)


class ReliabilityHistogram:
    """Equal-mass reliability bins in constant memory, for runs of any length.

    Outcomes go into ``buckets`` fixed-width buckets of p (count, Σp, Σy each: 24 bytes a
    bucket, however many outcomes). :meth:`bins` merges consecutive buckets into bins of about
    equal mass: a bin closes at the bucket where the running count reaches (b+1)·n/bins, so
    the bin edges are the equal-mass quantiles rounded to a bucket (1/buckets wide), each
    bin's mean p and up rate are exact, and tied predictions (one bucket) never straddle bins.
    """

    __slots__ = ("buckets", "n", "sum_p", "sum_y")

    def __init__(self, buckets: int = 4000) -> None:
        self.buckets = buckets
        self.n = [0] * buckets
        self.sum_p = [0.0] * buckets
        self.sum_y = [0] * buckets

    def add(self, p: float, up: bool) -> None:
        i = min(max(int(p * self.buckets), 0), self.buckets - 1)
        self.n[i] += 1
        self.sum_p[i] += p
        if up:
            self.sum_y[i] += 1

    def bins(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """(mean p, observed up rate, count) per non-empty bin, in order of p."""
        total = sum(self.n)
        out: list[tuple[float, float, int]] = []
        b, n, sp, sy = 0, 0, 0.0, 0
        seen = 0
        for i in range(self.buckets):
            c = self.n[i]
            if not c:
                continue
            n += c
            sp += self.sum_p[i]
            sy += self.sum_y[i]
            seen += c
            if seen * bins >= (b + 1) * total:
                out.append((sp / n, sy / n, n))
                n, sp, sy = 0, 0.0, 0
                while b < bins and seen * bins >= (b + 1) * total:
                    b += 1
        if n:
            out.append((sp / n, sy / n, n))
        return out
