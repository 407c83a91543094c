"""The worker's outputs (signals, votes, dead letters) through librdkafka, not Faust's producer.

Faust's ``send_soon`` and aiokafka's per-message send cost more per signal than the kernel
spends deciding it (a profile of a busy fused worker: 35-41 % of its time in sending, 19-26 % in
the kernel). confluent-kafka's ``produce`` hands the record to librdkafka's own threads in about
a microsecond, batches there, and needs nothing of the event loop.

Durability is unchanged: idempotent, ``acks=all``, keyed by symbol with Kafka's murmur2 (the
partitions Faust's producer chose). A checkpoint flushes first (in a thread: ``flush`` blocks)
and acks its inputs only when nothing is left in flight; records still queued (the broker is
away) make the checkpoint fail and retry, like a Redis outage. A record librdkafka gave up on
is lost: the worker then stops (:data:`EXIT_UNDELIVERED`) so that it restarts from its last
checkpoint and sends it again, rather than acking inputs whose outputs never landed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from config.runtime import RuntimeConfig

log = logging.getLogger("quorum.worker")

#: Exit status of a worker whose outputs could not be delivered after librdkafka's retries.
EXIT_UNDELIVERED = 4


class OutputsPending(RuntimeError):
    """Outputs still in flight after the flush timeout: the broker is slow or away."""


class OutputsLost(RuntimeError):
    """librdkafka gave up on some outputs (after its retries): they never reached Kafka."""


class _Producer(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes | None = ...) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def output_config(runtime: RuntimeConfig) -> dict[str, Any]:
    """Durable and ordered, tuned for latency: a signal waits at most 1 ms to be batched."""
    return {
        **runtime.librdkafka(),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 1,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "partitioner": "murmur2_random",  # Kafka's (and aiokafka's) partitions for a key
        "message.timeout.ms": 120_000,
        "delivery.report.only.error": True,  # callbacks for failures only
    }


class Outputs:
    """Produce records without the event loop; count what librdkafka could not deliver."""

    def __init__(
        self,
        runtime: RuntimeConfig,
        *,
        factory: Callable[..., _Producer] | None = None,
    ) -> None:
        self.lost: list[str] = []
        self.sent = 0
        make = factory or (lambda conf, **kw: Producer(conf, **kw))
        self._producer = make(
            {**output_config(runtime), "on_delivery": self._on_delivery},
            logger=logging.getLogger("streams.kafka"),
        )

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.lost.append(f"{msg.topic()}: {err}")

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record; when librdkafka's queue is full, serve it until there is room."""
        while True:
            try:
                self._producer.produce(topic, value, key)
                self.sent += 1
                return
            except BufferError:
                self._producer.poll(0.01)  # back-pressure: wait for deliveries to drain

    def poll(self) -> None:
        """Serve delivery reports (failures only); cheap, called from a timer."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every queued record is delivered (run it in a thread).

        Raises :class:`OutputsLost` when some were given up on, :class:`OutputsPending` when
        some are still in flight after ``timeout_s``.
        """
        left = self._producer.flush(timeout_s)
        if self.lost:
            raise OutputsLost(
                f"{len(self.lost)} output record(s) could not be delivered: {self.lost[:3]}"
            )
        if left:
            raise OutputsPending(f"{left} output record(s) still in flight after {timeout_s} s")
