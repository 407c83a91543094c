"""`quorum state ls|show|export|reset` on state a pipeline checkpointed into the real Redis."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from agents.describe import meta
from agents.pipeline import Pipeline
from config.settings import load_config
from models.sealed import StateSealer
from quorum.cli import app
from streams.readers import read_ticks
from streams.redis_store import RedisStateStore, redis_client
from tests.conftest import SAMPLE_FILES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "state-cli-test-secret-0123456789"
URL = os.environ.get("QUORUM_REDIS_URL", "redis://127.0.0.1:6379/0")
TICKS = 4000


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A pipeline namespace holding the checkpointed state of the first sample ticks."""
    name = f"it-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("QUORUM_PIPELINE", name)
    monkeypatch.setenv("QUORUM_STATE_SECRET", SECRET)
    store = RedisStateStore(redis_client(URL), StateSealer(SECRET.encode(), name), meta=meta)
    pipe = Pipeline(load_config(), store)
    for tick in list(read_ticks([SAMPLE_FILES[0]]))[:TICKS]:
        pipe.process(tick)
    store.touch_all()
    store.checkpoint()
    yield name
    client = redis_client(URL)
    keys = list(client.scan_iter(match=f"quorum:{{{name}*"))
    if keys:
        client.delete(*keys)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_ls_lists_every_key_with_version_and_examples(pipeline: str) -> None:
    code, out = run("state", "ls", "--json")
    assert code == 0, out
    rows = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    cfg = load_config()
    assert {r["stage"] for r in rows} == {s.name for s in cfg.stages} | {"labels", "voting"}
    micro = next(r for r in rows if r["stage"] == "microstructure")
    assert micro["symbol"] == "BTCUSDT" and micro["version"] == 1
    assert 0 < micro["examples_learned"] <= micro["ticks_seen"] <= TICKS


def test_show_and_export_describe_the_model(pipeline: str, tmp_path: Path) -> None:
    code, out = run("state", "show", "flow", "BTCUSDT")
    assert code == 0, out
    doc = orjson.loads(out)
    assert doc["key"] == "flow/BTCUSDT" and doc["pipeline"] == pipeline
    assert doc["model_id"].startswith("flow:")
    assert doc["state"]["kind"] == "stage"
    assert doc["state"]["examples_learned"] == doc["header"]["examples_learned"] > 0
    assert doc["state"]["weights"], "a logistic regression learned some weights"

    target = tmp_path / "flow.json"
    code, out = run("state", "export", "flow", "BTCUSDT", "--out", str(target))
    assert code == 0, out
    exported = orjson.loads(target.read_text())
    blob = base64.b64decode(exported["sealed_b64"])
    head = StateSealer(SECRET.encode(), pipeline).header("flow/BTCUSDT", blob)
    assert head.version == exported["version"] == 1  # the dump is the signed blob itself

    code, out = run("state", "show", "nosuchstage", "BTCUSDT")
    assert code == 2 and "unknown stage" in out


def test_ls_flags_a_tampered_blob_and_show_refuses_it(pipeline: str) -> None:
    client = redis_client(URL)
    rkey = f"quorum:{{{pipeline}}}:state:voting/BTCUSDT"
    blob = bytearray(client.get(rkey))  # type: ignore[arg-type]
    blob[-40] ^= 0x01
    client.set(rkey, bytes(blob))
    code, out = run("state", "ls")
    assert code == 3 and "1 blob(s) failed verification" in out
    code, out = run("state", "ls", "--json", "--stage", "voting")
    rows = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert code == 3 and len(rows) == 1 and "bad signature" in rows[0]["refused"]
    code, out = run("state", "show", "voting", "BTCUSDT")
    assert code == 2 and "bad signature" in out


def test_reset_deletes_only_what_was_named(pipeline: str) -> None:
    code, out = run("state", "reset", "counts", "--symbol", "BTCUSDT", "--yes")
    assert code == 0 and "deleted 1 key" in out
    code, out = run("state", "ls", "--json")
    stages = {orjson.loads(line)["stage"] for line in out.splitlines() if line.startswith("{")}
    assert "counts" not in stages and "microstructure" in stages
    code, out = run("state", "reset")
    assert code == 2 and "--all" in out
    code, out = run("state", "reset", "--all", "--yes")
    assert code == 0
    assert not list(redis_client(URL).scan_iter(match=f"quorum:{{{pipeline}*"))


def test_show_describes_the_shared_labels(pipeline: str) -> None:
    # the fused kernel's one labeler per symbol is inspectable like any model state
    code, out = run("state", "show", "labels", "BTCUSDT")
    assert code == 0, out
    doc = orjson.loads(out)
    assert doc["state"]["kind"] == "labels"
    assert doc["state"]["horizon_ns"] == load_config().horizon_ns
    assert doc["state"]["pending_labels"] == doc["header"]["pending_labels"] > 0
