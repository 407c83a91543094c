"""Hand-made ticks for the feature tests: one symbol, times in seconds from a base, and the
extractor driven as a stage drives it (the reference price first)."""

from __future__ import annotations

import pytest

from agents.features import Extractor
from models.labels import ReferencePrice
from models.records import Quote, Tick, Trade
from tests.conftest import S

B = 1_700_000_000 * S  # base time of every stream
SYM = "X"
REL = 1e-12


def approx(x: float) -> object:
    return pytest.approx(x, rel=REL, abs=1e-12)


def at(seconds: float) -> int:
    return B + round(seconds * S)


def run(extractor: Extractor, ticks: list[Tick]) -> Extractor:
    """Feed ``ticks`` as a stage does: the reference price is updated first, then the extractor."""
    ref = ReferencePrice()
    for t in ticks:
        ref.update(t)
        extractor.update(t, ref.value)
    return extractor


def q(s: float, bid: float, ask: float, bid_size: float = 1.0, ask_size: float = 1.0) -> Quote:
    return Quote(SYM, at(s), bid, ask, bid_size, ask_size)


def tr(s: float, price: float, size: float = 1.0, side: str | None = None) -> Trade:
    return Trade(SYM, at(s), price, size, side)  # type: ignore[arg-type]
