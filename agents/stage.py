"""A feature stage: one feature extractor plus its own small River classifier, per symbol.

The stage learns prequentially: it predicts on a trigger tick, holds the example until the
label exists (event time past t + horizon), then learns it exactly once. It abstains until
it has learned ``warmup`` examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.features import EXTRACTORS, Extractor
from config.settings import PipelineConfig, StageConfig
from models.calibration import PlattCalibrator
from models.factory import build_model, model_id
from models.labels import Labeler
from models.records import Label, Outcome, Tick, Vote
from models.state import MemoryStateStore, StateStore, state_key


class StageConfigError(ValueError):
    pass


@dataclass
class StageState:
    """Everything one stage knows about one symbol; what a checkpoint saves."""

    extractor: Extractor
    model: Any
    labeler: Labeler
    calibrator: PlattCalibrator | None
    seq: int = 0
    learned: int = 0
    unsent: list[Outcome] = field(default_factory=list)


class Stage:
    """Turns ticks of any symbol into votes; per-symbol state lives in a :class:`StateStore`."""

    def __init__(
        self, cfg: StageConfig, pipeline: PipelineConfig, store: StateStore | None = None
    ) -> None:
        extractor_cls = EXTRACTORS.get(cfg.extractor)
        if extractor_cls is None:
            raise StageConfigError(
                f"stages.{cfg.name}.extractor: unknown {cfg.extractor!r}; "
                f"known: {sorted(EXTRACTORS)}"
            )
        unknown = [f for f in cfg.features if f not in extractor_cls.FEATURES]
        if unknown:
            raise StageConfigError(
                f"stages.{cfg.name}.features: unknown {unknown} for extractor "
                f"{cfg.extractor!r}; known: {list(extractor_cls.FEATURES)}"
            )
        build_model(cfg.model, pipeline.seed)  # fail at start-up on a bad model spec
        self.cfg = cfg
        self.name = cfg.name
        self.model_id = model_id(cfg)
        self.features = cfg.features
        self._extractor_cls = extractor_cls
        self._seed = pipeline.seed
        self._horizon_ns = pipeline.horizon_ns
        self._dead_band = pipeline.dead_band_bps
        self._triggers = frozenset(pipeline.trigger)
        self.store: StateStore = store if store is not None else MemoryStateStore()
        self._live: dict[str, StageState] = {}

    def new_state(self) -> StageState:
        cfg = self.cfg
        return StageState(
            extractor=self._extractor_cls(),
            model=build_model(cfg.model, self._seed),
            labeler=Labeler(self._horizon_ns, self._dead_band, cfg.max_pending),
            calibrator=(
                PlattCalibrator(cfg.calibration_lr, fit_intercept=cfg.calibration_intercept)
                if cfg.calibrate
                else None
            ),
        )

    def state(self, symbol: str) -> StageState:
        st = self._live.get(symbol)
        if st is None:
            key = state_key(self.name, symbol)
            st = self.store.get(key)
            if st is None:
                st = self.new_state()
                self.store.put(key, st)
            self._live[symbol] = st
        return st

    def process(self, tick: Tick) -> Vote | None:
        """Apply one tick; return a vote when it is a trigger tick, else None."""
        st = self._live.get(tick.symbol) or self.state(tick.symbol)
        st.seq += 1
        labeler = st.labeler
        queue = labeler.pending
        if queue and queue[0].deadline < tick.ts:  # cheap test first: most ticks resolve nothing
            for pending, label in labeler.resolve(tick.ts):
                st.unsent.append(Outcome(pending.seq, label))
                if label is not Label.FLAT:
                    self.learn(st, pending.payload, label is Label.UP)
        ref = labeler.ref
        ref.update(tick)
        st.extractor.update(tick, ref.value)
        if tick.kind not in self._triggers:
            return None
        x, raw, p_up = self.predict(st)
        st.labeler.add(st.seq, tick.ts, (x, raw))
        outcomes = tuple(st.unsent)
        st.unsent.clear()
        return Vote(
            stage=self.name,
            model=self.model_id,
            version=st.learned,
            symbol=tick.symbol,
            seq=st.seq,
            ts=tick.ts,
            p_up=p_up,
            outcomes=outcomes,
        )

    def predict(self, st: StageState) -> tuple[dict[str, float], float | None, float | None]:
        """Features, raw and calibrated P(up) of the state as it is now (None: abstain)."""
        x = st.extractor.features(self.features)
        raw = self._raw_p_up(st, x)
        p_up: float | None = None
        if st.learned >= self.cfg.warmup and raw is not None:
            p_up = st.calibrator.predict_one(raw) if st.calibrator is not None else raw
        return x, raw, p_up

    @staticmethod
    def _raw_p_up(st: StageState, x: dict[str, float]) -> float | None:
        if st.learned == 0:
            return None
        proba = st.model.predict_proba_one(x)
        p = proba.get(True)
        if p is None:
            return None if not proba else 0.0
        return float(p)

    @staticmethod
    def learn(st: StageState, payload: tuple[dict[str, float], float | None], up: bool) -> None:
        """Learn one labelled example (its features and raw P(up) at prediction time)."""
        x, raw = payload
        if raw is not None and st.calibrator is not None:
            st.calibrator.learn_one(raw, up)
        st.model.learn_one(x, up)
        st.learned += 1

    def symbols(self) -> list[str]:
        return sorted(self._live)

    def forget(self) -> None:
        """Drop live state (after a rebalance): the next tick reloads it from the store."""
        self._live.clear()
