"""The combiners: the log-odds stack and per-outcome Hedge, by hand and on synthetic pairs."""

from __future__ import annotations

import math
import random

import pytest

from models.ensemble import HedgeWeights, OverlapWindow, StackWeights, log_loss, logit, sigmoid

H = 1_000  # horizon of these tests, ns


def test_overlap_window_counts_the_outcomes_of_the_last_horizon() -> None:
    w = OverlapWindow(horizon_ns=10)
    assert w.add(100, 3) == 3
    assert w.add(109, 2) == 5  # 100 is within (99, 109]
    assert w.add(110, 1) == 3  # 100 is not within (100, 110]
    assert w.add(500, 4) == 4


def test_stack_pool_is_sigmoid_of_weighted_logits_in_config_order() -> None:
    s = StackWeights.uniform(["a", "b", "c"], learning_rate=0.1, l2=0.0, horizon_ns=H)
    # z = (ln 4 + ln(1/4) + 0) / 3 = 0 -> 0.5; an abstaining member adds nothing
    assert s.combine({"a": 0.8, "b": 0.2, "c": 0.5}) == 0.5
    s.weights.update(a=1.0, b=1.0, c=0.0)
    # two independent calibrated 0.8s: logit 2 ln 4 = ln 16 -> 16/17, sharper than either
    assert s.combine({"a": 0.8, "b": 0.8}) == pytest.approx(16 / 17, rel=1e-12)
    assert s.combine({}) == 0.5


def test_stack_first_step_by_hand() -> None:
    s = StackWeights.uniform(["a", "b"], learning_rate=0.1, l2=0.0, horizon_ns=H)
    # z = 0.5 ln 4 = ln 2 -> p = 2/3; err = p - 1 = -1/3; g_a = -ln 4 / 3, g_b = 0 (logit 0.5)
    # m = 1: G_a = g_a^2, step = 0.1 * g_a / |g_a| = -0.1 -> w_a = 0.6; w_b untouched
    s.update_many([({"a": 0.8, "b": 0.5}, True)], now_ns=0)
    assert s.weights["a"] == pytest.approx(0.6, rel=1e-12)
    assert s.weights["b"] == 0.5
    assert s.grad_sq["a"] == pytest.approx((math.log(4) / 3) ** 2, rel=1e-12)


def test_stack_steps_are_scaled_by_the_outcomes_within_a_horizon() -> None:
    s = StackWeights.uniform(["a", "b"], learning_rate=0.1, l2=0.0, horizon_ns=H)
    # two outcomes in one round: m = 2, each counts 1/2. First: G_a = g^2 / 2,
    # step = (0.1 / 2) * g / sqrt(g^2 / 2) = -0.05 * sqrt 2 -> w_a = 0.5 + 0.0707107
    one = ({"a": 0.8, "b": 0.5}, True)
    s.update_many([one], now_ns=0)
    t = StackWeights.uniform(["a", "b"], learning_rate=0.1, l2=0.0, horizon_ns=H)
    t.update_many([one, one], now_ns=0)
    w1 = 0.5 + 0.05 * math.sqrt(2.0)
    g1 = (sigmoid(0.5 * math.log(4)) - 1.0) * math.log(4)
    z2 = w1 * math.log(4)
    g2 = (sigmoid(z2) - 1.0) * math.log(4)
    w2 = w1 - 0.05 * g2 / math.sqrt((g1 * g1 + g2 * g2) / 2)
    assert t.weights["a"] == pytest.approx(w2, rel=1e-12)
    # a burst of two moves the weight less than two independent outcomes would
    s.update_many([one], now_ns=10 * H)
    assert t.weights["a"] < s.weights["a"]


def test_stack_l2_pulls_towards_equal_weights_and_weights_stay_non_negative() -> None:
    s = StackWeights.uniform(["a", "b"], learning_rate=0.1, l2=1.0, horizon_ns=H)
    s.weights.update(a=0.9, b=0.1)
    # both abstain: only the pull acts. mean 0.5: g_a = +0.4, g_b = -0.4; first steps -/+ 0.1
    s.update_many([({}, True)], now_ns=0)
    assert s.weights == {"a": pytest.approx(0.8), "b": pytest.approx(0.2)}
    # a member that is always confidently wrong is driven to exactly 0, never below
    s = StackWeights.uniform(["a", "b"], learning_rate=0.5, l2=0.0, horizon_ns=H)
    for t in range(50):
        s.update_many([({"a": 0.1, "b": 0.6}, True)], now_ns=t * 2 * H)
    assert s.weights["a"] == 0.0 and s.weights["b"] > 0.5


def _pair(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """An informative member (right 70 % of the time at 0.7) and pure noise."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        up = rng.random() < 0.5
        right = rng.random() < 0.7
        p_good = 0.7 if right == up else 0.3
        out.append(({"good": p_good, "noise": rng.uniform(0.3, 0.7)}, up))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stack_puts_the_weight_on_the_informative_member(seed: int) -> None:
    s = StackWeights.uniform(["good", "noise"], learning_rate=0.3, l2=0.0, horizon_ns=H)
    data = _pair(2_000, seed)
    for t, o in enumerate(data):
        s.update_many([o], now_ns=t * 2 * H)
    assert s.weights["good"] > 0.8
    assert s.weights["noise"] < 0.25
    # and on fresh data from the same source it scores within a whisker of its best member
    # (0.611 nats; a coin 0.693): the noise member's leftover weight costs < 0.005
    test = _pair(2_000, seed + 100)
    pooled = sum(log_loss(s.combine(p), up) for p, up in test) / len(test)
    best = sum(log_loss(p["good"], up) for p, up in test) / len(test)
    assert pooled <= best + 0.005


def test_stack_is_sharper_than_two_independent_members() -> None:
    """Two members right 70 % of the time, independently: the log pool learns weights > 1/2
    and beats both; a linear pool cannot (its loss is at best a member's)."""
    rng = random.Random(5)
    s = StackWeights.uniform(["a", "b"], learning_rate=0.3, l2=0.0, horizon_ns=H)
    h = HedgeWeights.uniform(["a", "b"], learning_rate=1.0, share=0.0, horizon_ns=H)
    losses = {"stack": 0.0, "hedge": 0.0, "a": 0.0}
    n = 4_000
    for t in range(n):
        up = rng.random() < 0.5
        probs = {k: (0.7 if (rng.random() < 0.7) == up else 0.3) for k in ("a", "b")}
        if t >= n // 2:
            losses["stack"] += log_loss(s.combine(probs), up)
            losses["hedge"] += log_loss(h.combine(probs), up)
            losses["a"] += log_loss(probs["a"], up)
        s.update_many([(probs, up)], now_ns=t * 2 * H)
        h.update_many([(probs, up)], now_ns=t * 2 * H)
    assert losses["stack"] < losses["a"] - 0.01 * (n // 2)
    assert losses["hedge"] > losses["stack"]
    assert min(s.weights.values()) > 0.6


def test_hedge_ranks_members_by_per_outcome_loss_not_per_round() -> None:
    """Within one horizon: a burst of 100 outcomes where a is a little better, then 10 single
    outcomes where b is a little better. Per outcome, a is better in total; per round (the old
    rule: one step per round on its mean), b wins 10 rounds to 1."""
    burst = [({"a": 0.56, "b": 0.55}, True)] * 100
    singles = [[({"a": 0.55, "b": 0.565}, True)] for _ in range(10)]
    rounds = [burst, *singles]
    total = {k: sum(log_loss(p[k], up) for r in rounds for p, up in r) for k in ("a", "b")}
    per_round = {
        k: sum(sum(log_loss(p[k], up) for p, up in r) / len(r) for r in rounds) for k in ("a", "b")
    }
    assert total["a"] < total["b"] and per_round["b"] < per_round["a"]  # the case discriminates
    w = HedgeWeights.uniform(["a", "b"], learning_rate=2.0, share=0.0, horizon_ns=H)
    for i, r in enumerate(rounds):
        w.update_many(r, now_ns=i)  # all within one horizon
    assert w.weights["a"] > w.weights["b"]


def test_hedge_by_hand_with_overlap_and_share() -> None:
    w = HedgeWeights.uniform(["a", "b"], learning_rate=2.0, share=0.04, horizon_ns=H)
    w.update_many([({"a": 0.8, "b": 0.4}, True)], now_ns=0)  # m = 1, share a whole 0.04
    # multipliers 0.8^2 = 0.64 and 0.4^2 = 0.16 (eta 2 on -ln p), total 0.8
    wa = 0.96 * 0.64 / 0.8 + 0.02
    assert w.weights["a"] == pytest.approx(wa, rel=1e-12)
    # a second round of one outcome within the same horizon: m = 2, eta / 2, share
    # 1 - 0.96^(1/2); multipliers 0.8 and 0.4 on the current weights
    w.update_many([({"a": 0.8, "b": 0.4}, True)], now_ns=10)
    a, b = wa * 0.8, (1.0 - wa) * 0.4
    share = 1.0 - math.sqrt(0.96)
    assert w.weights["a"] == pytest.approx((1 - share) * a / (a + b) + share / 2, rel=1e-12)
    assert sum(w.weights.values()) == pytest.approx(1.0, rel=1e-12)


def test_logit_sigmoid_round_trip_and_clipping() -> None:
    assert sigmoid(logit(0.3)) == pytest.approx(0.3, rel=1e-12)
    cap = math.log((1 - 1e-6) / 1e-6)
    assert logit(0.0) == pytest.approx(-cap, rel=1e-9) and logit(1.0) == pytest.approx(
        cap, rel=1e-9
    )
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0


SIX = [f"s{i}" for i in range(6)]
P = dict(zip(SIX, [0.59, 0.61, 0.46, 0.19, 0.59, 0.28], strict=True))
W = dict(zip(SIX, [0.81, 0.73, 0.03, 0.93, 0.04, 0.09], strict=True))


def test_stack_sums_in_member_order_exactly() -> None:
    """The pool's sum runs in config (member) order: the same votes give the same bits."""
    results = set()
    for order in (SIX, SIX[::-1], SIX[2:] + SIX[:2], SIX[::2] + SIX[1::2]):
        s = StackWeights.uniform(order, learning_rate=0.1, l2=0.0, horizon_ns=H)
        s.weights.update({n: W[n] for n in order})
        z = 0.0
        for n in order:  # by hand, left to right
            z += W[n] * logit(P[n])
        shuffled = {n: P[n] for n in reversed(order)}  # vote arrival order must not matter
        assert s.combine(shuffled) == sigmoid(z)
        results.add(sigmoid(z))
    # teeth: the summation order changes the last bits of this pool
    assert len(results) >= 3
