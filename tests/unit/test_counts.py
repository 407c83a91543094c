"""The count model: Beta counts per cell, by hand; built from config like a River model."""

from __future__ import annotations

import pytest

from config.settings import ModelSpec
from models.counts import CountModel
from models.factory import ModelConfigError, build_model


def test_cells_cut_at_the_edges_and_values_on_an_edge_go_up() -> None:
    m = CountModel(bins={"s": [-0.5, 0.5], "f": [0.0]})
    assert m.cell({"s": -1.0, "f": -0.2}) == (0, 0)
    assert m.cell({"s": 0.0, "f": 0.0}) == (1, 1)
    assert m.cell({"s": 0.5, "f": 3.0}) == (2, 1)
    assert m.cell({}) == (1, 1)  # an absent feature reads as 0.0


def test_probabilities_by_hand() -> None:
    m = CountModel(bins={"s": [-0.5, 0.5]}, prior=2.0)
    for y in (True, True, True, False):
        m.learn_one({"s": 1.0}, y)
    m.learn_one({"s": -1.0}, False)
    # cell +1: 3 ups of 4, prior 2: (3 + 2) / (4 + 4) = 0.625; cell -1: (0 + 2) / (1 + 4) = 0.4
    assert m.predict_proba_one({"s": 1.0}) == {True: 0.625, False: 0.375}
    assert m.predict_proba_one({"s": -1.0})[True] == pytest.approx(0.4)
    assert m.predict_proba_one({"s": 0.0})[True] == 0.5


def test_decay_forgets_old_outcomes() -> None:
    m = CountModel(bins={"s": [0.0]}, decay=0.5)
    m.learn_one({"s": 1.0}, True)  # [1, 1]
    m.learn_one({"s": 1.0}, False)  # [0.5, 1.5]
    m.learn_one({"s": 1.0}, False)  # [0.25, 1.75]
    # (0.25 + 1) / (1.75 + 2) = 1/3
    assert m.predict_proba_one({"s": 1.0})[True] == pytest.approx(1 / 3)


def test_the_table_prints_every_visited_cell_with_its_ranges() -> None:
    m = CountModel(bins={"s": [-0.5, 0.5]})
    m.learn_one({"s": 1.0}, True)
    m.learn_one({"s": -1.0}, False)
    rows = m.table()
    assert [r["cell"] for r in rows] == [[0], [2]]
    assert rows[0]["ranges"] == {"s": [None, -0.5]} and rows[1]["ranges"] == {"s": [0.5, None]}
    assert rows[1]["p_up"] == pytest.approx(2 / 3) and rows[0]["n"] == 1.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing"):
        CountModel(bins={"s": [1.0, 0.0]})
    with pytest.raises(ValueError, match="prior"):
        CountModel(bins={"s": [0.0]}, prior=0.0)
    with pytest.raises(ValueError, match="decay"):
        CountModel(bins={"s": [0.0]}, decay=1.0)
    with pytest.raises(ValueError, match="at least one"):
        CountModel(bins={})


def test_built_from_a_config_spec_like_any_river_model() -> None:
    spec = ModelSpec(path="models.counts.CountModel", params={"bins": {"s": [-0.5, 0.5]}})
    m = build_model(spec, seed=1)
    assert isinstance(m, CountModel) and m.bins == {"s": (-0.5, 0.5)}
    with pytest.raises(ModelConfigError):
        build_model(ModelSpec(path="models.counts.CountModel", params={"bogus": 1}), seed=1)
