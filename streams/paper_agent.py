"""The Kafka paper agent: the embedded backtest's paper session, fed by the ``ticks`` and
``signals`` topics, producing ``orders``, ``fills`` and ``positions`` (keyed by symbol).

One account is one state across every symbol (its cash, its day's loss and its order rate are
shared), so an account is not split over a consumer group: one agent reads every partition of
both topics, assigned directly, and the offsets it has read live in the same sealed, fenced
Redis checkpoint as the account itself (the session, its held events and the last control
command applied). Kafka commits nothing for it. A restart loads the checkpoint and reads on
from exactly its offsets, so no input is applied twice or skipped; the outputs made since the
last checkpoint are made again with the same deterministic ids (consumers keep each id once:
``quorum paper fills`` does). A second agent on the same account fences the first: it
checkpoints at start, and the first one's next checkpoint is refused
(:class:`streams.redis_store.StateFencedError`), so it stops.

Control commands (``quorum paper halt|resume|flatten``) are appended to a Redis stream; the
agent applies them between batches, between two checkpoints: the one before pins the input
position it applies at (a crash in between re-applies it from there), the one after makes it
durable before any further input is applied, and a restart keeps it.

The merger (``agents.paper_merge``) holds each event until no partition can still deliver an
earlier one; a partition that has reached its end (Kafka's partition EOF) and stayed there for
``idle_grace_s`` holds nothing back. That is the one place wall time enters, and only decides
*when* an event is applied, not its effect, unless a partition lags another by more than the
grace (counted as late ticks).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from agents.paper_session import PaperSession
from config.paper import PaperConfig
from config.runtime import RuntimeConfig
from models.orders import Fill
from streams.codecs import DecodeError, decode_signal, decode_tick_record
from streams.metrics import PaperMetrics
from streams.outputs import Outputs
from streams.redis_store import RedisStateStore

__all__ = [
    "AgentState",
    "AgentStats",
    "KafkaSink",
    "PaperAgent",
    "account_key",
    "alive_key",
    "control_key",
    "iter_fills",
    "queued_commands",
    "send_control",
]

log = logging.getLogger("quorum.paper")

COMMANDS = ("halt", "resume", "flatten")
ALIVE_TTL_S = 5


def account_key(account: str) -> str:
    return f"paper/{account}"


def control_key(store: RedisStateStore, account: str) -> str:
    return f"quorum:{store.tag(None)}:paper:{account}:control"


def alive_key(store: RedisStateStore, account: str) -> str:
    return f"quorum:{store.tag(None)}:paper:{account}:alive"


def send_control(store: RedisStateStore, account: str, command: str, operator: str) -> str:
    """Queue a control command for the account's agent; returns its stream id."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; expected one of {COMMANDS}")
    fields: dict[Any, Any] = {"cmd": command, "operator": operator, "at": f"{time.time():.3f}"}
    rid = store.client.xadd(control_key(store, account), fields)
    return _text(rid)


def _text(x: object) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def queued_commands(
    store: RedisStateStore, account: str, after: str, count: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """The control commands queued after stream id ``after``, oldest first, as text."""
    entries = store.client.xrange(control_key(store, account), min=f"({after}", count=count)
    return [
        (_text(rid), {_text(k): _text(v) for k, v in (fields or {}).items()})
        for rid, fields in entries or ()
    ]


@dataclass
class AgentState:
    """What a checkpoint saves: the account, the next offset to read per topic and partition
    (everything before it is applied or held in the session's merger), the last command."""

    session: PaperSession
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    control_id: str = "0-0"
    commands: list[dict[str, str]] = field(default_factory=list)  # applied, for the status
    inputs: int = 0


@dataclass
class AgentStats:
    records: int = 0
    ticks: int = 0
    signals: int = 0
    rejected: int = 0
    orders: int = 0
    fills: int = 0
    checkpoints: int = 0
    checkpoint_bytes: int = 0
    paused: int = 0
    loaded: bool = False


class KafkaSink:
    """The session's records to the paper topics, keyed by symbol, each naming the account."""

    def __init__(self, outputs: Outputs, runtime: RuntimeConfig, account: str, stats: AgentStats):
        self._out = outputs
        self._account = account
        self._stats = stats
        self._orders = runtime.topic("orders")
        self._fills = runtime.topic("fills")
        self._positions = runtime.topic("positions")

    def _send(self, topic: str, record: dict[str, Any]) -> None:
        record["account"] = self._account
        self._out.send(topic, str(record["symbol"]).encode(), orjson.dumps(record))

    def order(self, record: dict[str, Any]) -> None:
        self._stats.orders += 1
        self._send(self._orders, record)

    def fill(self, fill: Fill) -> None:
        self._stats.fills += 1
        doc = orjson.loads(orjson.dumps(fill))
        self._send(self._fills, doc)

    def position(self, record: dict[str, Any]) -> None:
        self._send(self._positions, record)

    def equity(self, ts: int, equity: float, cash: float) -> None:
        pass  # every positions record carries the equity and cash


class PaperAgent:
    def __init__(
        self,
        runtime: RuntimeConfig,
        cfg: PaperConfig,
        triggers: tuple[str, ...],
        account: str,
        store: RedisStateStore,
        *,
        checkpoint_every: int = 5000,
        checkpoint_interval_s: float = 2.0,
        idle_grace_s: float = 1.0,
        batch: int = 50,
        max_held: int = 5000,
        clock: Callable[[], float] = time.monotonic,
        metrics: PaperMetrics | None = None,
        metrics_every_s: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.cfg = cfg
        self.triggers = triggers
        self.account = account
        self.store = store
        self.every = checkpoint_every
        self.interval = checkpoint_interval_s
        self.grace = idle_grace_s
        self.batch = batch
        self.max_held = max_held
        self._paused: set[int] = set()
        self.clock = clock
        self.stats = AgentStats()
        self.ticks_topic = runtime.topic("ticks")
        self.signals_topic = runtime.topic("signals")
        self.key = account_key(account)
        self.state: AgentState | None = None
        self._eof: dict[tuple[str, int], float] = {}
        self._since_checkpoint = 0
        self._last_checkpoint = clock()
        self.metrics = metrics  # the account as Prometheus metrics, every metrics_every_s
        self.metrics_every_s = metrics_every_s
        self._last_metrics = -float("inf")

    # --- state -----------------------------------------------------------------------------

    def _load(self, partitions: dict[str, int]) -> AgentState:
        saved = self.store.get(self.key)
        if saved is not None:
            if not isinstance(saved, AgentState):
                raise RuntimeError(f"{self.key} in Redis is not a paper account")
            st = saved
            foreign = set(st.offsets) - set(partitions)
            if foreign:
                raise RuntimeError(
                    f"account {self.account} was saved reading {sorted(foreign)}, not "
                    f"{sorted(partitions)}: use another account or `quorum paper reset`"
                )
            self.stats.loaded = True
            held = st.session.merger.pending()
            log.info(
                "loaded account %s: %d inputs applied before; resuming at offsets %s; "
                "%d event(s) held; halted %s",
                self.account,
                st.inputs,
                {t: dict(sorted(o.items())) for t, o in sorted(st.offsets.items())},
                held,
                st.session.trader.halted,
            )
        else:
            session = PaperSession(
                self.cfg,
                self.triggers,
                partitions=range(partitions[self.ticks_topic]),
                keep_equity=False,
            )
            st = AgentState(session)
            log.info("new account %s, reading both topics from the start", self.account)
        for p in range(partitions[self.ticks_topic]):
            st.session.merger.add_partition(p)
        return st

    def checkpoint(self, outputs: Outputs, reason: str) -> None:
        """Outputs delivered first, then the state with its offsets: a crash after it never
        loses an output of applied input."""
        assert self.state is not None
        outputs.flush()
        self.store.put(self.key, self.state)
        stats = self.store.checkpoint()
        self.stats.checkpoints += 1
        self.stats.checkpoint_bytes = stats.bytes
        self._since_checkpoint = 0
        self._last_checkpoint = self.clock()
        log.debug("checkpoint (%s): %d bytes in %.1f ms", reason, stats.bytes, stats.elapsed_ms)

    # --- running ---------------------------------------------------------------------------

    def run(
        self,
        should_stop: Callable[[], bool],
        *,
        exit_when_idle_s: float | None = None,
    ) -> AgentStats:
        """Consume until ``should_stop()`` (then checkpoint), or, with ``exit_when_idle_s``,
        until every partition has been at its end that long with nothing held."""
        runtime = self.runtime
        consumer = Consumer(
            {
                **runtime.librdkafka(),
                "group.id": runtime.group(f"paper-{self.account}-{uuid.uuid4().hex[:8]}"),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
            logger=logging.getLogger("streams.kafka"),
        )
        outputs = Outputs(runtime)
        try:
            md = consumer.list_topics(timeout=10)
            partitions: dict[str, int] = {}
            for topic in (self.ticks_topic, self.signals_topic):
                t = md.topics.get(topic)
                if t is None or t.error is not None or not t.partitions:
                    raise RuntimeError(f"topic {topic} does not exist (quorum topics create)")
                partitions[topic] = len(t.partitions)
            self.state = st = self._load(partitions)
            st.session.sink = KafkaSink(outputs, runtime, self.account, self.stats)
            self.checkpoint(outputs, "start")  # fences an older agent of this account
            assign = [
                TopicPartition(topic, p, st.offsets.get(topic, {}).get(p, OFFSET_BEGINNING))
                for topic, n in partitions.items()
                for p in range(n)
            ]
            consumer.assign(assign)
            self._control(outputs)
            last_control = self.clock()
            quiet_since = self.clock()
            while not should_stop():
                msgs = consumer.consume(self.batch, timeout=0.05)
                now = self.clock()
                for msg in msgs:  # applied and checkpointed record by record
                    self._message(msg, now)
                    self._apply(outputs, now)
                if msgs:
                    quiet_since = now
                else:
                    self._apply(outputs, now)
                self._flow(consumer, partitions[self.ticks_topic])
                outputs.poll()
                if now - last_control >= 0.1:
                    self.store.client.set(alive_key(self.store, self.account), "1", ex=ALIVE_TTL_S)
                    self._control(outputs)
                    last_control = now
                if self._since_checkpoint and now - self._last_checkpoint >= self.interval:
                    self.checkpoint(outputs, "interval")
                if self.metrics is not None and now - self._last_metrics >= self.metrics_every_s:
                    self.metrics.update(st.session, self.stats)
                    self._last_metrics = now
                if (
                    exit_when_idle_s is not None
                    and len(self._eof) == sum(partitions.values())
                    and now - quiet_since >= exit_when_idle_s
                    and st.session.merger.pending() == 0
                ):
                    log.info("every partition at its end for %.1f s: stopping", exit_when_idle_s)
                    break
            self.checkpoint(outputs, "stop")
            if self.metrics is not None:
                self.metrics.update(st.session, self.stats)
            log.info(
                "stopped account %s: %d records, %d ticks, %d signals, %d orders, %d fills, "
                "%d checkpoints (last %d bytes), ticks paused %d times",
                self.account,
                self.stats.records,
                self.stats.ticks,
                self.stats.signals,
                self.stats.orders,
                self.stats.fills,
                self.stats.checkpoints,
                self.stats.checkpoint_bytes,
                self.stats.paused,
            )
            return self.stats
        finally:
            with contextlib.suppress(redis.RedisError):
                self.store.client.delete(alive_key(self.store, self.account))
            consumer.close()

    def _apply(self, outputs: Outputs, now: float) -> None:
        """Apply what the merger releases, checkpointing every ``checkpoint_every`` records
        read plus events applied: a restart re-applies (and re-sends the outputs of) at most
        that many, even when one signal releases thousands of held ticks."""
        assert self.state is not None
        session, idle = self.state.session, self._idle(now)
        while True:
            room = max(self.every - self._since_checkpoint, 1)
            n = session.drain(idle, limit=room)
            self._since_checkpoint += n
            if self._since_checkpoint >= self.every:
                self.checkpoint(outputs, "inputs")
            if n < room:
                return

    def _flow(self, consumer: Consumer, n: int) -> None:
        """Pause a ticks partition holding ``max_held`` ticks (they wait for their signals,
        which come later through the worker), resume it at half: the held events, which every
        checkpoint saves, stay bounded. A partition holding few is never paused, so the one
        every held event may be waiting for keeps flowing."""
        assert self.state is not None
        merger = self.state.session.merger
        for p in range(n):
            held = merger.held(p)
            if p not in self._paused and held >= self.max_held:
                consumer.pause([TopicPartition(self.ticks_topic, p)])
                self._paused.add(p)
                self.stats.paused += 1
            elif p in self._paused and held < self.max_held // 2:
                consumer.resume([TopicPartition(self.ticks_topic, p)])
                self._paused.discard(p)

    def _idle(self, now: float) -> list[int]:
        """Ticks partitions at their end for the grace period: they hold nothing back."""
        return [
            p
            for (topic, p), since in self._eof.items()
            if topic == self.ticks_topic and now - since >= self.grace
        ]

    def _message(self, msg: Message, now: float) -> None:
        assert self.state is not None
        st = self.state
        topic, partition = msg.topic() or "", msg.partition() or 0
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._eof.setdefault((topic, partition), now)
            elif err.fatal():
                raise RuntimeError(f"kafka consumer: {err}")
            else:
                log.warning("kafka consumer: %s", err)
            return
        self._eof.pop((topic, partition), None)
        self.stats.records += 1
        offset = msg.offset() or 0
        value = msg.value() or b""
        if topic == self.ticks_topic:
            for index, item in enumerate(decode_tick_record(value)):
                if isinstance(item, DecodeError):  # the worker dead-letters it; we skip it
                    self.stats.rejected += 1
                    log.warning(
                        "skipping a bad tick at %s[%d]@%d#%d: %s",
                        topic,
                        partition,
                        offset,
                        index,
                        item,
                    )
                else:
                    self.stats.ticks += 1
                    st.session.tick(partition, item)
        else:
            try:
                signal = decode_signal(value)
            except DecodeError as e:
                self.stats.rejected += 1
                log.warning("skipping a bad signal at %s[%d]@%d: %s", topic, partition, offset, e)
            else:
                self.stats.signals += 1
                st.session.signal(signal)
        st.offsets.setdefault(topic, {})[partition] = offset + 1
        st.inputs += 1
        self._since_checkpoint += 1

    def _control(self, outputs: Outputs) -> None:
        """Apply queued commands in order. A checkpoint just before a command pins where it
        applies (a crash before the next one re-applies it from exactly there, so no input is
        decided differently), and one just after makes it durable; only then is it logged as
        applied."""
        assert self.state is not None
        st = self.state
        for rid_s, f in queued_commands(self.store, self.account, st.control_id, count=100):
            cmd = f.get("cmd", "")
            session = st.session
            if self._since_checkpoint:
                self.checkpoint(outputs, f"before {cmd}")
            if cmd == "halt":
                session.trader.halt()
            elif cmd == "resume":
                session.trader.resume()
            elif cmd == "flatten":
                session.flatten()
            else:
                log.warning("ignoring unknown control command %r (%s)", cmd, rid_s)
            st.control_id = rid_s
            st.commands.append(
                {
                    "id": rid_s,
                    "cmd": cmd,
                    "operator": f.get("operator", ""),
                    "event_ts": str(session.last_ts),
                }
            )
            del st.commands[:-20]
            try:
                sent = float(f.get("at", "nan"))
            except ValueError:
                sent = float("nan")
            self.checkpoint(outputs, cmd)
            log.info(
                "applied %s from %s (command %s) at event time %s, %.0f ms after it was sent",
                cmd,
                f.get("operator", "?"),
                rid_s,
                session.last_ts,
                (time.time() - sent) * 1e3,
            )


def iter_fills(
    runtime: RuntimeConfig,
    account: str,
    *,
    from_beginning: bool = False,
    timeout_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[dict[str, Any]]:
    """The account's fills from the fills topic, each id once (an agent restarted after a
    crash sends the fills since its last checkpoint again, with the same ids); stops after
    ``timeout_s`` without a new record."""
    from streams.signal_consumer import consumer_config

    topic = runtime.topic("fills")
    consumer = Consumer(
        consumer_config(runtime, from_beginning=from_beginning, group=None),
        logger=logging.getLogger("streams.kafka"),
    )
    seen: set[str] = set()
    last = clock()

    def on_assign(c: Consumer, parts: list[TopicPartition]) -> None:
        nonlocal last
        last = clock()

    try:
        consumer.subscribe([topic], on_assign=on_assign)
        while clock() - last < timeout_s:
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise RuntimeError(f"kafka consumer: {err}")
                continue
            last = clock()
            try:
                doc = orjson.loads(msg.value() or b"")
            except orjson.JSONDecodeError:
                log.warning(
                    "skipping a bad fill record at %s[%s]@%s", topic, msg.partition(), msg.offset()
                )
                continue
            if not isinstance(doc, dict) or doc.get("account") != account:
                continue
            fid = str(doc.get("id"))
            if fid in seen:
                continue
            seen.add(fid)
            yield doc
    finally:
        consumer.close()
