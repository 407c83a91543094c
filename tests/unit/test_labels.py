"""Delayed labels: right direction, exactly once, never before the horizon has passed."""

from __future__ import annotations

import dataclasses

from agents.features import EXTRACTORS
from agents.pipeline import Pipeline
from agents.stage import Stage
from config.settings import load_config
from models.labels import Labeler, ReferencePrice, label_of
from models.records import Label, Quote, Tick, Trade
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
            # keyed by the signal's own event time, not by the tick that produced it
            out[d.signal.ts] = (d.signal.p_up, tuple(sv.p_up for sv in d.signal.stages))
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


# --- the label reads the last tick at or before t + horizon, through the real wiring ---------

H = 1 * S  # horizon of these tests
EPS = S // 1000  # 1 ms
T0 = 1_700_000_000 * S


def _one_stage_pipeline(horizon_s: float = 1.0) -> Pipeline:
    cfg = load_config().with_overrides(horizon_s=horizon_s)
    stages = tuple(s.model_copy(update={"warmup": 0}) for s in cfg.stages)
    return Pipeline(cfg.model_copy(update={"stages": stages}))


def test_label_uses_the_last_trade_at_or_before_the_deadline_never_the_first_after() -> None:
    # trigger at t = 100; 99 just before t + h (down), 101 exactly at t + h (up: the label),
    # 98 just after it (down). Any other reading of "the price at t + h" gives DOWN.
    ticks = [
        Trade("A", T0, 100.0, 1.0, "buy"),
        Trade("A", T0 + H - EPS, 99.0, 1.0, "sell"),
        Trade("A", T0 + H, 101.0, 1.0, "buy"),
        Trade("A", T0 + H + EPS, 98.0, 1.0, "sell"),
    ]
    pipe = _one_stage_pipeline()
    decisions = [pipe.process(t) for t in ticks]
    assert all(d is not None and d.scored == () for d in decisions[:3]), "nothing due before"
    last = decisions[3]
    assert last is not None
    assert [(sc.seq, sc.ts, sc.up) for sc in last.scored] == [(1, T0, True)]
    # and every stage reported exactly that outcome with its vote on the tick after t + h
    for stage in pipe.stages:
        assert stage.state("A").learned == 1
    assert [p.seq for p in pipe.labels("A").pending] == [2, 3, 4]  # shared by the stages


def test_label_uses_the_mid_at_or_before_the_deadline_when_quotes_are_known() -> None:
    def quote(ts: int, mid: float) -> Quote:
        return Quote("A", ts, mid - 0.5, mid + 0.5, 1.0, 1.0)

    ticks: list[Tick] = [
        quote(T0 - EPS, 100.0),
        Trade("A", T0, 100.4, 1.0, "buy"),  # trigger; reference = mid 100, not the trade
        quote(T0 + H - EPS, 99.0),
        quote(T0 + H, 101.0),  # the last tick at or before t + h: UP
        quote(T0 + H + EPS, 98.0),  # the first tick after it: would say DOWN
        Trade("A", T0 + H + 2 * EPS, 98.2, 1.0, "sell"),  # the next vote carries the outcome
    ]
    cfg = load_config().with_overrides(horizon_s=1.0)
    stage = Stage(cfg.stages[0], cfg)
    votes = [v for t in ticks if (v := stage.process(t)) is not None]
    assert [v.seq for v in votes] == [2, 6]
    assert votes[0].outcomes == ()
    assert [(o.seq, o.label) for o in votes[1].outcomes] == [(2, Label.UP)]
    # through the pipeline too: the voter scores it as up
    pipe = _one_stage_pipeline()
    scored = [sc for t in ticks if (d := pipe.process(t)) is not None for sc in d.scored]
    assert [(sc.seq, sc.up) for sc in scored] == [(2, True)]


def test_a_one_tick_peek_in_a_stage_changes_a_past_prediction() -> None:
    """Cut at a trade whose next tick is strictly later: a stage that peeks at its successor
    (one tick of lookahead) would see the changed future in the prediction at the cut."""
    ticks = handmade_ticks(600)
    i = 701
    assert isinstance(ticks[i], Trade) and ticks[i + 1].ts > ticks[i].ts
    cut = ticks[i].ts

    def change(t: Tick) -> Tick:
        if t.ts <= cut:
            return t
        if isinstance(t, Trade):
            side = "sell" if t.side == "buy" else "buy"
            return dataclasses.replace(t, price=t.price * 1.3, size=7.0, side=side)
        return dataclasses.replace(t, bid=t.bid * 1.3, ask=t.ask * 1.31, bid_size=9.0, ask_size=0.5)

    future = [change(t) for t in ticks]
    # teeth: the successor changes every stage's features at the cut, so a peek would show
    for s in load_config().stages:
        if s.extractor == "tick_sign" and not isinstance(ticks[i + 1], Trade):
            continue  # reads trades only; a peek at a quote changes nothing it sees
        feats = []
        for stream in (ticks, future):
            ext, ref = EXTRACTORS[s.extractor](), ReferencePrice()
            for t in stream[: i + 2]:
                ref.update(t)
                ext.update(t, ref.value)
            feats.append(ext.features(s.features))
        assert feats[0] != feats[1], s.name

    base, changed = _predictions(ticks), _predictions(future)
    at_cut = base[cut]
    assert all(p is not None for p in at_cut[1]), "every stage votes at the cut"
    assert changed[cut] == at_cut
    assert {ts: v for ts, v in changed.items() if ts <= cut} == {
        ts: v for ts, v in base.items() if ts <= cut
    }
    nxt = min(ts for ts in base if ts > cut)
    assert changed[nxt] != base[nxt], "the future did change, so the test has teeth"
