"""Replay recorded ticks onto the Kafka ticks topic, as fast as possible or paced by event time.

The reading is the backtest's own (:func:`streams.readers.read_ticks`: same formats, filters and
rejects), so a replay feeds the streaming worker exactly the ticks a backtest would see. The
idempotent producer keeps every partition, hence every symbol, in order even when it retries.

Unpacked (``pack=None``, ``quorum replay --no-pack``) each tick is one record keyed by symbol
and stamped with its event time, as other producers send them. Packed (``pack=N``), the ticks
of one partition are grouped into batch records (``tick-batch.schema.json``) by a
:class:`TickPacker`: at most N ticks, none held longer than :data:`PACK_WINDOW_S` of wall time
or across a pacing sleep, produced to the partition Kafka's murmur2 partitioner gives each
tick's symbol (:mod:`streams.partitioner`), so a symbol's ticks land where, and in the order,
single records would. The consumer pays its per-record cost once per pack instead of per tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer
from confluent_kafka.cimpl import KafkaError, Message

from config.runtime import RuntimeConfig
from models.records import Reject, Tick
from streams.codecs import encode_reject, encode_tick, encode_tick_batch
from streams.partitioner import partition_for
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
#: Ticks per batch record when packing. A full pack is ~24 KB of JSON (~120 B a tick): far below
#: the broker's 1 MB message limit, yet 200 times fewer records for the worker, whose cost per
#: record is then negligible; a bigger pack would only make each record (the worker's unit of
#: delivery, commit and redelivery) coarser. Flat out, the 1 ms window usually closes a pack
#: first (~90 ticks on the bundled sample), so N mostly bounds bursts and slow clocks.
DEFAULT_PACK = 200
#: The longest wall time a tick waits in an open pack for more ticks of its partition.
PACK_WINDOW_S = 0.001


class ReplayError(RuntimeError):
    """The replay could not deliver what it read (broker, topic or producer failure)."""


@dataclass(frozen=True)
class ReplaySummary:
    sent: int  # ticks the broker acknowledged (acks=all), whether one per record or packed
    rejected: int  # input lines refused by the reader (also produced to the rejected topic)
    delivery_errors: int  # ticks or rejects the broker never acknowledged
    elapsed_s: float
    rate: float  # acknowledged ticks per second of wall time
    first_ts: int | None
    last_ts: int | None
    per_symbol: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # the first few delivery errors, for the message
    records: int = 0  # ticks-topic records the broker acknowledged (== sent when not packing)
    pack: int | None = None  # the most ticks per record (None: one record per tick, keyed)


@dataclass(frozen=True, slots=True)
class Pack:
    """One batch record for the ticks topic, produced to ``partition`` explicitly."""

    partition: int
    key: bytes | None  # the symbol when every tick is of that symbol, else None
    value: bytes  # encode_tick_batch of the ticks
    timestamp_ms: int  # the first tick's event time, as a single record carries its tick's
    ticks: int


class TickPacker:
    """Groups ticks into batch records per partition, each symbol's ticks kept in order.

    A pack is emitted when it holds ``max_ticks``, when its first tick has waited
    ``window_s`` of wall time (checked on every :meth:`add` and by :meth:`flush_due`), or by
    :meth:`flush_all` (before a pacing sleep and at the end), so no tick is held long. Time is
    passed in rather than read, so the packer is pure and tested on a fake clock.

    A pack's key is its symbol when it holds one symbol (most do: a partition carries few
    symbols), so tools reading keys still see it; a mixed pack has key None. The partition,
    never the key, places the record.
    """

    def __init__(
        self, partitions: int, max_ticks: int = DEFAULT_PACK, window_s: float = PACK_WINDOW_S
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        if max_ticks < 1:
            raise ValueError(f"max_ticks must be >= 1, got {max_ticks}")
        if not window_s >= 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self.partitions = partitions
        self.max_ticks = max_ticks
        self.window_s = window_s
        # open packs by partition: (wall time of the first tick, ticks). Insertion order is the
        # order packs were opened, so the oldest is first and flush_due stops at a young one.
        self._open: dict[int, tuple[float, list[Tick]]] = {}
        self._partition_of: dict[str, int] = {}
        self.held = 0  # ticks in open packs

    def partition_of(self, symbol: str) -> int:
        """The partition a record keyed by ``symbol`` goes to (memoised: it is per tick)."""
        p = self._partition_of.get(symbol)
        if p is None:
            p = self._partition_of[symbol] = partition_for(symbol.encode(), self.partitions)
        return p

    def add(self, tick: Tick, now: float) -> list[Pack]:
        """Hold ``tick``; return the packs now complete: those due at ``now``, then a full one."""
        out = self.flush_due(now) if self._open else []
        p = self.partition_of(tick.symbol)
        entry = self._open.get(p)
        if entry is None:
            entry = self._open[p] = (now, [tick])
        else:
            entry[1].append(tick)
        self.held += 1
        if len(entry[1]) >= self.max_ticks:
            del self._open[p]
            out.append(self._pack(p, entry[1]))
        return out

    def flush_due(self, now: float) -> list[Pack]:
        """The packs whose first tick has waited ``window_s`` or more at ``now``."""
        out: list[Pack] = []
        while self._open:
            p, (opened, ticks) = next(iter(self._open.items()))
            if now - opened < self.window_s:
                break
            del self._open[p]
            out.append(self._pack(p, ticks))
        return out

    def flush_all(self) -> list[Pack]:
        """Every open pack, oldest first."""
        out = [self._pack(p, ticks) for p, (_, ticks) in self._open.items()]
        self._open.clear()
        return out

    def _pack(self, partition: int, ticks: list[Tick]) -> Pack:
        self.held -= len(ticks)
        symbol = ticks[0].symbol
        same = all(t.symbol == symbol for t in ticks)
        return Pack(
            partition=partition,
            key=symbol.encode() if same else None,
            value=encode_tick_batch(ticks),
            timestamp_ms=ticks[0].ts // 1_000_000,
            ticks=len(ticks),
        )


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
    pack: int | None = DEFAULT_PACK,
) -> ReplaySummary:
    """Produce the ticks of ``paths`` to the ticks topic and the rejects to the rejected topic.

    ``speed`` divides event-time spacing (1 = real time, 10 = ten times faster, None = no
    pacing). Raises :class:`~streams.readers.ReaderError` for an unusable file (before anything
    is sent) and :class:`ReplayError` when the topics are missing, the producer fails fatally or
    messages stay unflushed; failed deliveries are counted in the summary, never dropped.
    ``create_topics`` runs :func:`~streams.topics.ensure_topics` once the inputs are known good.
    ``pack`` N packs up to N ticks of a partition per record (see the module doc; default
    :data:`DEFAULT_PACK`, like the CLI); None sends one record per tick, keyed by symbol.
    """
    if pack is not None and pack < 1:
        raise ValueError(f"pack must be >= 1 ticks per record (or None), got {pack}")
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
    md = _check_topics(p, (ticks_topic, rejected_topic))
    packer: TickPacker | None = None
    if pack is not None:
        partitions = len(md.topics[ticks_topic].partitions or ())
        if partitions < 1:
            raise ReplayError(f"topic {ticks_topic} reports no partitions; cannot pack")
        packer = TickPacker(partitions, pack)

    # errors: ticks and rejects never acknowledged; tick_errors, record_errors: of the ticks topic
    tick_errors = record_errors = errors = produced = records = 0
    samples: list[str] = []
    per_symbol: dict[str, int] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal tick_errors, record_errors, errors
        if err is None:
            return
        if msg.topic() == ticks_topic:
            lost = _ticks_in(msg.value() or b"") if packer is not None else 1
            tick_errors += lost
            record_errors += 1
            errors += lost
        else:
            errors += 1
        if len(samples) < MAX_ERROR_SAMPLES:
            samples.append(f"{msg.topic()}: {err.str()}")

    def produce(
        topic: str,
        value: bytes,
        key: bytes | None,
        timestamp_ms: int = 0,
        partition: int | None = None,
    ) -> None:
        produce_waiting(
            p,
            topic,
            value,
            key,
            on_delivery=on_delivery,
            fatal=fatal,
            bootstrap=runtime.kafka.bootstrap,
            timestamp_ms=timestamp_ms,
            partition=partition,
            clock=clock,
        )

    def send_rejects() -> None:
        for r in held:
            produce(rejected_topic, encode_reject(r), r.source.encode())
        held.clear()

    def send(packs: list[Pack]) -> None:
        nonlocal produced, records
        for pk in packs:
            produce(ticks_topic, pk.value, pk.key, pk.timestamp_ms, pk.partition)
            produced += pk.ticks
            records += 1

    def idle(delay: float) -> None:
        """Sleep in slices, serving delivery reports, so a long gap never stalls them.

        Open packs go out first: a tick is never held back while replay sleeps.
        """
        if packer is not None and packer.held:
            send(packer.flush_all())
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
    read = 0
    try:
        for tick in chain((first,), ticks) if first is not None else ():
            if held:
                send_rejects()
            ts = tick.ts
            pacer.wait(ts)
            if packer is None:
                produce(ticks_topic, encode_tick(tick), tick.symbol.encode(), ts // 1_000_000)
                produced += 1
                records += 1
            else:
                packs = packer.add(tick, clock())
                if packs:
                    send(packs)
            read += 1
            per_symbol[tick.symbol] = per_symbol.get(tick.symbol, 0) + 1
            if first_ts is None:
                first_ts = ts
            last_ts = ts
            if read % POLL_EVERY == 0:
                p.poll(0)
                _raise_if_fatal(fatal)
                if on_progress is not None and clock() - shown >= PROGRESS_EVERY_S:
                    shown = clock()
                    on_progress(produced, ts)
        if packer is not None:
            send(packer.flush_all())
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
            f"({produced} ticks produced in {records} records, {errors} failed); is "
            f"{runtime.kafka.bootstrap} reachable?"
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
        records=records - record_errors,
        pack=pack,
    )


def produce_waiting(
    p: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    *,
    on_delivery: Callable[[KafkaError | None, Message], None],
    fatal: list[KafkaError],
    bootstrap: str,
    timestamp_ms: int = 0,
    partition: int | None = None,
    clock: Clock = time.monotonic,
) -> None:
    """Produce one record; while librdkafka's queue is full, serve delivery reports to free
    room and retry, for at most :data:`QUEUE_FULL_TIMEOUT_S` (then :class:`ReplayError`), and
    stop at once on a fatal client error."""
    deadline: float | None = None
    while True:
        try:
            if partition is None:  # librdkafka's murmur2 places it by key
                p.produce(topic, value, key, on_delivery=on_delivery, timestamp=timestamp_ms)
            else:
                p.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    on_delivery=on_delivery,
                    timestamp=timestamp_ms,
                )
            return
        except BufferError:
            deadline = deadline or clock() + QUEUE_FULL_TIMEOUT_S
            if clock() > deadline:
                raise ReplayError(
                    f"producer queue stayed full for {QUEUE_FULL_TIMEOUT_S:.0f} s; "
                    f"is the broker at {bootstrap} reachable?"
                ) from None
            p.poll(0.1)
            _raise_if_fatal(fatal)


def _ticks_in(value: bytes) -> int:
    """Ticks in a ticks record we produced (only read for a failed delivery, so rare)."""
    if not value.startswith(b"["):
        return 1
    try:
        return len(orjson.loads(value))
    except orjson.JSONDecodeError:  # not ours after all; count the record
        return 1


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


def _check_topics(producer: Producer, topics: Iterable[str], timeout: float = 10.0) -> Any:
    """Fail early and clearly instead of letting the broker auto-create them with its defaults.

    Returns the cluster metadata (packing reads the ticks topic's partition count from it).

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
    return md
