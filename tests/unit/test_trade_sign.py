"""Trade signing (tick rule, Lee–Ready, the exchange's side) and Roll's spread, by hand."""

from __future__ import annotations

import pickle
from math import sqrt

import pytest

from models.records import Trade
from models.trade_sign import RULES, RollSpread, TradeSigner


def tr(price: float, side: str | None = None, size: float = 1.0) -> Trade:
    return Trade("X", 1, price, size, side)  # type: ignore[arg-type]


def signs(signer: TradeSigner, prices: list[float], bid: float = 0.0, ask: float = 0.0) -> list:
    return [signer.sign(tr(p), bid, ask) for p in prices]


# --- tick rule ----------------------------------------------------------------------------


def test_tick_rule_with_zero_ticks() -> None:
    s = TradeSigner()
    # 100: no previous trade -> none (0); 101: up -> +1; 101: zero tick keeps +1;
    # 100: down -> -1; 100, 100: zero ticks keep -1; 102: up -> +1
    got = signs(s, [100.0, 101.0, 101.0, 100.0, 100.0, 100.0, 102.0])
    assert got == [
        (0.0, "none"),
        (1.0, "tick"),
        (1.0, "tick"),
        (-1.0, "tick"),
        (-1.0, "tick"),
        (-1.0, "tick"),
        (1.0, "tick"),
    ]
    assert s.tick == 1.0 and s.last_price == 102.0
    assert s.counts == {"exchange": 0, "quote": 0, "tick_at_mid": 0, "tick": 6, "none": 1}


def test_zero_ticks_from_the_start_stay_unsigned() -> None:
    s = TradeSigner()
    assert signs(s, [50.0, 50.0, 50.0]) == [(0.0, "none")] * 3
    assert s.counts["none"] == 3


# --- Lee–Ready ----------------------------------------------------------------------------


def test_lee_ready_quote_rule_above_and_below_the_mid() -> None:
    s = TradeSigner()
    # quote 99/101: mid 100. 100.5 > 100 -> buy; 99.5 < 100 -> sell, whatever the ticks say
    assert s.sign(tr(100.5), 99.0, 101.0) == (1.0, "quote")
    assert s.sign(tr(99.5), 99.0, 101.0) == (-1.0, "quote")
    # 99.8 after 99.5 is an up tick, but below the mid: the quote rule wins -> sell
    assert s.sign(tr(99.8), 99.0, 101.0) == (-1.0, "quote")
    assert s.tick == 1.0  # the tick memory still moved (99.5 -> 99.8)


def test_lee_ready_at_the_mid_uses_the_tick_rule() -> None:
    s = TradeSigner()
    # at the mid with no price change yet: unsigned
    assert s.sign(tr(100.0), 99.0, 101.0) == (0.0, "none")
    s.sign(tr(99.5), 99.0, 101.0)  # down tick 100 -> 99.5 (quote rule: sell)
    # 100 at the mid 100: tick 99.5 -> 100 is up -> +1
    assert s.sign(tr(100.0), 99.0, 101.0) == (1.0, "tick_at_mid")
    # again at the mid, zero tick: keeps +1
    assert s.sign(tr(100.0), 99.0, 101.0) == (1.0, "tick_at_mid")
    # quote 100/102 (mid 101), trade at 101 after 100: up tick
    assert s.sign(tr(101.0), 100.0, 102.0) == (1.0, "tick_at_mid")
    # quote 99/101 again, trade 100 at the mid after 101: down tick -> -1
    assert s.sign(tr(100.0), 99.0, 101.0) == (-1.0, "tick_at_mid")
    assert s.counts == {"exchange": 0, "quote": 1, "tick_at_mid": 4, "tick": 0, "none": 1}


def test_half_a_quote_is_no_quote() -> None:
    s = TradeSigner()
    s.sign(tr(100.0))
    # bid 0 (no bid known): the quote rule does not apply, 101 > 100 is an up tick
    assert s.sign(tr(101.0), 0.0, 105.0) == (1.0, "tick")


# --- exchange side ------------------------------------------------------------------------


def test_the_exchange_side_wins_and_the_tick_memory_still_moves() -> None:
    s = TradeSigner()
    assert s.sign(tr(100.0, "sell"), 99.0, 101.0) == (-1.0, "exchange")
    # 101 is above the mid and an up tick, yet the venue says sell
    assert s.sign(tr(101.0, "sell"), 99.0, 101.0) == (-1.0, "exchange")
    assert s.sign(tr(99.0, "buy")) == (1.0, "exchange")
    assert s.tick == -1.0  # 101 -> 99, learned from exchange-signed trades
    # now without a side or quote: the tick rule from what the signed trades left
    assert s.sign(tr(99.0)) == (-1.0, "tick")
    assert s.counts == {"exchange": 3, "quote": 0, "tick_at_mid": 0, "tick": 1, "none": 0}
    assert sum(s.counts.values()) == 4 and tuple(s.counts) == RULES


def test_signer_pickles() -> None:
    s = TradeSigner()
    signs(s, [1.0, 2.0, 2.0])
    t = pickle.loads(pickle.dumps(s))
    assert (t.last_price, t.tick, t.counts) == (s.last_price, s.tick, s.counts)


# --- Roll ---------------------------------------------------------------------------------


def roll(prices: list[float], alpha: float = 0.01, warmup: int = 1) -> RollSpread:
    r = RollSpread(alpha=alpha, warmup=warmup)
    for p in prices:
        r.update(p)
    return r


def test_roll_on_a_pure_bounce() -> None:
    # 100, 101, 100, 101, 100: changes +1, -1, +1, -1; products of consecutive changes
    # (-1)(+1) = -1, (+1)(-1) = -1, (-1)(+1) = -1 -> cov = -1 -> S = 2 sqrt(1) = 2 (the spread)
    r = roll([100.0, 101.0, 100.0, 101.0, 100.0])
    assert r.n == 3 and r.cov == pytest.approx(-1.0)
    assert r.spread == pytest.approx(2.0)
    # in bps of 100.5: 2 / 100.5 * 1e4
    assert r.spread_bps(100.5) == pytest.approx(2.0 / 100.5 * 1e4)
    assert r.spread_bps(0.0) == 0.0


def test_roll_running_mean_with_zero_ticks() -> None:
    # 10, 12, 11, 11, 13: changes 2, -1, 0, 2; products 2*(-1) = -2, (-1)*0 = 0, 0*2 = 0
    # mean (-2 + 0 + 0) / 3 = -2/3 -> S = 2 sqrt(2/3)
    r = roll([10.0, 12.0, 11.0, 11.0, 13.0])
    assert r.cov == pytest.approx(-2.0 / 3.0)
    assert r.spread == pytest.approx(2.0 * sqrt(2.0 / 3.0))


def test_roll_ewma_after_the_running_mean() -> None:
    # alpha 0.5, products -2, 0, 0 as above: a1 = 1 -> c = -2;
    # a2 = max(.5, 1/2) -> c = -2 + .5*2 = -1; a3 = max(.5, 1/3) = .5 -> c = -1 + .5*1 = -0.5
    # -> S = 2 sqrt(.5)
    r = roll([10.0, 12.0, 11.0, 11.0, 13.0], alpha=0.5)
    assert r.cov == pytest.approx(-0.5)
    assert r.spread == pytest.approx(2.0 * sqrt(0.5))


def test_roll_is_zero_on_a_trend_and_before_two_changes() -> None:
    assert roll([100.0]).spread == 0.0
    assert roll([100.0, 101.0]).spread == 0.0  # one change, no product yet
    # 1, 2, 3, 4: changes 1, 1, 1 -> products +1 -> cov +1 >= 0 -> S = 0
    r = roll([1.0, 2.0, 3.0, 4.0])
    assert r.cov == pytest.approx(1.0) and r.spread == 0.0


def test_roll_is_zero_during_its_warmup() -> None:
    bounce = [100.0, 101.0] * 11  # 22 trades: 21 changes, 20 products, each -1
    r = roll(bounce[:-1], warmup=20)  # 19 products: still warming up
    assert r.n == 19 and r.cov == pytest.approx(-1.0) and r.spread == 0.0
    r.update(bounce[-1])  # the 20th product
    assert r.spread == pytest.approx(2.0)
    assert RollSpread().warmup == 20
