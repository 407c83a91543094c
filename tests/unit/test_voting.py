"""The voting agent: quorum, threshold, learned weights, receipts, deterministic ids."""

from __future__ import annotations

from agents.voting import Voter, signal_id
from config.settings import load_config
from models.ensemble import HedgeWeights
from streams.records import Action, Label, Outcome, Vote

CFG = load_config()
NAMES = [s.name for s in CFG.stages]


def _votes(
    seq: int, probs: dict[str, float | None], outcomes: tuple[Outcome, ...] = ()
) -> list[Vote]:
    return [Vote(n, f"{n}:m", 100, "BTC", seq, seq * 1000, p, outcomes) for n, p in probs.items()]


def test_quorum_threshold_and_actions() -> None:
    v = Voter(CFG)
    a, b, c = NAMES
    hold = v.process(_votes(1, {a: 0.9, b: None, c: None})).signal
    assert hold.action is Action.HOLD and not hold.quorum_met and hold.p_up == 0.5
    buy = v.process(_votes(2, {a: 0.9, b: 0.7, c: None})).signal
    assert buy.quorum_met and buy.action is Action.BUY and buy.p_up == 0.8
    sell = v.process(_votes(3, {a: 0.1, b: 0.3, c: 0.2})).signal
    assert sell.action is Action.SELL
    unsure = v.process(_votes(4, {a: 0.52, b: 0.5, c: 0.51})).signal
    assert unsure.action is Action.HOLD and unsure.quorum_met


def test_receipt_and_missing_stages() -> None:
    v = Voter(CFG)
    a, b, c = NAMES
    sig = v.process(_votes(7, {a: 0.6, c: 0.7})).signal
    assert sig.missing == (b,)
    assert [sv.name for sv in sig.stages] == [a, c]
    assert all(sv.model.endswith(":m") and sv.version == 100 for sv in sig.stages)
    assert sig.id == signal_id(CFG.config_hash(), "BTC", 7, 7000)
    assert sig.config_hash == CFG.config_hash() and sig.horizon_ns == CFG.horizon_ns


def test_weights_move_to_the_better_stage_and_outcomes_apply_once() -> None:
    v = Voter(CFG)
    a, b, c = NAMES
    for seq in range(1, 201):
        up = seq % 3 != 0
        good = 0.8 if up else 0.2
        outcome = (Outcome(seq - 1, Label.UP if (seq - 1) % 3 != 0 else Label.DOWN),)
        d = v.process(_votes(seq, {a: good, b: 0.5, c: 1.0 - good}, outcome if seq > 1 else ()))
        if seq > 1:
            assert len(d.scored) == 1 and d.scored[0].seq == seq - 1
    w = v.state("BTC").weights.weights
    assert w[a] > w[b] > w[c]
    assert abs(sum(w.values()) - 1.0) < 1e-9
    # the same outcome delivered again (re-delivery) changes nothing
    before = dict(w)
    d = v.process(_votes(201, {a: 0.5, b: 0.5, c: 0.5}, (Outcome(199, Label.UP),)))
    assert d.scored == () and dict(v.state("BTC").weights.weights) == before


def test_flat_outcomes_are_counted_not_learned() -> None:
    v = Voter(CFG)
    v.process(_votes(1, dict.fromkeys(NAMES, 0.9)))
    before = dict(v.state("BTC").weights.weights)
    d = v.process(_votes(2, dict.fromkeys(NAMES, 0.9), (Outcome(1, Label.FLAT),)))
    assert d.scored == ()
    assert v.state("BTC").flats == 1 and v.state("BTC").weights.weights == before


def test_hedge_fixed_share_keeps_a_floor() -> None:
    w = HedgeWeights.uniform(["x", "y"], learning_rate=5.0, share=0.05)
    for _ in range(200):
        w.update({"x": 0.99, "y": 0.01}, up=True)
    assert w.weights["y"] >= 0.05 / 2 - 1e-12
    assert w.combine({"x": 1.0, "y": 0.0}) == w.weights["x"]


def test_receipt_follows_config_order_whatever_the_arrival_order() -> None:
    a, b, c = NAMES
    v1, v2 = Voter(CFG), Voter(CFG)
    in_order = v1.process(_votes(1, {a: 0.6, b: 0.7, c: 0.8})).signal
    shuffled = v2.process(_votes(1, {c: 0.8, a: 0.6, b: 0.7})).signal
    assert in_order == shuffled
    assert [sv.name for sv in shuffled.stages] == [a, b, c]
