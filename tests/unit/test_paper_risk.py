"""Each risk control of the paper trader denies with its reason, and every denial is counted."""

from __future__ import annotations

import pytest

from agents.paper import PaperTrader
from agents.paper_account import NS_PER_DAY
from config.paper import PaperConfig
from models.orders import Denial, Fill, Order
from models.records import Action, Quote, Signal

MS = 1_000_000
S = 1_000 * MS


def sig(sid: str, ts: int, action: Action = Action.BUY, horizon: int = 3_600 * S) -> Signal:
    return Signal(sid, "BTC", 0, ts, horizon, action, 0.6, True, (), (), "h")


def q(ts: int, bid: float, ask: float, size: float = 1_000.0) -> Quote:
    return Quote("BTC", ts, bid, ask, size, size)


def trader(**kw: object) -> PaperTrader:
    return PaperTrader(PaperConfig.model_validate(kw))


def reasons(events: list[Order | Denial] | list[Fill | Order | Denial]) -> list[str]:
    return [e.reason for e in events]


def test_max_order_notional_denies() -> None:
    t = trader(notional_per_signal=2_000.0, max_order_notional=1_500.0)
    (d,) = t.on_signal(sig("s1", 0), mid=100.0)
    assert isinstance(d, Denial) and d.reason == "max_order_notional" and d.signal_id == "s1"
    assert t.account.denials == {"max_order_notional": 1} and t.open_orders() == []


def test_max_position_notional_clips_then_denies() -> None:
    t = trader(max_position_notional=2_500.0)
    sizes = []
    for i in range(3):
        (o,) = t.on_signal(sig(f"s{i}", i), mid=100.0)
        assert isinstance(o, Order)
        sizes.append(o.size)
    # 10 + 10 units at 100 = 2000; the third is clipped to the 500 left: 5 units
    assert sizes == pytest.approx([10.0, 10.0, 5.0])
    (d,) = t.on_signal(sig("s3", 3), mid=100.0)
    assert isinstance(d, Denial) and d.reason == "max_position_notional"
    # the opposite direction has room (-25 units to go from +25 projected: 50 units)
    (o,) = t.on_signal(sig("s4", 4, Action.SELL), mid=100.0)
    assert isinstance(o, Order) and o.size == pytest.approx(10.0)
    assert t.account.denials == {"max_position_notional": 1}


def test_daily_loss_limit_makes_the_day_reduce_only() -> None:
    day2 = 2 * NS_PER_DAY
    t = trader(daily_loss_limit=100.0)
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0, horizon=day2), mid=100.0)  # buy 10
    out = t.on_tick(q(200 * MS, 99.9, 100.0))
    assert [(f.price, f.size) for f in out if isinstance(f, Fill)] == [(100.0, 10.0)]
    assert not t.reduce_only
    # mid 79.95: equity 100000 - 1000 - 1 (fee) + 10 × 79.95 = 99798.5: down 201.5 > 100
    t.on_tick(q(1 * S, 79.9, 80.0))
    assert t.account.day_pnl == pytest.approx(-201.5) and t.reduce_only
    (d,) = t.on_signal(sig("s2", 2 * S, horizon=day2), mid=79.95)
    assert isinstance(d, Denial) and d.reason == "daily_loss_limit"
    (o,) = t.on_signal(sig("s3", 3 * S, Action.SELL, horizon=day2), mid=79.95)  # reduces
    assert isinstance(o, Order) and o.side == "sell"
    t.on_tick(q(NS_PER_DAY + 1, 79.9, 80.0))  # a new UTC day: trading again
    assert not t.reduce_only
    (o,) = t.on_signal(sig("s4", NS_PER_DAY + 2, horizon=day2), mid=79.95)
    assert isinstance(o, Order)
    # s3 saw no quote within max_wait_ms of its arrival: it expired at the day's first tick
    assert t.account.denials == {"daily_loss_limit": 1, "expired": 1}


def test_max_orders_per_minute_denies() -> None:
    t = trader(max_orders_per_minute=2)
    assert reasons(t.on_signal(sig("s1", 0), mid=100.0)) == ["entry"]
    assert reasons(t.on_signal(sig("s2", 10 * S), mid=100.0)) == ["entry"]
    assert reasons(t.on_signal(sig("s3", 20 * S), mid=100.0)) == ["max_orders_per_minute"]
    # 60 s after the first, it has left the window
    assert reasons(t.on_signal(sig("s4", 60 * S), mid=100.0)) == ["entry"]
    assert t.account.denials == {"max_orders_per_minute": 1}


def test_no_price_denies() -> None:
    t = trader()
    assert reasons(t.on_signal(sig("s1", 0), mid=None)) == ["no_price"]
    t.on_tick(q(1, 99.0, 101.0))  # now the book's mid sizes it: 1000 / 100
    (o,) = t.on_signal(sig("s2", 2), mid=None)
    assert isinstance(o, Order) and o.size == pytest.approx(10.0) and o.mid is None


def test_halt_denies_resume_allows_and_flatten_closes_while_halted() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    t.on_tick(q(200 * MS, 99.9, 100.0))  # long 10
    t.on_signal(sig("s2", 300 * MS), mid=100.0)  # an open order, cancelled by flatten
    t.halt()
    assert t.halted
    assert reasons(t.on_signal(sig("s3", 400 * MS), mid=100.0)) == ["halted"]
    pending = t.open_orders()
    cancelled, f = t.flatten(500 * MS)
    assert isinstance(cancelled, Denial) and isinstance(f, Order)
    assert (cancelled.order_id, cancelled.reason) == (pending[0].id, "flatten")
    assert (f.reason, f.side, f.size, f.kind) == ("flatten", "sell", 10.0, "market")
    assert t.open_orders() == [f]
    out = t.on_tick(q(700 * MS, 99.9, 100.0))
    assert [(e.price, e.size) for e in out if isinstance(e, Fill)] == [(99.9, 10.0)]
    assert t.account.positions["BTC"].size == 0.0 and t.open_orders() == []
    t.resume()
    assert not t.halted and reasons(t.on_signal(sig("s4", 1 * S), mid=100.0)) == ["entry"]
    assert t.account.denials == {"halted": 1, "flatten": 1}


def test_horizon_exit_is_denied_while_halted() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0, horizon=1 * S), mid=100.0)
    t.on_tick(q(200 * MS, 99.9, 100.0))
    t.halt()
    out = t.on_tick(q(1 * S, 99.9, 100.0))
    assert reasons(out) == ["halted"] and out[0].signal_id == "s1"
    assert t.account.positions["BTC"].size == 10.0  # kept: flatten closes it
    assert reasons(t.flatten(2 * S)) == ["flatten"]
