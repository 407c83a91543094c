"""The paper trader's L1 fill rules, by hand: latency, the displayed-size walk, protection,
trade-through fills of passive limits, stale quotes, fees."""

from __future__ import annotations

import pytest

from agents.paper import PaperTrader
from agents.paper_fills import Book
from config.paper import PaperConfig
from models.orders import Denial, Fill, Order
from models.records import Action, Quote, Signal, Trade

MS = 1_000_000
S = 1_000 * MS


def sig(sid: str, ts: int, action: Action = Action.BUY, horizon: int = 3_600 * S) -> Signal:
    return Signal(sid, "BTC", 0, ts, horizon, action, 0.6, True, (), (), "h")


def q(ts: int, bid: float, ask: float, size: float = 4.0) -> Quote:
    return Quote("BTC", ts, bid, ask, size, size)


def fills(events: list[Fill | Order | Denial]) -> list[tuple[float, float]]:
    return [(f.price, f.size) for f in events if isinstance(f, Fill)]


def trader(**kw: object) -> PaperTrader:
    return PaperTrader(PaperConfig.model_validate(kw))


def test_latency_fills_on_first_quote_at_or_after_arrival() -> None:
    t = trader()
    assert t.on_tick(q(0, 99.0, 101.0, 20.0)) == []  # the quote the signal sees
    (order,) = t.on_signal(sig("s1", 0), mid=100.0)
    assert isinstance(order, Order)
    # arrival = signal ts + 100 ms; size = 1000 notional / mid 100 = 10
    assert order.arrival_ts == 100 * MS and order.size == pytest.approx(10.0)
    assert order.mid == 100.0 and order.reason == "entry" and order.kind == "market"
    assert fills(t.on_tick(q(50 * MS, 99.0, 100.8, 20.0))) == []  # before arrival: no fill
    assert fills(t.on_tick(Trade("BTC", 120 * MS, 100.0, 50.0))) == []  # a trade is no quote
    out = t.on_tick(q(150 * MS, 99.5, 100.5, 20.0))
    (f,) = [e for e in out if isinstance(e, Fill)]
    # first quote at/after arrival: its ask, 100.5, not the 101 the signal saw
    assert (f.price, f.size, f.ts, f.liquidity) == (100.5, pytest.approx(10.0), 150 * MS, "taker")
    assert f.order_id == order.id and f.signal_id == "s1"
    assert f.fee == pytest.approx(100.5 * 10 * 10e-4)  # binance taker 10 bps


def test_walks_displayed_size_one_tick_per_level() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))  # tick 0.1 (the spread is the smallest increment seen)
    t.on_signal(sig("s1", 0), mid=100.0)  # size 10
    out = t.on_tick(q(200 * MS, 99.9, 100.0))  # 4 shown at the ask
    # 4 @ 100.0 (touch), 4 @ 100.1 (one tick worse), 2 @ 100.2; cap 100.0 × 1.005 = 100.5
    assert fills(out) == [
        (100.0, 4.0),
        (pytest.approx(100.1), 4.0),
        (pytest.approx(100.2), pytest.approx(2.0)),
    ]
    fees = [f.fee for f in out if isinstance(f, Fill)]
    assert fees == pytest.approx([0.4, 0.4004, 0.2004])  # price × size × 10 bps
    assert t.account.positions["BTC"].size == pytest.approx(10.0)
    # vwap (400 + 400.4 + 200.4) / 10 = 100.08
    assert t.account.positions["BTC"].avg_price == pytest.approx(100.08)


def test_two_orders_share_the_displayed_size() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    t.on_signal(sig("s2", 0), mid=100.0)
    out = t.on_tick(q(200 * MS, 99.9, 100.0))
    got = [(round(p, 6), round(s, 6)) for p, s in fills(out)]
    # the first takes 10 (levels 0-2, 2 of level 2 left); the second starts where it stopped
    assert got == [(100.0, 4), (100.1, 4), (100.2, 2), (100.2, 2), (100.3, 4), (100.4, 4)]


def test_impact_bps_replaces_the_tick() -> None:
    t = trader(impact_bps=20.0)
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    # step = 100 × 20 bps = 0.2: 4 @ 100, 4 @ 100.2, 2 @ 100.4 (cap 100.5)
    got = [(round(p, 6), round(s, 6)) for p, s in fills(t.on_tick(q(200 * MS, 99.9, 100.0)))]
    assert got == [(100.0, 4), (100.2, 4), (100.4, 2)]


def test_unknown_tick_is_one_bps_of_price() -> None:
    assert Book().step(100.0, None) == pytest.approx(0.01)
    assert Book(tick=0.5).step(100.0, None) == 0.5
    assert Book(tick=0.5).step(100.0, 3.0) == pytest.approx(0.03)


def test_protection_caps_a_partial_fill_and_cancels_the_rest() -> None:
    t = trader(protection_bps=15.0)
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    out = t.on_tick(q(200 * MS, 99.9, 100.0))
    # cap = 100.0 × (1 + 15 bps) = 100.15: levels 100.0 and 100.1 fill, 100.2 is beyond
    assert [(round(p, 6), s) for p, s in fills(out)] == [(100.0, 4.0), (100.1, 4.0)]
    (d,) = [e for e in out if isinstance(e, Denial)]
    assert d.reason == "protection" and t.account.denials == {"protection": 1}
    assert t.open_orders() == []
    assert fills(t.on_tick(q(300 * MS, 99.9, 100.0))) == []  # the rest is gone


def test_protection_is_relative_to_the_arrival_touch() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    # the fresh quote jumped: its ask 101 is beyond 100 × 1.005: nothing fills, all cancelled
    out = t.on_tick(q(200 * MS, 100.9, 101.0, 100.0))
    assert fills(out) == [] and [e.reason for e in out if isinstance(e, Denial)] == ["protection"]


def test_sell_walks_the_bid_down() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0, Action.SELL), mid=100.0)  # short 10
    got = [(round(p, 6), s) for p, s in fills(t.on_tick(q(200 * MS, 100.0, 100.1, 6.0)))]
    assert got == [(100.0, 6.0), (99.9, pytest.approx(4.0))]
    assert t.account.positions["BTC"].size == pytest.approx(-10.0)


def test_limit_taker_part_then_trade_through_fills_passive_not_touch() -> None:
    t = trader(order_type="limit", venue="coinbase")  # taker 60 bps, maker 40 bps
    t.on_tick(q(0, 99.9, 100.0))
    (order,) = t.on_signal(sig("s1", 0), mid=100.0)  # buy 10
    assert isinstance(order, Order) and order.kind == "limit"
    # at arrival the touch is ask 100.0: the limit. The fill quote shows 4 at 100.0, then
    # 100.1 is beyond the limit: 4 taker fills, 6 rest passive at 100.0
    out = t.on_tick(q(200 * MS, 99.9, 100.0))
    (taker,) = [e for e in out if isinstance(e, Fill)]
    assert (taker.price, taker.size, taker.liquidity) == (100.0, 4.0, "taker")
    assert taker.fee == pytest.approx(4 * 100.0 * 60e-4)  # 2.4
    assert fills(t.on_tick(Trade("BTC", 300 * MS, 100.0, 5.0, "sell"))) == []  # touch: no fill
    assert fills(t.on_tick(Trade("BTC", 350 * MS, 99.9, 5.0, "buy"))) == []  # buyer aggressor
    out = t.on_tick(Trade("BTC", 400 * MS, 99.9, 5.0, "sell"))  # through: 5 of 6, at 100.0
    (maker,) = [e for e in out if isinstance(e, Fill)]
    assert (maker.price, maker.size, maker.liquidity) == (100.0, 5.0, "maker")
    assert maker.fee == pytest.approx(5 * 100.0 * 40e-4)  # 2.0
    out = t.on_tick(Trade("BTC", 500 * MS, 99.8, 3.0))  # capped by the 1 left
    assert fills(out) == [(100.0, pytest.approx(1.0))]
    assert t.open_orders() == [] and t.account.positions["BTC"].size == pytest.approx(10.0)


def test_passive_rest_expires_after_max_wait() -> None:
    t = trader(order_type="limit")
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    t.on_tick(q(200 * MS, 100.0, 100.1))  # ask above the limit: all 10 rest passive
    assert fills(t.on_tick(Trade("BTC", 5 * S, 100.0, 5.0))) == []
    out = t.on_tick(Trade("BTC", 5_200 * MS, 99.0, 5.0))  # 5.1 s after arrival: expired first
    assert fills(out) == [] and [e.reason for e in out if isinstance(e, Denial)] == ["expired"]


def test_stale_quote_waits_then_fills_on_a_fresh_one() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 3 * S), mid=100.0)  # arrival 3.1 s: the book is 3.1 s old > 2 s
    assert fills(t.on_tick(Trade("BTC", 3_500 * MS, 100.0, 1.0))) == []
    # the fresh quote is the reference: 103 fills though it is 3 % above the stale ask
    out = t.on_tick(q(4 * S, 102.9, 103.0, 100.0))
    assert fills(out) == [(103.0, pytest.approx(10.0))]


def test_stale_quote_expires_without_a_fresh_one() -> None:
    t = trader()
    t.on_tick(q(0, 99.9, 100.0))
    t.on_signal(sig("s1", 3 * S), mid=100.0)  # arrival 3.1 s, expires after 8.1 s
    assert t.on_tick(Trade("BTC", 8 * S, 100.0, 1.0)) == []
    out = t.on_tick(Trade("BTC", 8_200 * MS, 100.0, 1.0))
    (d,) = out
    assert isinstance(d, Denial) and d.reason == "expired" and d.signal_id == "s1"
    assert fills(t.on_tick(q(9 * S, 99.9, 100.0))) == [] and t.account.denials == {"expired": 1}


def test_fill_ids_are_deterministic() -> None:
    def run() -> list[str]:
        t = trader()
        t.on_tick(q(0, 99.9, 100.0))
        t.on_signal(sig("s1", 0), mid=100.0)
        return [f.id for f in t.on_tick(q(200 * MS, 99.9, 100.0)) if isinstance(f, Fill)]

    a = run()
    assert a == run() and len(set(a)) == 3 and all(len(i) == 24 for i in a)


def test_each_fill_of_a_walk_reports_the_position_right_after_it() -> None:
    """Catches: position records made once the whole tick is booked (every fill of a walk
    would show the final 10, and the avg price of all three levels)."""
    from agents.paper_session import PaperSession

    class Sink:
        def __init__(self) -> None:
            self.positions: list[tuple[float, float]] = []

        def order(self, record: dict[str, object]) -> None:
            pass

        def fill(self, fill: Fill) -> None:
            pass

        def position(self, record: dict[str, object]) -> None:
            self.positions.append((float(record["size"]), float(record["avg_price"])))  # type: ignore[arg-type]

        def equity(self, ts: int, equity: float, cash: float) -> None:
            pass

    s = PaperSession(PaperConfig())
    sink = Sink()
    s.sink = sink
    s.tick(0, q(0, 99.9, 100.0))
    s.signal(Signal("s1", "BTC", 1, 0, 3_600 * S, Action.BUY, 0.6, True, (), (), "h"))
    s.tick(0, q(200 * MS, 99.9, 100.0))  # walks 4 @ 100.0, 4 @ 100.1, the rest @ 100.2
    s.finish()
    # hand: size 1000 / mid 99.95 = 10.005; 4 @ 100 -> avg 100; 8 -> (400 + 400.4) / 8 =
    # 100.05; 10.005 -> (800.4 + 2.005 x 100.2) / 10.005 = 1001.301 / 10.005
    size = 1000 / 99.95
    assert sink.positions == [
        (4.0, 100.0),
        (8.0, pytest.approx(100.05)),
        (pytest.approx(size), pytest.approx((800.4 + (size - 8) * 100.2) / size)),
    ]
