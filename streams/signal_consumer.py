"""Read signals back from the Kafka signals topic, each exactly once per reader.

Every reader gets its own consumer group by default, so any number of them each see every
signal. Signals are de-duplicated by id: after a worker crash the worker re-processes from its
last committed offsets and re-publishes signals with the same ids (ids are deterministic), and
a reader should show each decision once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.cimpl import KafkaError, Message, TopicPartition

from config.runtime import RuntimeConfig
from models.records import Signal
from streams.codecs import DecodeError, decode_signal

log = logging.getLogger(__name__)

DEDUP_CAPACITY = 1_000_000
POLL_S = 0.2


@dataclass
class ConsumerStats:
    """What a reader saw: every message is counted in exactly one of the last four."""

    received: int = 0
    yielded: int = 0
    duplicates: int = 0
    filtered: int = 0
    bad: int = 0


class RecentIds:
    """A set that remembers only the ``capacity`` most recently seen ids (bounded memory)."""

    def __init__(self, capacity: int = DEDUP_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True if ``key`` was seen recently; either way it is now the most recent."""
        if key in self._ids:
            self._ids.move_to_end(key)
            return True
        self._ids[key] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)


def consumer_config(
    runtime: RuntimeConfig, *, from_beginning: bool, group: str | None
) -> dict[str, Any]:
    """A throwaway group commits nothing (it leaves no offsets behind); a named one resumes.

    Group ids get the topic prefix, like the topics, so separate deployments never share one.
    """
    return {
        **runtime.librdkafka(),
        "group.id": runtime.group(group or f"signals-cli-{uuid.uuid4().hex}"),
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": group is not None,
        "enable.partition.eof": False,
    }


def iter_signals(
    runtime: RuntimeConfig,
    *,
    from_beginning: bool = False,
    follow: bool = True,
    timeout_s: float | None = None,
    symbols: Iterable[str] | None = None,
    group: str | None = None,
    stats: ConsumerStats | None = None,
    dedup_capacity: int = DEDUP_CAPACITY,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[Signal, None, None]:
    """Yield signals from the signals topic, each id once, optionally only some symbols.

    A generator: ``close()`` it (or leave a ``for`` loop) to leave the group and free the
    consumer at once rather than at garbage collection.

    ``from_beginning`` reads what is already on the topic (a new group starts at the earliest
    offset), else only signals published after this reader's partitions are assigned.
    With ``follow`` it runs until closed; otherwise it stops once ``timeout_s`` (default 5 s)
    pass without a message, counted from the subscription, the assignment or the last message.
    A message that is not a valid signal is logged, counted in ``stats.bad`` and skipped.
    """
    st = stats if stats is not None else ConsumerStats()
    idle_limit = None if follow else (5.0 if timeout_s is None else timeout_s)
    wanted = {s.upper() for s in symbols} if symbols else None
    recent = RecentIds(dedup_capacity)
    topic = runtime.topic("signals")
    last_activity = clock()

    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        nonlocal last_activity
        last_activity = clock()  # joining the group is not idleness
        log.debug("assigned %d partition(s) of %s", len(partitions), topic)

    consumer = Consumer(
        consumer_config(runtime, from_beginning=from_beginning, group=group),
        logger=logging.getLogger("streams.kafka"),
    )
    try:
        consumer.subscribe([topic], on_assign=on_assign)
        while True:
            wait = POLL_S
            if idle_limit is not None:
                left = last_activity + idle_limit - clock()
                if left <= 0:
                    return
                wait = min(wait, left)
            msg = consumer.poll(wait)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                _on_error(err, topic)
                continue
            last_activity = clock()
            signal = _decode(msg, st)
            if signal is None:
                continue
            if wanted is not None and signal.symbol.upper() not in wanted:
                st.filtered += 1
            elif recent.seen(signal.id):
                st.duplicates += 1
            else:
                st.yielded += 1
                yield signal
    finally:
        consumer.close()


def _decode(msg: Message, st: ConsumerStats) -> Signal | None:
    st.received += 1
    value = msg.value()
    try:
        if value is None:
            raise DecodeError("empty message (no value)")
        return decode_signal(value)
    except DecodeError as e:
        st.bad += 1
        log.warning(
            "skipping a bad message at %s[%s]@%s: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            e,
        )
        return None


def _on_error(err: KafkaError, topic: str) -> None:
    """Consumer errors arrive as messages; most are transient and librdkafka recovers."""
    if err.fatal():
        raise KafkaException(err)
    if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        log.warning("topic %s does not exist (yet): waiting for it", topic)
    else:
        log.warning("kafka consumer: %s", err)
