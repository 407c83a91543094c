"""Replay recorded ticks onto the Kafka ticks topic, as fast as possible or paced by event time.

The reading is the backtest's own (:func:`streams.readers.read_ticks`: same formats, filters and
rejects), so a replay feeds the streaming worker exactly the ticks a backtest would see. Each
tick is keyed by symbol and stamped with its event time; the idempotent producer keeps every
partition, hence every symbol, in order even when it retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.cimpl import KafkaError, Message

from config.runtime import RuntimeConfig
from models.records import Reject
from streams.codecs import encode_reject, encode_tick
from streams.readers import Format, ReaderStats, read_ticks
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]
#: ``on_progress(ticks_produced, event_time_ns_of_the_latest)``
ProgressSink = Callable[[int, int], None]

POLL_EVERY = 100  # produce calls between polls for delivery reports
IDLE_SLICE_S = 0.05  # longest sleep between polls while pacing
PROGRESS_EVERY_S = 0.1
QUEUE_FULL_TIMEOUT_S = 120.0
MAX_ERROR_SAMPLES = 5


class ReplayError(RuntimeError):
    """The replay could not deliver what it read (broker, topic or producer failure)."""


@dataclass(frozen=True)
class ReplaySummary:
    sent: int  # ticks the broker acknowledged (acks=all)
    rejected: int  # input lines refused by the reader (also produced to the rejected topic)
    delivery_errors: int  # ticks or rejects the broker never acknowledged
    elapsed_s: float
    rate: float  # acknowledged ticks per second of wall time
    first_ts: int | None
    last_ts: int | None
    per_symbol: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # the first few delivery errors, for the message


def producer_config(runtime: RuntimeConfig) -> dict[str, Any]:
    """Durable, ordered and batched: acks from all replicas, no duplicates on retry."""
    return {
        **runtime.librdkafka(),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 200_000,
        # The Java and aiokafka (Faust) clients hash keys with murmur2; librdkafka's default
        # (crc32) would put a symbol on another partition than their producers do.
        "partitioner": "murmur2_random",
        # Fail a delivery within a minute rather than librdkafka's five when the broker is gone.
        "message.timeout.ms": 60_000,
        # Only failures call back into Python: after a complete flush every other message is
        # known delivered, and a callback per message cost ~20% of the replay rate here.
        "delivery.report.only.error": True,
    }


class Pacer:
    """Holds each tick until ``(ts - ts0) / speed`` seconds have passed since the first one.

    Pacing is against the first tick, not the previous one, so sleep overshoot never
    accumulates; when behind it does not sleep and so catches up. ``speed=None`` never waits.
    """

    def __init__(self, speed: float | None, clock: Clock, idle: Sleep) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (or None for as fast as possible), got {speed}")
        self.speed = speed
        self._clock = clock
        self._idle = idle
        self._t0: float | None = None
        self._ts0 = 0

    def wait(self, ts: int) -> float:
        """Block until ``ts`` is due; return the seconds waited (0 when due or behind)."""
        if self.speed is None:
            return 0.0
        now = self._clock()
        if self._t0 is None:
            self._t0, self._ts0 = now, ts
            return 0.0
        delay = self._t0 + (ts - self._ts0) / 1e9 / self.speed - now
        if delay <= 0:
            return 0.0
        self._idle(delay)
        return delay


def replay(
    paths: Iterable[Path | str],
    runtime: RuntimeConfig,
    *,
    speed: float | None = None,
    symbols: Iterable[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    fmt: Format | str | None = None,
    tolerance_ns: int = 2_000_000_000,
    on_progress: ProgressSink | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    flush_timeout_s: float = 60.0,
    create_topics: bool = False,
) -> ReplaySummary:
    """Produce the ticks of ``paths`` to the ticks topic and the rejects to the rejected topic.

    ``speed`` divides event-time spacing (1 = real time, 10 = ten times faster, None = no
    pacing). Raises :class:`~streams.readers.ReaderError` for an unusable file (before anything
    is sent) and :class:`ReplayError` when the topics are missing, the producer fails fatally or
    messages stay unflushed; failed deliveries are counted in the summary, never dropped.
    ``create_topics`` runs :func:`~streams.topics.ensure_topics` once the inputs are known good.
    """
    t0 = clock()
    ticks_topic = runtime.topic("ticks")
    rejected_topic = runtime.topic("rejected")
    held: list[Reject] = []  # rejects wait here until the next tick is produced
    stats = ReaderStats()
    ticks = read_ticks(
        paths,
        fmt=fmt,
        symbols=symbols,
        start_ns=start_ns,
        end_ns=end_ns,
        tolerance_ns=tolerance_ns,
        on_reject=held.append,
        stats=stats,
    )
    first = next(ticks, None)  # an unusable file fails here, before we touch Kafka
    if create_topics:
        ensure_topics(runtime)
    fatal: list[KafkaError] = []
    p = Producer(
        producer_config(runtime),
        error_cb=lambda err: _on_client_error(err, fatal),
        logger=logging.getLogger("streams.kafka"),
    )
    _check_topics(p, (ticks_topic, rejected_topic))

    tick_errors = errors = produced = 0
    samples: list[str] = []
    per_symbol: dict[str, int] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal tick_errors, errors
        if err is None:
            return
        errors += 1
        if msg.topic() == ticks_topic:
            tick_errors += 1
        if len(samples) < MAX_ERROR_SAMPLES:
            samples.append(f"{msg.topic()}: {err.str()}")

    def produce(topic: str, value: bytes, key: bytes, timestamp_ms: int = 0) -> None:
        deadline: float | None = None
        while True:
            try:
                p.produce(topic, value, key, on_delivery=on_delivery, timestamp=timestamp_ms)
                return
            except BufferError:
                # the local queue is full: serve delivery reports to free room, then retry
                deadline = deadline or clock() + QUEUE_FULL_TIMEOUT_S
                if clock() > deadline:
                    raise ReplayError(
                        f"producer queue stayed full for {QUEUE_FULL_TIMEOUT_S:.0f} s; "
                        f"is the broker at {runtime.kafka.bootstrap} reachable?"
                    ) from None
                p.poll(0.1)
                _raise_if_fatal(fatal)

    def send_rejects() -> None:
        for r in held:
            produce(rejected_topic, encode_reject(r), r.source.encode())
        held.clear()

    def idle(delay: float) -> None:
        """Sleep in slices, serving delivery reports, so a long gap never stalls them."""
        end = clock() + delay
        while True:
            p.poll(0)
            left = end - clock()
            if left <= 0:
                return
            sleep(min(left, IDLE_SLICE_S))

    pacer = Pacer(speed, clock, idle)
    first_ts: int | None = None
    last_ts: int | None = None
    shown = t0
    completed = False
    try:
        for tick in chain((first,), ticks) if first is not None else ():
            if held:
                send_rejects()
            ts = tick.ts
            pacer.wait(ts)
            produce(ticks_topic, encode_tick(tick), tick.symbol.encode(), ts // 1_000_000)
            produced += 1
            per_symbol[tick.symbol] = per_symbol.get(tick.symbol, 0) + 1
            if first_ts is None:
                first_ts = ts
            last_ts = ts
            if produced % POLL_EVERY == 0:
                p.poll(0)
                _raise_if_fatal(fatal)
                if on_progress is not None and clock() - shown >= PROGRESS_EVERY_S:
                    shown = clock()
                    on_progress(produced, ts)
        send_rejects()
        completed = True
    finally:
        # flush what was produced even when interrupted, so the counts below are true
        remaining = p.flush(flush_timeout_s if completed else min(flush_timeout_s, 5.0))
        if not completed:
            p.purge()  # give up on the rest: do not block interpreter exit on a dead broker
    _raise_if_fatal(fatal)
    if remaining > 0:
        raise ReplayError(
            f"{remaining} message(s) still undelivered after {flush_timeout_s:.0f} s "
            f"({produced} ticks produced, {errors} failed); is {runtime.kafka.bootstrap} "
            "reachable?"
        )
    sent = produced - tick_errors  # the queue is empty: all else was acknowledged
    if on_progress is not None and last_ts is not None:
        on_progress(produced, last_ts)
    elapsed = max(clock() - t0, 1e-9)
    return ReplaySummary(
        sent=sent,
        rejected=stats.rejected,
        delivery_errors=errors,
        elapsed_s=elapsed,
        rate=sent / elapsed,
        first_ts=first_ts,
        last_ts=last_ts,
        per_symbol=per_symbol,
        errors=tuple(samples),
    )


def _on_client_error(err: KafkaError, fatal: list[KafkaError]) -> None:
    """Client-level errors: most are transient (librdkafka retries), fatal ones end the run."""
    if err.fatal():
        fatal.append(err)
        log.error("kafka producer fatal error: %s", err)
    else:
        log.warning("kafka: %s", err)


def _raise_if_fatal(fatal: list[KafkaError]) -> None:
    if fatal:
        raise ReplayError(f"the Kafka producer failed fatally: {fatal[0]}")


def _check_topics(producer: Producer, topics: Iterable[str], timeout: float = 10.0) -> None:
    """Fail early and clearly instead of letting the broker auto-create them with its defaults.

    Lists all topics rather than asking for ours: a metadata request naming a missing topic
    would auto-create it (broker defaults: other partition count, 7-day retention).
    """
    try:
        md = producer.list_topics(timeout=timeout)
    except KafkaException as e:
        raise ReplayError(f"cannot reach Kafka: {e}") from None
    missing = [t for t in topics if t not in md.topics]
    if missing:
        raise ReplayError(
            f"topic(s) {missing} do not exist; create them with: quorum topics create"
        )
