"""Statistics for honest evaluation: HAC standard errors, effective sample size, calibration.

Pure functions over plain sequences. Outcomes whose horizons overlap share a price path, so a
series of per-outcome losses is strongly autocorrelated and the iid standard error of its mean
is far too small; :func:`hac_se` is the Newey–West (Bartlett kernel) estimate instead, with a
lag of at least the number of outcomes that resolve within one horizon (:func:`horizon_lag`).
Calibration is judged over equal-mass bins of the predictions: :func:`ece`, :func:`reliability`
and :func:`calibration` (ECE and the Brier decomposition) sort the outcomes; the bounded
:class:`ReliabilityHistogram` gives the same from sums kept in fixed buckets of p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BinSums",
    "Calibration",
    "ReliabilityHistogram",
    "calibration",
    "decompose",
    "ece",
    "effective_n",
    "hac_se",
    "hac_var",
    "horizon_lag",
    "reliability",
]


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


def _groups(p: Sequence[float], y: Sequence[bool], bins: int) -> list[list[int]]:
    """The indices of each non-empty equal-mass bin, in order of p (see :func:`reliability`)."""
    if len(p) != len(y):
        raise ValueError(f"p and y differ in length: {len(p)} != {len(y)}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    n = len(p)
    order = sorted(range(n), key=lambda i: p[i])
    out: list[list[int]] = []
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
        out.append(order[lo:hi])
        lo = hi
    return out


def _bins(p: Sequence[float], y: Sequence[bool], bins: int) -> list[tuple[float, float, int]]:
    out: list[tuple[float, float, int]] = []
    for idx in _groups(p, y, bins):
        m = len(idx)
        out.append((sum(p[i] for i in idx) / m, sum(1.0 for i in idx if y[i]) / m, m))
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


BinSums = tuple[int, float, float, int, float]
"""One bin's sufficient statistics: (n, Σp, Σp², Σy, Σp·y)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """ECE, Brier score and its decomposition over equal-mass bins (see :func:`decompose`).

    The floats are NaN when there are no outcomes (``n`` 0, ``bins`` empty).
    """

    n: int
    ece: float
    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float
    bins: list[tuple[float, float, int]]  # (mean p, observed up rate, n) per bin

    def as_dict(self, bins: bool = True) -> dict[str, Any]:
        """For JSON: NaN as None, the bins as ``[[p, y, n], ...]`` (left out if not ``bins``)."""

        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        out: dict[str, Any] = {
            "n": self.n,
            "ece": num(self.ece),
            "brier": num(self.brier),
            "reliability": num(self.reliability),
            "resolution": num(self.resolution),
            "uncertainty": num(self.uncertainty),
            "within_bin_variance": num(self.within_bin_variance),
            "within_bin_covariance": num(self.within_bin_covariance),
        }
        if bins:
            out["bins"] = [[mp, fy, m] for mp, fy, m in self.bins]
        return out


def decompose(sums: Sequence[BinSums]) -> Calibration:
    """ECE and the Brier score's decomposition from per-bin sums (n, Σp, Σp², Σy, Σp·y).

    With N outcomes, bin b of n_b outcomes with mean prediction p̄_b and up rate ȳ_b, and the
    overall up rate ȳ:

    - ECE = Σ_b (n_b/N) |p̄_b − ȳ_b|
    - reliability REL = (1/N) Σ_b n_b (p̄_b − ȳ_b)²  (lower is better)
    - resolution RES = (1/N) Σ_b n_b (ȳ_b − ȳ)²  (higher is better)
    - uncertainty UNC = ȳ (1 − ȳ)
    - within-bin variance WBV = (1/N) Σ_b Σ_{i∈b} (p_i − p̄_b)²
    - within-bin covariance WBC = (1/N) Σ_b Σ_{i∈b} (p_i − p̄_b)(y_i − ȳ_b)

    so that Brier = (1/N) Σ (p_i − y_i)² = REL − RES + UNC + WBV − 2·WBC for any binning
    (Stephenson, Coelho & Jolliffe 2008: Murphy's three terms are exact only when every
    prediction in a bin is the same; the two within-bin terms are what binning distinct
    predictions leaves over). It holds to rounding. Brier itself is computed from the sums,
    Σp² − 2Σpy + Σy, not from the terms. Sums are enough, so a bounded histogram of them
    (:class:`ReliabilityHistogram`) gives all of this for a run of any length.
    """
    total = sum(s[0] for s in sums)
    if total == 0:
        nan = math.nan
        return Calibration(0, nan, nan, nan, nan, nan, nan, nan, [])
    ybar = sum(s[3] for s in sums) / total
    e = rel = res = wbv = wbc = sq = 0.0
    rows: list[tuple[float, float, int]] = []
    for n, sp, spp, sy, spy in sums:
        if not n:
            continue
        pb, yb = sp / n, sy / n
        rows.append((pb, yb, n))
        e += n * abs(pb - yb)
        rel += n * (pb - yb) ** 2
        res += n * (yb - ybar) ** 2
        wbv += max(spp - sp * pb, 0.0)  # Σ(p − p̄)², floored against rounding
        wbc += spy - sp * yb  # Σ(p − p̄)(y − ȳ_b) = Σpy − ȳ_b Σp
        sq += spp - 2.0 * spy + sy  # Σ(p − y)², y² = y
    return Calibration(
        n=total,
        ece=e / total,
        brier=max(sq, 0.0) / total,
        reliability=rel / total,
        resolution=res / total,
        uncertainty=ybar * (1.0 - ybar),
        within_bin_variance=wbv / total,
        within_bin_covariance=wbc / total,
        bins=rows,
    )


def calibration(p: Sequence[float], y: Sequence[bool], bins: int = 10) -> Calibration:
    """:func:`decompose` over :func:`reliability`'s exact equal-mass bins (sorts the outcomes:
    memory grows with them; :meth:`ReliabilityHistogram.calibration` is the bounded one)."""
    sums: list[BinSums] = []
    for idx in _groups(p, y, bins):
        ps = [p[i] for i in idx]
        sy = sum(1 for i in idx if y[i])
        spy = sum(p[i] for i in idx if y[i])
        sums.append((len(idx), sum(ps), sum(q * q for q in ps), sy, spy))
    return decompose(sums)


class ReliabilityHistogram:
    """Equal-mass reliability bins and the Brier decomposition in constant memory.

    A run can score millions of outcomes; keeping them all to sort (as :func:`reliability`
    does) would grow without bound. Instead outcomes go into ``buckets`` fixed-width buckets
    of p, each keeping count, Σp, Σp², Σy and Σp·y: five numbers a bucket, however many
    outcomes. :meth:`bins` merges consecutive buckets into bins of about equal mass: a bin
    closes at the bucket where the running count reaches (b+1)·n/bins, so the bin edges are
    the equal-mass quantiles rounded to a bucket (1/buckets wide), while each bin's sums, and
    so its mean p, up rate and the terms of :meth:`calibration`, are exact; tied predictions
    (one bucket) never straddle bins.
    """

    __slots__ = ("buckets", "n", "sum_p", "sum_pp", "sum_py", "sum_y")

    def __init__(self, buckets: int = 4000) -> None:
        self.buckets = buckets
        self.n = [0] * buckets
        self.sum_p = [0.0] * buckets
        self.sum_pp = [0.0] * buckets
        self.sum_y = [0] * buckets
        self.sum_py = [0.0] * buckets

    def add(self, p: float, up: bool) -> None:
        i = min(max(int(p * self.buckets), 0), self.buckets - 1)
        self.n[i] += 1
        self.sum_p[i] += p
        self.sum_pp[i] += p * p
        if up:
            self.sum_y[i] += 1
            self.sum_py[i] += p

    def add_both(self, coarse: ReliabilityHistogram, p: float, up: bool) -> None:
        """:meth:`add` to this histogram and to ``coarse`` (no more buckets than this one): one
        bucket index for both, scaled down for ``coarse``, inlined (the backtest's hot path
        adds every scored prediction to its symbol's and its hour's histogram)."""
        b = self.buckets
        i = int(p * b)
        if i >= b:
            i = b - 1
        elif i < 0:
            i = 0
        j = i * coarse.buckets // b
        pp = p * p
        self.n[i] += 1
        self.sum_p[i] += p
        self.sum_pp[i] += pp
        coarse.n[j] += 1
        coarse.sum_p[j] += p
        coarse.sum_pp[j] += pp
        if up:
            self.sum_y[i] += 1
            self.sum_py[i] += p
            coarse.sum_y[j] += 1
            coarse.sum_py[j] += p

    def merge(self, other: ReliabilityHistogram) -> None:
        """Add ``other``'s outcomes to this one (the same number of buckets)."""
        if other.buckets != self.buckets:
            raise ValueError(f"buckets differ: {self.buckets} != {other.buckets}")
        for i, c in enumerate(other.n):
            if c:
                self.n[i] += c
                self.sum_p[i] += other.sum_p[i]
                self.sum_pp[i] += other.sum_pp[i]
                self.sum_y[i] += other.sum_y[i]
                self.sum_py[i] += other.sum_py[i]

    def bin_sums(self, bins: int = 10) -> list[BinSums]:
        """(n, Σp, Σp², Σy, Σp·y) per non-empty equal-mass bin, in order of p."""
        total = sum(self.n)
        out: list[BinSums] = []
        b, n, sp, spp, sy, spy = 0, 0, 0.0, 0.0, 0, 0.0
        seen = 0
        for i in range(self.buckets):
            c = self.n[i]
            if not c:
                continue
            n += c
            sp += self.sum_p[i]
            spp += self.sum_pp[i]
            sy += self.sum_y[i]
            spy += self.sum_py[i]
            seen += c
            if seen * bins >= (b + 1) * total:
                out.append((n, sp, spp, sy, spy))
                n, sp, spp, sy, spy = 0, 0.0, 0.0, 0, 0.0
                while b < bins and seen * bins >= (b + 1) * total:
                    b += 1
        if n:
            out.append((n, sp, spp, sy, spy))
        return out

    def bins(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """(mean p, observed up rate, count) per non-empty bin, in order of p."""
        return [(sp / n, sy / n, n) for n, sp, _, sy, _ in self.bin_sums(bins)]

    def calibration(self, bins: int = 10) -> Calibration:
        """ECE, Brier and its decomposition (:func:`decompose`) over :meth:`bins`."""
        return decompose(self.bin_sums(bins))
