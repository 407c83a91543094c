"""The bounce-corrected reference price of trades-only data, by hand; the mid when quotes exist."""

from __future__ import annotations

import pickle

import pytest

from models.labels import Labeler, ReferencePrice
from models.records import Label, Quote, Trade
from models.trade_sign import RollSpread


def tr(ts: int, price: float, side: str | None = None) -> Trade:
    return Trade("X", ts, price, 1.0, side)  # type: ignore[arg-type]


def quick() -> ReferencePrice:
    """A reference price whose Roll estimate counts from its first product (hand-sized)."""
    return ReferencePrice(roll=RollSpread(warmup=1))


def test_trades_only_reference_is_corrected_for_the_bounce() -> None:
    ref = quick()
    got = []
    for i, p in enumerate([100.0, 101.0, 100.0, 101.0, 100.0]):
        ref.update(tr(i, p))
        got.append(ref.value)
    # trade 1 (100): no change yet: sign 0, S 0 -> 100
    # trade 2 (101): sign +1 (up tick), one change only, S 0 -> 101
    # trade 3 (100): sign -1, products: (-1)(+1) = -1 -> cov -1, S = 2 -> 100 - (-1)(2/2) = 101
    # trade 4 (101): sign +1, products -1, -1 -> cov -1, S = 2 -> 101 - 1 = 100
    # trade 5 (100): sign -1, cov -1, S = 2 -> 100 + 1 = 101
    assert got == pytest.approx([100.0, 101.0, 101.0, 100.0, 101.0])
    assert ref.last_trade == 100.0
    assert ref.signer.counts["tick"] == 4 and ref.signer.counts["none"] == 1


def test_trades_only_with_exchange_sides_uses_them() -> None:
    ref = quick()
    prices = [100.0, 101.0, 100.0, 101.0]
    sides = ["buy", "sell", "buy", "sell"]  # against the ticks, to see which sign is used
    for i, (p, s) in enumerate(zip(prices, sides, strict=True)):
        ref.update(tr(i, p, s))
    # after trade 4: products (-1)(+1), (+1)(-1) -> cov -1, S = 2; sign: sell (-1)
    # -> 101 - (-1)(2/2) = 102
    assert ref.value == pytest.approx(102.0)
    assert ref.signer.counts["exchange"] == 4


def test_quotes_give_the_mid_exactly_as_before() -> None:
    ref = ReferencePrice()
    ref.update(Quote("X", 1, 99.0, 101.0, 1.0, 1.0))
    for i, p in enumerate([100.0, 101.0, 100.0, 101.0, 100.0]):
        ref.update(tr(2 + i, p))
        assert ref.value == 100.0  # (99 + 101) / 2, whatever the bounce
    assert ref.last_trade == 100.0
    # once a quote is known the trades do not run the signer or Roll (quote path cost)
    assert ref.roll.n == 0 and sum(ref.signer.counts.values()) == 0


def test_trades_before_the_first_quote_then_the_mid() -> None:
    ref = quick()
    for i, p in enumerate([10.0, 11.0, 10.0]):
        ref.update(tr(i, p))
    # 10, 11, 10: cov (-1)(+1) = -1, S = 2; sign -1 -> 10 + 1 = 11
    assert ref.value == pytest.approx(11.0)
    ref.update(Quote("X", 5, 10.0, 10.5, 1.0, 1.0))
    assert ref.value == 10.25
    ref.update(tr(6, 12.0))
    assert ref.value == 10.25


def test_no_correction_while_roll_warms_up() -> None:
    ref = ReferencePrice()  # the default: Roll's estimate needs 20 products
    prices = [100.0, 101.0] * 11  # 22 trades, 21 changes, 20 products of -1
    for i, p in enumerate(prices[:-1]):
        ref.update(tr(i, p))
        assert ref.value == p  # S = 0 for 19 products: the raw last trade
    ref.update(tr(99, prices[-1]))  # 20th product: S = 2; 101 is an up tick: 101 - 1 = 100
    assert ref.value == pytest.approx(100.0)


def test_trades_only_labels_compare_corrected_prices() -> None:
    # horizon 10 ns, trades every 10 ns: trigger i is resolved at trade i + 2 (strictly past
    # its deadline) by the value after trade i + 1, so label i compares values i and i + 1.
    lab = Labeler(horizon_ns=10)
    lab.ref = quick()
    prices = [100.0, 101.0, 100.0, 101.0, 100.0, 101.0]
    labels = []
    for i, p in enumerate(prices):
        labels += [label for _, label in lab.resolve(10 * i)]
        lab.observe(tr(10 * i, p))
        lab.add(i, 10 * i, None)
    labels += [label for _, label in lab.resolve(10 * len(prices) + 1)]
    # values as in the first test: 100, 101, 101, 100, 101, 100 (the last trade 101 is an up
    # tick: 101 - 1); raw prices would label UP, DOWN, UP, DOWN, UP; corrected:
    # 100->101 UP, 101->101 FLAT, 101->100 DOWN, 100->101 UP, 101->100 DOWN; the last trigger
    # is resolved by the final flush with its own value: FLAT
    assert labels == [Label.UP, Label.FLAT, Label.DOWN, Label.UP, Label.DOWN, Label.FLAT]


def test_reference_price_pickles() -> None:
    ref = quick()
    for i, p in enumerate([100.0, 101.0, 100.0]):
        ref.update(tr(i, p))
    back = pickle.loads(pickle.dumps(ref))
    assert back.value == ref.value and back.roll.cov == ref.roll.cov
    assert back.signer.counts == ref.signer.counts
