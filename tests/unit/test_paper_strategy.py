"""Signals → orders: HOLD, duplicates, horizon and opposite-signal exits, long-only, ids,
pickled state, and the paper config file."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest

from agents.paper import PaperTrader
from config.paper import PaperConfig, PaperConfigError, load_paper_config
from models.orders import Denial, Fill, Order
from models.records import Action, Quote, Signal, Tick, Trade

MS = 1_000_000
S = 1_000 * MS


def sig(sid: str, ts: int, action: Action = Action.BUY, horizon: int = 3_600 * S) -> Signal:
    return Signal(sid, "BTC", 0, ts, horizon, action, 0.6, True, (), (), "h")


def q(ts: int, bid: float = 99.9, ask: float = 100.0, size: float = 1_000.0) -> Quote:
    return Quote("BTC", ts, bid, ask, size, size)


def trader(**kw: object) -> PaperTrader:
    return PaperTrader(PaperConfig.model_validate(kw))


def fills(events: list[Fill | Order | Denial]) -> list[tuple[str, float, float]]:
    return [(f.side, f.price, f.size) for f in events if isinstance(f, Fill)]


def test_hold_does_nothing() -> None:
    t = trader()
    t.on_tick(q(0))
    assert t.on_signal(sig("s1", 0, Action.HOLD), mid=100.0) == []
    assert t.open_orders() == [] and t.account.n_orders == 0 and t.account.denials == {}


def test_duplicate_signals_never_trade_twice() -> None:
    t = trader()
    t.on_tick(q(0))
    assert len(t.on_signal(sig("s1", 0), mid=100.0)) == 1
    assert t.on_signal(sig("s1", 0), mid=100.0) == []
    assert fills(t.on_tick(q(200 * MS))) == [("buy", 100.0, 10.0)]
    assert t.on_signal(sig("s1", 0), mid=100.0) == []  # also once filled
    restored = pickle.loads(pickle.dumps(t))  # and after a restore from the state
    assert restored.on_signal(sig("s1", 0), mid=100.0) == []
    assert t.account.n_orders == 1 and t.account.positions["BTC"].size == 10.0


def test_order_id_is_deterministic() -> None:
    (o,) = trader().on_signal(sig("s1", 0), mid=100.0)
    assert isinstance(o, Order)
    assert o.id == hashlib.sha256(b"s1|entry|0").hexdigest()[:24]


def test_horizon_exit_closes_the_lot() -> None:
    t = trader()
    t.on_tick(q(0))
    t.on_signal(sig("s1", 0, horizon=1 * S), mid=100.0)
    t.on_tick(q(200 * MS))  # long 10 @ 100
    assert t.on_tick(Trade("BTC", 999 * MS, 100.0, 1.0)) == []  # not yet
    (x,) = t.on_tick(q(1 * S, 100.9, 101.0))  # signal ts + horizon reached
    assert isinstance(x, Order)
    assert (x.reason, x.signal_id, x.side, x.size, x.ts) == ("exit", "s1", "sell", 10.0, 1 * S)
    assert x.id == hashlib.sha256(b"s1|exit|0").hexdigest()[:24] and x.mid == 100.95
    assert fills(t.on_tick(q(1_200 * MS, 100.9, 101.0))) == [("sell", 100.9, 10.0)]
    pos = t.account.positions["BTC"]
    assert pos.size == 0.0 and pos.realised_pnl == pytest.approx(9.0)  # 10 × 0.9
    (rt,) = t.account.round_trips
    # fees 10 bps: 1.0 on the entry + 1.009 on the exit
    assert rt.pnl == pytest.approx(9.0 - 2.009)


def test_horizon_cancels_an_unfilled_entry() -> None:
    t = trader()
    t.on_signal(sig("s1", 0, horizon=1 * S), mid=100.0)  # no quote ever comes
    (d,) = t.on_tick(Trade("BTC", 1 * S, 100.0, 1.0))  # nothing filled: no exit order
    assert isinstance(d, Denial) and (d.reason, d.signal_id, d.ts) == ("horizon", "s1", 1 * S)
    assert t.open_orders() == [] and t.account.denials == {"horizon": 1}


def test_opposite_signal_closes_and_reverses() -> None:
    t = trader(exit="opposite")
    t.on_tick(q(0))
    t.on_signal(sig("s1", 0, horizon=1 * S), mid=100.0)
    t.on_tick(q(200 * MS))  # long 10
    assert t.on_tick(q(5 * S)) == []  # no horizon exit in this mode
    assert t.on_signal(sig("s2", 6 * S), mid=100.0) == [
        o for o in t.open_orders() if o.signal_id == "s2"
    ]  # a same-side signal adds
    t.on_tick(q(6_200 * MS))  # long 20
    exit_, entry = t.on_signal(sig("s3", 7 * S, Action.SELL), mid=100.0)
    assert isinstance(exit_, Order) and isinstance(entry, Order)
    assert (exit_.reason, exit_.side, exit_.size, exit_.signal_id) == ("exit", "sell", 20.0, "s3")
    assert (entry.reason, entry.side, entry.size) == ("entry", "sell", 10.0)
    t.on_tick(q(7_200 * MS))
    assert t.account.positions["BTC"].size == pytest.approx(-10.0)


def test_long_only_never_opens_a_short() -> None:
    t = trader(mode="long_only")
    assert t.on_signal(sig("s1", 0, Action.SELL), mid=100.0) == []
    t = trader(mode="long_only", exit="opposite")
    t.on_tick(q(0))
    t.on_signal(sig("s1", 0), mid=100.0)
    t.on_tick(q(200 * MS))
    (x,) = t.on_signal(sig("s2", 1 * S, Action.SELL), mid=100.0)  # closes, opens nothing
    assert isinstance(x, Order) and (x.reason, x.size) == ("exit", 10.0)
    t.on_tick(q(1_200 * MS))
    assert t.account.positions["BTC"].size == 0.0


def test_pickled_state_continues_identically() -> None:
    ticks: list[Tick] = [q(200 * MS), q(1 * S, 100.4, 100.5), Trade("BTC", 2 * S, 99.0, 5.0)]
    ticks += [q(3 * S, 99.4, 99.5), q(4 * S)]
    t = trader(order_type="limit")
    t.on_tick(q(0))
    t.on_signal(sig("s1", 0, horizon=2_500 * MS), mid=100.0)
    t.on_signal(sig("s2", 100 * MS, Action.SELL, horizon=3 * S), mid=100.0)
    copy = pickle.loads(pickle.dumps(t))
    a = [t.on_tick(x) for x in ticks]
    b = [copy.on_tick(x) for x in ticks]
    assert a == b and any(isinstance(e, Fill) for es in a for e in es)
    assert t.account == copy.account and t.equity() == copy.equity()


def test_conservative_marks() -> None:
    t = trader()
    t.on_tick(q(0, 99.0, 101.0))
    t.on_signal(sig("s1", 0), mid=100.0)
    t.on_tick(q(200 * MS, 99.0, 101.0))  # long 1000/100 = 10 @ 101, fee 1.01
    assert t.marks() == {"BTC": 100.0} and t.marks(conservative=True) == {"BTC": 99.0}
    cash = 100_000.0 - 1_010.0 - 1.01
    assert t.equity() == pytest.approx(cash + 1_000.0)
    assert t.equity(conservative=True) == pytest.approx(cash + 990.0)


def test_load_paper_config(tmp_path: Path) -> None:
    assert load_paper_config(None) == PaperConfig()
    cfg = PaperConfig()
    assert (cfg.taker_bps, cfg.maker_bps) == (10.0, 10.0)
    assert PaperConfig(venue="coinbase").fees_bps["coinbase"] == (60.0, 40.0)
    p = tmp_path / "paper.yaml"
    p.write_text("paper:\n  latency_ms: 250\n  exit: opposite\n")
    assert load_paper_config(p) == PaperConfig(latency_ms=250.0, exit="opposite")
    p.write_text("latency_ms: 5\nbogus: 1\n")
    with pytest.raises(PaperConfigError, match=r"paper\.yaml.*\n  bogus"):
        load_paper_config(p)
    p.write_text("venue: kraken\n")
    with pytest.raises(PaperConfigError, match="kraken"):
        load_paper_config(p)
    with pytest.raises(PaperConfigError, match="no such config file"):
        load_paper_config(tmp_path / "missing.yaml")
    p.write_text("- 1\n")
    with pytest.raises(PaperConfigError, match="mapping"):
        load_paper_config(p)


def test_exit_works_past_protection_and_never_expires() -> None:
    t = trader(order_type="limit")  # entries are limits; exits are always market orders
    t.on_tick(q(0))
    t.on_signal(sig("s1", 0, horizon=1 * S), mid=100.0)
    t.on_tick(q(200 * MS, 99.9, 100.0))  # long 10 (limit 100.0, 1000 shown)
    (x,) = t.on_tick(Trade("BTC", 1 * S, 100.0, 1.0))
    assert isinstance(x, Order) and x.kind == "market" and x.reason == "exit"
    # at arrival (1.1 s) the touch is the 0.2 s quote's bid 99.9: protection 99.9 × 0.995 =
    # 99.40; the bid has fallen to 95: nothing fills, nothing is cancelled, nothing expires
    assert t.on_tick(q(11 * S, 95.0, 95.1, 1.0)) == []
    # the next quote is the new reference: 95 × 0.995 = 94.525 caps a walk of 1 shown per
    # 0.1 tick: 95.0, 94.9, 94.8, 94.7, 94.6 (5 of 10); the other 5 keep working
    out = t.on_tick(q(12 * S, 95.0, 95.1, 1.0))
    got = [(round(p, 6), s) for _, p, s in fills(out)]
    assert got == [(95.0, 1.0), (94.9, 1.0), (94.8, 1.0), (94.7, 1.0), (94.6, 1.0)]
    assert [e for e in out if isinstance(e, Denial)] == []
    out = t.on_tick(q(13 * S, 94.0, 94.1, 100.0))
    assert fills(out) == [("sell", 94.0, pytest.approx(5.0))]
    assert t.account.positions["BTC"].size == pytest.approx(0.0, abs=1e-9)


def test_opposite_signal_cancels_pending_entries_without_an_exit() -> None:
    t = trader(exit="opposite")
    (first,) = t.on_signal(sig("s1", 0), mid=100.0)  # pending: no quote yet
    cancelled, entry = t.on_signal(sig("s2", 10 * MS, Action.SELL), mid=100.0)
    assert isinstance(cancelled, Denial) and cancelled.reason == "opposite"
    assert (cancelled.order_id, cancelled.ts) == (first.id, 10 * MS)
    assert isinstance(entry, Order) and entry.reason == "entry" and entry.size == 10.0
    assert [o.signal_id for o in t.open_orders()] == ["s2"]


def test_the_bundled_passive_example_loads() -> None:
    """Catches the example config drifting from PaperConfig's fields."""
    cfg = load_paper_config(Path(__file__).parents[2] / "config" / "paper-passive.yaml")
    assert (cfg.order_type, cfg.queue_position) == ("passive", True)
    model = cfg.latency_by_venue[cfg.venue]
    assert (model.dist, model.median_ms, model.sigma, model.max_ms) == ("lognormal", 80, 0.6, 2000)
