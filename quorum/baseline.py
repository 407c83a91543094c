"""The hand-written baselines that quorum must beat: a River soft vote and a tick-sign count.

Deliberately plain: a few raw features per symbol, three River models with their defaults,
an uncalibrated soft vote (mean of P(up)). Labels, scoring and parsing are quorum's own
(:class:`models.labels.Labeler`, :class:`quorum.metrics.BinaryScore`, :func:`read_ticks`), so
the comparison measures the modelling, not the plumbing. Do not tune it either way.

    python -m quorum.baseline data/binance/spot/*.gz

:class:`TickSignBaseline` is the cheapest honest yardstick: P(up | the sign of the last
non-zero trade-price change) from Beta(1, 1) counts, with the same labels. Both take an
``on_scored`` hook, called with ``(symbol, seq, ts, p_up, up)`` for every scored outcome, where
``seq`` numbers a symbol's ticks from 1 exactly as quorum's pipeline does, so their outcomes can
be matched with quorum's one for one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from models.labels import Labeler
from models.records import Label, Quote, Tick, Trade
from models.trade_sign import TradeSigner
from quorum.metrics import BinaryScore
from streams.readers import ReaderError, ReaderStats, read_ticks

DEFAULT_HORIZON_S = 5.0
DEFAULT_TOLERANCE_NS = 2_000_000_000  # quorum's default reorder tolerance (config reader)

Features = dict[str, float]


class Classifier(Protocol):
    """The slice of River's classifier API the baseline uses."""

    def learn_one(self, x: Features, y: bool) -> Any: ...

    def predict_proba_one(self, x: Features) -> dict[Any, float]: ...


ModelFactory = Callable[[], Sequence[Classifier]]
OnScored = Callable[[str, int, int, float, bool], None]
"""Called per scored outcome with (symbol, seq, ts of the trigger, predicted P(up), up)."""


def default_models() -> list[Classifier]:
    """The three River models, defaults only: scaled logistic regression, Hoeffding tree, NB."""
    from river import linear_model, naive_bayes, preprocessing, tree

    return [
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        tree.HoeffdingTreeClassifier(),
        preprocessing.StandardScaler() | naive_bayes.GaussianNB(),  # type: ignore[no-untyped-call]
    ]


class SimpleFeatures:
    """One symbol's raw features, updated on every tick, read on trigger ticks."""

    __slots__ = ("ask", "ask_size", "bid", "bid_size", "last_trade", "ref", "ret_1", "signed_size")

    def __init__(self) -> None:
        self.bid = 0.0
        self.ask = 0.0
        self.bid_size = 0.0
        self.ask_size = 0.0
        self.last_trade = 0.0
        self.signed_size = 0.0
        self.ref = 0.0  # reference price: mid when quoted, else last trade (like the labels)
        self.ret_1 = 0.0

    def update(self, tick: Tick) -> None:
        if isinstance(tick, Quote):
            self.bid, self.ask = tick.bid, tick.ask
            self.bid_size, self.ask_size = tick.bid_size, tick.ask_size
        else:
            self.last_trade = tick.price
            side = tick.side
            self.signed_size = tick.size if side == "buy" else -tick.size if side == "sell" else 0.0
        mid = (self.bid + self.ask) * 0.5
        ref = mid if mid > 0.0 else self.last_trade
        if ref != self.ref:  # the return of the last price change (a trade rarely moves the mid)
            self.ret_1 = ref / self.ref - 1.0 if self.ref > 0.0 else 0.0
            self.ref = ref

    def features(self) -> Features:
        mid = (self.bid + self.ask) * 0.5
        depth = self.bid_size + self.ask_size
        return {
            "mid": mid,
            "spread": self.ask - self.bid,
            "imbalance": (self.bid_size - self.ask_size) / depth if depth > 0.0 else 0.0,
            "last_trade": self.last_trade,
            "ret_1": self.ret_1,
            "signed_size": self.signed_size,
        }


@dataclass
class SymbolState:
    features: SimpleFeatures
    labeler: Labeler
    models: Sequence[Classifier]
    seq: int = 0
    learned: int = 0
    flats: int = 0


def _p_up(model: Classifier, x: Features) -> float:
    proba = model.predict_proba_one(x)
    if not proba:
        return 0.5
    return float(proba.get(True, 0.0))


class Baseline:
    """Prequential soft vote per symbol: predict on a trade, learn once its label exists.

    Feed ticks in event-time order with :meth:`process`; scores accumulate in ``score``.
    """

    def __init__(
        self,
        horizon_s: float = DEFAULT_HORIZON_S,
        dead_band_bps: float = 0.0,
        models: ModelFactory = default_models,
        on_scored: OnScored | None = None,
    ) -> None:
        self.horizon_ns = round(horizon_s * 1e9)
        self.dead_band_bps = dead_band_bps
        self.models = models
        self.on_scored = on_scored
        self.score = BinaryScore()
        self.symbols: dict[str, SymbolState] = {}
        self.events = 0
        self.trades = 0

    def _state(self, symbol: str) -> SymbolState:
        st = self.symbols.get(symbol)
        if st is None:
            st = SymbolState(
                SimpleFeatures(), Labeler(self.horizon_ns, self.dead_band_bps), self.models()
            )
            self.symbols[symbol] = st
        return st

    def process(self, tick: Tick) -> float | None:
        """Apply one tick; return the ensemble's P(up) for a trade (a trigger), else None."""
        self.events += 1
        st = self._state(tick.symbol)
        st.seq += 1
        # resolve before observing: the reference price is still the one at the deadline
        for pending, label in st.labeler.resolve(tick.ts):
            if label is Label.FLAT:
                st.flats += 1
                continue
            x, p = pending.payload
            up = label is Label.UP
            self.score.update(p, up)
            if self.on_scored is not None:
                self.on_scored(tick.symbol, pending.seq, pending.deadline - self.horizon_ns, p, up)
            for m in st.models:
                m.learn_one(x, up)
            st.learned += 1
        st.labeler.observe(tick)
        st.features.update(tick)
        if not isinstance(tick, Trade):
            return None
        self.trades += 1
        x = st.features.features()
        models = st.models
        p_up = sum(_p_up(m, x) for m in models) / len(models) if st.learned else 0.5
        st.labeler.add(st.seq, tick.ts, (x, p_up))
        return p_up


@dataclass
class TickSignState:
    labeler: Labeler
    # the tick rule (the sign of the last non-zero trade-price change; 0 until the price has
    # moved), the same one the stages sign trades with
    rule: TradeSigner = field(default_factory=TradeSigner)
    # per cell (+1, -1, 0): [ups, downs] observed, before the Beta(1, 1) prior is added
    counts: dict[int, list[int]] = field(default_factory=lambda: {1: [0, 0], -1: [0, 0], 0: [0, 0]})
    seq: int = 0
    learned: int = 0
    flats: int = 0


class TickSignBaseline:
    """Prequential P(up | sign of the last non-zero price change of the symbol's trades).

    Three cells per symbol: +1 (the last change was up), −1 (down), 0 (no change seen yet).
    Each holds Beta(1, 1) prior counts, so a cell's P(up) = (ups + 1) / (ups + downs + 2).
    Every trade is a trigger: its price updates the sign first (it is known at the trigger),
    then the cell's P(up) is predicted and held; once the label resolves (quorum's
    :class:`~models.labels.Labeler`: same reference price, horizon and dead band; flats neither
    learned nor scored) it is scored and counted in the cell it was predicted from. Quotes only
    move the reference price. The table (:meth:`table`) is the whole model.
    """

    def __init__(
        self,
        horizon_s: float = DEFAULT_HORIZON_S,
        dead_band_bps: float = 0.0,
        on_scored: OnScored | None = None,
    ) -> None:
        self.horizon_ns = round(horizon_s * 1e9)
        self.dead_band_bps = dead_band_bps
        self.on_scored = on_scored
        self.score = BinaryScore()
        self.symbols: dict[str, TickSignState] = {}
        self.events = 0
        self.trades = 0

    def _state(self, symbol: str) -> TickSignState:
        st = self.symbols.get(symbol)
        if st is None:
            st = TickSignState(Labeler(self.horizon_ns, self.dead_band_bps))
            self.symbols[symbol] = st
        return st

    @staticmethod
    def p_up(counts: list[int]) -> float:
        ups, downs = counts
        return (ups + 1.0) / (ups + downs + 2.0)

    def process(self, tick: Tick) -> float | None:
        """Apply one tick; return P(up) for a trade (a trigger), else None."""
        self.events += 1
        st = self._state(tick.symbol)
        st.seq += 1
        for pending, label in st.labeler.resolve(tick.ts):
            if label is Label.FLAT:
                st.flats += 1
                continue
            cell, p = pending.payload
            up = label is Label.UP
            self.score.update(p, up)
            st.counts[cell][0 if up else 1] += 1
            st.learned += 1
            if self.on_scored is not None:
                self.on_scored(tick.symbol, pending.seq, pending.deadline - self.horizon_ns, p, up)
        st.labeler.observe(tick)
        if not isinstance(tick, Trade):
            return None
        self.trades += 1
        cell = int(st.rule.observe(tick.price))
        p = self.p_up(st.counts[cell])
        st.labeler.add(st.seq, tick.ts, (cell, p))
        return p

    def table(self) -> dict[str, dict[int, tuple[int, int, float]]]:
        """Per symbol and cell: (ups, downs, P(up) now)."""
        return {
            sym: {c: (u, d, self.p_up([u, d])) for c, (u, d) in st.counts.items()}
            for sym, st in sorted(self.symbols.items())
        }


@dataclass
class BaselineResult:
    events: int
    trades: int
    elapsed_s: float
    events_per_s: float | None
    score: dict[str, Any]
    flats: int = 0
    unresolved_at_end: int = 0
    learned: dict[str, int] = field(default_factory=dict)


def run_baseline(
    paths: Iterable[Path | str],
    *,
    horizon_s: float = DEFAULT_HORIZON_S,
    dead_band_bps: float = 0.0,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    models: ModelFactory = default_models,
) -> BaselineResult:
    """Read ``paths`` with quorum's reader (same parsing cost) and run the baseline over them."""
    base = Baseline(horizon_s, dead_band_bps, models)
    stats = ReaderStats()
    t0 = time.perf_counter()
    for tick in read_ticks([Path(p) for p in paths], tolerance_ns=tolerance_ns, stats=stats):
        base.process(tick)
    elapsed = time.perf_counter() - t0
    return BaselineResult(
        events=stats.ticks,
        trades=base.trades,
        elapsed_s=round(elapsed, 3),
        events_per_s=round(stats.ticks / elapsed, 1) if elapsed > 0 else None,
        score=base.score.as_dict(),
        flats=sum(s.flats for s in base.symbols.values()),
        unresolved_at_end=sum(len(s.labeler.pending) for s in base.symbols.values()),
        learned={sym: s.learned for sym, s in sorted(base.symbols.items())},
    )


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m quorum.baseline", description="Run the River baseline."
    )
    ap.add_argument("paths", nargs="+", type=Path, help="tick files (Binance raw, CSV, JSONL; gz)")
    ap.add_argument("--horizon", type=float, default=DEFAULT_HORIZON_S, help="label horizon, s")
    args = ap.parse_args(argv)
    try:
        r = run_baseline(args.paths, horizon_s=args.horizon)
    except ReaderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = r.score
    print("River baseline (LR + Hoeffding tree + GaussianNB, uncalibrated mean)")
    print(f"  inputs      {', '.join(str(p) for p in args.paths)}")
    print(f"  events      {r.events:,} ({r.trades:,} trades)")
    print(f"  speed       {r.elapsed_s:.2f} s, {r.events_per_s or 0:,.0f} events/s")
    print(
        f"  scored      {s['n_scored']:,} up/down outcomes ({r.flats:,} flat, "
        f"{r.unresolved_at_end:,} unresolved at end)"
    )
    print(f"  accuracy    {_fmt(s['accuracy'])}")
    print(f"  log-loss    {_fmt(s['log_loss'])}  (a coin: 0.6931)")
    print(f"  brier       {_fmt(s['brier'])}  (a coin: 0.2500)")
    print(f"  learned     {', '.join(f'{k} {v:,}' for k, v in r.learned.items())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
