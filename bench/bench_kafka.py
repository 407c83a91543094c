"""Kafka numbers: the broker's transport ceiling, the worker's throughput and its latency.

    python -m bench.bench_kafka                        # all three parts
    python -m bench.bench_kafka --transport            # confluent-kafka produce + consume only
    python -m bench.bench_kafka --pipeline --files data/binance/spot/*.gz
    python -m bench.bench_kafka --latency --rate 1000 --seconds 30

Needs the broker (``quorum services up``). Every part runs on its own fresh topic prefix
(``bench-<part>-<uuid>.``), creates its topics with :func:`streams.topics.ensure_topics` and
deletes them (and its consumer groups) at the end, so runs never see each other's messages.
The pipeline and latency parts each start one ``quorum worker`` subprocess and wait until it
has joined its consumer group before any clock starts: start-up is never timed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from bench.bench_backtest import machine
from config.runtime import RuntimeConfig
from config.settings import load_config
from models.records import Tick, Trade
from streams.codecs import DecodeError, decode_signal, encode_tick
from streams.readers import read_ticks
from streams.redis_store import redis_client
from streams.replay import producer_config, replay
from streams.signal_consumer import iter_signals
from streams.topics import admin_client, ensure_topics

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
FIXTURES = [ROOT / "tests" / "fixtures" / f for f in ("btcusdt_head.gz", "ethusdt_head.gz")]

JOIN_TIMEOUT_S = 90.0  # a worker that has not joined its group / answered a probe by then
PROBE_SYMBOL = "BENCHPROBE"  # its trades prove the worker live; their signals are not counted
PROBE_EVERY_S = 2.0  # resend a probe trade this often until its signal comes back
STOP_TIMEOUT_S = 20.0  # SIGTERM, then SIGKILL after this long
SIGNAL_IDLE_S = 60.0  # pipeline: stop reading once no signal came for this long
DRAIN_IDLE_S = 15.0  # latency: after the last tick, wait this long for a new signal (> join 10 s)
LATENCY_LEAD_S = 0.2  # the first latency tick is scheduled this far after the start
POLL_EVERY = 100  # produce calls between poll(0) in the transport part (as streams.replay)
CONSUME_BATCH = 10_000
# latency: each signal is stamped when poll() hands it over. poll() returns as soon as a message
# is in the client's queue; the timeout only bounds an idle wait (and so the stop check).
STAMP_POLL_TIMEOUT_S = 0.01
_MB = 1_000_000
BENCH_SECRET = "bench-only-state-secret-0123456789"  # unless QUORUM_STATE_SECRET is set


# ---------------------------------------------------------------------------------------------
# plumbing: fresh topics, a worker subprocess, waiting for a consumer group to join


def fresh_runtime(part: str) -> RuntimeConfig:
    """The worker's own runtime settings (config file + environment) on a new topic prefix."""
    prefix = f"bench-{part}-{uuid.uuid4().hex[:10]}."
    return load_config(None, environ={**os.environ, "QUORUM_TOPIC_PREFIX": prefix}).runtime


@contextlib.contextmanager
def fresh_topics(part: str) -> Iterator[RuntimeConfig]:
    """Topics on a fresh prefix; on exit every topic and consumer group of the prefix is
    deleted (the admin client stays referenced until its futures resolve)."""
    runtime = fresh_runtime(part)
    prefix = runtime.topics.prefix
    ensure_topics(runtime)
    try:
        yield runtime
    finally:
        admin = admin_client(runtime)
        try:
            names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
            if names:
                for future in admin.delete_topics(names, request_timeout=30).values():
                    future.result(timeout=30)
            groups = [
                g.group_id
                for g in admin.list_consumer_groups(request_timeout=10).result(timeout=10).valid
                if g.group_id.startswith(prefix)
            ]
            if groups:
                for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
                    future.result(timeout=30)
        except (KafkaException, TimeoutError) as e:
            print(f"  warning: cleaning up {prefix}* failed: {e}", file=sys.stderr)
        # the state a --state redis worker left under its pipeline name (no Redis: none)
        with contextlib.suppress(redis.RedisError):
            delete_pipeline_state(runtime, prefix.rstrip("."))


def pipeline_state_keys(client: Any, pipeline: str) -> list[bytes]:
    """Every Redis key of ``pipeline``: its hash-tagged state and versions keys
    (``quorum:{<pipeline>}:…`` and ``quorum:{<pipeline>:p<N>}:…``), nothing of a pipeline
    whose name merely starts with it."""
    keys: list[bytes] = []
    for key in client.scan_iter(match=f"quorum:{{{pipeline}*"):
        rest = (key if isinstance(key, bytes) else key.encode())[len(f"quorum:{{{pipeline}") :]
        if rest[:1] in (b"}", b":"):
            keys.append(key)
    return keys


def delete_pipeline_state(runtime: RuntimeConfig, pipeline: str) -> int:
    """Delete every Redis key of ``pipeline``; returns how many there were."""
    client = redis_client(runtime.redis.url)
    keys = pipeline_state_keys(client, pipeline)
    if keys:
        client.delete(*keys)
    return len(keys)


def group_joined(admin: AdminClient, group: str, topic: str, partitions: int) -> bool:
    """True once ``group`` is stable and its members hold every partition of ``topic``."""
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=5)
    except (KafkaException, TimeoutError):
        return False
    if desc.state != ConsumerGroupState.STABLE:
        return False
    held = {
        tp.partition
        for m in desc.members
        if m.assignment is not None
        for tp in m.assignment.topic_partitions
        if tp.topic == topic
    }
    return len(held) >= partitions


def probe_tick() -> bytes:
    """A trade of a symbol no input has: the worker answers it with a signal of its own."""
    return encode_tick(Trade(PROBE_SYMBOL, time.time_ns(), 1.0, 1.0, "buy"))


def wait_live(
    runtime: RuntimeConfig,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    probe_seen: threading.Event,
) -> tuple[float, float]:
    """Block until the worker's group holds every ticks partition, then until a probe trade's
    signal has come back through ``probe_seen`` (so the worker and the caller's signal reader
    are both running); return the seconds until each."""
    t0 = time.monotonic()
    deadline = t0 + JOIN_TIMEOUT_S
    admin = admin_client(runtime)
    group, ticks = runtime.group("quorum-worker"), runtime.topic("ticks")

    def check(what: str) -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {JOIN_TIMEOUT_S:.0f} s{_log_tail(log_path)}")

    while not group_joined(admin, group, ticks, runtime.topics.partitions):
        check(f"the worker did not join group {group}")
        time.sleep(0.2)
    joined = time.monotonic() - t0
    p = Producer(producer_config(runtime))
    sent = 0.0
    while not probe_seen.is_set():
        check("no signal came back for a probe trade")
        if time.monotonic() - sent >= PROBE_EVERY_S:
            p.produce(ticks, probe_tick(), PROBE_SYMBOL.encode())
            p.flush(10)
            sent = time.monotonic()
        probe_seen.wait(0.05)
    return joined, time.monotonic() - t0


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


@dataclass
class CpuMeter:
    """Share of one core used by the worker and by this process (all its threads) while the
    clock runs: a worker near 100% is CPU-bound, and this process should not be."""

    pid: int
    wall0: float = field(default_factory=time.monotonic)
    worker0: float = 0.0
    self0: float = field(default_factory=time.process_time)
    worker_pct: float = 0.0
    self_pct: float = 0.0

    def __post_init__(self) -> None:
        self.worker0 = cpu_s(self.pid)

    def stop(self) -> None:
        wall = max(time.monotonic() - self.wall0, 1e-9)
        self.worker_pct = 100 * (cpu_s(self.pid) - self.worker0) / wall
        self.self_pct = 100 * (time.process_time() - self.self0) / wall


def _log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"; log {path}:\n" + "\n".join(tail)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    joined_s: float = 0.0  # until its group held every ticks partition
    live_s: float = 0.0  # until a probe trade's signal came back
    exit_code: int | None = None
    killed: bool = False
    log_problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running_worker(
    runtime: RuntimeConfig,
    part: str,
    probe_seen: threading.Event,
    worker_args: Sequence[str] = (),
    *,
    live: bool = True,
) -> Iterator[Worker]:
    """One ``quorum worker`` on ``runtime``'s prefix, yielded once it has answered a probe
    trade (see :func:`wait_live`; ``live`` False: yielded as soon as it is started, for a
    caller that times from its first signal); stopped with SIGTERM (SIGKILL after 20 s). Its
    log is deleted after a clean run and kept (path printed) when anything went wrong."""
    prefix = runtime.topics.prefix
    env = {
        **os.environ,
        "QUORUM_TOPIC_PREFIX": prefix,
        # namespaces any Redis keys too, so a worker never resumes another run's state
        "QUORUM_PIPELINE": prefix.rstrip("."),
        "QUORUM_STATE_SECRET": os.environ.get("QUORUM_STATE_SECRET", BENCH_SECRET),
    }
    fd, name = tempfile.mkstemp(prefix=f"quorum-bench-{part}-", suffix=".log")
    log_path = Path(name)
    log: IO[bytes] = os.fdopen(fd, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", "worker", "--no-web", "-l", "warning", *worker_args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    w = Worker(proc, log_path)
    ok = False
    try:
        if live:
            w.joined_s, w.live_s = wait_live(runtime, proc, log_path, probe_seen)
        yield w
        ok = True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                w.killed = True
                proc.kill()
                proc.wait()
        w.exit_code = proc.returncode
        log.close()
        text = log_path.read_text(encoding="utf-8", errors="replace")
        w.log_problems = [
            ln.strip()
            for ln in text.splitlines()
            if any(s in ln for s in ("WARNING", "ERROR", "CRITICAL", "Traceback"))
        ]
        if ok and not w.killed and w.exit_code == 0 and not w.log_problems:
            log_path.unlink()
        else:
            print(f"  worker log kept: {log_path}", flush=True)


def load_ticks(paths: Sequence[Path], limit: int | None = None) -> list[Tick]:
    return list(islice(read_ticks(paths), limit))


def _rel(paths: Sequence[Path]) -> str:
    out = []
    for p in paths:
        try:
            out.append(str(p.resolve().relative_to(ROOT)))
        except ValueError:
            out.append(str(p))
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# 1. transport ceiling


@dataclass
class TransportResult:
    messages: int
    payload_bytes: int
    produce_s: float
    consume_s: float
    consumed: int
    delivery_errors: int

    @property
    def produce_rate(self) -> float:
        return self.messages / self.produce_s

    @property
    def consume_rate(self) -> float:
        return self.consumed / self.consume_s


def run_transport(paths: Sequence[Path]) -> TransportResult:
    ticks = load_ticks(paths)
    msgs = [(t.symbol.encode(), encode_tick(t), t.ts // 1_000_000) for t in ticks]
    payload = sum(len(k) + len(v) for k, v, _ in msgs)
    print(f"[transport] {len(msgs):,} ticks ({payload / _MB:.1f} MB) from {_rel(paths)}")
    with fresh_topics("transport") as rt:
        topic = rt.topic("ticks")
        errors = 0

        def on_delivery(err: Any, msg: Any) -> None:
            nonlocal errors
            if err is not None:
                errors += 1

        p = Producer(producer_config(rt))
        print("[transport] producing ...", flush=True)
        t0 = time.perf_counter()
        for i, (key, value, ts_ms) in enumerate(msgs, 1):
            while True:
                try:
                    p.produce(topic, value, key, on_delivery=on_delivery, timestamp=ts_ms)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % POLL_EVERY == 0:
                p.poll(0)
        left = p.flush(60)
        produce_s = time.perf_counter() - t0
        if left:
            raise RuntimeError(f"{left} message(s) still unflushed after 60 s")

        c = Consumer(
            {
                **rt.librdkafka(),
                "group.id": rt.group("bench-transport"),
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            high = {n: c.get_watermark_offsets(TopicPartition(topic, n), 10)[1] for n in parts}
            todo = {n for n, h in high.items() if h > 0}
            print("[transport] consuming ...", flush=True)
            t1 = time.perf_counter()
            c.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in parts])
            consumed = 0
            deadline = time.monotonic() + 120
            while todo and time.monotonic() < deadline:
                for m in c.consume(CONSUME_BATCH, 0.5):
                    if m.error() is not None:
                        continue
                    consumed += 1
                    part, off = m.partition(), m.offset()
                    if off is not None and off + 1 >= high[part]:
                        todo.discard(part)
            consume_s = time.perf_counter() - t1
        finally:
            c.close()
        if todo:
            raise RuntimeError(f"partitions {sorted(todo)} not read to the end in 120 s")
    return TransportResult(len(msgs), payload, produce_s, consume_s, consumed, errors)


# ---------------------------------------------------------------------------------------------
# 2. pipeline throughput


@dataclass
class PipelineResult:
    ticks: int
    trades: int
    signals: int
    with_missing: int
    replay_sent: int
    replay_s: float
    replay_rate: float
    first_signal_s: float | None
    last_signal_s: float | None
    worker: Worker
    cpu: CpuMeter
    state: str = "memory"

    @property
    def ticks_per_s(self) -> float | None:
        return self.ticks / self.last_signal_s if self.last_signal_s else None


def run_pipeline(paths: Sequence[Path], state: str = "memory") -> PipelineResult:
    """``replay --speed max`` into one worker; ``state`` redis: checkpointed to Redis (its
    default checkpoint settings), memory: no checkpoints."""
    ticks = load_ticks(paths)
    trades = sum(1 for t in ticks if t.kind == "trade")
    del ticks
    print(
        f"[pipeline] input {_rel(paths)}, state {state}: expecting {trades:,} signals "
        "(one per trade)"
    )
    arrivals: list[float] = []
    missing_stages = 0
    probe_seen = threading.Event()
    failed: list[BaseException] = []
    with fresh_topics("pipeline") as rt:

        def read() -> None:
            nonlocal missing_stages
            try:
                for s in iter_signals(
                    rt, from_beginning=True, follow=False, timeout_s=SIGNAL_IDLE_S
                ):
                    if s.symbol == PROBE_SYMBOL:
                        probe_seen.set()
                        continue
                    arrivals.append(time.monotonic())
                    if s.missing:
                        missing_stages += 1
                    if len(arrivals) >= trades:
                        return
            except BaseException as e:
                failed.append(e)

        # the reader runs first: the worker counts as started once a probe came back to it
        reader = threading.Thread(target=read, name="signals", daemon=True)
        reader.start()
        print("[pipeline] starting the worker ...", flush=True)
        with running_worker(rt, "pipeline", probe_seen, ("--state", state)) as w:
            print(
                f"[pipeline] worker joined after {w.joined_s:.1f} s, answered a probe after "
                f"{w.live_s:.1f} s; replaying (speed max) ...",
                flush=True,
            )
            t0 = time.monotonic()
            cpu = CpuMeter(w.proc.pid)
            summary = replay(paths, rt, speed=None)
            print(
                f"[pipeline] replayed {summary.sent:,} ticks in {summary.elapsed_s:.2f} s; "
                "waiting for the signals ...",
                flush=True,
            )
            reader.join()
            cpu.stop()
            if failed:
                raise RuntimeError(f"signal reader failed: {failed[0]!r}") from failed[0]
    return PipelineResult(
        ticks=summary.sent,
        trades=trades,
        signals=len(arrivals),
        with_missing=missing_stages,
        replay_sent=summary.sent,
        replay_s=summary.elapsed_s,
        replay_rate=summary.rate,
        first_signal_s=arrivals[0] - t0 if arrivals else None,
        last_signal_s=arrivals[-1] - t0 if arrivals else None,
        worker=w,
        cpu=cpu,
        state=state,
    )


# ---------------------------------------------------------------------------------------------
# 3. latency at a steady rate


@dataclass
class LatencyResult:
    rate: float
    seconds: float
    ticks: int
    trades: int
    achieved_rate: float
    max_late_ms: float
    late_1ms: int
    latencies_ms: list[float]  # in production order of the trades
    missing: int
    unexpected: int
    duplicates: int
    bad: int
    with_missing: int
    linger_ms: int
    worker: Worker
    cpu: CpuMeter
    stamping: StampResolution


@dataclass
class StampResolution:
    """How finely :class:`SignalTimer` stamps arrivals, measured during the timed run."""

    poll_timeout_ms: float
    idle_poll_ms: list[float]  # poll() calls that returned nothing: about the timeout if healthy
    handle_us: list[float]  # per signal, stamp -> back in poll() (decode + bookkeeping)
    clock: str
    clock_resolution_ns: float  # as the OS declares it
    clock_step_ns: int  # smallest non-zero step between two perf_counter_ns() calls

    def summary(self) -> list[str]:
        idle, handle = sorted(self.idle_poll_ms), sorted(self.handle_us)
        out = [
            f"  stamping          each signal stamped when poll({self.poll_timeout_ms:g} ms) "
            "returns it (poll wakes on arrival; the timeout only ends idle waits)"
        ]
        if idle:
            over = idle[-1] - self.poll_timeout_ms
            out.append(
                f"                    idle polls while timed: {len(idle):,}, p50 "
                f"{pct(idle, 50):.2f} ms, p99 {pct(idle, 99):.2f} ms, max {idle[-1]:.2f} ms "
                f"(overrun {over:.2f} ms = the worst wake-up stall seen: GIL, scheduler)"
            )
        if handle:
            out.append(
                f"                    per-signal handling p50 {pct(handle, 50):.0f} us, p99 "
                f"{pct(handle, 99):.0f} us, max {handle[-1]:.0f} us (a signal queued behind "
                "another is stamped up to this much late)"
            )
        out.append(
            f"                    clock {self.clock}, resolution {self.clock_resolution_ns:g} ns,"
            f" smallest step measured {self.clock_step_ns} ns"
        )
        return out


def clock_step_ns(samples: int = 200_000) -> int:
    """The smallest non-zero difference between two consecutive ``perf_counter_ns()`` calls."""
    best = 1 << 62
    clock = time.perf_counter_ns
    for _ in range(samples):
        a = clock()
        b = clock()
        if 0 < b - a < best:
            best = b - a
    return best


class SignalTimer(threading.Thread):
    """Reads the signals topic from the start (assigned, no group join) and stamps each
    (symbol, seq) with its first arrival, ``time.perf_counter_ns`` taken as soon as ``poll``
    returns the message (one message per call, so no signal waits for a batch to fill);
    probe signals only set ``probe_seen``. While ``timing`` is set it also records how long
    idle polls took and how long each signal kept the loop away from ``poll``: the stamps'
    own resolution."""

    def __init__(self, runtime: RuntimeConfig) -> None:
        super().__init__(name="signal-timer", daemon=True)
        self.runtime = runtime
        self.arrivals: dict[tuple[str, int], int] = {}
        self.duplicates = 0
        self.bad = 0
        self.with_missing = 0
        self.last_arrival_ns = 0
        self.stop = threading.Event()
        self.probe_seen = threading.Event()
        self.timing = threading.Event()
        self.idle_ns: list[int] = []
        self.handle_ns: list[int] = []
        self.failed: BaseException | None = None

    def run(self) -> None:
        rt = self.runtime
        topic = rt.topic("signals")
        clock = time.perf_counter_ns
        c = Consumer(
            {
                **rt.librdkafka(),
                "group.id": rt.group("bench-latency"),
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 100,
            }
        )
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            c.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in parts])
            while not self.stop.is_set():
                called = clock()
                m = c.poll(STAMP_POLL_TIMEOUT_S)
                now = clock()
                if m is None:
                    if self.timing.is_set():
                        self.idle_ns.append(now - called)
                    continue
                self._handle(m, now)
                if self.timing.is_set():
                    self.handle_ns.append(clock() - now)
        except BaseException as e:
            self.failed = e
        finally:
            c.close()

    def _handle(self, m: Any, now: int) -> None:
        if m.error() is not None:
            return
        try:
            s = decode_signal(m.value() or b"")
        except DecodeError:
            self.bad += 1
            return
        if s.symbol == PROBE_SYMBOL:
            self.probe_seen.set()
            return
        key = (s.symbol, s.seq)
        if key in self.arrivals:
            self.duplicates += 1
            return
        self.arrivals[key] = now
        self.last_arrival_ns = now
        if s.missing:
            self.with_missing += 1


def pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100] of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def run_latency(paths: Sequence[Path], rate: float, seconds: float) -> LatencyResult:
    n = int(rate * seconds)
    ticks = load_ticks(paths, n)
    if len(ticks) < n:
        raise SystemExit(
            f"--rate x --seconds = {n:,} ticks but the sample has only {len(ticks):,} "
            "(ticks are never cycled)"
        )
    # the worker numbers each symbol's ticks 1, 2, ... (agents/stage.py): so do we
    seq: dict[str, int] = {}
    keys: list[tuple[str, int]] = []
    msgs: list[tuple[bytes, bytes, int]] = []
    for t in ticks:
        seq[t.symbol] = seq.get(t.symbol, 0) + 1
        keys.append((t.symbol, seq[t.symbol]))
        msgs.append((t.symbol.encode(), encode_tick(t), t.ts // 1_000_000))
    is_trade = [t.kind == "trade" for t in ticks]
    trades = sum(is_trade)
    linger_ms = 0
    print(
        f"[latency] {n:,} ticks ({trades:,} trades) at {rate:,.0f}/s for {seconds:g} s; "
        "starting the worker ...",
        flush=True,
    )
    with fresh_topics("latency") as rt:
        timer = SignalTimer(rt)
        timer.start()
        with running_worker(rt, "latency", timer.probe_seen) as w:
            print(
                f"[latency] worker joined after {w.joined_s:.1f} s, answered a probe after "
                f"{w.live_s:.1f} s; producing ...",
                flush=True,
            )
            p = Producer({**producer_config(rt), "linger.ms": linger_ms})
            topic = rt.topic("ticks")
            produced_ns = [0] * n
            step_ns = 1e9 / rate
            cpu = CpuMeter(w.proc.pid)
            timer.timing.set()
            start = time.perf_counter_ns() + int(LATENCY_LEAD_S * 1e9)
            max_late = 0
            late = 0
            for i, (key, value, ts_ms) in enumerate(msgs):
                due = start + int(i * step_ns)
                wait = due - time.perf_counter_ns()
                if wait > 0:
                    time.sleep(wait / 1e9)
                now = time.perf_counter_ns()
                lateness = now - due
                if lateness > max_late:
                    max_late = lateness
                if lateness > 1_000_000:
                    late += 1
                produced_ns[i] = now
                while True:
                    try:
                        p.produce(topic, value, key, timestamp=ts_ms)
                        break
                    except BufferError:
                        p.poll(0.01)
                p.poll(0)
            end_ns = time.perf_counter_ns()
            left = p.flush(60)
            if left:
                raise RuntimeError(f"{left} tick(s) still unflushed after 60 s")
            print("[latency] all produced; waiting for the last signals ...", flush=True)
            wanted = {keys[i] for i in range(n) if is_trade[i]}
            while True:
                got = sum(1 for k in wanted if k in timer.arrivals)
                if got >= trades or timer.failed is not None:
                    break
                idle_since = max(timer.last_arrival_ns, end_ns)
                if time.perf_counter_ns() - idle_since > DRAIN_IDLE_S * 1e9:
                    break
                time.sleep(0.2)
            cpu.stop()
            timer.timing.clear()
            timer.stop.set()
            timer.join(timeout=30)
            if timer.failed is not None:
                raise RuntimeError(f"signal reader failed: {timer.failed!r}") from timer.failed
    arrivals = dict(timer.arrivals)
    latencies = [
        (arrivals[keys[i]] - produced_ns[i]) / 1e6
        for i in range(n)
        if is_trade[i] and keys[i] in arrivals
    ]
    return LatencyResult(
        rate=rate,
        seconds=seconds,
        ticks=n,
        trades=trades,
        achieved_rate=(n - 1) / ((produced_ns[-1] - produced_ns[0]) / 1e9) if n > 1 else 0.0,
        max_late_ms=max_late / 1e6,
        late_1ms=late,
        latencies_ms=latencies,
        missing=trades - len(latencies),
        unexpected=len(set(arrivals) - wanted),
        duplicates=timer.duplicates,
        bad=timer.bad,
        with_missing=timer.with_missing,
        linger_ms=linger_ms,
        worker=w,
        cpu=cpu,
        stamping=StampResolution(
            poll_timeout_ms=STAMP_POLL_TIMEOUT_S * 1e3,
            idle_poll_ms=[x / 1e6 for x in timer.idle_ns],
            handle_us=[x / 1e3 for x in timer.handle_ns],
            clock=time.get_clock_info("perf_counter").implementation,
            clock_resolution_ns=time.get_clock_info("perf_counter").resolution * 1e9,
            clock_step_ns=clock_step_ns(),
        ),
    )


# ---------------------------------------------------------------------------------------------
# report


def _cpu_line(c: CpuMeter) -> str:
    return (
        f"  cpu (% of a core) worker {c.worker_pct:.0f}%, this process {c.self_pct:.0f}% "
        "(while timed)"
    )


def _worker_line(w: Worker) -> str:
    stop = "killed after 20 s" if w.killed else f"exit {w.exit_code}"
    probs = f"; {len(w.log_problems)} warning/error line(s) in its log" if w.log_problems else ""
    return (
        f"  worker: joined its group in {w.joined_s:.1f} s, answered a probe trade in "
        f"{w.live_s:.1f} s (neither timed); stopped: {stop}{probs}"
    )


def print_transport(r: TransportResult) -> None:
    mb = r.payload_bytes / _MB
    print("transport ceiling (confluent-kafka, replay's producer settings, no processing)")
    print(f"  messages          {r.messages:,} ({mb:.1f} MB of keys + values)")
    print(
        f"  produce           {r.produce_rate:,.0f} msg/s  {mb / r.produce_s:,.1f} MB/s  "
        f"({r.produce_s:.2f} s incl. flush; {r.delivery_errors} delivery error(s))"
    )
    print(
        f"  consume           {r.consume_rate:,.0f} msg/s  {mb / r.consume_s:,.1f} MB/s  "
        f"({r.consumed:,} read in {r.consume_s:.2f} s)"
    )


def print_pipeline(r: PipelineResult, paths: Sequence[Path]) -> None:
    print(f"pipeline throughput (one worker, state {r.state}; {_rel(paths)})")
    tps = r.ticks_per_s
    print(f"  ticks             {r.ticks:,} replayed ({r.trades:,} trades)")
    print(f"  signals           {r.signals:,} of {r.trades:,} expected")
    print(f"  worker            {tps:,.0f} ticks/s" if tps else "  worker            -")
    print(
        f"                    (ticks / (last signal - replay start) = {r.last_signal_s or 0:.2f} s)"
    )
    print(f"  replay            {r.replay_rate:,.0f} ticks/s ({r.replay_s:.2f} s)")
    first = f"{r.first_signal_s:.3f} s" if r.first_signal_s is not None else "-"
    print(f"  first signal      {first} after the replay started")
    if r.with_missing:
        print(f"  !! {r.with_missing:,} signal(s) decided without every stage (join timeout)")
    print(_cpu_line(r.cpu))
    print(_worker_line(r.worker))


def print_latency(r: LatencyResult) -> None:
    print(
        f"latency (tick produced -> its signal read; {r.rate:,.0f} ticks/s for {r.seconds:g} s, "
        f"linger.ms={r.linger_ms}, acks=all)"
    )
    print(
        f"  paced             {r.ticks:,} ticks at {r.achieved_rate:,.1f}/s; "
        f"max {r.max_late_ms:.2f} ms behind schedule, {r.late_1ms:,} tick(s) > 1 ms late"
    )
    lat = sorted(r.latencies_ms)
    print(f"  signals           {len(lat):,} of {r.trades:,} trades; missing {r.missing:,}")
    if lat:
        print(
            f"  latency ms        p50 {pct(lat, 50):.1f}  p95 {pct(lat, 95):.1f}  "
            f"p99 {pct(lat, 99):.1f}  max {lat[-1]:.1f}  (mean {sum(lat) / len(lat):.1f})"
        )
        thirds = [r.latencies_ms[i * len(lat) // 3 : (i + 1) * len(lat) // 3] for i in range(3)]
        p50s = "  ".join(f"{pct(sorted(t), 50):.1f}" if t else "-" for t in thirds)
        print(f"  p50 by third      {p50s}  (growing = the worker falls behind)")
    extra = []
    if r.unexpected:
        extra.append(f"{r.unexpected} signal(s) for no produced trade")
    if r.duplicates:
        extra.append(f"{r.duplicates} duplicate(s)")
    if r.bad:
        extra.append(f"{r.bad} undecodable")
    if r.with_missing:
        extra.append(f"{r.with_missing} decided without every stage (join timeout)")
    if extra:
        print("  !! " + "; ".join(extra))
    for line in r.stamping.summary():
        print(line)
    print(_cpu_line(r.cpu))
    print(_worker_line(r.worker))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bench_kafka",
        description="Kafka transport ceiling, worker throughput and latency (default: all).",
    )
    ap.add_argument("--transport", action="store_true", help="confluent-kafka produce+consume")
    ap.add_argument("--pipeline", action="store_true", help="one worker, replay at max speed")
    ap.add_argument("--latency", action="store_true", help="one worker, ticks at a steady rate")
    ap.add_argument(
        "--files",
        nargs="+",
        type=Path,
        help="input of --pipeline (default: the two tests/fixtures/*_head.gz)",
    )
    ap.add_argument(
        "--state",
        choices=("memory", "redis", "both"),
        default="memory",
        help="--pipeline worker state: memory (no checkpoints), redis (checkpoints), or both",
    )
    ap.add_argument("--rate", type=float, default=1000.0, help="--latency ticks/s (1000)")
    ap.add_argument("--seconds", type=float, default=30.0, help="--latency duration (30)")
    args = ap.parse_args(argv)
    if not args.rate > 0 or not args.seconds > 0:
        ap.error("--rate and --seconds must be > 0")
    every = not (args.transport or args.pipeline or args.latency)
    if (every or args.transport or args.latency) and not SAMPLE:
        ap.error(f"no sample files under {ROOT / 'data/binance/spot'}")
    pipeline_paths: list[Path] = args.files or FIXTURES

    transport = run_transport(SAMPLE) if every or args.transport else None
    states = ("memory", "redis") if args.state == "both" else (args.state,)
    pipelines = []
    if every or args.pipeline:
        pipelines = [run_pipeline(pipeline_paths, st) for st in states]
    latency = run_latency(SAMPLE, args.rate, args.seconds) if every or args.latency else None

    print()
    print(f"machine: {machine()}")
    if transport is not None:
        print_transport(transport)
    for pipeline in pipelines:
        print_pipeline(pipeline, pipeline_paths)
    if latency is not None:
        print_latency(latency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
