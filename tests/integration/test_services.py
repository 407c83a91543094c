"""The real local Kafka broker and Redis that ``quorum.services`` starts (or finds running)."""

from __future__ import annotations

import time
import uuid

import pytest

from quorum.services import ServiceConfig
from streams.topics import retryable, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_kafka_topic_produce_consume(services: ServiceConfig) -> None:
    from confluent_kafka import Consumer, KafkaError, Message, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it

    bootstrap = services.kafka_bootstrap
    unique = uuid.uuid4().hex[:12]
    topic = f"quorum-it-{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(
        timeout=30
    )
    try:
        # creation returns before the broker serves the topic: producing or subscribing now
        # may fail with UNKNOWN_TOPIC_OR_PART (it did once on a fresh clone)
        wait_ready(admin, {topic: 3}, timeout=30)
        metadata = admin.list_topics(topic=topic, timeout=10)
        assert len(metadata.topics[topic].partitions) == 3

        # A timestamp two days ahead: the broker must accept skewed event times as they are.
        event_ms = int(time.time() * 1000) + 2 * 86_400_000
        payload = f"hello {unique}".encode()
        delivered: list[tuple[KafkaError | None, Message]] = []
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(
            topic,
            key=b"BTCUSDT",
            value=payload,
            partition=1,
            timestamp=event_ms,
            on_delivery=lambda err, msg: delivered.append((err, msg)),
        )
        assert producer.flush(30) == 0
        assert len(delivered) == 1 and delivered[0][0] is None, delivered

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"quorum-it-{unique}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            message: Message | None = None
            deadline = time.monotonic() + 60
            while message is None and time.monotonic() < deadline:
                polled = consumer.poll(1.0)
                if polled is None or (polled.error() is not None and retryable(polled.error())):
                    continue  # a subscription racing the topic's metadata: ask again
                assert polled.error() is None, polled.error()
                message = polled
        finally:
            consumer.close()
        assert message is not None, "no message consumed within 60 s"
        assert message.value() == payload
        assert message.key() == b"BTCUSDT"
        assert message.partition() == 1
        assert message.timestamp()[1] == event_ms
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_redis_ping_set_get(services: ServiceConfig) -> None:
    import redis

    client = redis.Redis.from_url(services.redis_url, socket_timeout=5)
    try:
        assert client.ping() is True
        key = f"quorum:it:{uuid.uuid4().hex}"
        value = uuid.uuid4().hex
        assert client.set(key, value, ex=60)
        assert client.get(key) == value.encode()
        assert client.delete(key) == 1
    finally:
        client.close()
