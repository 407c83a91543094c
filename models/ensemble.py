"""Ensemble combiners learned online from realised outcomes, per symbol.

Two methods (config ``voting.method``):

- :class:`StackWeights` (default): a logarithmic pool, p = σ(Σ wᵢ · logit pᵢ), with
  non-negative weights, no intercept, an L2 pull towards equal weights, learned by AdaGrad on
  each outcome's log-loss. Unlike a weighted mean of probabilities (which can never be sharper
  than its members), a log-odds pool can be sharper than any member, and it contains each
  single member as a special case (wᵢ = 1, the rest 0).
- :class:`HedgeWeights`: exponential weights on each outcome's log-loss with a fixed share.

Outcomes resolving within one horizon share most of their price path: they are nearly one
observation, not hundreds. Both methods therefore scale each outcome's step by
1 / (outcomes resolved within the last horizon), counted by :class:`OverlapWindow`, so a
burst of resolutions moves the weights about as much as one independent outcome would.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

_EPS = 1e-6
COIN_LOSS = math.log(2.0)
_LOGIT_CAP = math.log((1.0 - _EPS) / _EPS)  # |logit| of a probability clipped to [eps, 1-eps]

Outcomes = Sequence[tuple[Mapping[str, float | None], bool]]


def log_loss(p_up: float, up: bool) -> float:
    p = min(max(p_up, _EPS), 1.0 - _EPS)
    return -math.log(p if up else 1.0 - p)


def logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(slots=True)
class OverlapWindow:
    """How many outcomes resolved within the last horizon of event time (this round included).

    >>> w = OverlapWindow(horizon_ns=10)
    >>> w.add(100, 3), w.add(105, 2), w.add(111, 1)
    (3, 5, 3)
    """

    horizon_ns: int
    rounds: deque[tuple[int, int]] = field(default_factory=deque)  # (resolved at ns, outcomes)
    total: int = 0

    def add(self, now_ns: int, n: int) -> int:
        rounds = self.rounds
        rounds.append((now_ns, n))
        self.total += n
        cutoff = now_ns - self.horizon_ns
        while rounds[0][0] <= cutoff:
            self.total -= rounds.popleft()[1]
        return self.total


class Combiner(Protocol):
    """What the voter needs of a combiner: weights for receipts, a pool, an online update."""

    weights: dict[str, float]

    def combine(self, probs: Mapping[str, float]) -> float: ...

    def update_many(self, outcomes: Outcomes, now_ns: int = 0) -> None: ...


@dataclass(slots=True)
class StackWeights:
    """p = σ(Σ wᵢ · logit pᵢ), wᵢ ≥ 0, learned by projected AdaGrad on log-loss.

    Per outcome the gradient is gᵢ = (p − y) · logit pᵢ + l2 · (wᵢ − w̄), with w̄ the mean
    weight: the pull is towards equal weights at the current scale, so the pool may sharpen
    (all weights grow) when every member is informative. Each outcome counts as 1/m of an
    independent observation, m the outcomes resolved within the last horizon: the step is
    (learning_rate / m) · gᵢ / √Gᵢ with Gᵢ = Σ gᵢ² / m (scaling the gradient alone would do
    nothing: AdaGrad is scale-free), so after T horizons of steady gradients a weight has moved
    at most about 2 · learning_rate · √T. An abstaining member counts as a coin (logit 0): it
    contributes nothing to the pool and its weight only feels the pull.

    >>> s = StackWeights.uniform(["a", "b"], learning_rate=0.1, l2=0.0, horizon_ns=1)
    >>> s.combine({"a": 0.8, "b": 0.8}) == sigmoid(logit(0.8))  # two halves make one
    True
    >>> for t in range(200):
    ...     s.update_many([({"a": 0.8, "b": 0.5}, True)], now_ns=t * 10)
    >>> s.weights["a"] > 0.5 >= s.weights["b"]
    True
    """

    learning_rate: float
    l2: float
    horizon_ns: int
    weights: dict[str, float] = field(default_factory=dict)
    grad_sq: dict[str, float] = field(default_factory=dict)
    window: OverlapWindow = field(default_factory=lambda: OverlapWindow(1))

    @classmethod
    def uniform(
        cls, names: Sequence[str], learning_rate: float, l2: float, horizon_ns: int
    ) -> StackWeights:
        n = len(names)
        return cls(
            learning_rate,
            l2,
            horizon_ns,
            {name: 1.0 / n for name in names},
            dict.fromkeys(names, 0.0),
            OverlapWindow(horizon_ns),
        )

    def combine(self, probs: Mapping[str, float]) -> float:
        """The pooled P(up); summed in member (config) order so the same votes give the
        same bits whatever order they came in."""
        z = 0.0
        for name, w in self.weights.items():
            p = probs.get(name)
            if p is not None:
                z += w * logit(p)
        return sigmoid(z)

    def update_many(self, outcomes: Outcomes, now_ns: int = 0) -> None:
        """One AdaGrad step per outcome, in order, each scaled by the overlap count."""
        if not outcomes:
            return
        m = self.window.add(now_ns, len(outcomes))
        share = 1.0 / m  # each outcome is 1/m of an independent observation
        rate = self.learning_rate * share
        w = self.weights
        g2 = self.grad_sq
        l2 = self.l2
        n = len(w)
        for probs, up in outcomes:
            z = 0.0
            logits: list[float] = []
            for name, wi in w.items():
                p = probs.get(name)
                x = 0.0 if p is None else logit(p)
                logits.append(x)
                z += wi * x
            err = sigmoid(z) - (1.0 if up else 0.0)
            mean = sum(w.values()) / n
            for (name, wi), x in zip(w.items(), logits, strict=True):
                g = err * x + l2 * (wi - mean)
                if g == 0.0:
                    continue
                acc = g2[name] + g * g * share
                g2[name] = acc
                w[name] = max(0.0, wi - rate * g / math.sqrt(acc))


@dataclass(slots=True)
class HedgeWeights:
    """Normalised exponential weights over named members, on each outcome's log-loss.

    Per outcome, wᵢ ← wᵢ · exp(−η/m · lossᵢ) with m the outcomes resolved within the last
    horizon; then, once per round, a fixed share α_round = 1 − (1 − share)^(k/m) of the mass is
    spread evenly (k outcomes in the round), so a stage that becomes good again can win its
    weight back. ``share`` is per independent outcome: about (expected switches) / (outcomes).
    An abstaining member scores as a coin.

    >>> w = HedgeWeights.uniform(["a", "b"], learning_rate=1.0, share=0.0)
    >>> w.update({"a": 0.9, "b": 0.1}, up=True)
    >>> w.weights["a"] > w.weights["b"]
    True
    """

    learning_rate: float
    share: float
    weights: dict[str, float] = field(default_factory=dict)
    window: OverlapWindow = field(default_factory=lambda: OverlapWindow(1))

    @classmethod
    def uniform(
        cls, names: Sequence[str], learning_rate: float, share: float, horizon_ns: int = 1
    ) -> HedgeWeights:
        n = len(names)
        return cls(
            learning_rate, share, {name: 1.0 / n for name in names}, OverlapWindow(horizon_ns)
        )

    def combine(self, probs: Mapping[str, float]) -> float:
        """Weighted mean of the members that voted, renormalised over them.

        Summed in member (config) order whatever order the votes came in: float addition is
        not associative, and the same votes must give the same bits.
        """
        total = 0.0
        acc = 0.0
        for name, w in self.weights.items():
            p = probs.get(name)
            if p is None:
                continue
            total += w
            acc += w * p
        return acc / total if total > 0.0 else 0.5

    def update(self, probs: Mapping[str, float | None], up: bool, now_ns: int = 0) -> None:
        """The step of a single outcome."""
        self.update_many([(probs, up)], now_ns)

    def update_many(self, outcomes: Outcomes, now_ns: int = 0) -> None:
        """Losses summed over the round's outcomes, each at rate η/m; then the fixed share."""
        if not outcomes:
            return
        k = len(outcomes)
        m = self.window.add(now_ns, k)
        eta = self.learning_rate / m
        w = self.weights
        for name in w:
            loss = 0.0
            for probs, up in outcomes:
                p = probs.get(name)
                loss += COIN_LOSS if p is None else log_loss(p, up)
            w[name] *= math.exp(-eta * loss)
        total = sum(w.values())
        if total <= 0.0 or not math.isfinite(total):  # every weight underflowed: start over
            for name in w:
                w[name] = 1.0
            total = float(len(w))
        n = len(w)
        share = self.share  # k == m: the round is the whole horizon's worth
        if 0 < k < m:
            share = 1.0 - (1.0 - share) ** (k / m)
        for name in w:
            w[name] = (1.0 - share) * w[name] / total + share / n
