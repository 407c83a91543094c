"""Online Platt scaling: hand-computed SGD steps, and the voter only ever sees calibrated P(up).

An uncalibrated confident model must not reach the voter raw: through a stage with
``calibrate: true``, a model that always says 0.99 votes 0.5 (a = 0, a coin) until the
calibrator has learned, then exactly the Platt output after each hand-computed step.
"""

from __future__ import annotations

from math import exp, log
from typing import Any

import pytest

from agents.pipeline import Pipeline
from agents.stage import Stage
from config.settings import ModelSpec, PipelineConfig, VotingConfig, load_config
from models.calibration import PlattCalibrator
from models.records import Trade
from tests.conftest import S

REL = 1e-12


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + exp(-z))


class ConstantModel:
    """A River-like classifier that is always sure: P(up) = ``p``, whatever it learned."""

    def __init__(self, p: float = 0.99) -> None:
        self.p = p
        self.learned = 0

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        return {True: self.p, False: 1.0 - self.p}

    def learn_one(self, x: dict[str, float], y: Any) -> None:
        self.learned += 1


# --- the calibrator by itself ------------------------------------------------------------------


def test_platt_starts_at_a_coin() -> None:
    c = PlattCalibrator(lr=0.1)
    assert c.predict_one(0.99) == 0.5 and c.predict_one(0.01) == 0.5 and c.a == 0.0


def test_platt_two_sgd_steps_by_hand() -> None:
    c = PlattCalibrator(lr=0.1)
    # raw 0.8: z = logit(0.8) = ln 4 = 1.386294; normalised step = lr / (1 + z^2) = 0.034225
    z = log(4.0)
    step = 0.1 / (1 + z * z)
    # up: g = sigmoid(0) - 1 = -0.5; a = 0 - step * g * z = 0.023723
    c.learn_one(0.8, True)
    a1 = 0.5 * step * z
    assert c.a == pytest.approx(a1, rel=REL)
    assert c.a == pytest.approx(0.0237232, rel=1e-5)
    assert c.predict_one(0.8) == pytest.approx(sigmoid(a1 * z), rel=REL)  # 0.508221
    assert c.predict_one(0.2) == pytest.approx(sigmoid(-a1 * z), rel=REL)  # symmetric: 0.491779
    # down: g = sigmoid(a1 z) - 0 = 0.508221; a = a1 - step * g * z = -0.000390
    c.learn_one(0.8, False)
    a2 = a1 - step * sigmoid(a1 * z) * z
    assert c.a == pytest.approx(a2, rel=REL)
    assert c.a == pytest.approx(-0.000390, abs=1e-6)
    assert c.b == 0.0 and c.n == 2  # no intercept by default


def test_platt_intercept_step_by_hand() -> None:
    c = PlattCalibrator(lr=0.1, fit_intercept=True)
    c.learn_one(0.8, True)
    # g = -0.5: a as above, b = 0 - lr * g = 0.05
    z = log(4.0)
    a1 = 0.5 * 0.1 / (1 + z * z) * z
    assert c.a == pytest.approx(a1, rel=REL) and c.b == pytest.approx(0.05, rel=REL)
    assert c.predict_one(0.5) == pytest.approx(sigmoid(0.05), rel=REL)  # logit(0.5) = 0


def test_platt_huge_logits_are_clipped_and_normalised() -> None:
    c = PlattCalibrator(lr=0.1)
    c.learn_one(1.0, True)  # raw clipped to 1 - 1e-6: z = ln(999999) = 13.8155
    z = log((1 - 1e-6) / 1e-6)
    assert c.a == pytest.approx(0.5 * 0.1 / (1 + z * z) * z, rel=1e-9)  # 0.0036, not 0.69
    assert c.a < 0.01


# --- through a stage: the vote carries the Platt output, never the raw one ------------------

LR = 0.5
Z = log(99.0)  # logit(0.99)
STEP = LR / (1 + Z * Z)  # 0.022609


def _cfg(calibrate: bool) -> PipelineConfig:
    cfg = load_config().with_overrides(horizon_s=1.0)
    stage = cfg.stages[0].model_copy(
        update={
            "model": ModelSpec(path=f"{__name__}.ConstantModel", params={"p": 0.99}),
            "calibrate": calibrate,
            "calibration_lr": LR,
            "warmup": 0,
        }
    )
    # a linear pool of one member is that member exactly (a log-odds stack rescales it)
    voting = VotingConfig(**{**cfg.voting.model_dump(), "quorum": 1, "method": "hedge"})
    return cfg.model_copy(update={"stages": (stage,), "voting": voting})


# trades only (the reference is the last trade), horizon 1 s:
#   seq:   1      2      3      4      5      6      7
#   t (s): 1.0    1.5    2.5    3.0    4.0    5.0    6.0
#   price: 100    101    102    103    104    103    102
# seq 1 is labelled at 2.5 s (price at its deadline 2.0 s: 101, up), seq 2 at 3.0 s (102: up):
# both were predicted before the model had learned anything (no raw P(up)), so the calibrator
# does not learn from them. seq 3 is labelled at 4.0 s (up), seq 4 at 5.0 s (up), seq 5 at
# 6.0 s (103 < 104: down): those carry raw 0.99 and train the calibrator.
TICKS = [
    Trade("A", round(t * S), p, 1.0, "buy")
    for t, p in [(1.0, 100), (1.5, 101), (2.5, 102), (3.0, 103), (4.0, 104), (5.0, 103), (6.0, 102)]
]


def _expected_calibrated() -> list[float | None]:
    # a = 0 until seq 3's label: seq 3 and 4 vote sigmoid(0) = 0.5
    # seq 3 up:   g = 0.5 - 1;          a1 = STEP * 0.5 * Z          = 0.051945
    a1 = STEP * 0.5 * Z
    p5 = sigmoid(a1 * Z)  # 0.559392
    # seq 4 up:   g = p5 - 1;           a2 = a1 + STEP * (1 - p5) * Z = 0.097721
    a2 = a1 + STEP * (1 - p5) * Z
    p6 = sigmoid(a2 * Z)  # 0.610410
    # seq 5 down: g = p6;               a3 = a2 - STEP * p6 * Z       = 0.034304
    a3 = a2 - STEP * p6 * Z
    p7 = sigmoid(a3 * Z)  # 0.539327
    return [None, None, 0.5, 0.5, p5, p6, p7]


def test_a_confident_model_reaches_the_voter_only_through_platt() -> None:
    cfg = _cfg(calibrate=True)
    stage = Stage(cfg.stages[0], cfg)
    votes = [stage.process(t) for t in TICKS]
    got = [v.p_up if v is not None else "no vote" for v in votes]
    expected = _expected_calibrated()
    assert got == [pytest.approx(e, rel=REL) if e is not None else None for e in expected]
    assert got[4] == pytest.approx(0.559392, abs=1e-6)
    assert got[5] == pytest.approx(0.610410, abs=1e-6)
    assert got[6] == pytest.approx(0.539327, abs=1e-6)
    cal = stage.state("A").calibrator
    assert cal is not None and cal.n == 3
    # and the voter's signal carries exactly that (one stage, so the ensemble is that stage)
    pipe = Pipeline(cfg)
    sigs = [d.signal for t in TICKS if (d := pipe.process(t)) is not None]
    assert [s.stages[0].p_up for s in sigs] == got
    assert sigs[-1].p_up == pytest.approx(expected[-1], rel=REL)


def test_without_calibration_the_raw_probability_is_the_vote() -> None:
    cfg = _cfg(calibrate=False)
    stage = Stage(cfg.stages[0], cfg)
    got = [v.p_up for t in TICKS if (v := stage.process(t)) is not None]
    assert got == [None, None, 0.99, 0.99, 0.99, 0.99, 0.99]
    assert stage.state("A").calibrator is None
