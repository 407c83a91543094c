"""Report metrics of a paper run: pure functions of the sampled equity, fills and round trips.

- returns: the last equity of every UTC minute from the first sample's minute to the last's
  (a minute without a sample carries the previous equity: a zero return), then simple returns;
- Sharpe = mean / sample std (ddof 1) × sqrt(365 × 1440); Sortino = mean / downside deviation
  (sqrt of the mean of min(r, 0)², over all returns) × the same factor; None when undefined;
- max drawdown: the largest (high-water − equity) / high-water over every sample; its duration
  is from that episode's peak to the first sample back at or above the peak (or the last sample
  when it never recovered), in seconds;
- profit factor: Σ winning round trips' net pnl / |Σ losing ones| (None with no loss);
  hit rate: the fraction of round trips with net pnl > 0; turnover: Σ |price × size| of fills
  (and that over the first equity sample as ``turnover_ratio``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from models.orders import Fill, RoundTrip

NS_PER_MINUTE = 60_000_000_000
ANNUAL = math.sqrt(365 * 1440)


def minute_returns(equity_curve: Sequence[tuple[int, float]]) -> list[float]:
    last: dict[int, float] = {}
    for ts, eq in equity_curve:
        last[ts // NS_PER_MINUTE] = eq
    if not last:
        return []
    first, end = min(last), max(last)
    out: list[float] = []
    prev = last[first]
    for m in range(first + 1, end + 1):
        eq = last.get(m, prev)
        out.append(eq / prev - 1.0 if prev else 0.0)
        prev = eq
    return out


def sharpe(returns: Sequence[float]) -> float | None:
    n = len(returns)
    if n < 2:
        return None
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    return mean / math.sqrt(var) * ANNUAL if var > 0 else None


def sortino(returns: Sequence[float]) -> float | None:
    n = len(returns)
    if n < 2:
        return None
    mean = sum(returns) / n
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / n)
    return mean / down * ANNUAL if down > 0 else None


def max_drawdown(equity_curve: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """(max drawdown as a fraction of the high-water mark, its duration in seconds)."""
    worst, duration = 0.0, 0.0
    peak_ts, peak = 0, -math.inf
    worst_peak_ts, worst_peak = 0, 0.0
    for ts, eq in equity_curve:
        if eq >= peak:
            peak, peak_ts = eq, ts
            continue
        dd = (peak - eq) / peak if peak > 0 else 0.0
        if dd > worst:
            worst, worst_peak_ts, worst_peak = dd, peak_ts, peak
    if worst > 0.0:
        end = equity_curve[-1][0]
        for ts, eq in equity_curve:
            if ts > worst_peak_ts and eq >= worst_peak:
                end = ts
                break
        duration = (end - worst_peak_ts) / 1e9
    return worst, duration


def metrics(
    equity_curve: Sequence[tuple[int, float]],
    fills: Sequence[Fill],
    round_trips: Sequence[RoundTrip],
) -> dict[str, Any]:
    rets = minute_returns(equity_curve)
    dd, dd_s = max_drawdown(equity_curve)
    wins = [t.pnl for t in round_trips if t.pnl > 0]
    losses = [t.pnl for t in round_trips if t.pnl < 0]
    gross_loss = -sum(losses)
    turnover = sum(abs(f.price * f.size) for f in fills)
    start = equity_curve[0][1] if equity_curve else 0.0
    return {
        "n_returns": len(rets),
        "sharpe": sharpe(rets),
        "sortino": sortino(rets),
        "max_drawdown": dd,
        "max_drawdown_s": dd_s,
        "n_round_trips": len(round_trips),
        "profit_factor": sum(wins) / gross_loss if gross_loss > 0 else None,
        "hit_rate": len(wins) / len(round_trips) if round_trips else None,
        "turnover": turnover,
        "turnover_ratio": turnover / start if start else None,
        "fees": sum(f.fee for f in fills),
    }
