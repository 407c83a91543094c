"""Passive limit orders, by hand: they join their own side of the touch at arrival, fill only
as makers on trades (through the price; with ``queue_position`` also at it, once the displayed
size ahead has traded), never on a touch or a crossing quote, and expire."""

from __future__ import annotations

import pytest

from agents.paper import PaperTrader
from config.paper import PaperConfig
from models.orders import Denial, Fill, Order
from models.records import Action, Quote, Side, Signal, Trade

MS = 1_000_000
S = 1_000 * MS


def sig(sid: str, ts: int, action: Action = Action.BUY) -> Signal:
    return Signal(sid, "BTC", 0, ts, 3_600 * S, action, 0.6, True, (), (), "h")


def q(ts: int, bid: float, ask: float, size: float = 4.0) -> Quote:
    return Quote("BTC", ts, bid, ask, size, size)


def tr(ts: int, price: float, size: float, side: Side | None = None) -> Trade:
    return Trade("BTC", ts, price, size, side)


def fills(events: list[Fill | Order | Denial]) -> list[tuple[float, float, str]]:
    return [(f.price, f.size, f.liquidity) for f in events if isinstance(f, Fill)]


def placed(action: Action = Action.BUY, **kw: object) -> PaperTrader:
    """A passive entry of 10 (1,000 / mid 100) sent at 0, arriving at 100 ms, whose reference
    quote (the latest at or before arrival) is 99.5 / 100.5 with 4 shown on each side."""
    t = PaperTrader(PaperConfig.model_validate({"order_type": "passive", **kw}))
    t.on_tick(q(0, 99.0, 101.0))
    (o,) = t.on_signal(sig("s1", 0, action), mid=100.0)
    assert isinstance(o, Order) and o.kind == "passive" and o.size == pytest.approx(10.0)
    assert t.on_tick(q(50 * MS, 99.5, 100.5)) == []
    return t


def test_joins_the_bid_and_fills_only_on_trades_through_it() -> None:
    t = placed()
    assert t.on_tick(tr(150 * MS, 99.5, 3.0, "sell")) == []  # at the price: a touch, no fill
    assert t.on_tick(q(160 * MS, 99.5, 99.6)) == []  # never takes on a quote
    assert t.on_tick(q(170 * MS, 99.0, 99.4)) == []  # a quote crossing it: not a fill either
    assert fills(t.on_tick(tr(200 * MS, 99.4, 3.0, "sell"))) == [(99.5, 3.0, "maker")]
    assert t.on_tick(tr(210 * MS, 99.3, 5.0, "buy")) == []  # an aggressor on its own side
    out = t.on_tick(tr(220 * MS, 99.3, 20.0))  # no side: capped at the 7 left, at its price
    assert fills(out) == [(99.5, pytest.approx(7.0), "maker")]
    (f,) = [e for e in out if isinstance(e, Fill)]
    assert f.fee == pytest.approx(99.5 * 7.0 * 10e-4)  # binance maker 10 bps
    assert t.open_orders() == []
    assert t.account.positions["BTC"].size == pytest.approx(10.0)
    assert t.account.positions["BTC"].avg_price == pytest.approx(99.5)


def test_sell_joins_the_ask_and_pays_the_venues_maker_fee() -> None:
    t = placed(Action.SELL, venue="binance-usdm")
    assert t.on_tick(tr(150 * MS, 100.4, 9.0, "sell")) == []  # below the ask: not through
    out = t.on_tick(tr(200 * MS, 100.6, 4.0, "buy"))
    assert fills(out) == [(100.5, 4.0, "maker")]
    (f,) = [e for e in out if isinstance(e, Fill)]
    assert f.fee == pytest.approx(100.5 * 4.0 * 2e-4)  # binance USD-M maker 2 bps


def test_queue_ahead_is_the_displayed_size_then_same_price_trades_fill() -> None:
    t = placed(queue_position=True)  # joins 99.5 behind the 4 shown
    assert t.on_tick(tr(150 * MS, 99.5, 3.0, "sell")) == []  # queue 4 -> 1
    assert t.on_tick(tr(160 * MS, 99.5, 2.0, "buy")) == []  # own-side aggressor: queue stays
    # 5 at the price: 1 clears the queue, 4 fill
    assert fills(t.on_tick(tr(170 * MS, 99.5, 5.0))) == [(99.5, 4.0, "maker")]
    assert fills(t.on_tick(tr(180 * MS, 99.5, 1.5, "sell"))) == [(99.5, 1.5, "maker")]
    assert fills(t.on_tick(tr(190 * MS, 99.4, 2.0, "sell"))) == [(99.5, 2.0, "maker")]
    # 10 - 4 - 1.5 - 2 = 2.5 left
    assert fills(t.on_tick(tr(200 * MS, 99.5, 9.0, "sell"))) == [
        (99.5, pytest.approx(2.5), "maker")
    ]
    assert t.open_orders() == []


def test_a_trade_through_clears_the_queue() -> None:
    t = placed(queue_position=True)
    assert fills(t.on_tick(tr(150 * MS, 99.4, 1.0, "sell"))) == [(99.5, 1.0, "maker")]
    # the level traded through: nothing is ahead any more
    assert fills(t.on_tick(tr(160 * MS, 99.5, 2.0, "sell"))) == [(99.5, 2.0, "maker")]


def test_without_a_fresh_quote_at_arrival_it_joins_the_next_one() -> None:
    t = PaperTrader(PaperConfig(order_type="passive", queue_position=True))
    t.on_tick(q(0, 99.0, 101.0))
    t.on_signal(sig("s1", 3 * S), mid=100.0)  # arrives at 3.1 s; the quote is 3.1 s old
    assert t.on_tick(tr(3_200 * MS, 98.0, 50.0, "sell")) == []  # not joined yet: no fill
    assert t.on_tick(q(3_500 * MS, 99.2, 99.8, 6.0)) == []  # joins 99.2 behind 6
    assert t.on_tick(tr(3_600 * MS, 99.2, 6.0, "sell")) == []  # queue 6 -> 0
    assert fills(t.on_tick(tr(3_700 * MS, 99.2, 1.0, "sell"))) == [(99.2, 1.0, "maker")]


def test_two_resting_orders_share_a_trade() -> None:
    t = placed()
    t.on_signal(sig("s2", 60 * MS), mid=100.0)  # arrives at 160 ms, also joins 99.5
    t.on_tick(q(160 * MS, 99.5, 100.5))
    assert fills(t.on_tick(tr(200 * MS, 99.0, 12.0, "sell"))) == [
        (99.5, pytest.approx(10.0), "maker"),
        (99.5, pytest.approx(2.0), "maker"),
    ]


def test_an_unfilled_passive_order_expires_after_max_wait() -> None:
    t = placed(max_wait_ms=1_000)
    t.on_tick(tr(150 * MS, 99.4, 1.0, "sell"))  # 1 of 10 fills
    assert t.on_tick(q(1_100 * MS, 99.5, 100.5)) == []  # arrival + 1 s: not yet past it
    out = t.on_tick(q(1_101 * MS, 99.5, 100.5))
    (d,) = out
    assert isinstance(d, Denial) and d.reason == "expired"
    assert t.open_orders() == [] and t.account.denials["expired"] == 1
    assert t.account.positions["BTC"].size == pytest.approx(1.0)
