"""The Faust app: the kernel of the embedded backtest (:class:`agents.pipeline.Pipeline`),
driven by Kafka. Two topologies, every topic keyed by symbol so one symbol's ticks stay in order
on one partition::

    fused (default): ticks ──▶ kernel agent (every stage, then the voter) ──▶ signals
    split:           ticks ──▶ stage-<name> agents ──▶ votes ──▶ voting agent ──▶ signals
    both:            undecodable or invalid ticks ──▶ ticks.rejected (raw bytes, reason, where)

A ``ticks`` record holds one tick (a JSON object) or a batch of ticks of one partition (a JSON
array; see streams/schemas/tick-batch.schema.json). A bad element of a batch is dead-lettered
with partition, offset and index; the good ones are processed.

Agents stay thin: decode, call the kernel, send. Built by a factory (no app at import time),
so tests and several workers can each build their own.

With a Redis state store the worker is crash-safe: the driver keeps, per symbol, the position
(partition, offset, index) of the last input applied, saved as metadata beside the domain
state; a checkpoint (every N inputs or T seconds, on partition revocation and at shutdown)
first flushes the producer, then saves every state atomically per partition, and only then
acknowledges the inputs it covers — so Kafka never commits an offset past saved state. After a
crash, re-delivered inputs at or before a saved position are skipped, not learned twice;
outputs after the last checkpoint may repeat, with the same deterministic ids. That logic (held
acks, cadence, backoff, fencing, the write off the event loop) is
:class:`streams.checkpoint.Checkpointer`, which knows nothing of Faust, so it is unit-tested
without a broker; this module wires it to Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
import redis

from agents.join import JOIN
from agents.pipeline import LABELS, Pipeline
from agents.voting import VOTER, Decision
from config.runtime import RuntimeConfig, TopicKey, Topology
from config.settings import PipelineConfig
from models.records import Tick
from models.state import MemoryStateStore, StateStore, state_key
from streams.checkpoint import Checkpointer, WorkerCounters, in_thread
from streams.codecs import (
    DecodeError,
    RecordDecodeError,
    decode_tick_record,
    decode_vote,
    encode_signal,
    encode_vote,
    is_tick_batch,
)
from streams.metrics import LAG_INTERVAL_S, WorkerMetrics, exposition, set_current
from streams.outputs import EXIT_UNDELIVERED, Outputs, OutputsLost, OutputsPending
from streams.redis_store import RedisStateStore, StateFencedError

__all__ = [
    "EXIT_FENCED",
    "WorkerCounters",
    "create_app",
    "dead_letter",
    "exit_fenced",
    "seek_uncommitted_to_start",
]

log = logging.getLogger("quorum.worker")

#: Exit status of a worker whose checkpoint was fenced (see :func:`exit_fenced`).
EXIT_FENCED = 3

#: The fused topology's cursor owner: one position per symbol covers all its states.
FUSED = "kernel"


def exit_fenced(error: StateFencedError) -> None:
    """A fenced worker lost its partitions without noticing and its live state is stale: it
    stops at once, like a crash, which the design already makes safe (nothing it holds was
    acknowledged; the partitions' owner has the saved state). Restarting it is its
    supervisor's job; it then loads the saved state like any new worker."""
    log.critical("%s; stopping now (exit %d) so it cannot write again", error, EXIT_FENCED)
    logging.shutdown()
    os._exit(EXIT_FENCED)


def exit_undelivered(error: OutputsLost) -> None:
    """Outputs librdkafka gave up on are lost: stop like a crash, so the restart re-applies
    every input after the last checkpoint and sends them again (none of those inputs was
    acknowledged)."""
    log.critical("%s; stopping now (exit %d)", error, EXIT_UNDELIVERED)
    logging.shutdown()
    os._exit(EXIT_UNDELIVERED)


def dead_letter(
    raw: bytes, reason: str, topic: str, partition: int, offset: int, index: int | None = None
) -> bytes:
    """The rejected-topic record: why, where from (with the element's index in a batch
    record), a readable copy and the exact bytes of the whole record."""
    doc: dict[str, Any] = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }
    if index is not None:
        doc["index"] = index
    doc["raw"] = raw.decode("utf-8", "replace")[:1000]
    doc["raw_b64"] = base64.b64encode(raw).decode("ascii")
    return orjson.dumps(doc)


def create_app(
    cfg: PipelineConfig,
    runtime: RuntimeConfig,
    *,
    store: StateStore | None = None,
    topology: Topology | None = None,
    join_timeout_s: float = 10.0,
    web_enabled: bool = True,
    stats_interval_s: float = 10.0,
    batch_size: int = 500,
    batch_within_s: float = 0.002,
    checkpoint_every: int = 5000,
    checkpoint_interval_s: float = 2.0,
    on_fenced: Callable[[StateFencedError], None] = exit_fenced,
    on_undelivered: Callable[[OutputsLost], None] = exit_undelivered,
    metrics: WorkerMetrics | None = None,
) -> tuple[faust.App, WorkerCounters]:
    """Build the worker app for ``cfg``; the topics must exist (see streams.topics).

    ``topology`` None takes ``runtime.topology``. ``store`` None keeps state in memory (acks
    as usual); a :class:`RedisStateStore` makes the worker checkpoint and hold acks until its
    state is saved. ``metrics`` (a new :class:`WorkerMetrics` when None) are served at
    ``/metrics`` on the web port when ``web_enabled``.
    """
    kafka = runtime.kafka
    topo: Topology = topology or runtime.topology
    durable = isinstance(store, RedisStateStore)
    app_kwargs: dict[str, Any] = {
        "broker": f"kafka://{kafka.bootstrap}",
        "value_serializer": "raw",
        "key_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": runtime.topics.partitions,
        "topic_allow_declare": False,  # topics are pre-created with the partitions we want
        "topic_disable_leader": True,
        "web_enabled": web_enabled,
        "web_host": runtime.web.host,
        "web_bind": runtime.web.host,
        "web_port": runtime.web.port,
        "producer_acks": -1,
        "producer_linger_ms": 1,
        "store": "memory://",
        "stream_buffer_maxsize": 65536,
        "broker_max_poll_records": 5000,
        # a crashed worker's partitions move to the others after this, not after a minute
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
        # held acks would make a rebalance wait for them: our revoke handler checkpoints instead
        "stream_wait_empty": not durable,
    }
    app_kwargs.update(_broker_security(runtime))
    short_fetch_wait()
    app = faust.App(runtime.group("quorum-worker"), **app_kwargs)
    for noisy in ("aiokafka", "faust.topics", "faust.transport"):
        # their per-message debug calls cost ~5% even when nothing is printed
        logging.getLogger(noisy).setLevel(logging.INFO)
    counters = WorkerCounters()
    metrics = metrics if metrics is not None else WorkerMetrics()
    set_current(metrics)  # streams.metrics.record_drift_alarm counts into this worker's
    tick_counts = metrics.pending_ticks  # per tick: one dict update; flushed per batch
    state: StateStore = store if store is not None else MemoryStateStore()
    redis_store = store if isinstance(store, RedisStateStore) else None
    kernel = Pipeline(
        cfg, state, join_timeout_s=join_timeout_s, max_waiting=runtime.join.max_waiting
    )
    names = kernel.stage_names

    def topic(key: TopicKey) -> Any:
        return app.topic(
            runtime.topic(key),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            internal=False,
        )

    ticks_t = topic("ticks")  # the inputs; outputs go through librdkafka (streams.outputs)
    votes_t = topic("votes") if topo == "split" else None
    gate = asyncio.Lock()  # a checkpoint never sees half a batch

    # --- positions: driver metadata, saved beside the state they describe --------------------
    # cursor name -> (partition, offset, index) of the last input applied; the keys each
    # cursor covers carry it in their sealed header (see streams.redis_store.DRIVER_META)
    cursors: dict[str, tuple[int, int, int]] = {}
    processed: dict[Any, int] = {}  # input partition (a TP) -> the next offset to process
    cursor_keys: dict[str, tuple[str, ...]] = {}

    def covers(cursor: str, symbol: str) -> tuple[str, ...]:
        keys = cursor_keys.get(cursor)
        if keys is None:
            owner = cursor.split("/", 1)[0]
            if owner == FUSED:
                keys = (
                    *(state_key(n, symbol) for n in names),
                    state_key(LABELS, symbol),
                    state_key(VOTER, symbol),
                )
            elif owner == JOIN:
                keys = (state_key(JOIN, symbol), state_key(VOTER, symbol))
            else:
                keys = (state_key(owner, symbol),)
            cursor_keys[cursor] = keys
        return keys

    def restore(cursor: str, symbol: str) -> tuple[int, int, int] | None:
        """The saved position of a cursor whose states were just loaded (None: never saved)."""
        if redis_store is None:
            return None
        pos = redis_store.loaded_meta(covers(cursor, symbol)[-1]).get("position")
        return None if pos is None else (int(pos[0]), int(pos[1]), int(pos[2]))

    outputs = Outputs(runtime)
    ticks_name, signals_name = runtime.topic("ticks"), runtime.topic("signals")
    votes_name, rejected_name = runtime.topic("votes"), runtime.topic("rejected")

    async def flush() -> None:
        try:
            await in_thread(outputs.flush)
        except OutputsLost as e:
            on_undelivered(e)
            raise

    def positions_to_meta() -> None:
        """Under the gate, just before the snapshot is sealed: each cursor's position goes
        into the header of every key it covers."""
        if redis_store is not None:
            for cursor, pos in cursors.items():
                meta = {"position": list(pos)}
                for key in covers(cursor, cursor.split("/", 1)[1]):
                    redis_store.set_meta(key, meta)

    # the checkpointer only runs in durable mode; in memory mode nothing is held
    checkpointer = Checkpointer(
        redis_store if redis_store is not None else _NoStore(),
        flush,
        every=checkpoint_every,
        interval_s=checkpoint_interval_s,
        on_fenced=on_fenced,
        counters=counters,
        gate=gate,
        before_seal=positions_to_meta,
        on_saved=metrics.checkpoint_done,
    )

    async def batches(stream: Any) -> Any:
        """Batches of events (amortising Faust's per-event cost); in durable mode only those of
        partitions still assigned to us, each with a reference we hold until a checkpoint.

        ``take_events`` acknowledges every event right after the batch body, noack stream or
        not; the extra reference keeps that from marking the offset committable before the
        state covering it is saved (the checkpoint drops the reference). A batch is never
        larger than a checkpoint's worth of inputs, so "every N inputs" holds to a batch."""
        size = min(batch_size, checkpoint_every) if durable else batch_size
        async for events in stream.take_events(size, within=batch_within_s):
            if durable:
                for event in events:  # dropped ones too: they must never count as acked
                    event.message.incref()
                current = app.consumer.assignment()  # a batch taken before a revoke: its
                events = [e for e in events if e.message.tp in current]  # new owner re-reads
            yield events

    async def load(what: str, partition: int, fn: Callable[[str], object], symbol: str) -> None:
        """Load state for the input about to be applied; retried while Redis is down (the
        input is retried, never skipped). New keys go to the input partition's hash slot."""
        if redis_store is not None:
            redis_store.partition = partition
        while True:
            try:
                fn(symbol)
                return
            except redis.RedisError as e:
                await checkpointer.load_failed(e, what)

    def reject(event: Any, index: int | None, error: DecodeError) -> None:
        msg = event.message
        counters.rejected += 1
        record = dead_letter(event.value, str(error), msg.topic, msg.partition, msg.offset, index)
        outputs.send(rejected_name, event.key, record)
        where = "" if index is None else f" element {index}"
        log.warning(
            "rejected tick at %s[%d]@%d%s: %s", msg.topic, msg.partition, msg.offset, where, error
        )

    def ticks_of(event: Any, report: bool) -> list[tuple[int, Tick]]:
        """The record's good ticks with their index; bad elements dead-lettered (once)."""
        items = decode_tick_record(event.value)
        good: list[tuple[int, Tick]] = []
        for index, item in enumerate(items):
            if isinstance(item, DecodeError):
                if report:  # the whole record unreadable: no element to point at
                    whole = isinstance(item, RecordDecodeError) or not is_tick_batch(event.value)
                    reject(event, None if whole else index, item)
            else:
                good.append((index, item))
        return good

    def emit(decision: Decision) -> None:
        signal = decision.signal
        counters.signals += 1
        metrics.decision(decision)
        outputs.send(signals_name, signal.symbol.encode(), encode_signal(signal))

    async def run_batches(stream: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
        async for events in batches(stream):
            async with gate:
                if durable:  # a revoke may have run while we waited for the gate: its
                    current = app.consumer.assignment()  # partitions' inputs are not ours
                    events = [e for e in events if e.message.tp in current]
                for event in events:
                    await handle(event)
                for event in events:  # the next offset to process, for the consumer lag
                    msg = event.message
                    processed[msg.tp] = msg.offset + 1
                if kernel.events:  # drift alarms, mutes, resets: counted and logged
                    for ev in kernel.take_events():
                        if ev.kind == "drift_alarm":
                            metrics.record_drift_alarm(ev.stage, ev.symbol, ev.detail["action"])
                        log.warning(
                            "model event %s %s/%s at %d: %s",
                            ev.kind,
                            ev.stage,
                            ev.symbol,
                            ev.ts,
                            ev.detail,
                        )
                metrics.flush(losses=False)  # those once a second (consumer_lag) and at scrapes
                due = durable and checkpointer.hold(events)
            if due:
                await checkpointer.checkpoint("events")

    # --- fused: the whole kernel per tick ----------------------------------------------------

    async def handle_fused(event: Any) -> None:
        msg = event.message
        partition, offset = msg.partition, msg.offset
        for index, tick in ticks_of(event, report=True):
            symbol = tick.symbol
            if durable:
                cursor = f"{FUSED}/{symbol}"
                if cursor not in cursors:
                    await load("the kernel's", partition, kernel.load, symbol)
                    saved = restore(cursor, symbol)
                    if saved is not None:
                        cursors[cursor] = saved
                pos = cursors.get(cursor)
                if checkpointer.skip(pos, partition, offset, index):
                    continue  # applied before the last checkpoint: never learn twice
                cursors[cursor] = (partition, offset, index)
            counters.ticks += 1
            tick_counts[symbol] += 1
            decision = kernel.process(tick)
            if decision is not None:
                emit(decision)

    if topo == "fused":

        async def fused(stream: Any) -> None:
            await run_batches(stream, handle_fused)

        app.agent(ticks_t, name="kernel")(fused)

    # --- split: an agent per stage, a votes topic, the voting agent -------------------------

    def stage_agent(index: int, name: str) -> None:
        async def handle(event: Any) -> None:
            msg = event.message
            partition, offset = msg.partition, msg.offset
            stage = kernel.stages[index]
            for element, tick in ticks_of(event, report=index == 0):
                symbol = tick.symbol
                if durable:
                    cursor = f"{name}/{symbol}"
                    if cursor not in cursors:
                        await load(name, partition, stage.state, symbol)
                        saved = restore(cursor, symbol)
                        if saved is not None:
                            cursors[cursor] = saved
                    if checkpointer.skip(cursors.get(cursor), partition, offset, element):
                        continue
                    cursors[cursor] = (partition, offset, element)
                if index == 0:
                    counters.ticks += 1
                    tick_counts[symbol] += 1
                vote = kernel.vote(index, tick)
                if vote is not None:
                    outputs.send(votes_name, symbol.encode(), encode_vote(vote))

        async def run(stream: Any) -> None:  # faust.Stream; StreamT lacks take_events
            await run_batches(stream, handle)

        app.agent(ticks_t, name=f"stage-{name}")(run)

    async def handle_vote(event: Any) -> None:
        try:
            vote = decode_vote(event.value)
        except DecodeError as e:
            log.error("undecodable vote skipped: %s", e)
            return
        msg = event.message
        symbol = vote.symbol
        if durable:
            cursor = f"{JOIN}/{symbol}"
            if cursor not in cursors:
                await load("voting", msg.partition, kernel.load_join, symbol)
                saved = restore(cursor, symbol)
                if saved is not None:
                    cursors[cursor] = saved
            if checkpointer.skip(cursors.get(cursor), msg.partition, msg.offset):
                return
            cursors[cursor] = (msg.partition, msg.offset, 0)
        counters.votes += 1
        for decision in kernel.join(vote, time.monotonic()):
            emit(decision)

    if topo == "split":
        for i, name in enumerate(names):
            stage_agent(i, name)

        async def voting(stream: Any) -> None:
            await run_batches(stream, handle_vote)

        app.agent(votes_t, name="voting")(voting)

        expire_every = max(join_timeout_s / 4, 0.05)
        last_expire = [time.monotonic()]

        @app.timer(interval=expire_every)  # type: ignore[untyped-decorator]
        async def expire_joins() -> None:
            async with gate:
                now = time.monotonic()
                late = now - last_expire[0] - expire_every
                last_expire[0] = now
                if late > join_timeout_s / 2:  # we were frozen (SIGSTOP, a VM pause), not
                    log.warning(  # the stages silent: no tick may time out for our stall
                        "the worker did not run for %.1f s; the join's clocks skip it", late
                    )
                    kernel.stalled(late)
                    return
                for decision in kernel.expire(now):
                    emit(decision)
                metrics.flush(losses=False)

    if redis_store is not None:
        durable_store = redis_store

        def preload(assigned: set[Any]) -> tuple[int, int]:
            """Load the saved state of the assigned partitions before anything is processed,
            so ticks waiting in a restored join expire even if no new vote comes for them.
            Returns (symbols, saved keys) loaded."""
            symbols: set[str] = set()
            keys = 0
            for tp in sorted(assigned, key=lambda tp: (tp.topic, tp.partition)):
                for key, head, _ in durable_store.headers([tp.partition]):
                    if isinstance(head, Exception):
                        raise head  # never unpickled; the worker stops with the reason
                    owner, symbol = key.split("/", 1)
                    from_ticks = owner in names or topo == "fused"
                    if from_ticks != (tp.topic == ticks_name):
                        continue  # this owner follows the other topic's partitions
                    durable_store.partition = tp.partition
                    durable_store.get(key)
                    keys += 1
                    symbols.add(symbol)
                    cursor = (
                        f"{FUSED}/{symbol}"
                        if topo == "fused"
                        else f"{owner}/{symbol}"
                        if owner in names
                        else f"{JOIN}/{symbol}"
                    )
                    saved = restore(cursor, symbol)
                    if saved is not None:
                        cursors[cursor] = saved
            for symbol in sorted(symbols):  # live objects for what was loaded, none created
                for name in names:
                    if durable_store.get(state_key(name, symbol)) is not None:
                        kernel.stages[names.index(name)].state(symbol)
            if topo == "split":
                for symbol in sorted(symbols):
                    if durable_store.get(state_key(JOIN, symbol)) is not None:
                        kernel.joiner.state(symbol)
            return len(symbols), keys

        # checks the cadence often; a checkpoint is due checkpoint_interval_s after the last
        @app.timer(interval=max(checkpoint_interval_s / 4, 0.01))  # type: ignore[untyped-decorator]
        async def periodic_checkpoint() -> None:
            await checkpointer.tick()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
            # save what we have, then forget it: the partitions' next owner (maybe another
            # worker) loads the state from Redis; inputs not covered are simply re-delivered
            saved = await checkpointer.checkpoint("revoked")
            async with gate:
                checkpointer.drop(lambda e: e.message.tp in revoked)
                if not saved:
                    log.error(
                        "state of revoked partitions could not be saved; it will be "
                        "rebuilt from the last checkpoint by their next owner"
                    )
                durable_store.forget()
                kernel.forget()
                cursors.clear()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
            async with gate:
                while True:
                    try:
                        n, keys = preload(assigned)
                        break
                    except redis.RedisError as e:
                        await checkpointer.load_failed(e, "assigned partitions'")
                counters.loaded += keys
                checkpointer.announce_next()
                by_topic: dict[str, list[int]] = {}
                for tp in assigned:
                    by_topic.setdefault(tp.topic, []).append(tp.partition)
                log.info(
                    "assigned partitions: %s",
                    "; ".join(f"{t} {sorted(p)}" for t, p in sorted(by_topic.items())),
                )
                log.info(
                    "loaded the saved state of %d symbol(s) (%d keys) of the %d assigned "
                    "partitions",
                    n,
                    keys,
                    len(assigned),
                )
                log.info("%s", counters.line())
                # re-read everything not committed: inputs fetched but dropped around the
                # rebalance come back, and those already applied are skipped by position
                consumer: Any = app.consumer  # ConsumerT does not declare it; Consumer has it
                seek_uncommitted_to_start(consumer)
                committed = await consumer.seek_to_committed()
                fresh = sorted(
                    f"{tp.topic}[{tp.partition}]" for tp, o in committed.items() if not o
                )
                if fresh:
                    log.info("no committed offset, reading from the start: %s", ", ".join(fresh))

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def on_shutdown(sender: Any, **kwargs: Any) -> None:
            await checkpointer.checkpoint("shutdown")
            log.info("at shutdown %s", counters.line())

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_positions(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        for tp in revoked:
            processed.pop(tp, None)

    @app.timer(interval=LAG_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def consumer_lag() -> None:
        metrics.flush()  # with the rolling log-losses
        await update_lag(app.consumer, processed, metrics)

    if web_enabled:

        @app.page("/metrics", name="quorum-metrics")
        async def metrics_view(view: Any, request: Any) -> Any:
            metrics.flush()
            body, content_type = exposition(metrics.registry, request.headers.get("Accept"))
            return view.bytes(body, headers={"Content-Type": content_type})

    @app.timer(interval=0.05)  # type: ignore[untyped-decorator]
    async def serve_deliveries() -> None:
        outputs.poll()  # failures only; a lost output stops the worker at the next flush
        if outputs.lost and redis_store is None:
            on_undelivered(OutputsLost(f"output record(s) not delivered: {outputs.lost[:3]}"))

    if redis_store is None:

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def flush_at_shutdown(sender: Any, **kwargs: Any) -> None:
            try:
                await flush()
            except OutputsPending as e:
                log.error("at shutdown: %s", e)

    @app.timer(interval=stats_interval_s)  # type: ignore[untyped-decorator]
    async def report() -> None:
        join = kernel.joiner if topo == "split" else None
        log.info(
            "topology %s: ticks %d, rejected %d, votes %d, signals %d, skipped %d, "
            "joins waiting %d, timed out %d, released over the bound %d, checkpoints %d "
            "(failed %d), unacked %d",
            topo,
            counters.ticks,
            counters.rejected,
            counters.votes,
            counters.signals,
            counters.skipped,
            join.waiting() if join else 0,
            join.timed_out if join else 0,
            join.overflowed if join else 0,
            counters.checkpoints,
            counters.checkpoint_failures,
            len(checkpointer.held),
        )
        log.info("%s", counters.line())

    return app, counters


async def update_lag(consumer: Any, processed: dict[Any, int], metrics: WorkerMetrics) -> None:
    """The consumer lag of every assigned input partition: its end offset (one ListOffsets
    request for all of them) minus the next offset to process. A partition with nothing
    processed since the start or its assignment counts from the consumer's position. Errors
    leave the last values (a metric must not disturb the worker)."""
    try:
        tps = consumer.assignment()
        ends = await asyncio.wait_for(consumer.highwaters(*tps), 5.0) if tps else {}
        positions: dict[tuple[str, int], int] = {}
        for tp in tps:
            position = processed.get(tp)
            if position is None:
                end = ends.get(tp)
                position = 0 if not end else await asyncio.wait_for(consumer.position(tp), 5.0)
            if position is not None and tp in ends:
                positions[(tp.topic, tp.partition)] = position
        metrics.set_lag({(tp.topic, tp.partition): end for tp, end in ends.items()}, positions)
    except Exception as e:  # broad on purpose: a metric must never stop the worker
        log.debug("consumer lag not refreshed: %r", e)


#: How long the broker may hold a fetch with no data. Faust hard-codes 1500 ms; aiokafka leaves a
#: partition whose fetched records are not consumed yet out of the next fetch, so that fetch
#: asks only the idle partitions and the broker holds it the whole wait: a busy partition then
#: waits up to 1.5 s between batches (the worker idled ~40 % of a flat-out replay, and after a
#: takeover its latency stayed at 1-1.8 s). 20 ms costs an idle fetch per 20 ms per worker.
FETCH_MAX_WAIT_MS = 20


def short_fetch_wait() -> None:
    """Make the Faust consumers of this process use :data:`FETCH_MAX_WAIT_MS` (idempotent).

    Faust offers no setting for it, so its consumer factory is wrapped: the wait is set on the
    aiokafka consumer before it starts (its fetcher reads it at start)."""
    from faust.transport.drivers import aiokafka as driver

    thread_cls: Any = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_quorum_short_fetch_wait", False):
        return
    create = thread_cls._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    thread_cls._create_worker_consumer = create_worker_consumer
    thread_cls._quorum_short_fetch_wait = True


def seek_uncommitted_to_start(consumer: Any) -> None:
    """Make ``consumer.seek_to_committed`` also rewind the partitions without a committed offset.

    Faust recovers from inputs it fetched but dropped around a rebalance by seeking back to
    the committed offsets (our ``on_assigned``, its Recovery service, and its fetch loop when a
    fetch returns while the flow is stopped all call ``seek_to_committed``). aiokafka skips the
    partitions that have no committed offset (or offset 0), so for those the dropped inputs
    were simply gone: a fetch that spans a rebalance returns records of the newly assigned
    partitions (Faust's live set of active partitions is empty for a moment, which aiokafka
    reads as "all"), Faust discards them, and the partition goes on after them. A successor
    taking over a partition its dead owner never committed (it died in its first commit
    interval) thus skipped every input between the saved state and that fetch: its stages'
    sequence numbers no longer matched the backtest's. Seeking those partitions to the start
    (the earliest offset: ``consumer_auto_offset_reset``) re-delivers them; what was applied
    before the last checkpoint is skipped by position as usual."""
    if getattr(consumer, "_quorum_seeks_uncommitted", False):
        return
    seek_to_committed = consumer.seek_to_committed

    async def seek_to_committed_or_start() -> Any:
        committed = await seek_to_committed()
        uncommitted = {tp: 0 for tp, offset in committed.items() if not offset}
        if uncommitted:
            await consumer.seek_wait(uncommitted)
        return committed

    consumer.seek_to_committed = seek_to_committed_or_start
    consumer._quorum_seeks_uncommitted = True


class _NoStore:
    """The memory backend's stand-in: nothing is held, so it is never asked to save."""

    def touch_all(self) -> None:
        pass

    def prepare(self) -> Any:
        raise AssertionError("a memory-state worker never checkpoints")

    def commit(self, prepared: Any) -> Any:
        raise AssertionError("a memory-state worker never checkpoints")

    def committed(self, prepared: Any) -> None:
        pass

    def failed(self, prepared: Any) -> None:
        pass


def _broker_security(runtime: RuntimeConfig) -> dict[str, Any]:
    """Faust/aiokafka credentials from the runtime config (PLAINTEXT needs none)."""
    k = runtime.kafka
    if k.security_protocol == "PLAINTEXT":
        return {}
    import ssl

    context = ssl.create_default_context(cafile=k.ssl_ca_location)
    if k.ssl_certificate_location:
        context.load_cert_chain(k.ssl_certificate_location, k.ssl_key_location)
    if k.security_protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    password = k.sasl_password.get_secret_value() if k.sasl_password else ""
    return {
        "broker_credentials": faust.SASLCredentials(
            username=k.sasl_username or "",
            password=password,
            mechanism=k.sasl_mechanism or "PLAIN",
            ssl_context=context if k.security_protocol == "SASL_SSL" else None,
        )
    }
