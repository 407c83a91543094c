"""quorum.services without running anything: env parsing, rendering, status, PID safety."""

from __future__ import annotations

import base64
import importlib
import os
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from quorum import services
from quorum.services import (
    KAFKA_VERSION,
    ServiceConfig,
    ServiceState,
    ServiceStatus,
    new_cluster_id,
    parse_bootstrap,
    parse_redis_url,
    render_pom,
    render_redis_conf,
    render_server_properties,
)

INT64_MAX = 2**63 - 1


def _props(text: str) -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys"
    return {key: value for key, value in pairs}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- from_env


def test_defaults_without_env() -> None:
    cfg = ServiceConfig.from_env({})
    assert (cfg.kafka_host, cfg.kafka_port, cfg.controller_port) == ("127.0.0.1", 9092, 9093)
    assert (cfg.redis_host, cfg.redis_port, cfg.redis_db) == ("127.0.0.1", 6379, 0)
    assert cfg.kafka_version == KAFKA_VERSION
    assert cfg.home == Path.cwd().resolve() / ".services"
    assert cfg.kafka_bootstrap == "127.0.0.1:9092"
    assert cfg.redis_url == "redis://127.0.0.1:6379/0"


def test_from_env_overrides() -> None:
    cfg = ServiceConfig.from_env(
        {
            "QUORUM_KAFKA_BOOTSTRAP": " 127.0.0.1:19092 ",
            "QUORUM_REDIS_URL": "redis://127.0.0.2:6380/3",
            "QUORUM_SERVICES_HOME": "/tmp/quorum-services-test",
        }
    )
    assert (cfg.kafka_host, cfg.kafka_port) == ("127.0.0.1", 19092)
    assert (cfg.redis_host, cfg.redis_port, cfg.redis_db) == ("127.0.0.2", 6380, 3)
    assert cfg.home == Path("/tmp/quorum-services-test")
    assert cfg.controller_port == 9093


def test_from_env_keyword_overrides_win(tmp_path: Path) -> None:
    cfg = ServiceConfig.from_env(
        {"QUORUM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, kafka_port=2, home=tmp_path
    )
    assert cfg.kafka_port == 2
    assert cfg.home == tmp_path


def test_default_home_is_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not next to the module (a site-packages install may be read-only or shared)."""
    monkeypatch.delenv("QUORUM_SERVICES_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    expected = tmp_path.resolve() / ".services"
    assert ServiceConfig.from_env().home == expected
    assert ServiceConfig.from_env({}).home == expected
    assert ServiceConfig().home == expected
    assert not expected.is_relative_to(Path(services.__file__).resolve().parent)
    assert not expected.exists()  # reading the config creates nothing


def test_services_home_env_overrides_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("QUORUM_SERVICES_HOME", str(tmp_path / "elsewhere"))
    assert ServiceConfig.from_env().home == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv("QUORUM_SERVICES_HOME", "relative/home")  # resolved against the cwd
    assert ServiceConfig.from_env().home == (tmp_path / "cwd" / "relative" / "home").resolve()


def test_services_tooling_is_not_in_streams() -> None:
    """Dev-only tooling lives in quorum/ (CLI and drivers), not in the runtime I/O package."""
    assert services.__name__ == "quorum.services"
    assert Path(services.__file__).resolve().parent.name == "quorum"
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("streams.services")


def test_empty_env_values_are_ignored() -> None:
    assert ServiceConfig.from_env({"QUORUM_KAFKA_BOOTSTRAP": "", "QUORUM_REDIS_URL": " "}) == (
        ServiceConfig.from_env({})
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("localhost", ("localhost", 9092)),
        ("kafka://127.0.0.1:29092", ("127.0.0.1", 29092)),
        ("127.0.0.1:9192,127.0.0.1:9193", ("127.0.0.1", 9192)),
        ("[::1]:9094", ("::1", 9094)),
        ("[::1]", ("::1", 9092)),
    ],
)
def test_parse_bootstrap(value: str, expected: tuple[str, int]) -> None:
    assert parse_bootstrap(value) == expected


@pytest.mark.parametrize(
    "value", ["127.0.0.1:abc", "127.0.0.1:0", "host:70000", ":9092", "::1:9092"]
)
def test_parse_bootstrap_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="QUORUM_KAFKA_BOOTSTRAP"):
        parse_bootstrap(value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", ("127.0.0.1", 6379, 0)),
        ("redis://localhost", ("localhost", 6379, 0)),
        ("redis://localhost/", ("localhost", 6379, 0)),
        ("redis://:secret@127.0.0.1:6390/15", ("127.0.0.1", 6390, 15)),
        ("redis://[::1]:6379/2", ("::1", 6379, 2)),
    ],
)
def test_parse_redis_url(url: str, expected: tuple[str, int, int]) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://h:port/0", "redis://h:6379/x"]
)
def test_parse_redis_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="QUORUM_REDIS_URL"):
        parse_redis_url(url)


# --------------------------------------------------------------------------- rendering


def test_server_properties_defaults(tmp_path: Path) -> None:
    cfg = ServiceConfig(home=tmp_path)
    props = _props(render_server_properties(cfg))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path.resolve() / "kafka" / "data")
    assert props["num.partitions"] == "6"
    assert props["offsets.topic.num.partitions"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["default.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.message.timestamp.after.max.ms"] == str(INT64_MAX)
    assert props["log.message.timestamp.before.max.ms"] == str(INT64_MAX)
    assert "0.0.0.0" not in render_server_properties(cfg)


def test_server_properties_follow_config(tmp_path: Path) -> None:
    cfg = ServiceConfig(kafka_port=19092, controller_port=19093, home=tmp_path)
    props = _props(render_server_properties(cfg))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_server_properties_is_pure(tmp_path: Path) -> None:
    cfg = ServiceConfig(home=tmp_path)
    assert render_server_properties(cfg) == render_server_properties(cfg)
    assert list(tmp_path.iterdir()) == []


def test_server_properties_rejects_kafka_3(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"4\.x"):
        render_server_properties(ServiceConfig(kafka_version="3.9.1", home=tmp_path))


def test_redis_conf(tmp_path: Path) -> None:
    conf = render_redis_conf(ServiceConfig(redis_port=6390, home=tmp_path))
    lines = conf.splitlines()
    assert "bind 127.0.0.1" in lines
    assert "port 6390" in lines
    assert "protected-mode yes" in lines
    assert "daemonize no" in lines
    assert 'save ""' in lines
    assert "appendonly no" in lines
    assert f'dir "{tmp_path.resolve() / "redis" / "data"}"' in lines


def test_pom_is_wellformed_and_pins_logging(tmp_path: Path) -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(render_pom(ServiceConfig(home=tmp_path)))
    assert root.findtext("m:packaging", namespaces=ns) == "pom"
    deps = {
        d.findtext("m:artifactId", namespaces=ns): d.findtext("m:version", namespaces=ns)
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps["kafka_2.13"] == KAFKA_VERSION
    assert {"log4j-api", "log4j-core", "log4j-slf4j-impl"} <= deps.keys()


def test_new_cluster_id() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


# --------------------------------------------------------------------------- status / down


def test_status_table_rows() -> None:
    current = ServiceStatus(
        kafka=ServiceState("kafka", "127.0.0.1:9092", running=True, pid=42),
        redis=ServiceState("redis", "127.0.0.1:6379", running=True),
    )
    assert current.all_running
    assert current.rows()[0][:3] == ("kafka", "running", "managed (pid 42)")
    assert current.rows()[1][:3] == ("redis", "running", "external")
    text = str(current)
    assert text.splitlines()[0].split() == list(ServiceStatus.HEADERS)
    assert "managed (pid 42)" in text


def test_status_of_nothing_running(tmp_path: Path) -> None:
    cfg = ServiceConfig(kafka_port=_free_port(), redis_port=_free_port(), home=tmp_path)
    current = services.status(cfg)
    assert not current.all_running
    assert [s.state for s in current.services] == ["stopped", "stopped"]
    assert [s.owner for s in current.services] == ["-", "-"]


def test_down_never_kills_a_pid_that_is_not_ours(tmp_path: Path) -> None:
    cfg = ServiceConfig(home=tmp_path)
    for pid_file in (cfg.kafka_pid_file, cfg.redis_pid_file):
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")  # this test process: alive, but not Kafka/Redis
    messages: list[str] = []
    services.down(cfg, log=messages.append)
    assert not cfg.kafka_pid_file.exists() and not cfg.redis_pid_file.exists()
    assert any("not ours" in m for m in messages), messages
    assert services.status(cfg).kafka.pid is None


def test_unknown_service_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown service"):
        services.down(ServiceConfig(home=tmp_path), services=["zookeeper"])
