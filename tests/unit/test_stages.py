"""Each feature stage: features, warm-up, prequential learning exactly once per label."""

from __future__ import annotations

import math
import weakref

import pytest

from agents.features import EXTRACTORS, Extractor, Microstructure, Momentum, Volatility
from agents.stage import Stage, StageConfigError
from config.settings import PipelineConfig, load_config
from models.labels import ReferencePrice
from models.records import Quote, Tick, Trade
from tests.conftest import S, handmade_ticks

CFG = load_config()


_REFS: weakref.WeakKeyDictionary[Extractor, ReferencePrice] = weakref.WeakKeyDictionary()


def feed(extractor: Extractor, *ticks: Tick) -> None:
    """Drive an extractor the way a stage does: with the reference price after each tick."""
    ref = _REFS.setdefault(extractor, ReferencePrice())
    for t in ticks:
        ref.update(t)
        extractor.update(t, ref.value)


def _stage(name: str, cfg: PipelineConfig = CFG, **changes: object) -> Stage:
    sc = next(s for s in cfg.stages if s.name == name).model_copy(update=changes)
    return Stage(sc, cfg)


def test_microstructure_features() -> None:
    m = Microstructure()
    feed(m, Quote("A", S, 99.0, 101.0, 3.0, 1.0))
    feed(m, Trade("A", 2 * S, 101.0, 2.0, "buy"))
    f = m.features(Microstructure.FEATURES)
    assert f["spread_bps"] == pytest.approx(200.0)
    assert f["imbalance"] == pytest.approx(0.5)
    assert f["weighted_mid_bps"] == pytest.approx(50.0)  # weighted mid 100.5 vs mid 100
    assert f["flow_2s"] == 1.0 and f["trade_sign"] == 1.0
    feed(m, Trade("A", 2 * S, 99.0, 2.0, "sell"))
    assert m.features(("flow_10s",))["flow_10s"] == pytest.approx(0.0)


def test_momentum_decays_on_event_time_not_tick_count() -> None:
    a, b = Momentum(), Momentum()
    feed(a, Quote("A", S, 99.0, 101.0, 1, 1))
    feed(b, Quote("A", S, 99.0, 101.0, 1, 1))
    feed(a, Quote("A", 2 * S, 109.0, 111.0, 1, 1))  # one update 1 s later
    for i in range(1, 101):  # the same move reached by 100 updates over the same second
        feed(b, Quote("A", S + i * S // 100, 109.0, 111.0, 1, 1))
    fa, fb = a.features(Momentum.FEATURES), b.features(Momentum.FEATURES)
    assert fa["ret_1s"] == pytest.approx(1000.0)
    assert fa["ewma_1s_5s"] == pytest.approx(fb["ewma_1s_5s"], rel=0.02)


def test_volatility_features_are_finite_and_react() -> None:
    v = Volatility()
    for t in handmade_ticks(200):
        feed(v, t)
    f = v.features(Volatility.FEATURES)
    assert all(math.isfinite(x) for x in f.values())
    assert f["rv_10s"] > 0 and f["intensity_10s"] == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize("name", [s.name for s in CFG.stages])
def test_stage_abstains_in_warmup_then_votes(name: str) -> None:
    stage = _stage(name, warmup=20)
    votes = [v for t in handmade_ticks(300) if (v := stage.process(t)) is not None]
    assert len(votes) == 300  # trades trigger, quotes only update state
    assert votes[0].p_up is None and votes[0].version == 0
    voting = [v for v in votes if v.p_up is not None]
    assert voting and all(0.0 <= v.p_up <= 1.0 for v in voting)  # type: ignore[operator]
    assert voting[0].version >= 20
    assert [v.seq for v in votes] == list(range(2, 601, 2))


@pytest.mark.parametrize("name", [s.name for s in CFG.stages])
def test_every_outcome_is_reported_once_and_learned_once(name: str) -> None:
    stage = _stage(name)
    votes = [v for t in handmade_ticks(300) if (v := stage.process(t)) is not None]
    outcomes = [o for v in votes for o in v.outcomes]
    seqs = [o.seq for o in outcomes]
    assert len(seqs) == len(set(seqs))
    assert set(seqs) <= {v.seq for v in votes}
    st = stage.state("TEST")
    assert st.learned == sum(1 for o in outcomes if o.label.value != "flat")
    # nothing is labelled before its horizon: an outcome arrives at least 5 s after its tick
    ts_of = {v.seq: v.ts for v in votes}
    for v in votes:
        for o in v.outcomes:
            assert v.ts > ts_of[o.seq] + CFG.horizon_ns


def test_unknown_feature_is_a_clear_error() -> None:
    bad = CFG.stages[0].model_copy(update={"features": ("spread_bps", "moon_phase")})
    with pytest.raises(StageConfigError, match="moon_phase"):
        Stage(bad, CFG)


def test_unknown_extractor_is_a_clear_error_naming_the_registry() -> None:
    # catches: a registry duplicated in the config (a new extractor needing two edits) or a
    # bare KeyError for a typo
    bad = CFG.stages[0].model_copy(update={"extractor": "microstructur"})
    with pytest.raises(StageConfigError, match=r"microstructur'.*known.*'microstructure'"):
        Stage(bad, CFG)


def test_every_extractor_computes_every_feature_it_names() -> None:
    for cls in EXTRACTORS.values():
        e = cls()
        for t in handmade_ticks(50):
            feed(e, t)
        assert set(e.features(cls.FEATURES)) == set(cls.FEATURES)
