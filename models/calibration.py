"""Online Platt scaling: turns a model's raw P(up) into a calibrated one.

Trees and naive Bayes are confidently wrong on noisy short-horizon returns; a one-dimensional
logistic regression on the raw logit, learned prequentially (each raw prediction is scored
before the model learns that example), shrinks them back towards honest probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_EPS = 1e-6


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(slots=True)
class PlattCalibrator:
    """p = sigmoid(a * logit(raw) + b), fitted by normalised SGD on log-loss.

    It starts at ``a = 0`` (a coin) so a model must earn its confidence. The intercept is off
    by default: short-horizon labels come in long same-sign bursts, and an intercept learned
    from them chases the last burst instead of the features.

    >>> c = PlattCalibrator(lr=0.05)
    >>> c.predict_one(0.9)
    0.5
    >>> for _ in range(500):
    ...     c.learn_one(0.9, False)
    >>> c.predict_one(0.9) < 0.5
    True
    """

    lr: float = 0.002
    a: float = 0.0
    b: float = 0.0
    fit_intercept: bool = False
    n: int = 0

    def predict_one(self, raw: float) -> float:
        return _sigmoid(self.a * _logit(raw) + self.b)

    def learn_one(self, raw: float, y: bool) -> None:
        z = _logit(raw)
        g = _sigmoid(self.a * z + self.b) - (1.0 if y else 0.0)
        step = self.lr / (1.0 + z * z)  # normalised: a huge logit must not blow the fit up
        self.a -= step * g * z
        if self.fit_intercept:
            self.b -= self.lr * g
        self.n += 1
