"""Scores of probabilistic up/down predictions: accuracy, log-loss, Brier, rolling accuracy."""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_EPS = 1e-6


@dataclass(slots=True)
class BinaryScore:
    """Running scores over up/down outcomes (flats never reach here).

    A prediction of exactly 0.5 counts as half right: it is a coin, not a call.
    """

    n: int = 0
    hits: float = 0.0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0

    def update(self, p_up: float, up: bool) -> None:
        y = 1.0 if up else 0.0
        p = min(max(p_up, _EPS), 1.0 - _EPS)
        self.n += 1
        self.hits += 0.5 if p_up == 0.5 else float((p_up > 0.5) == up)
        self.log_loss_sum -= math.log(p if up else 1.0 - p)
        self.brier_sum += (p_up - y) ** 2

    def as_dict(self) -> dict[str, Any]:
        n = self.n
        return {
            "n_scored": n,
            "accuracy": self.hits / n if n else None,
            "log_loss": self.log_loss_sum / n if n else None,
            "brier": self.brier_sum / n if n else None,
        }


@dataclass(slots=True)
class RollingAccuracy:
    window: int = 500
    hits: deque[float] = field(default_factory=deque)
    total: float = 0.0

    def update(self, p_up: float, up: bool) -> float:
        h = 0.5 if p_up == 0.5 else float((p_up > 0.5) == up)
        self.hits.append(h)
        self.total += h
        if len(self.hits) > self.window:
            self.total -= self.hits.popleft()
        return self.total / len(self.hits)


@dataclass(slots=True)
class Decimator:
    """Keeps a bounded, evenly thinned series: when full, drop every other point, double stride.

    Deterministic, O(1) amortised, memory-flat however long the run; packed arrays (16 bytes a
    point) because a report holds a few of these per symbol.
    """

    capacity: int = 4000
    stride: int = 1
    seen: int = 0
    ts: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))

    def add(self, ts: int, value: float) -> None:
        if self.seen % self.stride == 0:
            self.ts.append(ts)
            self.values.append(value)
            if len(self.ts) >= self.capacity:
                self.ts = self.ts[::2]
                self.values = self.values[::2]
                self.stride *= 2
        self.seen += 1

    @property
    def points(self) -> list[list[float]]:
        return [[t, v] for t, v in zip(self.ts, self.values, strict=True)]
