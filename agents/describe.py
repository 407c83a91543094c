"""Plain-data descriptions of stage and voter state, for governance (`quorum state show`)."""

from __future__ import annotations

from typing import Any

from agents.join import JoinState
from agents.stage import StageState
from agents.voting import VoterState
from models.labels import Labeler


def _params(model: Any) -> Any:
    try:
        return {k: repr(v) for k, v in model._get_params().items()}
    except AttributeError:
        return repr(model)


def _weights(model: Any) -> dict[str, float]:
    """Linear weights of the final step when it has them (what the model learned)."""
    final = model
    steps = getattr(model, "steps", None)
    if steps:
        final = list(steps.values())[-1]
    w = getattr(final, "weights", None)
    return {str(k): float(v) for k, v in dict(w).items()} if w is not None else {}


def describe(value: Any) -> dict[str, Any]:
    if isinstance(value, StageState):
        cal = value.calibrator
        return {
            "kind": "stage",
            "model": repr(value.model),
            "params": _params(value.model),
            "weights": _weights(value.model),
            "examples_learned": value.learned,
            "ticks_seen": value.seq,
            "pending_labels": len(value.labeler.pending),
            "dropped_labels": value.labeler.dropped,
            "calibration": None if cal is None else {"a": cal.a, "b": cal.b, "n": cal.n},
            # a count model's whole state, printable (models.counts.CountModel.table)
            "table": value.model.table() if hasattr(value.model, "table") else None,
            # which rule signed this symbol's trades (exchange side, Lee-Ready, tick rule)
            "signing": dict(getattr(value.extractor, "signing", None) or {}) or None,
        }
    if isinstance(value, JoinState):
        return {
            "kind": "join",
            "waiting_ticks": len(value.pending),
            "released_seq": value.released,
        }
    if isinstance(value, Labeler):
        return {
            "kind": "labels",
            "horizon_ns": value.horizon_ns,
            "pending_labels": len(value.pending),
            "dropped_labels": value.dropped,
            "reference_price": value.ref.value,
        }
    if isinstance(value, VoterState):
        return {
            "kind": "voting",
            "weights": dict(value.weights.weights),
            "pending_outcomes": len(value.pending),
            "flat_outcomes": value.flats,
            "dropped": value.dropped,
        }
    return {"kind": type(value).__name__, "repr": repr(value)[:2000]}


def meta(key: str, value: Any) -> dict[str, Any]:
    """The small summary kept in a sealed blob's header (readable without unpickling).

    A Kafka driver adds its own ``position`` (input partition, offset, index in the record)
    beside it (see :data:`streams.redis_store.DRIVER_META`): positions are not domain state.
    """
    if isinstance(value, StageState):
        return {
            "examples_learned": value.learned,
            "ticks_seen": value.seq,
        }
    if isinstance(value, JoinState):
        return {"waiting_ticks": len(value.pending)}
    if isinstance(value, Labeler):
        return {"pending_labels": len(value.pending)}
    if isinstance(value, VoterState):
        return {"weights": dict(value.weights.weights)}
    return {}
