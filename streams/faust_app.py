"""The Faust app: the same Stage and Voter objects as the embedded backtest, driven by Kafka.

Topology (every topic keyed by symbol, so one symbol's ticks stay in order on one partition)::

    ticks ──▶ stage-<name> agents (one per feature stage) ──▶ votes ──▶ voting agent ──▶ signals
      └──▶ undecodable or invalid ticks ──▶ ticks.rejected (raw bytes + reason)

Agents stay thin: decode, call the pure pipeline code, send. Built by a factory (no app at
import time), so tests and several workers can each build their own.

With a Redis state store the worker is crash-safe: every stage and join state records the last
input position it applied; a checkpoint (every N events or T seconds, on partition revocation
and at shutdown) first flushes the producer, then writes all state in one transaction, and only
then acknowledges the inputs it covers — so Kafka never commits an offset past saved state.
After a crash, re-delivered inputs at or before a saved position are skipped, not learned
twice; outputs after the last checkpoint may repeat, with the same deterministic ids. That
logic (held acks, cadence, backoff, fencing) is :class:`streams.checkpoint.Checkpointer`, which
knows nothing of Faust, so it is unit-tested without a broker; this module wires it to Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import faust
import orjson
import redis

from agents.join import VoteJoin
from agents.stage import Stage
from agents.voting import Voter
from config.runtime import RuntimeConfig
from config.settings import PipelineConfig
from models.state import MemoryStateStore, StateStore
from streams.checkpoint import Checkpointer, WorkerCounters
from streams.codecs import DecodeError, decode_tick, decode_vote, encode_signal, encode_vote
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


def exit_fenced(error: StateFencedError) -> None:
    """A fenced worker lost its partitions without noticing and its live state is stale: it
    stops at once, like a crash, which the design already makes safe (nothing it holds was
    acknowledged; the partitions' owner has the saved state). Restarting it is its
    supervisor's job; it then loads the saved state like any new worker."""
    log.critical("%s; stopping now (exit %d) so it cannot write again", error, EXIT_FENCED)
    logging.shutdown()
    os._exit(EXIT_FENCED)


def dead_letter(raw: bytes, reason: str, topic: str, partition: int, offset: int) -> bytes:
    """The rejected-topic record: why, where from, a readable copy and the exact bytes."""
    return orjson.dumps(
        {
            "reason": reason,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "raw": raw.decode("utf-8", "replace")[:1000],
            "raw_b64": base64.b64encode(raw).decode("ascii"),
        }
    )


def create_app(
    cfg: PipelineConfig,
    runtime: RuntimeConfig,
    *,
    store: StateStore | None = None,
    join_timeout_s: float = 10.0,
    web_enabled: bool = True,
    stats_interval_s: float = 10.0,
    batch_size: int = 500,
    batch_within_s: float = 0.01,
    checkpoint_every: int = 5000,
    checkpoint_interval_s: float = 2.0,
    on_fenced: Callable[[StateFencedError], None] = exit_fenced,
) -> tuple[faust.App, WorkerCounters]:
    """Build the worker app for ``cfg``; the topics must exist (see streams.topics).

    ``store`` None keeps state in memory (acks as usual); a :class:`RedisStateStore` makes the
    worker checkpoint and hold acks until its state is saved.
    """
    kafka = runtime.kafka
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
    app = faust.App(runtime.group("quorum-worker"), **app_kwargs)
    for noisy in ("aiokafka", "faust.topics", "faust.transport"):
        # their per-message debug calls cost ~5% even when nothing is printed
        logging.getLogger(noisy).setLevel(logging.INFO)
    counters = WorkerCounters()
    state: StateStore = store if store is not None else MemoryStateStore()

    def topic(key: str) -> Any:
        return app.topic(
            runtime.topic(key),  # type: ignore[arg-type]
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            internal=False,
        )

    ticks_t, votes_t, signals_t, rejected_t = (
        topic("ticks"),
        topic("votes"),
        topic("signals"),
        topic("rejected"),
    )
    stages = [Stage(s, cfg, state) for s in cfg.stages]
    voter = Voter(cfg, state)
    join = VoteJoin(
        tuple(s.name for s in cfg.stages),
        join_timeout_s,
        state,
        max_waiting=runtime.join.max_waiting,
    )
    gate = asyncio.Lock()  # a checkpoint never sees half a batch

    async def flush() -> None:
        await app.producer.flush()

    # the checkpointer only runs in durable mode; in memory mode nothing is held
    checkpointer = Checkpointer(
        store if isinstance(store, RedisStateStore) else _NoStore(),
        flush,
        every=checkpoint_every,
        interval_s=checkpoint_interval_s,
        on_fenced=on_fenced,
        counters=counters,
        gate=gate,
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

    def hold(events: list[Any]) -> bool:
        """Keep processed events unacknowledged until a checkpoint; True when one is due."""
        return durable and checkpointer.hold(events)

    async def redis_down(e: redis.RedisError, what: str) -> None:
        await checkpointer.load_failed(e, what)

    async def checkpoint(reason: str) -> bool:
        """Flush outputs, save all state atomically, then release the acks it covers."""
        return not durable or await checkpointer.checkpoint(reason)

    def stage_agent(stage: Stage, report_rejects: bool) -> Any:
        async def run(stream: Any) -> None:  # faust.Stream; StreamT lacks take_events
            async for events in batches(stream):
                async with gate:
                    for event in events:
                        while True:
                            try:
                                handle_tick(stage, event, report_rejects)
                                break
                            except redis.RedisError as e:  # raised before any state changed
                                await redis_down(e, stage.name)
                    due = hold(events)
                if due:
                    await checkpoint("events")

        return app.agent(ticks_t, name=f"stage-{stage.name}")(run)

    def handle_tick(stage: Stage, event: Any, report_rejects: bool) -> None:
        raw = event.value
        msg = event.message
        try:
            tick = decode_tick(raw)
        except DecodeError as e:
            if report_rejects:
                counters.rejected += 1
                rejected_t.send_soon(
                    key=event.key,
                    value=dead_letter(raw, str(e), msg.topic, msg.partition, msg.offset),
                )
                log.warning(
                    "rejected tick at %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, e
                )
            return
        st = stage.state(tick.symbol)  # loads from the store: the only step that may fail
        if checkpointer.skip(st.position, msg.partition, msg.offset):
            return  # applied before the last checkpoint: never learn twice
        if report_rejects:
            counters.ticks += 1
        vote = stage.process(tick)
        st.position = (msg.partition, msg.offset)
        if vote is not None:
            votes_t.send_soon(key=tick.symbol.encode(), value=encode_vote(vote))

    for i, stage in enumerate(stages):
        stage_agent(stage, report_rejects=(i == 0))

    def emit(batches: list[list[Any]]) -> None:
        for votes in batches:
            signal = voter.process(votes).signal
            counters.signals += 1
            signals_t.send_soon(key=signal.symbol.encode(), value=encode_signal(signal))

    def handle_vote(event: Any, now: float) -> None:
        try:
            vote = decode_vote(event.value)
        except DecodeError as e:
            log.error("undecodable vote skipped: %s", e)
            return
        msg = event.message
        js = join.state(vote.symbol)  # both loads first: they may fail, nothing changed yet
        voter.state(vote.symbol)
        if checkpointer.skip(js.position, msg.partition, msg.offset):
            return
        counters.votes += 1
        emit(join.add(vote, now))
        js.position = (msg.partition, msg.offset)

    @app.agent(votes_t, name="voting")
    async def voting(stream: Any) -> None:
        async for events in batches(stream):
            async with gate:
                for event in events:
                    while True:
                        try:
                            handle_vote(event, time.monotonic())
                            break
                        except redis.RedisError as e:
                            await redis_down(e, "voting")
                due = hold(events)
            if due:
                await checkpoint("events")

    @app.timer(interval=max(join_timeout_s / 4, 0.05))  # type: ignore[untyped-decorator]
    async def expire_joins() -> None:
        async with gate:
            emit(join.expire(time.monotonic()))

    if durable:
        assert isinstance(store, RedisStateStore)
        durable_store = store

        def preload(assigned: set[Any]) -> tuple[int, int]:
            """Load the saved state of the assigned partitions before anything is processed,
            so ticks waiting in a restored join expire even if no new vote comes for them.
            Returns (symbols, saved keys) loaded."""
            parts = {tp.partition for tp in assigned}
            symbols = set()
            keys: list[str] = []
            for key, head, _ in durable_store.headers():
                if isinstance(head, Exception):
                    raise head  # never unpickled; the worker stops with the reason
                keys.append(key)
                pos = head.meta.get("position")
                if pos is not None and pos[0] in parts:
                    symbols.add(key.split("/", 1)[1])
            for symbol in sorted(symbols):
                for s in stages:
                    s.state(symbol)
                join.state(symbol)
                voter.state(symbol)
            return len(symbols), sum(1 for k in keys if k.split("/", 1)[1] in symbols)

        # checks the cadence often; a checkpoint is due checkpoint_interval_s after the last
        @app.timer(interval=max(checkpoint_interval_s / 4, 0.01))  # type: ignore[untyped-decorator]
        async def periodic_checkpoint() -> None:
            await checkpointer.tick()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
            # save what we have, then forget it: the partitions' next owner (maybe another
            # worker) loads the state from Redis; inputs not covered are simply re-delivered
            saved = await checkpoint("revoked")
            async with gate:
                checkpointer.drop(lambda e: e.message.tp in revoked)
                if not saved:
                    log.error(
                        "state of revoked partitions could not be saved; it will be "
                        "rebuilt from the last checkpoint by their next owner"
                    )
                durable_store.forget()
                for s in stages:
                    s.forget()
                voter.forget()
                join.forget()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
            async with gate:
                while True:
                    try:
                        n, keys = preload(assigned)
                        break
                    except redis.RedisError as e:
                        await redis_down(e, "assigned partitions'")
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
            await checkpoint("shutdown")
            log.info("at shutdown %s", counters.line())

    @app.timer(interval=stats_interval_s)  # type: ignore[untyped-decorator]
    async def report() -> None:
        log.info(
            "ticks %d, rejected %d, votes %d, signals %d, skipped %d, joins waiting %d, "
            "timed out %d, released over the bound %d, checkpoints %d (failed %d), unacked %d",
            counters.ticks,
            counters.rejected,
            counters.votes,
            counters.signals,
            counters.skipped,
            join.waiting(),
            join.timed_out,
            join.overflowed,
            counters.checkpoints,
            counters.checkpoint_failures,
            len(checkpointer.held),
        )
        log.info("%s", counters.line())

    return app, counters


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

    def checkpoint(self) -> Any:
        raise AssertionError("a memory-state worker never checkpoints")


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
