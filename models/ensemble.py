"""Ensemble weights learned online from realised outcomes (Hedge on log-loss, fixed share).

Hedge makes the ensemble track its best member; the fixed share keeps every member's weight
above a floor so a stage that becomes good again can win its weight back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_EPS = 1e-6
COIN_LOSS = math.log(2.0)


def log_loss(p_up: float, up: bool) -> float:
    p = min(max(p_up, _EPS), 1.0 - _EPS)
    return -math.log(p if up else 1.0 - p)


@dataclass(slots=True)
class HedgeWeights:
    """Normalised weights over named members.

    >>> w = HedgeWeights.uniform(["a", "b"], learning_rate=1.0, share=0.0)
    >>> w.update({"a": 0.9, "b": 0.1}, up=True)
    >>> w.weights["a"] > w.weights["b"]
    True
    """

    learning_rate: float
    share: float
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def uniform(cls, names: Sequence[str], learning_rate: float, share: float) -> HedgeWeights:
        n = len(names)
        return cls(learning_rate, share, {name: 1.0 / n for name in names})

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

    def update(self, probs: Mapping[str, float | None], up: bool) -> None:
        """One Hedge step on a single outcome."""
        self.update_many([(probs, up)])

    def update_many(self, outcomes: Sequence[tuple[Mapping[str, float | None], bool]]) -> None:
        """One Hedge step on the mean log-loss of outcomes that resolved together.

        Outcomes resolving at the same moment share most of their price path, so they are
        nearly one observation: a step per outcome would let one burst of trades flip the
        weights. An abstaining member scores as a coin.
        """
        if not outcomes:
            return
        eta = self.learning_rate / len(outcomes)
        w = self.weights
        for name in w:
            loss = 0.0
            for probs, up in outcomes:
                p = probs.get(name)
                loss += COIN_LOSS if p is None else log_loss(p, up)
            w[name] *= math.exp(-eta * loss)
        total = sum(w.values())
        n = len(w)
        for name in w:
            w[name] = (1.0 - self.share) * w[name] / total + self.share / n
