"""The voting agent: quorum, threshold, learned weights, receipts, deterministic ids."""

from __future__ import annotations

import math

import pytest

from agents.voting import Voter, signal_id
from config.settings import PipelineConfig, load_config
from models.ensemble import HedgeWeights
from models.records import Action, Label, Outcome, Vote

# These tests pin the hedge method (a linear pool with fixed share) at eta 2 and share 0.01:
# its arithmetic is hand-computed below. The default stack has its own in test_ensemble.py.
_DEFAULT = load_config()
CFG = _DEFAULT.model_copy(
    update={
        "voting": _DEFAULT.voting.model_copy(
            update={"method": "hedge", "learning_rate": 2.0, "share": 0.01}
        )
    }
)
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
    for t in range(200):  # rounds a horizon apart (1 ns by default): each a whole share
        w.update({"x": 0.99, "y": 0.01}, up=True, now_ns=t * 10)
    assert w.weights["y"] >= 0.05 / 2 - 1e-12
    assert w.combine({"x": 1.0, "y": 0.0}) == w.weights["x"]


def test_receipt_follows_config_order_whatever_the_arrival_order() -> None:
    a, b, c = NAMES
    v1, v2 = Voter(CFG), Voter(CFG)
    in_order = v1.process(_votes(1, {a: 0.6, b: 0.7, c: 0.8})).signal
    shuffled = v2.process(_votes(1, {c: 0.8, a: 0.6, b: 0.7})).signal
    assert in_order == shuffled
    assert [sv.name for sv in shuffled.stages] == [a, b, c]


# --- learned weights change the decision -------------------------------------------------------


def _hand_weights() -> tuple[float, float, float]:
    # Hedge (models/ensemble.py): w_i <- w_i * exp(-eta/m * loss_i), normalise, then fixed share
    # w_i <- (1 - a) * w_i + a / n with a = 1 - (1 - share)^(k/m). Config: eta = 2.0,
    # share = 0.01, n = 3, uniform start; the first round: k = m = 1 outcome, so a = share.
    # One outcome (up) with p = (0.9, 0.1, 0.5): loss_i = -ln p_i, so exp(-2 loss_i) = p_i^2:
    # multipliers 0.81, 0.01, 0.25; normalised 0.81/1.07, 0.01/1.07, 0.25/1.07; then shared:
    assert CFG.voting.learning_rate == 2.0 and CFG.voting.share == 0.01
    wa = 0.99 * 0.81 / 1.07 + 0.01 / 3  # 0.752773
    wb = 0.99 * 0.01 / 1.07 + 0.01 / 3  # 0.012586
    wc = 0.99 * 0.25 / 1.07 + 0.01 / 3  # 0.234642
    return wa, wb, wc


def _learned_voter() -> Voter:
    v = Voter(CFG)
    a, b, c = NAMES
    v.process(_votes(1, {a: 0.9, b: 0.1, c: 0.5}))
    return v


def test_hedge_weights_by_hand() -> None:
    v = _learned_voter()
    a, b, c = NAMES
    d = v.process(_votes(2, {a: 0.5, b: 0.5, c: 0.5}, (Outcome(1, Label.UP),)))
    wa, wb, wc = _hand_weights()
    w = v.state("BTC").weights.weights
    assert w[a] == pytest.approx(wa, rel=1e-12)
    assert w[b] == pytest.approx(wb, rel=1e-12)
    assert w[c] == pytest.approx(wc, rel=1e-12)
    assert [sv.weight for sv in d.signal.stages] == [w[a], w[b], w[c]]  # the receipt shows them


def test_learned_weights_turn_a_hold_into_a_buy() -> None:
    v = _learned_voter()
    a, b, c = NAMES
    # plain mean (0.6 + 0.4 + 0.5) / 3 = 0.5 -> HOLD; weighted by the learned weights:
    # 0.752773 * 0.6 + 0.012586 * 0.4 + 0.234642 * 0.5 = 0.574019 >= 0.55 -> BUY
    sig = v.process(_votes(2, {a: 0.6, b: 0.4, c: 0.5}, (Outcome(1, Label.UP),))).signal
    wa, wb, wc = _hand_weights()
    assert sig.p_up == pytest.approx(wa * 0.6 + wb * 0.4 + wc * 0.5, rel=1e-12)
    assert sig.p_up == pytest.approx(0.574019, abs=1e-6)
    assert sig.action is Action.BUY
    # the mirror image: a SELL where the plain mean says HOLD
    sig = v.process(_votes(3, {a: 0.4, b: 0.6, c: 0.5})).signal
    assert sig.p_up == pytest.approx(wa * 0.4 + wb * 0.6 + wc * 0.5, rel=1e-12)  # 0.425981
    assert sig.action is Action.SELL


def test_learned_weights_turn_a_buy_into_a_hold() -> None:
    v = _learned_voter()
    a, b, c = NAMES
    # plain mean (0.5 + 0.95 + 0.5) / 3 = 0.65 -> BUY; but b has lost its weight:
    # 0.752773 * 0.5 + 0.012586 * 0.95 + 0.234642 * 0.5 = 0.505664 -> HOLD
    sig = v.process(_votes(2, {a: 0.5, b: 0.95, c: 0.5}, (Outcome(1, Label.UP),))).signal
    wa, wb, wc = _hand_weights()
    assert sig.p_up == pytest.approx(wa * 0.5 + wb * 0.95 + wc * 0.5, rel=1e-12)
    assert sig.action is Action.HOLD and sig.quorum_met


def test_outcomes_resolving_together_make_one_step_on_their_mean_loss() -> None:
    v = Voter(CFG)
    a, b, c = NAMES
    v.process(_votes(1, {a: 0.9, b: 0.1, c: 0.5}))
    v.process(_votes(2, {a: 0.8, b: 0.2, c: 0.5}))
    both = (Outcome(1, Label.UP), Outcome(2, Label.DOWN))
    v.process(_votes(3, {a: 0.5, b: 0.5, c: 0.5}, both))
    # the first round, two outcomes: m = 2 within the horizon, so eta / m = 1 on each outcome's
    # loss (summed) and a = 1 - 0.99^(2/2) = 0.01: multipliers 0.9 * (1 - 0.8) = 0.18,
    # 0.1 * (1 - 0.2) = 0.08 and 0.5 * 0.5 = 0.25; total 0.51
    w = v.state("BTC").weights.weights
    assert w[a] == pytest.approx(0.99 * 0.18 / 0.51 + 0.01 / 3, rel=1e-12)
    assert w[b] == pytest.approx(0.99 * 0.08 / 0.51 + 0.01 / 3, rel=1e-12)
    assert w[c] == pytest.approx(0.99 * 0.25 / 0.51 + 0.01 / 3, rel=1e-12)


# --- sums run in config order, never in a hash order -----------------------------------------

SIX = [f"s{i}" for i in range(6)]
P1 = dict(zip(SIX, [0.12, 0.21, 0.39, 0.59, 0.75, 0.39], strict=True))
P2 = dict(zip(SIX, [0.77, 0.61, 0.44, 0.39, 0.5, 0.68], strict=True))
ORDERS = [SIX, SIX[::-1], *(SIX[k:] + SIX[:k] for k in range(1, 6)), SIX[::2] + SIX[1::2]]


def _cfg_named(order: list[str]) -> PipelineConfig:
    stages = tuple(
        CFG.stages[i % len(CFG.stages)].model_copy(update={"name": n}) for i, n in enumerate(order)
    )
    return CFG.model_copy(update={"stages": stages})


def _in_order(order: list[str]) -> tuple[dict[str, float], float]:
    """The weights after one up outcome of P1, and P2 combined with them, summed in ``order``
    (the float operations of models/ensemble.py, left to right)."""
    w = dict.fromkeys(order, 1.0 / len(order))
    for n in order:
        w[n] *= math.exp(-2.0 * (0.0 + -math.log(P1[n])))
    total = 0.0
    for n in order:
        total += w[n]
    w = {n: 0.99 * w[n] / total + 0.01 / len(order) for n in order}
    acc = tot = 0.0
    for n in order:
        tot += w[n]
        acc += w[n] * P2[n]
    return w, acc / tot


def _six_votes(seq: int, probs: dict[str, float], arrival: list[str], out: bool) -> list[Vote]:
    outcomes = (Outcome(1, Label.UP),) if out else ()
    return [Vote(n, f"{n}:m", 1, "BTC", seq, seq * 1000, probs[n], outcomes) for n in arrival]


def test_sums_run_in_config_order_exactly_whatever_the_arrival_order() -> None:
    results = []
    for order in ORDERS:
        w_exp, p_exp = _in_order(order)
        for arrival in (order, order[::-1]):
            v = Voter(_cfg_named(order))
            v.process(_six_votes(1, P1, arrival, out=False))
            sig = v.process(_six_votes(2, P2, arrival, out=True)).signal
            assert v.state("BTC").weights.weights == w_exp  # exact: the last bit matters
            assert sig.p_up == p_exp
            assert [sv.name for sv in sig.stages] == order
        results.append(p_exp)
    # teeth: the summation order changes the last bit of these numbers, and in this process a
    # set of the names iterates in another order for some config: a hash-order sum would differ
    assert len(set(results)) >= 3
    assert any(_in_order(list(set(order)))[1] != _in_order(order)[1] for order in ORDERS)
