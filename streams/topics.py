"""Pre-create the pipeline's topics so partition counts are ours, not the broker's defaults.

Producers and Faust would otherwise auto-create topics with ``num.partitions`` and the broker's
retention; per-symbol keys need a fixed partition count, and replayed ticks need a retention
that does not delete their (old) event-time timestamps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._metadata import ClusterMetadata
from confluent_kafka.cimpl import KafkaError, NewTopic

from config.runtime import TOPIC_KEYS, RuntimeConfig

log = logging.getLogger(__name__)

#: Rejects are rare and read by people: one partition keeps them in the order they happened.
REJECTED_PARTITIONS = 1

#: Errors of a cluster still settling (a topic just created, a controller moving): retried
#: until the deadline instead of failing. UNKNOWN_TOPIC_OR_PART is what a broker that has not
#: yet seen a fresh topic's metadata answers.
RETRYABLE = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,  # a new topic's leaders still settling
        KafkaError.NOT_CONTROLLER,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)


def retryable(err: object) -> bool:
    """True for a KafkaError (or a KafkaException holding one) worth retrying."""
    if isinstance(err, KafkaException):
        err = err.args[0] if err.args else None
    return isinstance(err, KafkaError) and (err.retriable() or err.code() in RETRYABLE)


class TopicError(RuntimeError):
    """A topic that cannot be made as the pipeline needs it; the message names it."""


def admin_client(runtime: RuntimeConfig) -> AdminClient:
    conf: dict[str, str | int | float | bool] = {**runtime.librdkafka()}
    # librdkafka's own log lines go through Python logging instead of straight to stderr
    return AdminClient(conf, logger=logging.getLogger("streams.kafka"))


def wanted_partitions(runtime: RuntimeConfig) -> dict[str, int]:
    """Topic name -> partitions the pipeline needs, in pipeline order."""
    return {
        runtime.topic(key): (
            REJECTED_PARTITIONS if key in ("rejected", "feed_status") else runtime.topics.partitions
        )
        for key in TOPIC_KEYS
    }


def _metadata(admin: AdminClient, timeout: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=max(timeout, 0.1))
    except KafkaException as e:
        raise TopicError(
            f"cannot reach Kafka to list topics ({e}); is the broker up (quorum services up)?"
        ) from None


def _ready_partitions(md: ClusterMetadata, name: str) -> int | None:
    """Partitions of ``name`` when every one has a leader, else None (absent or settling)."""
    topic = md.topics.get(name)
    if topic is None or topic.error is not None or not topic.partitions:
        return None
    if any(p.leader < 0 or p.error is not None for p in topic.partitions.values()):
        return None
    return len(topic.partitions)


def _check_count(name: str, have: int, want: int) -> None:
    if have < want:
        raise TopicError(
            f"topic {name} exists with {have} partition(s) but topics.partitions asks for "
            f"{want}; delete it (or add partitions), or use another QUORUM_TOPIC_PREFIX"
        )


def ensure_topics(runtime: RuntimeConfig, *, timeout: float = 30.0) -> list[str]:
    """Create the ticks, votes, signals and rejected topics if missing; idempotent.

    Returns the topic names once metadata shows every partition with a leader. An existing
    topic with fewer partitions than configured is an error (more is accepted).
    """
    deadline = time.monotonic() + timeout
    admin = admin_client(runtime)
    wanted = wanted_partitions(runtime)
    md = _metadata(admin, timeout)
    existing = {name for name in wanted if name in md.topics and md.topics[name].error is None}
    for name in existing:
        _check_count(name, len(md.topics[name].partitions), wanted[name])
    config: dict[str, str] = {}
    if runtime.topics.retention_ms is not None:
        config["retention.ms"] = str(runtime.topics.retention_ms)
    missing = [name for name in wanted if name not in existing]
    while missing:
        new = [
            NewTopic(name, wanted[name], runtime.topics.replication_factor, config=dict(config))
            for name in missing
        ]
        futures = admin.create_topics(new, request_timeout=timeout)
        missing = []
        for name, future in futures.items():
            try:
                future.result(timeout=max(deadline - time.monotonic(), 0.1))
                log.info("created topic %s (%d partitions)", name, wanted[name])
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    existing.add(name)  # created concurrently: its count is checked below
                    continue
                if retryable(e) and time.monotonic() < deadline:
                    log.info("creating topic %s: %s; retrying", name, e)
                    missing.append(name)
                    continue
                raise TopicError(f"cannot create topic {name}: {e}") from None
            except TimeoutError:
                raise TopicError(f"creating topic {name} timed out after {timeout:.0f} s") from None
        if missing:
            time.sleep(0.2)
    _wait_ready(admin, wanted, deadline, timeout)
    _warn_on_retention(admin, runtime, sorted(existing))
    return list(wanted)


def wait_ready(admin: AdminClient, wanted: dict[str, int], timeout: float = 30.0) -> None:
    """Wait until metadata shows each topic of ``wanted`` (name -> partitions) with a leader
    for every partition: producing to or subscribing to a topic before that fails with
    UNKNOWN_TOPIC_OR_PART. Raises :class:`TopicError` after ``timeout``."""
    _wait_ready(admin, wanted, time.monotonic() + timeout, timeout)


def _wait_ready(
    admin: AdminClient, wanted: dict[str, int], deadline: float, timeout: float
) -> None:
    """Creation returns before every broker knows the topic: poll metadata until it does."""
    pending = dict(wanted)
    while True:
        try:
            md = _metadata(admin, max(deadline - time.monotonic(), 0.1))
        except TopicError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)  # a metadata request that timed out while the broker settles
            continue
        for name in list(pending):
            have = _ready_partitions(md, name)
            if have is not None:
                _check_count(name, have, pending.pop(name))
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TopicError(
                f"topic(s) {sorted(pending)} not ready in metadata after {timeout:.0f} s"
            )
        time.sleep(0.1)


def _warn_on_retention(admin: AdminClient, runtime: RuntimeConfig, names: list[str]) -> None:
    """Existing topics keep their settings; say so when that retention drops old event times."""
    want = runtime.topics.retention_ms
    if want is None or want != -1 or not names:
        return
    resources = [ConfigResource("TOPIC", name) for name in names]
    try:
        futures: dict[Any, Future[Any]] = admin.describe_configs(resources, request_timeout=10)
        for resource, future in futures.items():
            entry = future.result(timeout=10).get("retention.ms")
            if entry is not None and entry.value not in (None, "-1"):
                log.warning(
                    "topic %s already exists with retention.ms=%s: messages whose event time "
                    "is older than that are deleted at the broker's next retention check",
                    resource.name,
                    entry.value,
                )
    except (KafkaException, TimeoutError) as e:
        log.debug("could not read topic configs: %s", e)


def end_offsets(
    consumer: Consumer, topic: str, partitions: Iterable[int], timeout_s: float = 30.0
) -> tuple[int, ...]:
    """The end (high watermark) offset of each partition, retried while the error is
    transient: a topic just made can answer NOT_LEADER_FOR_PARTITION for a moment."""
    parts = tuple(partitions)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return tuple(
                int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1])
                for p in parts
            )
        except KafkaException as e:
            if not retryable(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
