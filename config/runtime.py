"""Runtime settings: where Kafka, Redis and the web page are, and what the topics are called.

Kept apart from the pipeline settings because none of it can change a signal: it is excluded
from the config hash, so moving a broker or renaming topics never changes signal ids.
Environment variables (``QUORUM_*``, see :data:`ENV_VARS`) override the YAML ``runtime:``
section, which overrides the defaults; an empty variable counts as unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]
TopicKey = Literal[
    "ticks", "votes", "signals", "rejected", "orders", "fills", "positions", "feed_status"
]
TOPIC_KEYS: tuple[TopicKey, ...] = (
    "ticks",
    "votes",
    "signals",
    "rejected",
    "orders",
    "fills",
    "positions",
    "feed_status",
)

# Kafka's legal topic characters; group ids share the prefix, so it obeys the same rule.
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
_MAX_TOPIC_LEN = 249

#: Environment variable -> dotted field path in :class:`RuntimeConfig`.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "QUORUM_KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
    "QUORUM_KAFKA_SECURITY_PROTOCOL": ("kafka", "security_protocol"),
    "QUORUM_KAFKA_SASL_MECHANISM": ("kafka", "sasl_mechanism"),
    "QUORUM_KAFKA_SASL_USERNAME": ("kafka", "sasl_username"),
    "QUORUM_KAFKA_SASL_PASSWORD": ("kafka", "sasl_password"),
    "QUORUM_KAFKA_SSL_CA_LOCATION": ("kafka", "ssl_ca_location"),
    "QUORUM_KAFKA_SSL_CERTIFICATE_LOCATION": ("kafka", "ssl_certificate_location"),
    "QUORUM_KAFKA_SSL_KEY_LOCATION": ("kafka", "ssl_key_location"),
    "QUORUM_TOPIC_PREFIX": ("topics", "prefix"),
    "QUORUM_TOPIC_PARTITIONS": ("topics", "partitions"),
    "QUORUM_REDIS_URL": ("redis", "url"),
    "QUORUM_STATE_BACKEND": ("state", "backend"),
    "QUORUM_STATE_CHECKPOINT_EVERY": ("state", "checkpoint_every"),
    "QUORUM_STATE_CHECKPOINT_INTERVAL_S": ("state", "checkpoint_interval_s"),
    "QUORUM_JOIN_MAX_WAITING": ("join", "max_waiting"),
    "QUORUM_PIPELINE": ("pipeline", "name"),
    "QUORUM_WEB_HOST": ("web", "host"),
    "QUORUM_WEB_PORT": ("web", "port"),
    "QUORUM_TOPOLOGY": ("topology",),
}

#: How a worker runs the kernel: ``fused`` (one agent per tick runs every stage and the voter:
#: no internal topic) or ``split`` (an agent per stage, a votes topic and a voting agent, to
#: spread stages over processes).
Topology = Literal["fused", "split"]


class RuntimeConfigError(ValueError):
    """Runtime settings that cannot be used; the message names the variable or key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Frozen):
    """How to reach the brokers; :meth:`RuntimeConfig.librdkafka` renders it for clients."""

    bootstrap: str = Field(default="127.0.0.1:9092", min_length=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        """Catch half-configured security here rather than as a broker handshake timeout."""
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        needs_login = self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        if sasl and needs_login and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password"
            )
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(
                f"sasl_* settings given but security_protocol is {self.security_protocol}; "
                "use SASL_PLAINTEXT or SASL_SSL"
            )
        return self


class TopicNames(_Frozen):
    ticks: str = "ticks"
    votes: str = "votes"
    signals: str = "signals"
    rejected: str = "ticks.rejected"
    # the paper agent's outputs (``quorum paper run``)
    orders: str = "orders"
    fills: str = "fills"
    positions: str = "positions"
    # the live connectors' health (``quorum feed``): connects, gaps, stale periods, clock offset
    feed_status: str = "feed.status"

    @field_validator(
        "ticks", "votes", "signals", "rejected", "orders", "fills", "positions", "feed_status"
    )
    @classmethod
    def _legal(cls, v: str) -> str:
        if not v or not _TOPIC_CHARS.match(v) or v in (".", ".."):
            raise ValueError(f"{v!r} is not a legal Kafka topic name (letters, digits, . _ -)")
        return v


class TopicsSettings(_Frozen):
    prefix: str = ""
    partitions: int = Field(default=12, ge=1)
    replication_factor: int = Field(
        default=-1, ge=-1, description="-1: the broker's default.replication.factor"
    )
    # Replayed ticks carry their (old) event time as the message timestamp, and time-based
    # retention deletes a segment whose newest timestamp is older than retention.ms at the
    # broker's next check: with the 7-day default a replay of last month vanishes in minutes.
    retention_ms: int | None = Field(
        default=-1,
        ge=-1,
        description="retention.ms of the topics we create; -1 keeps them, None: broker default",
    )
    names: TopicNames = TopicNames()

    @field_validator("prefix")
    @classmethod
    def _legal_prefix(cls, v: str) -> str:
        if not _TOPIC_CHARS.match(v):
            raise ValueError(f"{v!r} may only hold letters, digits, '.', '_' and '-'")
        return v

    @field_validator("replication_factor")
    @classmethod
    def _not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must be >= 1, or -1 for the broker default")
        return v

    @model_validator(mode="after")
    def _short_enough(self) -> TopicsSettings:
        for key in TOPIC_KEYS:
            name = self.prefix + getattr(self.names, key)
            if len(name) > _MAX_TOPIC_LEN:
                raise ValueError(f"topic {name[:40]}... is longer than {_MAX_TOPIC_LEN} chars")
        return self


class RedisSettings(_Frozen):
    url: str = "redis://127.0.0.1:6379/0"

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {v!r}")
        return v


class StateSettings(_Frozen):
    """Where a worker keeps model state, and how often it checkpoints (redis only)."""

    backend: Literal["memory", "redis"] = "memory"
    checkpoint_every: int = Field(default=5000, ge=1, description="inputs between checkpoints")
    checkpoint_interval_s: float = Field(default=2.0, gt=0, description="...or seconds")


class JoinSettings(_Frozen):
    """The worker's vote join: how many ticks of one symbol may wait for missing votes.

    A bound on memory, not a tuning knob: past it the oldest waiting tick is decided with the
    votes it has (counted, and named in its signal's ``missing``), never silently dropped.
    The default is far above any stage lag seen in a replay flood, so it never changes a
    signal in normal operation.
    """

    max_waiting: int = Field(default=100_000, ge=1, description="waiting ticks per symbol")


class PipelineSettings(_Frozen):
    name: str = Field(default="quorum", pattern=r"^[A-Za-z0-9._-]+$")


class WebSettings(_Frozen):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=6066, ge=1, le=65535)


class RuntimeConfig(_Frozen):
    """Addresses, credentials and names; none of it is part of a signal's identity."""

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicsSettings = TopicsSettings()
    redis: RedisSettings = RedisSettings()
    state: StateSettings = StateSettings()
    join: JoinSettings = JoinSettings()
    pipeline: PipelineSettings = PipelineSettings()
    web: WebSettings = WebSettings()
    topology: Topology = "fused"

    @classmethod
    def from_sources(
        cls, section: Mapping[str, Any] | None, environ: Mapping[str, str]
    ) -> RuntimeConfig:
        """The YAML ``runtime`` section with the ``QUORUM_*`` variables on top, validated once,
        so a setting may be completed by the environment (a password kept out of the file)."""
        data: dict[str, Any] = {
            k: dict(v) if isinstance(v, Mapping) else v for k, v in (section or {}).items()
        }
        used: dict[tuple[str, ...], str] = {}
        for var, path in ENV_VARS.items():
            value = environ.get(var, "").strip()
            if not value:
                continue
            if len(path) == 1:
                data[path[0]] = value
                used[path] = var
                continue
            part, key = path
            target = data.setdefault(part, {})
            if isinstance(target, dict):  # else validation names the malformed section
                target[key] = value
                used[path] = var
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise RuntimeConfigError(_errors(e, used)) from None

    def with_env(self, environ: Mapping[str, str]) -> RuntimeConfig:
        """These settings with the ``QUORUM_*`` variables of ``environ`` applied on top."""
        if not any(environ.get(var, "").strip() for var in ENV_VARS):
            return self
        return RuntimeConfig.from_sources(self.model_dump(), environ)

    def topic(self, key: TopicKey) -> str:
        """The full (prefixed) name of one of the pipeline's topics."""
        if key not in TOPIC_KEYS:
            raise ValueError(f"unknown topic {key!r}; expected one of {list(TOPIC_KEYS)}")
        name: str = getattr(self.topics.names, key)
        return self.topics.prefix + name

    def group(self, name: str) -> str:
        """A consumer group id, prefixed like the topics so test runs never share groups."""
        return self.topics.prefix + name

    def librdkafka(self) -> dict[str, str]:
        """Bootstrap and security settings for any confluent-kafka client (holds the secret)."""
        k = self.kafka
        conf = {"bootstrap.servers": k.bootstrap, "security.protocol": k.security_protocol}
        optional = {
            "sasl.mechanism": k.sasl_mechanism,
            "sasl.username": k.sasl_username,
            "sasl.password": k.sasl_password.get_secret_value() if k.sasl_password else None,
            "ssl.ca.location": k.ssl_ca_location,
            "ssl.certificate.location": k.ssl_certificate_location,
            "ssl.key.location": k.ssl_key_location,
        }
        conf.update({key: v for key, v in optional.items() if v is not None})
        return conf


def _errors(err: ValidationError, used: Mapping[tuple[str, ...], str]) -> str:
    """Validation errors by key, and by the environment variable behind them when one was."""
    lines = ["invalid runtime settings"]
    for e in err.errors():
        loc = tuple(str(x) for x in e["loc"])
        # a field error sits under its variable's path; a section check sits above it
        names = [v for p, v in used.items() if loc[: len(p)] == p or p[: len(loc)] == loc]
        where = f"runtime.{'.'.join(loc)}" + (f" (from {', '.join(names)})" if names else "")
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)
