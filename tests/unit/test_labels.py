"""Delayed labels: right direction, exactly once, never before the horizon has passed."""

from __future__ import annotations

import dataclasses

from agents.pipeline import Pipeline
from config.settings import load_config
from models.labels import Labeler, label_of
from streams.records import Label, Quote, Tick, Trade
from tests.conftest import S, handmade_ticks


def test_label_of_with_and_without_dead_band() -> None:
    assert label_of(100.0, 100.01, 0.0) is Label.UP
    assert label_of(100.0, 99.99, 0.0) is Label.DOWN
    assert label_of(100.0, 100.0, 0.0) is Label.FLAT
    assert label_of(100.0, 100.01, 2.0) is Label.FLAT  # 1 bp inside a 2 bp band
    assert label_of(100.0, 100.03, 2.0) is Label.UP


def test_labeler_waits_past_the_deadline_and_labels_once() -> None:
    lab = Labeler(horizon_ns=5 * S)
    q0 = Quote("A", 10 * S, 99.0, 101.0, 1, 1)
    assert lab.resolve(q0.ts) == []
    lab.observe(q0)
    lab.add(1, q0.ts, "x")
    lab.observe(Quote("A", 15 * S, 100.0, 102.0, 1, 1))  # exactly at the deadline: counts
    assert lab.resolve(15 * S) == []  # not yet: more ticks stamped 15 s may follow
    resolved = lab.resolve(15 * S + 1)
    assert [(p.seq, p.payload, lbl) for p, lbl in resolved] == [(1, "x", Label.UP)]
    assert lab.resolve(100 * S) == []  # exactly once


def test_reference_price_is_last_trade_until_a_quote_is_known() -> None:
    lab = Labeler(horizon_ns=S)
    lab.observe(Trade("A", S, 50.0, 1.0))
    lab.add(1, S, None)
    lab.observe(Trade("A", S + 10, 49.0, 1.0))
    ((_, label),) = lab.resolve(3 * S)
    assert label is Label.DOWN
    lab.observe(Quote("A", 3 * S, 60.0, 62.0, 1, 1))
    assert lab.ref.value == 61.0


def test_bounded_pending_drops_oldest() -> None:
    lab = Labeler(horizon_ns=S, max_pending=3)
    lab.observe(Trade("A", 1, 1.0, 1.0))
    for i in range(5):
        lab.add(i, 1 + i, None)
    assert [p.seq for p in lab.pending] == [2, 3, 4]
    assert lab.dropped == 2


def _predictions(ticks: list[Tick]) -> dict[int, tuple[float, tuple[float | None, ...]]]:
    cfg = load_config().with_overrides(horizon_s=1.0)
    cfg = cfg.model_copy(
        update={"stages": tuple(s.model_copy(update={"warmup": 5}) for s in cfg.stages)}
    )
    pipe = Pipeline(cfg)
    out: dict[int, tuple[float, tuple[float | None, ...]]] = {}
    for t in ticks:
        d = pipe.process(t)
        if d is not None:
            out[t.ts] = (d.signal.p_up, tuple(sv.p_up for sv in d.signal.stages))
    return out


def test_no_lookahead_changing_the_future_leaves_past_predictions_unchanged() -> None:
    ticks = handmade_ticks(600)
    cut = ticks[700].ts
    base = _predictions(ticks)
    future = [
        dataclasses.replace(t, price=t.price * 1.7, size=9.0)
        if isinstance(t, Trade) and t.ts > cut
        else dataclasses.replace(t, bid=t.bid * 0.5, ask=t.ask * 2.0)
        if isinstance(t, Quote) and t.ts > cut
        else t
        for t in ticks
    ]
    changed = _predictions(future)
    past = {ts: v for ts, v in base.items() if ts <= cut}
    assert past, "some predictions precede the cut"
    assert any(p is not None for _, stages in past.values() for p in stages), "stages had voted"
    assert {ts: v for ts, v in changed.items() if ts <= cut} == past
    assert {ts: v for ts, v in changed.items() if ts > cut} != {
        ts: v for ts, v in base.items() if ts > cut
    }, "the future did change, so the test has teeth"
