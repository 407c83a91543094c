"""The Faust app: the same Stage and Voter objects as the embedded backtest, driven by Kafka.

Topology (every topic keyed by symbol, so one symbol's ticks stay in order on one partition)::

    ticks ──▶ stage-<name> agents (one per feature stage) ──▶ votes ──▶ voting agent ──▶ signals
      └──▶ undecodable or invalid ticks ──▶ ticks.rejected (raw bytes + reason)

Agents stay thin: decode, call the pure pipeline code, send. Built by a factory (no app at
import time), so tests and several workers can each build their own.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from agents.join import VoteJoin
from agents.stage import Stage
from agents.voting import Voter
from config.runtime import RuntimeConfig
from config.settings import PipelineConfig
from streams.codecs import DecodeError, decode_tick, decode_vote, encode_signal, encode_vote

log = logging.getLogger("quorum.worker")


@dataclass
class WorkerCounters:
    ticks: int = 0
    rejected: int = 0
    votes: int = 0
    signals: int = 0
    per_stage: dict[str, int] = field(default_factory=dict)


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
    join_timeout_s: float = 10.0,
    web_enabled: bool = True,
    stats_interval_s: float = 10.0,
    batch_size: int = 500,
    batch_within_s: float = 0.01,
) -> tuple[faust.App, WorkerCounters]:
    """Build the worker app for ``cfg``; the topics must exist (see streams.topics)."""
    kafka = runtime.kafka
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
    }
    app_kwargs.update(_broker_security(runtime))
    app = faust.App(runtime.group("quorum-worker"), **app_kwargs)
    for noisy in ("aiokafka", "faust.topics", "faust.transport"):
        # their per-message debug calls cost ~5% even when nothing is printed
        logging.getLogger(noisy).setLevel(logging.INFO)
    counters = WorkerCounters()

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
    stages = [Stage(s, cfg) for s in cfg.stages]
    voter = Voter(cfg)
    join = VoteJoin(tuple(s.name for s in cfg.stages), join_timeout_s)

    def stage_agent(stage: Stage, report_rejects: bool) -> Any:
        async def run(stream: Any) -> None:  # faust.Stream; StreamT lacks take_events
            # batches amortise Faust's per-event cost; acks happen after the batch is handled
            async for events in stream.take_events(batch_size, within=batch_within_s):
                for event in events:
                    raw = event.value
                    try:
                        tick = decode_tick(raw)
                    except DecodeError as e:
                        if report_rejects:
                            counters.rejected += 1
                            msg = event.message
                            rejected_t.send_soon(
                                key=event.key,
                                value=dead_letter(
                                    raw, str(e), msg.topic, msg.partition, msg.offset
                                ),
                            )
                            log.warning(
                                "rejected tick at %s[%d]@%d: %s",
                                msg.topic,
                                msg.partition,
                                msg.offset,
                                e,
                            )
                        continue
                    if report_rejects:
                        counters.ticks += 1
                    vote = stage.process(tick)
                    if vote is not None:
                        votes_t.send_soon(key=tick.symbol.encode(), value=encode_vote(vote))

        return app.agent(ticks_t, name=f"stage-{stage.name}")(run)

    for i, stage in enumerate(stages):
        stage_agent(stage, report_rejects=(i == 0))

    def emit(batches: list[list[Any]]) -> None:
        for votes in batches:
            signal = voter.process(votes).signal
            counters.signals += 1
            signals_t.send_soon(key=signal.symbol.encode(), value=encode_signal(signal))

    @app.agent(votes_t, name="voting")
    async def voting(stream: faust.StreamT[bytes]) -> None:
        async for raws in stream.take(batch_size, within=batch_within_s):
            for raw in raws:
                try:
                    vote = decode_vote(raw)
                except DecodeError as e:
                    log.error("undecodable vote skipped: %s", e)
                    continue
                counters.votes += 1
                emit(join.add(vote, time.monotonic()))

    @app.timer(interval=max(join_timeout_s / 4, 0.05))  # type: ignore[untyped-decorator]
    async def expire_joins() -> None:
        emit(join.expire(time.monotonic()))

    @app.timer(interval=stats_interval_s)  # type: ignore[untyped-decorator]
    async def report() -> None:
        log.info(
            "ticks %d, rejected %d, votes %d, signals %d, joins waiting %d, timed out %d",
            counters.ticks,
            counters.rejected,
            counters.votes,
            counters.signals,
            join.waiting(),
            join.timed_out,
        )

    return app, counters


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
