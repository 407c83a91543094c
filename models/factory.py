"""Build River estimators from config: a dotted path plus params, or a pipeline of steps.

Nested ``{"path": ..., "params": ...}`` values inside params are built too (an optimizer,
say). A ``seed`` parameter is filled in from the pipeline seed when the estimator takes one,
so every run is repeatable.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import orjson

from config.settings import ModelSpec, StageConfig


class ModelConfigError(ValueError):
    """A model spec that names something that does not exist or cannot be built."""


def _resolve(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise ModelConfigError(f"cannot import {path!r}: {e}") from None


def _build_value(value: Any, seed: int) -> Any:
    if isinstance(value, dict) and "path" in value:
        return _build_one(value["path"], value.get("params", {}), seed)
    if isinstance(value, list):
        return [_build_value(v, seed) for v in value]
    return value


def _build_one(path: str, params: dict[str, Any], seed: int) -> Any:
    cls = _resolve(path)
    kwargs = {k: _build_value(v, seed) for k, v in params.items()}
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        accepted = {}  # type: ignore[assignment]
    if "seed" in accepted and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ModelConfigError(f"{path}: {e}") from None


def build_model(spec: ModelSpec, seed: int) -> Any:
    """A fresh, untrained estimator for ``spec``."""
    if spec.path is not None:
        return _build_one(spec.path, dict(spec.params), seed)
    steps = [build_model(s, seed) for s in spec.steps]
    model = steps[0]
    for step in steps[1:]:
        model = model | step
    return model


def model_id(stage: StageConfig) -> str:
    """Names a stage's model by a hash of its spec and features, so a swap shows in receipts."""
    blob = orjson.dumps(stage.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return f"{stage.name}:{hashlib.sha256(blob).hexdigest()[:8]}"
