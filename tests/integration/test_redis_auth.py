"""Redis AUTH, TLS and DB number come from the URL: state saved through a password-protected
Redis lands in the named DB, a wrong password is a clear error, not silent state loss, and a
``rediss://`` URL talks TLS to a Redis that only listens on TLS, verifying its certificate."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PASSWORD = "auth-test-pw-" + uuid.uuid4().hex[:8]
SECRET = "auth-test-state-secret-0123456789"


def _start_redis(args: list[str]) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:  # the test command installs it; without it the suite fails elsewhere
        pytest.fail("redis-server not found")
    return subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ping(client: redis.Redis) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def protected_port() -> Iterator[int]:
    """A throw-away redis-server on 127.0.0.1 that requires a password."""
    port = _free_port()
    proc = _start_redis(["--port", str(port), "--requirepass", PASSWORD])
    try:
        _wait_ping(redis.Redis(host="127.0.0.1", port=port, password=PASSWORD))
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
    assert db5.exists("quorum:{auth-test}:state:microstructure/BTCUSDT")
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


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def test_rediss_url_talks_tls_and_checks_the_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found (needed to make the test's certificates)")
    ca_key, ca, key, csr, cert = (
        tmp_path / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    )
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    ext = tmp_path / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    port = _free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
    proc = _start_redis(
        [
            *tls,
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
        ]
    )
    try:
        url = f"rediss://127.0.0.1:{port}/2?ssl_ca_certs={ca}"
        _wait_ping(redis_client(url))
        sealer = StateSealer(SECRET.encode(), "tls-test")
        store = RedisStateStore(redis_client(url), sealer, meta=meta)
        store.put("microstructure/TLS", {"n": 1})
        assert store.checkpoint().keys == 1
        assert RedisStateStore(redis_client(url), sealer).get("microstructure/TLS") == {"n": 1}
        with pytest.raises(redis.ConnectionError):  # plain text to a TLS port: refused
            redis_client(f"redis://127.0.0.1:{port}/2").ping()
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            redis_client(f"rediss://127.0.0.1:{port}/2").ping()  # the system CAs do not know it
    finally:
        proc.terminate()
        proc.wait(timeout=10)
