"""A River-style contract suite run over every stage and every model factory.

A new stage or model spec added to the config gets all of these checks for free.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from agents.stage import Stage
from config.settings import ModelSpec, load_config
from models.factory import build_model
from models.state import dumps_state, loads_state
from tests.conftest import handmade_ticks

CFG = load_config()
EXTRA_SPECS = {
    "hoeffding_tree": ModelSpec(
        path="river.tree.HoeffdingTreeClassifier", params={"grace_period": 50}
    ),
    "gaussian_nb": ModelSpec(path="river.naive_bayes.GaussianNB"),
    "random_forest": ModelSpec(
        path="river.forest.ARFClassifier", params={"n_models": 3, "max_features": 2}
    ),
}
MODEL_SPECS = {s.name: s.model for s in CFG.stages} | EXTRA_SPECS
STAGES = [s.name for s in CFG.stages]


def _examples(n: int = 300) -> list[tuple[dict[str, float], bool]]:
    out = []
    for i in range(n):
        x = {"a": ((i * 37) % 101) / 50.0 - 1.0, "b": ((i * 17) % 53) / 26.0 - 1.0, "c": i % 5}
        out.append((x, x["a"] + 0.3 * x["b"] > 0.1))
    return out


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_model_learns_predicts_and_does_not_mutate_input(name: str) -> None:
    model = build_model(MODEL_SPECS[name], seed=1)
    for x, y in _examples():
        frozen = copy.deepcopy(x)
        model.predict_proba_one(x)
        model.learn_one(x, y)
        assert x == frozen
    p = model.predict_proba_one({"a": 0.9, "b": 0.5, "c": 1})
    assert 0.0 <= p.get(True, 0.0) <= 1.0


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_model_pickle_round_trip(name: str) -> None:
    model = build_model(MODEL_SPECS[name], seed=1)
    data = _examples()
    for x, y in data[:200]:
        model.learn_one(x, y)
    clone = pickle.loads(pickle.dumps(model))
    for x, y in data[200:]:
        assert clone.predict_proba_one(x) == model.predict_proba_one(x)
        model.learn_one(x, y)
        clone.learn_one(x, y)


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_model_seeded_runs_repeat(name: str) -> None:
    runs = []
    for _ in range(2):
        model = build_model(MODEL_SPECS[name], seed=7)
        preds = []
        for x, y in _examples():
            preds.append(model.predict_proba_one(x).get(True))
            model.learn_one(x, y)
        runs.append(preds)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_model_feature_order_is_irrelevant(name: str) -> None:
    a = build_model(MODEL_SPECS[name], seed=3)
    b = build_model(MODEL_SPECS[name], seed=3)
    for x, y in _examples(200):
        a.learn_one(x, y)
        b.learn_one(dict(reversed(list(x.items()))), y)
    probe = {"a": 0.2, "b": -0.4, "c": 2}
    pa = a.predict_proba_one(probe).get(True, 0.5)
    pb = b.predict_proba_one(dict(reversed(list(probe.items())))).get(True, 0.5)
    assert pa == pytest.approx(pb)


@pytest.mark.parametrize("name", STAGES)
def test_stage_state_round_trip_continues_identically(name: str) -> None:
    """Checkpoint mid-stream, restore, continue: the votes equal an uninterrupted run."""
    sc = next(s for s in CFG.stages if s.name == name).model_copy(update={"warmup": 10})
    ticks = handmade_ticks(400)
    whole = Stage(sc, CFG)
    expected = [whole.process(t) for t in ticks]

    first = Stage(sc, CFG)
    head = [first.process(t) for t in ticks[:450]]
    blob = dumps_state(first.state("TEST"))
    resumed = Stage(sc, CFG)
    resumed.store.put(f"{name}/TEST", loads_state(blob))
    tail = [resumed.process(t) for t in ticks[450:]]
    assert head + tail == expected
    assert any(v is not None and v.p_up is not None for v in tail)


@pytest.mark.parametrize("name", STAGES)
def test_stage_is_repeatable_and_leaves_ticks_alone(name: str) -> None:
    sc = next(s for s in CFG.stages if s.name == name)
    ticks = handmade_ticks(200)
    before = list(ticks)
    stage_a, stage_b = Stage(sc, CFG), Stage(sc, CFG)
    a = [stage_a.process(t) for t in ticks]
    b = [stage_b.process(t) for t in ticks]
    assert a == b
    assert ticks == before
