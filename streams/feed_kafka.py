"""The live feed's Kafka side: ticks packed per partition (as ``quorum replay`` sends them),
bad frames to the rejected topic, health records to ``feed.status``."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from config.runtime import RuntimeConfig
from models.records import Reject, Tick
from streams.codecs import encode_reject
from streams.replay import (
    DEFAULT_PACK,
    Pack,
    TickPacker,
    _check_topics,
    _on_client_error,
    _raise_if_fatal,
    produce_waiting,
    producer_config,
)

log = logging.getLogger("quorum.feed")


class KafkaTickSink:
    """Produce a feed's ticks, rejects and status records; deliveries that fail are counted
    (``errors``), never dropped silently."""

    def __init__(self, runtime: RuntimeConfig, pack: int = DEFAULT_PACK) -> None:
        self.runtime = runtime
        self.ticks_topic = runtime.topic("ticks")
        self.rejected_topic = runtime.topic("rejected")
        self.status_topic = runtime.topic("feed_status")
        self._fatal: list[KafkaError] = []
        self.producer = Producer(
            producer_config(runtime),
            error_cb=lambda err: _on_client_error(err, self._fatal),
            logger=logging.getLogger("streams.kafka"),
        )
        md = _check_topics(
            self.producer, (self.ticks_topic, self.rejected_topic, self.status_topic)
        )
        partitions = len(md.topics[self.ticks_topic].partitions or ())
        self.packer = TickPacker(partitions, pack)
        self.errors = 0
        self.produced = 0
        self.last_status: dict[str, Any] | None = None

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors += 1
            log.error("delivery to %s failed: %s", msg.topic(), err)

    def _produce(
        self, topic: str, value: bytes, key: bytes | None, partition: int | None = None, ts: int = 0
    ) -> None:
        produce_waiting(
            self.producer,
            topic,
            value,
            key,
            on_delivery=self._on_delivery,
            fatal=self._fatal,
            bootstrap=self.runtime.kafka.bootstrap,
            timestamp_ms=ts,
            partition=partition,
        )

    def _send(self, packs: list[Pack]) -> None:
        for pk in packs:
            self._produce(self.ticks_topic, pk.value, pk.key, pk.partition, pk.timestamp_ms)
            self.produced += pk.ticks

    def tick(self, tick: Tick) -> None:
        self._send(self.packer.add(tick, time.monotonic()))

    def reject(self, reject: Reject) -> None:
        self._produce(self.rejected_topic, encode_reject(reject), reject.source.encode())

    def status(self, record: dict[str, Any]) -> None:
        self.last_status = record
        self._produce(self.status_topic, orjson.dumps(record), str(record["venue"]).encode())

    def poll(self) -> None:
        self._send(self.packer.flush_due(time.monotonic()))
        self.producer.poll(0)
        _raise_if_fatal(self._fatal)

    def flush(self) -> None:
        self._send(self.packer.flush_all())
        left = self.producer.flush(30)
        if left:
            self.errors += left
            log.error("%d record(s) still unacknowledged after 30 s", left)
