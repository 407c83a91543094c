"""Redis AUTH and DB number come from the URL: state saved through a password-protected Redis
lands in the named DB, and a wrong password is a clear error, not silent state loss."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from typer.testing import CliRunner

from agents.describe import meta
from agents.pipeline import Pipeline
from config.settings import load_config
from models.sealed import StateSealer
from quorum.cli import app
from streams.readers import read_ticks
from streams.redis_store import RedisStateStore, redis_client
from tests.conftest import SAMPLE_FILES

pytestmark = pytest.mark.integration

PASSWORD = "auth-test-pw-" + uuid.uuid4().hex[:8]
SECRET = "auth-test-state-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def protected_port() -> Iterator[int]:
    """A throw-away redis-server on 127.0.0.1 that requires a password."""
    binary = shutil.which("redis-server")
    if binary is None:  # the test command installs it; without it the suite fails elsewhere
        pytest.fail("redis-server not found")
    port = _free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    proc = subprocess.Popen(
        [binary, *args, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_state_goes_through_auth_into_the_named_db(protected_port: int) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{protected_port}/5"
    sealer = StateSealer(SECRET.encode(), "auth-test")
    store = RedisStateStore(redis_client(url), sealer, meta=meta)
    pipe = Pipeline(load_config(), store)
    for tick in list(read_ticks([SAMPLE_FILES[0]]))[:500]:
        pipe.process(tick)
    store.touch_all()
    assert store.checkpoint().keys > 0
    db5 = redis.Redis(host="127.0.0.1", port=protected_port, password=PASSWORD, db=5)
    db0 = redis.Redis(host="127.0.0.1", port=protected_port, password=PASSWORD, db=0)
    assert db5.exists("quorum:auth-test:state:microstructure/BTCUSDT")
    assert not list(db0.scan_iter(match="quorum:*"))
    fresh = RedisStateStore(redis_client(url), sealer)
    assert fresh.get("microstructure/BTCUSDT") is not None


def test_a_wrong_password_is_a_clear_error(
    protected_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{protected_port}/0"
    store = RedisStateStore(redis_client(url), StateSealer(SECRET.encode(), "auth-test"))
    with pytest.raises(redis.AuthenticationError):
        store.get("microstructure/BTCUSDT")
    monkeypatch.setenv("QUORUM_REDIS_URL", url)
    monkeypatch.setenv("QUORUM_STATE_SECRET", SECRET)
    result = CliRunner().invoke(app, ["state", "ls"])
    assert result.exit_code == 2
    assert "cannot read state from Redis" in result.output
