"""Runtime settings: env over file over defaults, prefixes, secrets, and no effect on the hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from config.runtime import RuntimeConfig, RuntimeConfigError
from config.settings import DEFAULT_CONFIG, ConfigError, load_config

SASL_ENV = {
    "QUORUM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "QUORUM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "QUORUM_KAFKA_SASL_USERNAME": "quorum",
    "QUORUM_KAFKA_SASL_PASSWORD": "hunter2-secret",
}


def _config_file(tmp_path: Path, runtime: dict[str, Any] | None) -> Path:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if runtime is None:
        raw.pop("runtime", None)
    else:
        raw["runtime"] = runtime
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_defaults() -> None:
    rt = load_config(environ={}).runtime
    assert rt == RuntimeConfig()
    assert rt.kafka.bootstrap == "127.0.0.1:9092"
    assert rt.redis.url == "redis://127.0.0.1:6379/0"
    assert (rt.pipeline.name, rt.web.host, rt.web.port) == ("quorum", "127.0.0.1", 6066)
    assert [rt.topic(k) for k in ("ticks", "votes", "signals", "rejected")] == [
        "ticks",
        "votes",
        "signals",
        "ticks.rejected",
    ]
    assert rt.topics.partitions == 12  # docs/SCALING.md: room for 12 workers per group
    assert rt.topology == "fused"
    assert rt.librdkafka() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


def test_env_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    path = _config_file(
        tmp_path,
        {"kafka": {"bootstrap": "file:9092"}, "topics": {"prefix": "file."}, "web": {"port": 7000}},
    )
    from_file = load_config(path, environ={}).runtime
    assert from_file.kafka.bootstrap == "file:9092"
    assert from_file.topic("ticks") == "file.ticks"
    assert from_file.web.port == 7000
    assert from_file.redis.url == "redis://127.0.0.1:6379/0"  # untouched default

    env = {
        "QUORUM_KAFKA_BOOTSTRAP": "env:19092",
        "QUORUM_REDIS_URL": "redis://10.0.0.2:6380/3",
        "QUORUM_TOPIC_PREFIX": "t1.",
        "QUORUM_PIPELINE": "paper",
        "QUORUM_WEB_PORT": "7001",
        "QUORUM_KAFKA_SASL_USERNAME": "  ",  # blank counts as unset
        "UNRELATED": "x",
    }
    rt = load_config(path, environ=env).runtime
    assert rt.kafka.bootstrap == "env:19092"
    assert rt.redis.url == "redis://10.0.0.2:6380/3"
    assert rt.pipeline.name == "paper"
    assert rt.web.port == 7001
    assert rt.kafka.sasl_username is None
    assert rt.topic("ticks") == "t1.ticks"
    assert rt.topic("rejected") == "t1.ticks.rejected"


def test_state_settings_from_file_and_env(tmp_path: Path) -> None:
    assert RuntimeConfig().state.backend == "memory"
    path = _config_file(tmp_path, {"state": {"backend": "redis", "checkpoint_every": 100}})
    st = load_config(path, environ={}).runtime.state
    assert (st.backend, st.checkpoint_every, st.checkpoint_interval_s) == ("redis", 100, 2.0)
    env = {"QUORUM_STATE_BACKEND": "memory", "QUORUM_STATE_CHECKPOINT_INTERVAL_S": "0.5"}
    st = load_config(path, environ=env).runtime.state
    assert (st.backend, st.checkpoint_every, st.checkpoint_interval_s) == ("memory", 100, 0.5)


def test_load_config_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUM_TOPIC_PREFIX", "ci-42.")
    assert load_config().runtime.topic("signals") == "ci-42.signals"


def test_prefix_applies_to_topics_and_groups() -> None:
    rt = RuntimeConfig().with_env({"QUORUM_TOPIC_PREFIX": "t1."})
    assert rt.topic("ticks") == "t1.ticks"
    assert rt.topic("votes") == "t1.votes"
    assert rt.topic("signals") == "t1.signals"
    assert rt.group("quorum-worker") == "t1.quorum-worker"
    assert RuntimeConfig().group("quorum-worker") == "quorum-worker"
    with pytest.raises(ValueError, match="unknown topic"):
        rt.topic("candles")  # type: ignore[arg-type]


def test_runtime_never_changes_the_hash(tmp_path: Path) -> None:
    without = load_config(_config_file(tmp_path, None), environ={})
    base = without.config_hash()
    assert load_config(environ={}).config_hash() == base
    other = load_config(
        _config_file(tmp_path, {"kafka": {"bootstrap": "elsewhere:9092"}, "web": {"port": 1}}),
        environ={"QUORUM_TOPIC_PREFIX": "x.", "QUORUM_PIPELINE": "p2", **SASL_ENV},
    )
    assert other.runtime != without.runtime
    assert other.config_hash() == base
    # the pipeline settings still count, and with_overrides keeps the runtime section
    changed = other.with_overrides(horizon_s=7.0)
    assert changed.config_hash() != base and changed.runtime == other.runtime


@pytest.mark.parametrize(
    ("runtime", "needle"),
    [
        ({"kafka": {"bootstrp": "x:1"}}, "runtime.kafka.bootstrp"),
        ({"kafak": {}}, "runtime.kafak"),
        ({"topics": {"names": {"tick": "t"}}}, "runtime.topics.names.tick"),
        ({"topics": {"partitions": 0}}, "runtime.topics.partitions"),
        ({"topics": {"prefix": "a b"}}, "runtime.topics.prefix"),
        ({"kafka": {"security_protocol": "TLS"}}, "runtime.kafka.security_protocol"),
        ({"redis": {"url": "http://x"}}, "runtime.redis.url"),
        ({"web": {"port": 70000}}, "runtime.web.port"),
        ({"state": {"backend": "disk"}}, "runtime.state.backend"),
        ({"state": {"checkpoint_every": 0}}, "runtime.state.checkpoint_every"),
    ],
)
def test_bad_runtime_keys_are_named(tmp_path: Path, runtime: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        load_config(_config_file(tmp_path, runtime), environ={})
    assert "c.yaml" in str(err.value)


def test_bad_env_values_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="QUORUM_WEB_PORT"):
        load_config(environ={"QUORUM_WEB_PORT": "http"})
    with pytest.raises(RuntimeConfigError, match="QUORUM_TOPIC_PREFIX"):
        RuntimeConfig().with_env({"QUORUM_TOPIC_PREFIX": "no/slashes"})
    with pytest.raises(RuntimeConfigError, match="QUORUM_KAFKA_SECURITY_PROTOCOL"):
        RuntimeConfig().with_env({"QUORUM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})  # no mechanism


def test_sasl_and_ssl_rendered_for_librdkafka() -> None:
    rt = RuntimeConfig().with_env(
        {
            **SASL_ENV,
            "QUORUM_KAFKA_BOOTSTRAP": "b1:9093,b2:9093",
            "QUORUM_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
        }
    )
    assert rt.librdkafka() == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "quorum",
        "sasl.password": "hunter2-secret",
        "ssl.ca.location": "/etc/ca.pem",
    }


def test_the_environment_can_complete_the_file(tmp_path: Path) -> None:
    """The file names the mechanism and user; the password comes only from the environment."""
    kafka = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "q"}
    path = _config_file(tmp_path, {"kafka": kafka})
    with pytest.raises(ConfigError, match="sasl_password"):
        load_config(path, environ={})
    rt = load_config(path, environ={"QUORUM_KAFKA_SASL_PASSWORD": "from-env"}).runtime
    assert rt.librdkafka()["sasl.password"] == "from-env"
    assert rt.librdkafka()["sasl.username"] == "q"


def test_inconsistent_security_is_refused() -> None:
    with pytest.raises(ValidationError, match="sasl_username and sasl_password"):
        RuntimeConfig.model_validate(
            {"kafka": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}}
        )
    with pytest.raises(ValidationError, match="security_protocol is PLAINTEXT"):
        RuntimeConfig.model_validate({"kafka": {"sasl_username": "u", "sasl_password": "p"}})


def test_password_never_shown() -> None:
    cfg = load_config(environ=SASL_ENV)
    for text in (
        repr(cfg.runtime),
        str(cfg.runtime),
        repr(cfg),
        cfg.runtime.model_dump_json(),
        str(cfg.runtime.model_dump()),
    ):
        assert "hunter2-secret" not in text
    assert cfg.runtime.kafka.sasl_password is not None
    assert cfg.runtime.kafka.sasl_password.get_secret_value() == "hunter2-secret"


def test_frozen_and_unchanged_without_env() -> None:
    rt = RuntimeConfig()
    assert rt.with_env({}) is rt
    with pytest.raises(ValidationError):
        rt.web.port = 1


def test_join_bound_from_file_and_env(tmp_path: Path) -> None:
    # catches: the join bound not reaching the worker's settings, or QUORUM_JOIN_MAX_WAITING
    # being ignored or accepted when it is not a positive integer
    assert RuntimeConfig().join.max_waiting == 100_000
    path = _config_file(tmp_path, {"join": {"max_waiting": 50}})
    assert load_config(path, environ={}).runtime.join.max_waiting == 50
    env = {"QUORUM_JOIN_MAX_WAITING": "7"}
    assert load_config(path, environ=env).runtime.join.max_waiting == 7
    with pytest.raises(ConfigError, match="QUORUM_JOIN_MAX_WAITING"):
        load_config(path, environ={"QUORUM_JOIN_MAX_WAITING": "0"})
    # a memory bound only: never part of a signal's identity
    assert load_config(path, environ=env).config_hash() == load_config(environ={}).config_hash()


def test_topology_comes_from_the_file_or_quorum_topology() -> None:
    # catches: a worker that ignores runtime.topology, or a typo that silently runs fused
    assert RuntimeConfig.from_sources({"topology": "split"}, {}).topology == "split"
    assert RuntimeConfig.from_sources({}, {"QUORUM_TOPOLOGY": "split"}).topology == "split"
    assert (
        RuntimeConfig.from_sources({"topology": "split"}, {"QUORUM_TOPOLOGY": "fused"}).topology
        == "fused"
    )
    with pytest.raises(RuntimeConfigError, match="QUORUM_TOPOLOGY"):
        RuntimeConfig.from_sources({}, {"QUORUM_TOPOLOGY": "fussed"})
