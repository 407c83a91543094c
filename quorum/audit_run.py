"""The embedded backtest's ``audit.jsonl``: the hash-chained record of a run (``models.audit``).

Deterministic like ``signals.jsonl`` (event times only, no wall clock): the same input and
config give the same bytes and the same head. Records: the config loaded (with its hash), the
run's inputs, each stage model created per symbol (with its id), every model event (drift
alarm, mute, unmute, reset), every ``signal_every``-th signal and every signal whose receipt
reports a drift alarm, each model's final state (learned count, resets, alarms), and the run's
end (counts and the sha256 of ``signals.jsonl``). ``quorum models`` reads the model records.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

import orjson

from agents.pipeline import Pipeline
from config.settings import PipelineConfig, StageConfig
from models.audit import AuditChain
from models.factory import model_id as receipt_model_id
from models.records import ModelEvent, Signal

DEFAULT_SIGNAL_EVERY = 100


def code_version() -> str:
    try:
        return version("quorum")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def model_id(cfg: PipelineConfig, stage: StageConfig, symbol: str) -> str:
    """A stage model's id: its config (extractor, features, model spec, calibration), the
    code version and the seed; the symbol makes each per-symbol instance its own."""
    spec = orjson.dumps(
        {
            "stage": stage.model_dump(mode="json"),
            "code": code_version(),
            "seed": cfg.seed,
            "symbol": symbol,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(spec).hexdigest()[:16]


class AuditWriter:
    """Appends a run's records to ``audit.jsonl`` as they happen."""

    def __init__(self, path: Path, cfg: PipelineConfig, signal_every: int = DEFAULT_SIGNAL_EVERY):
        if signal_every < 1:
            raise ValueError(f"signal_every must be >= 1, got {signal_every}")
        self.cfg = cfg
        self.chain = AuditChain()
        self.signal_every = signal_every
        self._f: IO[bytes] = path.open("wb")
        self._symbols: set[str] = set()
        self._signals = 0
        self._sig_hash = hashlib.sha256()

    def _write(self, kind: str, **fields: Any) -> None:
        self._f.write(self.chain.line(self.chain.append(kind, **fields)))

    def start(self, files: list[Path]) -> None:
        cfg = self.cfg
        self._write("config_load", config_name=cfg.name, config_hash=cfg.config_hash(), ts=None)
        # a missing file is the reader's error to report (with its name), not ours
        inputs = [
            {"path": str(p), "bytes": p.stat().st_size if p.is_file() else None} for p in files
        ]
        self._write("run_start", inputs=inputs, code=code_version(), ts=None)

    def tick(self, symbol: str, ts: int) -> None:
        """The first tick of a symbol creates its stage models."""
        if symbol in self._symbols:
            return
        self._symbols.add(symbol)
        for stage in self.cfg.stages:
            self._write(
                "model_created",
                stage=stage.name,
                symbol=symbol,
                model_id=model_id(self.cfg, stage, symbol),
                receipt_model=receipt_model_id(stage),
                model=stage.model.model_dump(mode="json"),
                seed=self.cfg.seed,
                ts=ts,
            )

    def signal(self, s: Signal, line: bytes) -> None:
        """Every signal's line feeds the run's signals hash; every ``signal_every``-th one is
        recorded in full, with each stage's vote and weight."""
        self._signals += 1
        self._sig_hash.update(line)
        sampled = (self._signals - 1) % self.signal_every == 0  # the 1st, then every n-th
        if sampled or any(v.drift == "alarm" for v in s.stages):
            self._write(
                "signal",
                id=s.id,
                symbol=s.symbol,
                ts=s.ts,
                action=str(s.action),
                p_up=s.p_up,
                stages=[[v.name, v.p_up, v.weight, v.drift] for v in s.stages],
            )

    def _stage(self, name: str) -> StageConfig:
        return next(st for st in self.cfg.stages if st.name == name)

    def model_event(self, ev: ModelEvent) -> None:
        """A drift alarm, mute, unmute or reset of one stage model, at its event time."""
        mid = model_id(self.cfg, self._stage(ev.stage), ev.symbol)
        self._write(ev.kind, stage=ev.stage, symbol=ev.symbol, model_id=mid, ts=ev.ts, **ev.detail)

    def models_final(self, pipeline: Pipeline) -> None:
        """Each model's state at the end of the run (an embedded run's one checkpoint)."""
        for stage in pipeline.stages:
            for symbol in stage.symbols():
                st = stage.state(symbol)
                mon = st.drift
                self._write(
                    "model_final",
                    stage=stage.name,
                    symbol=symbol,
                    model_id=model_id(self.cfg, stage.cfg, symbol),
                    learned=st.learned,
                    resets=st.resets,
                    drift_alarms=None if mon is None else mon.alarms,
                    muted=None if mon is None else mon.muted,
                    ts=None,
                )

    def end(self, events: int, last_ts: int) -> dict[str, Any]:
        self._write(
            "run_end",
            events=events,
            signals=self._signals,
            signals_sha256=self._sig_hash.hexdigest(),
            ts=last_ts,
        )
        self._f.close()
        return {
            "records": self.chain.next_index,
            "head": self.chain.head,
            "signal_every": self.signal_every,
        }

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


def drift_summary(
    cfg: PipelineConfig, pipeline: Pipeline, events: list[ModelEvent]
) -> dict[str, Any]:
    """report.json's ``drift``: the detector, and per stage and symbol the blocks it judged,
    its alarms (event times) and what the configured action did."""
    assert cfg.drift is not None
    models: dict[str, dict[str, Any]] = {}
    for stage in pipeline.stages:
        per: dict[str, Any] = {}
        for symbol in stage.symbols():
            st = stage.state(symbol)
            mon = st.drift
            per[symbol] = {
                "blocks": 0 if mon is None else mon.blocks,
                "alarms": [
                    e.ts
                    for e in events
                    if e.stage == stage.name and e.symbol == symbol and e.kind == "drift_alarm"
                ],
                "resets": st.resets,
                "muted": False if mon is None else mon.muted,
            }
        models[stage.name] = per
    return {"config": cfg.drift.model_dump(mode="json"), "stages": models}
