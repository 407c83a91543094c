"""A count-based classifier: Beta counts of up/down per cell of a few discretised features.

The fast, auditable member of the ensemble. It learns in minutes (a cell needs tens of
outcomes, not thousands), its whole state is a small table that can be printed, and it
costs a dict lookup per call. Speaks River's classifier API (``learn_one`` /
``predict_proba_one``), so a stage config builds it like any River model::

    model:
      path: models.counts.CountModel
      params: {bins: {tick_sign: [-0.5, 0.5], signed_count_2s: [-0.3, 0.3]}}

Each feature named in ``bins`` is cut at its edges (``bisect_right``: a value equal to an
edge goes up), features not named are ignored; P(up | cell) = (ups + prior) / (n + 2·prior).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Cell = tuple[int, ...]


@dataclass(slots=True)
class CountModel:
    """P(up | cell) from Beta(prior, prior) counts, optionally forgetting old outcomes.

    ``decay`` in [0, 1): each learn first scales the cell's counts by (1 − decay), so a cell
    remembers about 1/decay of its latest outcomes (0: everything).

    >>> m = CountModel(bins={"s": [-0.5, 0.5]})
    >>> for s, y in ((1.0, True), (1.0, True), (-1.0, False)):
    ...     m.learn_one({"s": s}, y)
    >>> m.predict_proba_one({"s": 1.0})[True]  # (2 + 1) / (2 + 2)
    0.75
    >>> m.predict_proba_one({"s": 0.0})[True]  # an empty cell is a coin
    0.5
    """

    bins: Mapping[str, Sequence[float]]
    prior: float = 1.0
    decay: float = 0.0
    counts: dict[Cell, list[float]] = field(default_factory=dict)  # cell -> [ups, n]

    def __post_init__(self) -> None:
        if self.prior <= 0.0:
            raise ValueError(f"prior must be > 0, got {self.prior}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}")
        if not self.bins:
            raise ValueError("bins must name at least one feature")
        clean: dict[str, tuple[float, ...]] = {}
        for name, edges in self.bins.items():
            e = tuple(float(v) for v in edges)
            if list(e) != sorted(e):
                raise ValueError(f"bins.{name}: edges must be increasing, got {list(e)}")
            clean[name] = e
        self.bins = clean

    def cell(self, x: Mapping[str, float]) -> Cell:
        return tuple(
            bisect.bisect_right(edges, x.get(name, 0.0)) for name, edges in self.bins.items()
        )

    def learn_one(self, x: Mapping[str, float], y: bool) -> None:
        cell = self.cell(x)
        c = self.counts.get(cell)
        if c is None:
            c = self.counts[cell] = [0.0, 0.0]
        if self.decay:
            keep = 1.0 - self.decay
            c[0] *= keep
            c[1] *= keep
        c[0] += 1.0 if y else 0.0
        c[1] += 1.0

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[bool, float]:
        c = self.counts.get(self.cell(x))
        a = self.prior
        p = 0.5 if c is None else (c[0] + a) / (c[1] + 2.0 * a)
        return {False: 1.0 - p, True: p}

    def table(self) -> list[dict[str, Any]]:
        """Every visited cell with its feature ranges, counts and P(up), in cell order."""
        rows = []
        for cell in sorted(self.counts):
            ups, n = self.counts[cell]
            ranges = {}
            for (name, edges), i in zip(self.bins.items(), cell, strict=True):
                lo = edges[i - 1] if i > 0 else None
                hi = edges[i] if i < len(edges) else None
                ranges[name] = [lo, hi]
            p = (ups + self.prior) / (n + 2.0 * self.prior)
            rows.append({"cell": list(cell), "ranges": ranges, "ups": ups, "n": n, "p_up": p})
        return rows
