"""Sealed state: verified before it is unpickled; tampering, other pipelines, other keys and
unknown formats are refused and never executed."""

from __future__ import annotations

from typing import Any

import pytest

from agents.stage import Stage
from config.settings import load_config
from models.sealed import MAGIC, StateIntegrityError, StateSealer

SECRET = b"0123456789abcdef-test-secret"
EXECUTED: list[str] = []


class Bomb:
    """Unpickling this runs code: proof that a refused blob was never unpickled."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (EXECUTED.append, ("boom",))


def test_round_trip_of_real_stage_state() -> None:
    cfg = load_config()
    stage = Stage(cfg.stages[0], cfg)
    st = stage.new_state()
    s = StateSealer(SECRET, "p1")
    blob = s.seal("microstructure/BTC", st, version=3, meta={"examples_learned": 0})
    head, value = s.open("microstructure/BTC", blob)
    assert (head.version, head.pipeline, head.meta) == (3, "p1", {"examples_learned": 0})
    assert type(value) is type(st) and repr(value.model) == repr(st.model)
    assert value.learned == st.learned and value.labeler == st.labeler


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b[:-40] + bytes([b[-40] ^ 1]) + b[-39:], "bad signature"),
        (lambda b: b[:20] + b"X" + b[21:], "bad signature"),
        (lambda b: b"garbage", "not a quorum state blob"),
    ],
)
def test_tampered_blobs_are_refused_and_never_unpickled(mutate: Any, needle: str) -> None:
    EXECUTED.clear()
    s = StateSealer(SECRET, "p1")
    blob = mutate(s.seal("k", Bomb(), version=1))
    with pytest.raises(StateIntegrityError, match=needle):
        s.open("k", blob)
    assert EXECUTED == []


def test_other_secret_pipeline_key_and_format_are_refused() -> None:
    EXECUTED.clear()
    blob = StateSealer(SECRET, "p1").seal("k", Bomb(), version=1)
    with pytest.raises(StateIntegrityError, match="signature"):
        StateSealer(b"another-secret-of-16+", "p1").open("k", blob)
    with pytest.raises(StateIntegrityError, match="pipeline 'p1'"):
        StateSealer(SECRET, "p2").open("k", blob)
    with pytest.raises(StateIntegrityError, match="written for key 'k'"):
        StateSealer(SECRET, "p1").open("other", blob)
    assert EXECUTED == []
    # a correctly signed blob of a future format is refused too
    s = StateSealer(SECRET, "p1")
    future = s.seal("k", 1, version=1).replace(b'"format":1', b'"format":9')
    body = future[:-32]
    resigned = body + s._sign(body)
    assert resigned.startswith(MAGIC)
    with pytest.raises(StateIntegrityError, match="unknown state format version 9"):
        s.open("k", resigned)


def test_short_secrets_are_rejected() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        StateSealer(b"short", "p")
