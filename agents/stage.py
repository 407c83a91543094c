"""A feature stage: one feature extractor plus its own small River classifier, per symbol.

The stage learns prequentially: it predicts on a trigger tick, holds the example until the
label exists (event time past t + horizon), then learns it exactly once. It abstains until
it has learned ``warmup`` examples.

With ``drift`` configured, each learned outcome is also scored against the probability the
stage gave (or would have given, while muted) by a :class:`~models.drift.DriftMonitor`; an
alarm runs the configured action and is reported in the next vote and as a
:class:`~models.records.ModelEvent`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.features import EXTRACTORS, Extractor
from config.settings import PipelineConfig, StageConfig
from models.calibration import PlattCalibrator
from models.drift import DriftMonitor
from models.factory import build_model, model_id
from models.labels import Labeler
from models.records import Label, ModelEvent, Outcome, Tick, Vote
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
    # class-level defaults: states checkpointed before drift monitoring load with none
    drift: DriftMonitor | None = None
    flag: str | None = None  # "alarm" until the next vote reports it
    resets: int = 0

    def drift_mark(self) -> str | None:
        """The receipt's drift field for the next vote (reading an alarm flag clears it)."""
        flag = self.flag
        if flag is not None:
            self.flag = None
            return flag
        mon = self.drift
        return "muted" if mon is not None and mon.muted else None


#: An example a stage holds until its label exists: features, raw and calibrated P(up)
Example = tuple[dict[str, float], float | None, float | None]


class Stage:
    """Turns ticks of any symbol into votes; per-symbol state lives in a :class:`StateStore`."""

    def __init__(
        self,
        cfg: StageConfig,
        pipeline: PipelineConfig,
        store: StateStore | None = None,
        events: list[ModelEvent] | None = None,
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
        self._drift = pipeline.drift
        #: model events not yet taken by the driver (:meth:`Pipeline.take_events`); not state
        self.events: list[ModelEvent] = events if events is not None else []

    def new_state(self) -> StageState:
        st = StageState(
            extractor=self._extractor_cls(),
            model=None,
            labeler=Labeler(self._horizon_ns, self._dead_band, self.cfg.max_pending),
            calibrator=None,
        )
        self._new_model(st)
        if self._drift is not None:
            st.drift = DriftMonitor(self._drift, self._horizon_ns)
        return st

    def _new_model(self, st: StageState) -> None:
        cfg = self.cfg
        st.model = build_model(cfg.model, self._seed)
        st.calibrator = (
            PlattCalibrator(cfg.calibration_lr, fit_intercept=cfg.calibration_intercept)
            if cfg.calibrate
            else None
        )
        st.learned = 0

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
                    if st.drift is not None:
                        self.watch(
                            st, tick.symbol, pending.deadline, pending.payload, label, tick.ts
                        )
        ref = labeler.ref
        ref.update(tick)
        st.extractor.update(tick, ref.value)
        if tick.kind not in self._triggers:
            return None
        example = self.predict(st)
        st.labeler.add(st.seq, tick.ts, example)
        outcomes = tuple(st.unsent)
        st.unsent.clear()
        drift = st.drift_mark() if st.drift is not None else None
        return Vote(
            stage=self.name,
            model=self.model_id,
            version=st.learned,
            symbol=tick.symbol,
            seq=st.seq,
            ts=tick.ts,
            p_up=None if st.drift is not None and st.drift.muted else example[2],
            outcomes=outcomes,
            drift=drift,
        )

    def predict(self, st: StageState) -> Example:
        """Features, raw and calibrated P(up) of the state as it is now (None: abstain). A
        muted stage still predicts (so its skill is still scored); its vote abstains."""
        x = st.extractor.features(self.features)
        raw = self._raw_p_up(st, x)
        p_up: float | None = None
        if st.learned >= self.cfg.warmup and raw is not None:
            p_up = st.calibrator.predict_one(raw) if st.calibrator is not None else raw
        return x, raw, p_up

    def watch(
        self, st: StageState, symbol: str, deadline: int, example: Any, label: Label, now: int
    ) -> None:
        """Score one learned outcome for drift (what the stage voted, or would have) and run
        the configured action on an alarm; ``now`` is the event time of the resolving tick."""
        mon = st.drift
        p = example[2] if len(example) > 2 else None  # examples held before drift had two
        if mon is None or p is None:
            return
        event = mon.add(deadline - self._horizon_ns, p, label is Label.UP)
        if event is None:
            return
        detail: dict[str, Any] = {
            "blocks": mon.blocks,
            "learned": st.learned,
            "model": self.model_id,
        }
        if event == "recovered":
            mon.muted = False
            self.events.append(ModelEvent("unmuted", self.name, symbol, now, detail))
            return
        assert self._drift is not None
        action = self._drift.action
        st.flag = "alarm"
        self.events.append(
            ModelEvent("drift_alarm", self.name, symbol, now, {**detail, "action": action})
        )
        if action == "mute":
            if not mon.muted:
                mon.mute()
                self.events.append(ModelEvent("muted", self.name, symbol, now, detail))
        elif action == "reset":
            self._new_model(st)
            st.resets += 1
            mon.reset(since=now)
            self.events.append(
                ModelEvent("reset", self.name, symbol, now, {**detail, "resets": st.resets})
            )

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
    def learn(st: StageState, payload: Any, up: bool) -> None:
        """Learn one labelled example (its features and raw P(up) at prediction time)."""
        x, raw = payload[0], payload[1]
        if raw is not None and st.calibrator is not None:
            st.calibrator.learn_one(raw, up)
        st.model.learn_one(x, up)
        st.learned += 1

    def symbols(self) -> list[str]:
        return sorted(self._live)

    def forget(self) -> None:
        """Drop live state (after a rebalance): the next tick reloads it from the store."""
        self._live.clear()
