"""Pipeline configuration: frozen, validated (unknown keys are errors), hashable.

The config hash is part of every signal id, so two runs agree on ids exactly when they ran
the same configuration on the same input.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.runtime import RuntimeConfig, RuntimeConfigError

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Frozen):
    """A River estimator by dotted path, with parameters; nested specs are built recursively.

    ``steps`` composes a pipeline (``a | b | c``) instead of a single ``path``.
    """

    path: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    steps: tuple[ModelSpec, ...] = ()

    @model_validator(mode="after")
    def _one_of(self) -> ModelSpec:
        if (self.path is None) == (not self.steps):
            raise ValueError("give exactly one of 'path' (an estimator) or 'steps' (a pipeline)")
        if self.path is not None and "." not in self.path:
            raise ValueError(f"path must be a dotted import path, got {self.path!r}")
        return self


class StageConfig(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    # a name in agents.features.EXTRACTORS, the one registry of extractors (config cannot
    # import agents: the stage checks the name when it is built, naming the known ones)
    extractor: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    features: tuple[str, ...]
    model: ModelSpec
    calibrate: bool = True
    calibration_lr: float = Field(default=0.002, gt=0)
    calibration_intercept: bool = False
    warmup: int = Field(default=50, ge=0)
    max_pending: int = Field(default=100_000, gt=0)

    @field_validator("features")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("a stage needs at least one feature")
        if len(set(v)) != len(v):
            raise ValueError("features must be unique")
        return v


class VotingConfig(_Frozen):
    quorum: int = Field(default=2, ge=1)
    threshold: float = Field(default=0.55, gt=0.5, lt=1.0)
    method: Literal["stack", "hedge"] = Field(
        default="stack",
        description="stack: log-odds pool, AdaGrad; hedge: exponential weights, fixed share",
    )
    learning_rate: float = Field(
        default=0.05, gt=0, description="stack: AdaGrad rate; hedge: eta, per horizon"
    )
    l2: float = Field(default=0.01, ge=0, description="stack: pull towards equal weights")
    share: float = Field(
        default=0.0001, ge=0, lt=1, description="hedge: fixed share per independent outcome"
    )
    max_pending: int = Field(default=100_000, gt=0)


class ReaderConfig(_Frozen):
    reorder_tolerance_ms: int = Field(default=2_000, ge=0)


class DriftConfig(_Frozen):
    """A drift detector on each stage's skill over a coin, per symbol, and what an alarm does.

    The detector sees one value per horizon block of event time (the block's mean skill,
    standardised by the first ``warmup_blocks`` blocks): outcomes within one horizon share
    their price path, so only block means are close to independent.
    """

    detector: Literal["adwin", "page_hinkley"] = "page_hinkley"
    # the target: false alarms per block on a stationary stream (sets ADWIN's delta, or the
    # Page-Hinkley threshold by Siegmund's approximation of the in-control run length)
    false_alarm_rate: float = Field(default=0.001, gt=0, lt=0.5)
    allowance: float = Field(
        default=0.25, gt=0, description="page_hinkley: drift per block ignored, in block s.d."
    )
    warmup_blocks: int = Field(default=50, ge=5)
    action: Literal["alert", "mute", "reset"] = Field(
        default="alert",
        description="alert: audit only; mute: abstain until the skill recovers; reset: new model",
    )
    recover_blocks: int = Field(
        default=20,
        ge=1,
        description="blocks of the materiality test; mute: unmute once they beat a coin",
    )
    min_drop: float = Field(
        default=0.005, ge=0, description="nats: an alarm's recent skill is this far below μ₀"
    )


class PipelineConfig(_Frozen):
    name: str = "quorum"
    seed: int = 42
    horizon_s: float = Field(default=5.0, gt=0)
    dead_band_bps: float = Field(default=0.0, ge=0)
    trigger: tuple[Literal["trade", "quote"], ...] = ("trade",)
    stages: tuple[StageConfig, ...]
    voting: VotingConfig = VotingConfig()
    reader: ReaderConfig = ReaderConfig()
    drift: DriftConfig | None = None  # None: no detector (and no key in the config hash)
    # Where the services are; never part of the hash, so addresses cannot change signal ids.
    runtime: RuntimeConfig = RuntimeConfig()

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if not self.stages:
            raise ValueError("at least one stage is required")
        if self.voting.quorum > len(self.stages):
            raise ValueError(
                f"voting.quorum ({self.voting.quorum}) exceeds the number of stages "
                f"({len(self.stages)})"
            )
        if not self.trigger:
            raise ValueError("trigger must list at least one tick type")
        return self

    @property
    def horizon_ns(self) -> int:
        return round(self.horizon_s * 1e9)

    def config_hash(self) -> str:
        """Stable hash of every setting that can change a signal (so not ``runtime``)."""
        data = self.model_dump(mode="json", exclude={"runtime"})
        if data.get("drift") is None:  # configs from before drift monitoring keep their hash
            data.pop("drift", None)
        blob = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_overrides(self, **changes: Any) -> PipelineConfig:
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return PipelineConfig.model_validate(data)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_config(
    path: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> PipelineConfig:
    """Load and validate a YAML config (the packaged default when ``path`` is None).

    ``QUORUM_*`` variables of ``environ`` (default ``os.environ``) override its ``runtime``
    section, so one file serves every deployment.
    """
    p = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    section = raw.pop("runtime", None)
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"{p}: runtime must be a mapping")
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(p, e)) from None
    try:
        runtime = RuntimeConfig.from_sources(section, os.environ if environ is None else environ)
    except RuntimeConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    return cfg.model_copy(update={"runtime": runtime})
