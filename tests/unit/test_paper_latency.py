"""Order-entry latency models, by hand: fixed per venue, the lognormal's quantiles, the cap,
and the deterministic per-order draw both drivers rely on."""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

import pytest
from pydantic import ValidationError

from agents.paper import PaperTrader
from agents.paper_latency import latency_ms, quantile_ms, unit
from config.paper import LatencyModel, PaperConfig
from models.orders import Order, order_id
from models.records import Action, Quote, Signal

MS = 1_000_000


def sig(sid: str, ts: int) -> Signal:
    return Signal(sid, "BTC", 0, ts, 3_600_000 * MS, Action.BUY, 0.6, True, (), (), "h")


def arrival_delay(cfg: PaperConfig, sid: str) -> int:
    t = PaperTrader(cfg)
    t.on_tick(Quote("BTC", 0, 99.0, 101.0, 5.0, 5.0))
    (o,) = t.on_signal(sig(sid, 1_000 * MS), mid=100.0)
    assert isinstance(o, Order)
    return o.arrival_ts - o.ts


def test_unit_is_the_digest_as_a_fraction() -> None:
    # by hand: the first 8 digest bytes as an integer k, then (k + 0.5) / 2^64
    k = int(hashlib.blake2b(b"abc", digest_size=8).hexdigest(), 16)
    assert unit("abc") == (k + 0.5) / 2**64
    assert 0.0 < unit("") < 1.0 and unit("abc") != unit("abd")


def test_lognormal_quantiles_by_hand() -> None:
    m = LatencyModel(dist="lognormal", median_ms=50.0, sigma=0.5)
    assert quantile_ms(m, 0.5) == pytest.approx(50.0)  # the median
    # one standard deviation up: 50 e^0.5 = 82.436; two down: 50 e^-1 = 18.394
    assert quantile_ms(m, NormalDist().cdf(1.0)) == pytest.approx(82.43606, rel=1e-6)
    assert quantile_ms(m, NormalDist().cdf(-2.0)) == pytest.approx(18.39397, rel=1e-6)
    capped = LatencyModel(dist="lognormal", median_ms=50.0, sigma=0.5, max_ms=60.0)
    assert quantile_ms(capped, NormalDist().cdf(1.0)) == 60.0
    assert quantile_ms(capped, 0.5) == pytest.approx(50.0)
    fixed = LatencyModel(median_ms=40.0)
    assert quantile_ms(fixed, 0.001) == quantile_ms(fixed, 0.999) == 40.0


def test_the_accounts_venue_picks_its_model() -> None:
    base = PaperConfig()
    assert arrival_delay(base, "s1") == 100 * MS  # the default, fixed
    by_venue = PaperConfig(latency_by_venue={"binance": LatencyModel(median_ms=250.0)})
    assert arrival_delay(by_venue, "s1") == 250 * MS
    other = PaperConfig(latency_by_venue={"coinbase": LatencyModel(median_ms=250.0)})
    assert arrival_delay(other, "s1") == 100 * MS  # not this account's venue


def test_lognormal_draw_is_per_order_and_deterministic() -> None:
    cfg = PaperConfig(
        latency_by_venue={"binance": LatencyModel(dist="lognormal", median_ms=50.0, sigma=0.5)}
    )
    oid = order_id("s1", "entry", 0)
    expect = 50.0 * math.exp(0.5 * NormalDist().inv_cdf(unit(oid)))
    assert arrival_delay(cfg, "s1") == round(expect * MS)
    assert arrival_delay(cfg, "s1") == arrival_delay(cfg, "s1")  # a replay draws the same
    delays = {arrival_delay(cfg, f"s{i}") for i in range(20)}
    assert len(delays) == 20  # orders draw apart


def test_lognormal_draws_follow_the_distribution() -> None:
    cfg = PaperConfig(
        latency_by_venue={"binance": LatencyModel(dist="lognormal", median_ms=50.0, sigma=0.5)}
    )
    draws = sorted(latency_ms(cfg, order_id(f"sig{i}", "entry", 0)) for i in range(20_000))
    # order statistics of 20,000 draws: the median and the 84.13th percentile within ~1 %
    assert draws[10_000] == pytest.approx(50.0, rel=0.02)
    assert draws[round(0.8413 * 20_000)] == pytest.approx(82.436, rel=0.03)


def test_latency_model_validation() -> None:
    with pytest.raises(ValidationError):
        LatencyModel(median_ms=-1.0)
    with pytest.raises(ValidationError):
        LatencyModel(dist="lognormal", median_ms=10.0, sigma=-0.1)
    with pytest.raises(ValidationError):
        PaperConfig.model_validate({"latency_by_venue": {"binance": {"median": 10}}})
