"""Order-entry latency: fixed, or a per-venue lognormal drawn deterministically per order.

A lognormal with median ``m`` and log-space spread ``sigma`` has the quantile
``m · exp(sigma · Φ⁻¹(u))``. The ``u`` of an order is a hash of its (deterministic) id, so the
embedded backtest and the Kafka agent draw the same latency for the same order, and a restart
draws it again identically — no random state to checkpoint. Constant latency is a poor model
(latency spikes when markets move, hftbacktest #256); a spread around a median is a first step.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

from config.paper import LatencyModel, PaperConfig

NS_PER_MS = 1_000_000
_STD_NORMAL = NormalDist()
_TWO_64 = float(2**64)


def unit(key: str) -> float:
    """A number in (0, 1) from a string: the first 8 bytes of its BLAKE2b digest, big-endian,
    as (k + 0.5) / 2⁶⁴ (never 0 or 1, so the normal quantile stays finite)."""
    k = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return (k + 0.5) / _TWO_64


def quantile_ms(model: LatencyModel, u: float) -> float:
    """The latency at quantile ``u`` of a venue's model, in milliseconds."""
    if model.dist == "fixed" or model.sigma == 0.0:
        ms = model.median_ms
    else:
        ms = model.median_ms * math.exp(model.sigma * _STD_NORMAL.inv_cdf(u))
    return ms if model.max_ms is None else min(ms, model.max_ms)


def latency_ms(cfg: PaperConfig, order_id: str) -> float:
    """The latency of one order at the account's venue, in milliseconds."""
    model = cfg.latency_by_venue.get(cfg.venue)
    if model is None:
        return cfg.latency_ms
    return quantile_ms(model, unit(order_id))


def latency_ns(cfg: PaperConfig, order_id: str) -> int:
    return round(latency_ms(cfg, order_id) * NS_PER_MS)
