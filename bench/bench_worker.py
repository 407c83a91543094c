"""Issue 8: one kernel, two drivers. The fused worker against the in-process kernel, one run.

    python -m bench.bench_worker                                  # every part below
    python -m bench.bench_worker --mode inprocess,fused-packed,fused,split --state redis,memory
    python -m bench.bench_worker --mode none --latency 1000,10000
    python -m bench.bench_worker --mode none --two-workers
    python -m bench.bench_worker --mode none --memory --memory-events 10000000

Parts (each selectable, so a run can be scoped):

``--mode``  in-process kernel ticks/s (``Pipeline.process`` over pre-read ticks, no parsing)
    and the embedded backtest for reference; then, per worker mode and ``--state``, the
    worker's ticks/s on the same ticks, pre-loaded into a fresh ticks topic *before* the worker
    starts, timed from its first signal to the last expected one (one per trade). Each worker
    run is paired with an in-process run just before it (the ratio is taken within the pair).
``--latency R,...``  tick -> signal latency of a fused worker fed packed ticks at R ticks/s.
``--two-workers``  one vs two fused workers (Redis state) on one topic, then what a SIGKILL and
    a SIGTERM of one of two costs in the signal stream.
``--memory``  resident memory over a long synthetic stream: the in-process kernel, then the
    fused worker (as many events as fit in ``--memory-worker-seconds``).

Needs Kafka and Redis (``quorum services up``) for every part but the in-process one. Every
worker run has its own topic prefix and pipeline name (``QUORUM_TOPIC_PREFIX``,
``QUORUM_PIPELINE``), deleted afterwards with their consumer groups and Redis keys. The load
average is printed with every result: on a shared machine, compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import multiprocessing
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import ConsumerGroupState, KafkaException, Producer

from agents.pipeline import Pipeline
from bench.bench_backtest import machine
from bench.bench_kafka import (
    JOIN_TIMEOUT_S,
    PROBE_EVERY_S,
    PROBE_SYMBOL,
    SAMPLE,
    StampResolution,
    Worker,
    clock_step_ns,
    cpu_s,
    fresh_topics,
    load_ticks,
    pct,
    probe_tick,
    running_worker,
)
from bench.bench_kafka import SignalTimer as _SignalTimer
from bench.synthetic import generate
from config.runtime import RuntimeConfig
from config.settings import load_config
from models.records import Tick
from quorum import run_backtest
from streams.codecs import DecodeError, decode_signal
from streams.replay import DEFAULT_PACK, PACK_WINDOW_S, Pack, TickPacker, producer_config, replay
from streams.topics import admin_client

MODES = ("inprocess", "fused-packed", "fused", "split")
WORKER_MODES: dict[str, tuple[str, int | None]] = {  # mode -> (topology, replay pack)
    "fused-packed": ("fused", DEFAULT_PACK),
    "fused": ("fused", None),
    "split": ("split", None),
}
FIRST_SIGNAL_TIMEOUT_S = 120.0  # worker start -> first signal (start-up, group join)
SIGNAL_IDLE_S = 60.0  # give up once no new signal came for this long
SAMPLE_EVERY_S = 0.2  # /proc sampling of the worker (CPU, RSS)
PACE_SLICE_S = 0.0002  # while a pack is open, pacing sleeps at most this long between checks
LATENCY_LEAD_S = 0.2
DRAIN_IDLE_S = 15.0
SYN_SYMBOLS = 20
SYN_SEED = 7
AHEAD_TICKS = 400_000  # memory run: the producer stays at most this far ahead of the worker
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def rss_kb(pid: int | None = None) -> int:
    """VmRSS of ``pid`` (this process when None), kB, from /proc/<pid>/status."""
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError(f"no VmRSS for {pid}")


def window_ticks(ticks: Sequence[Tick]) -> int:
    """Ticks certainly processed between a run's first and last signal: per symbol, from its
    first trade to its last trade, inclusive (the first signal is some symbol's first trade,
    the last some symbol's last, so this is a lower bound and the rate a conservative one)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    seen: dict[str, int] = {}
    for t in ticks:
        n = seen[t.symbol] = seen.get(t.symbol, 0) + 1
        if t.kind == "trade":
            first.setdefault(t.symbol, n)
            last[t.symbol] = n
    return sum(last[s] - first[s] + 1 for s in first)


def max_gap_ms(arrivals_ns: Sequence[int], start_ns: int, end_ns: int) -> tuple[float, int]:
    """The longest stretch of [start, end] without an arrival (ms), and where it began (ns).

    The window's edges count as arrivals, so silence right after ``start`` is a gap too."""
    points = [start_ns, *sorted(a for a in arrivals_ns if start_ns <= a <= end_ns), end_ns]
    best, at = 0, start_ns
    for a, b in itertools.pairwise(points):
        if b - a > best:
            best, at = b - a, a
    return best / 1e6, at


def settled_s(
    late: Sequence[tuple[int, float]], stopped_ns: int, end_ns: int, bound_ms: float
) -> float | None:
    """Seconds from the stop to the end of the last second (of arrival time) whose median
    latency was above ``bound_ms``: when the stream was back to normal, robust to a single
    slow signal. ``late`` holds (arrival ns, latency ms). 0.0: never disturbed; None: still
    disturbed in the last 2 s of the run (it did not settle while measured)."""
    bins: dict[int, list[float]] = {}
    for a, ms in late:
        if a >= stopped_ns:
            bins.setdefault((a - stopped_ns) // 1_000_000_000, []).append(ms)
    slow = [b for b, v in bins.items() if sorted(v)[len(v) // 2] > bound_ms]
    if not slow:
        return 0.0
    end_s = float(max(slow) + 1)
    return None if stopped_ns + end_s * 1e9 > end_ns - 2e9 else end_s


_ASSIGNED = re.compile(r"^\[(?P<ts>[0-9-]+ [0-9:,]+)\].*assigned partitions: (?P<what>.*)$")


def parse_assignments(text: str, topic: str) -> list[tuple[float | None, list[int]]]:
    """Every ``assigned partitions:`` line a worker logged (streams/faust_app.py, info level):
    (wall time of the line or None, sorted partitions of ``topic``), in log order."""
    out: list[tuple[float | None, list[int]]] = []
    for line in text.splitlines():
        m = _ASSIGNED.match(line.strip())
        if m is None:
            if "assigned partitions: " not in line:
                continue
            what, ts = line.split("assigned partitions: ", 1)[1], None
        else:
            what = m["what"]
            try:
                ts = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                ts = None
        parts: list[int] = []
        for chunk in what.split("; "):
            name, _, nums = chunk.strip().partition(" ")
            if name == topic:
                parts = sorted(int(x) for x in re.findall(r"\d+", nums))
        out.append((ts, parts))
    return out


def seqs(ticks: Iterable[Tick]) -> list[tuple[str, int]]:
    """(symbol, per-symbol tick number) of each tick, as the worker numbers them (from 1)."""
    n: dict[str, int] = {}
    out = []
    for t in ticks:
        n[t.symbol] = n.get(t.symbol, 0) + 1
        out.append((t.symbol, n[t.symbol]))
    return out


def synthetic_ticks(events: int, symbols: int = SYN_SYMBOLS, seed: int = SYN_SEED) -> list[Tick]:
    return [t for chunk in generate(events, symbols, seed) for t in chunk]


def pack_all(ticks: Iterable[Tick], partitions: int, size: int = DEFAULT_PACK) -> list[Pack]:
    """Batch records as replay packs them, each full (``size`` ticks of a partition) but the
    last per partition: no wall-time window, for pre-encoding a stream."""
    packer = TickPacker(partitions, size, window_s=float("inf"))
    out: list[Pack] = []
    for t in ticks:
        out.extend(packer.add(t, 0.0))
    out.extend(packer.flush_all())
    return out


# ---------------------------------------------------------------------------------------------
# plumbing


class SignalLog(_SignalTimer):
    """bench_kafka's poll-per-message signal reader, stamping each signal on arrival, which
    also keeps: unique signals in order of arrival per partition (``timeline``), the count,
    first and last arrival, and per symbol the highest tick number a signal carried (the
    ticks the worker has certainly processed: ``processed``). ``keep`` False: no per-signal
    memory (counting only, for long runs)."""

    def __init__(self, runtime: RuntimeConfig, *, keep: bool = True, timeline: bool = False):
        super().__init__(runtime)
        self.keep = keep
        self.keep_timeline = timeline
        self.timeline: list[tuple[int, int, str, int]] = []  # (arrival ns, partition, sym, seq)
        self.count = 0
        self.first_ns = 0
        self.max_seq: dict[str, int] = {}
        self.processed = 0

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
        if self.keep:
            key = (s.symbol, s.seq)
            if key in self.arrivals:
                self.duplicates += 1
                return
            self.arrivals[key] = now
        if self.keep_timeline:
            self.timeline.append((now, m.partition(), s.symbol, s.seq))
        self.count += 1
        if not self.first_ns:
            self.first_ns = now
        self.last_arrival_ns = now
        old = self.max_seq.get(s.symbol, 0)
        if s.seq > old:
            self.max_seq[s.symbol] = s.seq
            self.processed += s.seq - old
        if s.missing:
            self.with_missing += 1


class ProcSampler(threading.Thread):
    """Samples a process's CPU seconds, resident memory and scheduler times every ``every_s``.

    The scheduler times (``/proc/<pid>/task/*/schedstat``, summed over its threads) tell a
    worker that waited for a CPU (the machine is busy: runqueue wait) from one that waited for
    work (idle: neither running nor queued)."""

    def __init__(self, pid: int, every_s: float = SAMPLE_EVERY_S) -> None:
        super().__init__(name=f"sampler-{pid}", daemon=True)
        self.pid = pid
        self.every_s = every_s
        # (perf_counter_ns, cpu s, rss kB, ns on a cpu, ns waiting on a runqueue)
        self.samples: list[tuple[int, float, int, int, int]] = []
        self.stop = threading.Event()
        self.stopped_ns = 1 << 62

    def run(self) -> None:
        while True:  # one more sample once stopped, so the timed window has an end sample
            try:
                run_ns, wait_ns = sched_ns(self.pid)
                self.samples.append(
                    (time.perf_counter_ns(), cpu_s(self.pid), rss_kb(self.pid), run_ns, wait_ns)
                )
            except (OSError, ValueError, IndexError):
                return  # the process is gone
            stopped = self.stop.is_set() or self.stop.wait(self.every_s)
            if stopped and self.samples[-1][0] >= self.stopped_ns:
                return

    def finish(self) -> None:
        """Stop after one last sample taken now (the end of whatever was being timed)."""
        self.stopped_ns = time.perf_counter_ns()
        self.stop.set()
        self.join()

    def _span(
        self, t0_ns: int, t1_ns: int
    ) -> tuple[tuple[int, float, int, int, int], tuple[int, float, int, int, int]] | None:
        before = [s for s in self.samples if s[0] <= t0_ns]
        after = [s for s in self.samples if s[0] >= t1_ns]
        if not before or not after or after[0][0] <= before[-1][0]:
            return None
        return before[-1], after[0]

    def cpu_pct(self, t0_ns: int, t1_ns: int) -> float | None:
        """% of one core between the last sample at or before t0 and the first at or after t1."""
        span = self._span(t0_ns, t1_ns)
        if span is None:
            return None
        a, b = span
        return 100 * (b[1] - a[1]) / ((b[0] - a[0]) / 1e9)

    def wait_pct(self, t0_ns: int, t1_ns: int) -> float | None:
        """Runqueue wait of the worker's threads (summed) as % of the wall time: how much longer
        it would have run had a CPU been free."""
        span = self._span(t0_ns, t1_ns)
        if span is None:
            return None
        a, b = span
        return 100 * (b[4] - a[4]) / (b[0] - a[0])

    def max_rss_kb(self) -> int:
        return max((s[2] for s in self.samples), default=0)


def sched_ns(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of every thread of ``pid``, summed."""
    run = wait = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                fields = f.read().split()
        except FileNotFoundError:
            continue  # a thread that just ended
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def _produce(p: Producer, topic: str, pk: Pack) -> None:
    while True:
        try:
            p.produce(topic, pk.value, pk.key, partition=pk.partition, timestamp=pk.timestamp_ms)
            return
        except BufferError:
            p.poll(0.01)


def wait_group(
    runtime: RuntimeConfig, workers: Sequence[Worker], members: int, probe_seen: threading.Event
) -> float:
    """Until the worker group is stable with ``members`` members holding every ticks
    partition and a probe trade has come back as a signal; returns the seconds waited."""
    t0 = time.monotonic()
    admin = admin_client(runtime)
    group, ticks = runtime.group("quorum-worker"), runtime.topic("ticks")

    def check() -> None:
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {w.proc.returncode}: {w.log_path}")
        if time.monotonic() - t0 > JOIN_TIMEOUT_S:
            raise RuntimeError(f"group {group} not stable with {members} member(s) in time")

    while True:
        check()
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result(5)
        except (KafkaException, TimeoutError):
            time.sleep(0.2)
            continue
        held = {
            tp.partition
            for m in desc.members
            if m.assignment is not None
            for tp in m.assignment.topic_partitions
            if tp.topic == ticks
        }
        if (
            desc.state == ConsumerGroupState.STABLE
            and len(desc.members) == members
            and len(held) >= runtime.topics.partitions
        ):
            break
        time.sleep(0.2)
    p = Producer(producer_config(runtime))
    sent = 0.0
    while not probe_seen.is_set():
        check()
        if time.monotonic() - sent >= PROBE_EVERY_S:
            p.produce(ticks, probe_tick(), PROBE_SYMBOL.encode())
            p.flush(10)
            sent = time.monotonic()
        probe_seen.wait(0.05)
    return time.monotonic() - t0


def wait_signals(
    reader: SignalLog,
    expected: int,
    workers: Sequence[Worker],
    started_ns: int,
    count: Callable[[], int] | None = None,
) -> str:
    """Until ``expected`` signals (``count``, default unique ones) came; returns why it ended."""
    count = count or (lambda: reader.count)
    while True:
        if count() >= expected:
            return "complete"
        if reader.failed is not None:
            raise RuntimeError(f"signal reader failed: {reader.failed!r}") from reader.failed
        if all(w.proc.poll() is not None for w in workers):
            return "the worker(s) exited"
        now = time.perf_counter_ns()
        last = reader.last_arrival_ns or started_ns
        limit = SIGNAL_IDLE_S if reader.last_arrival_ns else FIRST_SIGNAL_TIMEOUT_S
        if now - last > limit * 1e9:
            return f"no new signal for {limit:.0f} s"
        time.sleep(0.05)


def worker_args(topology: str, state: str, *extra: str) -> tuple[str, ...]:
    return ("--topology", topology, "--state", state, *extra)


# ---------------------------------------------------------------------------------------------
# 1. in-process kernel


@dataclass
class KernelRun:
    ticks: int
    signals: int
    seconds: float
    load: str

    @property
    def rate(self) -> float:
        return self.ticks / self.seconds


def run_kernel(ticks: Sequence[Tick]) -> KernelRun:
    """``Pipeline(load_config()).process(tick)`` over pre-read ticks: the kernel alone."""
    pipe = Pipeline(load_config())
    process = pipe.process
    gc.collect()
    signals = 0
    t0 = time.perf_counter()
    for t in ticks:
        if process(t) is not None:
            signals += 1
    return KernelRun(len(ticks), signals, time.perf_counter() - t0, load())


@dataclass
class BacktestRun:
    events: int
    signals: int
    rate: float
    load: str


def run_embedded(paths: Sequence[Path]) -> BacktestRun:
    """``quorum.run_backtest(..., prefetch=False)``: parsing, kernel and report in one process."""
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="quorum-bench-") as tmp:
        res = run_backtest(paths, keep_signals=False, out_dir=tmp, prefetch=False)
    rep = res.report
    return BacktestRun(rep["events"], rep["signals"]["total"], rep["events_per_s"] or 0.0, load())


# ---------------------------------------------------------------------------------------------
# 2. worker throughput, pre-loaded topic


@dataclass
class ThroughputRun:
    mode: str
    state: str
    ticks: int
    window_ticks: int
    expected: int
    signals: int
    ended: str
    records: int
    preload_s: float
    first_signal_s: float | None  # worker start -> first signal (start-up, join; not timed)
    window_s: float | None  # first -> last signal
    cpu_pct: float | None
    wait_pct: float | None  # runqueue wait, % of the window
    max_rss_kb: int
    duplicates: int
    with_missing: int
    paired: KernelRun
    load: str
    worker: Worker

    @property
    def rate(self) -> float | None:
        return self.window_ticks / self.window_s if self.window_s else None


def run_throughput(
    mode: str, state: str, paths: Sequence[Path], ticks: Sequence[Tick]
) -> ThroughputRun:
    topology, pack = WORKER_MODES[mode]
    expected = sum(1 for t in ticks if t.kind == "trade")
    paired = run_kernel(ticks)
    print(
        f"[{mode}/{state}] paired in-process kernel {paired.rate:,.0f} ticks/s ({paired.load}); "
        f"pre-loading {len(ticks):,} ticks (replay pack={pack}) ...",
        flush=True,
    )
    with fresh_topics(f"{mode}-{state}") as rt:
        t0 = time.perf_counter()
        summary = replay(paths, rt, speed=None, pack=pack)
        preload_s = time.perf_counter() - t0
        if summary.sent != len(ticks):
            raise RuntimeError(f"replay sent {summary.sent:,} of {len(ticks):,} ticks")
        reader = SignalLog(rt)
        reader.start()
        print(
            f"[{mode}/{state}] {summary.records:,} records in {preload_s:.1f} s; starting the "
            f"worker, expecting {expected:,} signals ...",
            flush=True,
        )
        started = time.perf_counter_ns()
        with running_worker(
            rt, mode, reader.probe_seen, worker_args(topology, state), live=False
        ) as w:
            sampler = ProcSampler(w.proc.pid)
            sampler.start()
            ended = wait_signals(reader, expected, [w], started)
            sampler.finish()
            reader.stop.set()
            reader.join(timeout=30)
    first, last = reader.first_ns, reader.last_arrival_ns
    run = ThroughputRun(
        mode=mode,
        state=state,
        ticks=len(ticks),
        window_ticks=window_ticks(ticks),
        expected=expected,
        signals=reader.count,
        ended=ended,
        records=summary.records,
        preload_s=preload_s,
        first_signal_s=(first - started) / 1e9 if first else None,
        window_s=(last - first) / 1e9 if first and last > first else None,
        cpu_pct=sampler.cpu_pct(first, last) if first else None,
        wait_pct=sampler.wait_pct(first, last) if first else None,
        max_rss_kb=sampler.max_rss_kb(),
        duplicates=reader.duplicates,
        with_missing=reader.with_missing,
        paired=paired,
        load=load(),
        worker=w,
    )
    rate = f"{run.rate:,.0f}" if run.rate else "-"
    print(
        f"[{mode}/{state}] {rate} ticks/s over {run.window_s or 0:.2f} s ({run.signals:,} of "
        f"{expected:,} signals, {ended}); worker CPU {run.cpu_pct or 0:.0f}%, waited for a CPU "
        f"{run.wait_pct or 0:.0f}%; {run.load}",
        flush=True,
    )
    return run


# ---------------------------------------------------------------------------------------------
# 3. latency, packed, paced


@dataclass
class LatencyRun:
    rate: float
    state: str
    input_name: str
    seconds: float
    ticks: int
    trades: int
    achieved_rate: float
    max_late_ms: float
    late_1ms: int
    records: int
    hold_ms: list[float]  # per record: first tick handed to the packer -> produced
    latencies_ms: list[float]  # in production order
    missing: int
    duplicates: int
    with_missing: int
    cpu_pct: float | None
    wait_pct: float | None
    self_cpu_pct: float
    stamping: StampResolution
    load: str
    worker: Worker


def run_latency(
    rate: float,
    seconds: float,
    state: str,
    sample: Sequence[Tick],
    dump: Path | None = None,
    input_name: str = "sample",
) -> LatencyRun:
    """A fused worker fed the sample's first ``rate x seconds`` ticks at a steady ``rate``
    (absolute schedule), packed per partition as ``quorum replay`` packs (a pack goes out when
    full or once its first tick has waited :data:`PACK_WINDOW_S`). A tick's latency runs from
    the moment it is due and handed to the packer to its signal's arrival (so the pack's wait
    is included). Producer: replay's settings with ``linger.ms=0`` (the pack is the batch)."""
    n = min(int(rate * seconds), len(sample))
    ticks = list(sample[:n])
    keys = seqs(ticks)
    trades = [i for i, t in enumerate(ticks) if t.kind == "trade"]
    print(
        f"[latency {rate:,.0f}/s] {n:,} ticks ({len(trades):,} trades) for {n / rate:.1f} s, "
        f"state {state}; starting the worker ...",
        flush=True,
    )
    with fresh_topics(f"lat{int(rate)}-{state}-{input_name[:3]}") as rt:
        reader = SignalLog(rt)
        reader.start()
        with running_worker(rt, "latency", reader.probe_seen, worker_args("fused", state)) as w:
            topic = rt.topic("ticks")
            packer = TickPacker(rt.topics.partitions, DEFAULT_PACK, PACK_WINDOW_S)
            pending: dict[int, deque[int]] = {}  # partition -> tick indices in open packs
            p = Producer({**producer_config(rt), "linger.ms": 0})
            produced = [0] * n
            hold: list[float] = []
            clock = time.perf_counter_ns

            def send(packs: list[Pack]) -> None:
                now = clock()
                for pk in packs:
                    idx = pending[pk.partition]
                    first = idx[0]
                    for _ in range(pk.ticks):
                        idx.popleft()
                    hold.append((now - produced[first]) / 1e6)
                    _produce(p, topic, pk)
                p.poll(0)

            sampler = ProcSampler(w.proc.pid)
            sampler.start()
            self0, wall0 = time.process_time(), time.perf_counter()
            reader.timing.set()
            step = 1e9 / rate
            start = clock() + int(LATENCY_LEAD_S * 1e9)
            max_late = late = 0
            for i, tick in enumerate(ticks):
                due = start + int(i * step)
                while (now := clock()) < due:
                    if packer.held:  # an open pack: wake to close it when its window ends
                        send(packer.flush_due(now / 1e9))
                        time.sleep(min((due - now) / 1e9, PACE_SLICE_S))
                    else:
                        time.sleep((due - now) / 1e9)
                lateness = now - due
                max_late = max(max_late, lateness)
                late += lateness > 1_000_000
                produced[i] = now
                pending.setdefault(packer.partition_of(tick.symbol), deque()).append(i)
                send(packer.add(tick, now / 1e9))
            send(packer.flush_all())
            end_ns = clock()
            if p.flush(60):
                raise RuntimeError("ticks still unflushed after 60 s")
            wanted = [keys[i] for i in trades]
            while True:
                got = sum(1 for k in wanted if k in reader.arrivals)
                if got >= len(trades) or reader.failed is not None:
                    break
                if clock() - max(reader.last_arrival_ns, end_ns) > DRAIN_IDLE_S * 1e9:
                    break
                time.sleep(0.1)
            reader.timing.clear()
            self_pct = 100 * (time.process_time() - self0) / (time.perf_counter() - wall0)
            sampler.finish()
            reader.stop.set()
            reader.join(timeout=30)
    lat = [
        (reader.arrivals[keys[i]] - produced[i]) / 1e6 for i in trades if keys[i] in reader.arrivals
    ]
    if dump is not None:
        _dump(
            dump / f"latency-{int(rate)}-{state}-{input_name}.json",
            {
                "produced_ns": [produced[i] for i in trades],
                "arrival_ns": [reader.arrivals.get(keys[i]) for i in trades],
                "hold_ms": hold,
            },
        )
    info = time.get_clock_info("perf_counter")
    run = LatencyRun(
        rate=rate,
        state=state,
        input_name=input_name,
        seconds=n / rate,
        ticks=n,
        trades=len(trades),
        achieved_rate=(n - 1) / ((produced[-1] - produced[0]) / 1e9) if n > 1 else 0.0,
        max_late_ms=max_late / 1e6,
        late_1ms=late,
        records=len(hold),
        hold_ms=hold,
        latencies_ms=lat,
        missing=len(trades) - len(lat),
        duplicates=reader.duplicates,
        with_missing=reader.with_missing,
        cpu_pct=sampler.cpu_pct(produced[0], end_ns),
        wait_pct=sampler.wait_pct(produced[0], end_ns),
        self_cpu_pct=self_pct,
        stamping=StampResolution(
            poll_timeout_ms=10.0,
            idle_poll_ms=[x / 1e6 for x in reader.idle_ns],
            handle_us=[x / 1e3 for x in reader.handle_ns],
            clock=info.implementation,
            clock_resolution_ns=info.resolution * 1e9,
            clock_step_ns=clock_step_ns(),
        ),
        load=load(),
        worker=w,
    )
    s = sorted(lat)
    if s:
        print(
            f"[latency {rate:,.0f}/s] p50 {pct(s, 50):.1f} p95 {pct(s, 95):.1f} p99 "
            f"{pct(s, 99):.1f} max {s[-1]:.1f} ms; {run.load}",
            flush=True,
        )
    return run


# ---------------------------------------------------------------------------------------------
# 4. two workers: throughput, and what losing one costs


@dataclass
class GroupRun:
    workers: int
    ticks: int
    expected: int
    signals: int
    ended: str
    records: int
    produce_s: float
    window_s: float | None
    window_ticks: int
    cpu_pct: list[float | None]
    wait_pct: list[float | None]
    partitions: list[list[int]]
    signals_per_worker: list[int]
    load: str

    @property
    def rate(self) -> float | None:
        return self.window_ticks / self.window_s if self.window_s else None


def _partitions_of(w: Worker, topic: str) -> list[int]:
    text = w.log_path.read_text(encoding="utf-8", errors="replace")
    got = parse_assignments(text, topic)
    return got[-1][1] if got else []


def run_group(
    workers: int, ticks: Sequence[Tick], packs_of: Callable[[int], list[Pack]]
) -> GroupRun:
    """``workers`` fused workers (Redis state) in one group, stable and live before anything is
    timed; then the pre-encoded packs are produced flat out (they take well under a second,
    printed) and the clock runs from the first signal to the last expected one."""
    expected = sum(1 for t in ticks if t.kind == "trade")
    part = f"group{workers}"
    print(f"[{workers} worker(s)] {len(ticks):,} synthetic ticks; starting ...", flush=True)
    with fresh_topics(part) as rt, contextlib.ExitStack() as stack:
        reader = SignalLog(rt, timeline=True)
        reader.start()
        ws = [
            stack.enter_context(
                running_worker(
                    rt,
                    part,
                    reader.probe_seen,
                    worker_args("fused", "redis", "-l", "info"),
                    live=False,
                )
            )
            for _ in range(workers)
        ]
        waited = wait_group(rt, ws, workers, reader.probe_seen)
        topic = rt.topic("ticks")
        parts = [_partitions_of(w, topic) for w in ws]
        packs = packs_of(rt.topics.partitions)
        samplers = [ProcSampler(w.proc.pid) for w in ws]
        for s in samplers:
            s.start()
        print(
            f"[{workers} worker(s)] group stable and live after {waited:.1f} s; partitions "
            f"{parts}; producing {len(packs):,} records ...",
            flush=True,
        )
        p = Producer(producer_config(rt))
        started = time.perf_counter_ns()
        for pk in packs:
            _produce(p, topic, pk)
        p.flush(60)
        produce_s = (time.perf_counter_ns() - started) / 1e9
        ended = wait_signals(reader, expected, ws, started)
        for s in samplers:
            s.finish()
        reader.stop.set()
        reader.join(timeout=30)
    first, last = reader.first_ns, reader.last_arrival_ns
    owner = {pt: i for i, ps in enumerate(parts) for pt in ps}
    per = [0] * workers
    for _, partition, _, _ in reader.timeline:
        if partition in owner:
            per[owner[partition]] += 1
    run = GroupRun(
        workers=workers,
        ticks=len(ticks),
        expected=expected,
        signals=reader.count,
        ended=ended,
        records=len(packs),
        produce_s=produce_s,
        window_s=(last - first) / 1e9 if first and last > first else None,
        window_ticks=window_ticks(ticks),
        cpu_pct=[s.cpu_pct(first, last) for s in samplers],
        wait_pct=[s.wait_pct(first, last) for s in samplers],
        partitions=parts,
        signals_per_worker=per,
        load=load(),
    )
    rate = f"{run.rate:,.0f}" if run.rate else "-"
    print(f"[{workers} worker(s)] {rate} ticks/s ({ended}); {run.load}", flush=True)
    return run


@dataclass
class FailoverRun:
    how: str  # SIGKILL | SIGTERM
    rate: float
    victim: list[int]
    survivor: list[int]
    expected: int
    unique: int
    duplicates: int
    steady_gap_ms: dict[str, float]  # before the stop, per side
    steady_p99_ms: dict[str, float]
    gap_ms: dict[str, float]  # after the stop, per side: longest silence
    gap_start_s: dict[str, float]  # where that silence began, s after the stop
    max_latency_ms: dict[str, float]  # after the stop, per side
    # stop -> end of the last second whose median latency was > 3x the side's steady p50;
    # None: still slow at the end of the run
    settled_s: dict[str, float | None]
    reassigned_s: float | None  # stop -> the survivor logged its new assignment
    survivor_parts_after: list[int]
    exit_code: int | None
    load: str


def run_failover(
    how: str,
    rate: float,
    warm_s: float,
    after_s: float,
    ticks: Sequence[Tick],
    dump: Path | None = None,
) -> FailoverRun:
    """Two fused workers (Redis state) on a steady packed stream of ``rate`` ticks/s; after
    ``warm_s`` one of them gets ``how`` (SIGKILL, or SIGTERM: checkpoint and leave), the
    stream goes on for ``after_s``. Per side (the victim's partitions, the survivor's own),
    the longest silence in the signal stream and the worst tick -> signal latency after the
    stop, against the same before it."""
    n = min(int(rate * (warm_s + after_s)), len(ticks))
    ticks = list(ticks[:n])
    keys = seqs(ticks)
    is_trade = [t.kind == "trade" for t in ticks]
    part = f"fail-{how.lower()}"
    print(f"[{how}] 2 workers, {rate:,.0f} ticks/s, stop one after {warm_s:g} s ...", flush=True)
    sig = signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM
    with fresh_topics(part) as rt, contextlib.ExitStack() as stack:
        reader = SignalLog(rt, timeline=True)
        reader.start()
        ws = [
            stack.enter_context(
                running_worker(
                    rt,
                    part,
                    reader.probe_seen,
                    worker_args("fused", "redis", "-l", "info"),
                    live=False,
                )
            )
            for _ in range(2)
        ]
        wait_group(rt, ws, 2, reader.probe_seen)
        topic = rt.topic("ticks")
        parts = [_partitions_of(w, topic) for w in ws]
        victim, survivor = ws[1], ws[0]
        packer = TickPacker(rt.topics.partitions, DEFAULT_PACK, PACK_WINDOW_S)
        p = Producer({**producer_config(rt), "linger.ms": 0})
        produced = [0] * n
        clock = time.perf_counter_ns
        step = 1e9 / rate
        start = clock() + int(LATENCY_LEAD_S * 1e9)
        kill_at = start + int(warm_s * 1e9)
        stopped_ns = 0
        stopped_wall = 0.0

        def send(packs: list[Pack]) -> None:
            for pk in packs:
                _produce(p, topic, pk)
            p.poll(0)

        for i, tick in enumerate(ticks):
            due = start + int(i * step)
            while (now := clock()) < due:
                if packer.held:
                    send(packer.flush_due(now / 1e9))
                    time.sleep(min((due - now) / 1e9, PACE_SLICE_S))
                else:
                    time.sleep((due - now) / 1e9)
            if not stopped_ns and now >= kill_at:
                victim.proc.send_signal(sig)
                stopped_ns, stopped_wall = clock(), time.time()
            produced[i] = now
            send(packer.add(tick, now / 1e9))
        send(packer.flush_all())
        end_ns = clock()
        p.flush(60)
        expected = sum(is_trade)
        wait_signals(reader, expected, [survivor], end_ns)
        reader.stop.set()
        reader.join(timeout=30)
        if victim.proc.poll() is None:
            victim.proc.wait(timeout=30)
        exit_code = victim.proc.returncode
        text = survivor.log_path.read_text(encoding="utf-8", errors="replace")
        later = [(ts, ps) for ts, ps in parse_assignments(text, topic) if ts and ts > stopped_wall]
    produced_at = {keys[i]: produced[i] for i in range(n) if is_trade[i]}
    owner = {pt: "victim" for pt in parts[1]} | {pt: "survivor" for pt in parts[0]}
    steady_gap: dict[str, float] = {}
    steady_p99: dict[str, float] = {}
    gap: dict[str, float] = {}
    gap_at: dict[str, float] = {}
    worst: dict[str, float] = {}
    settled: dict[str, float | None] = {}
    # steady state: from 2 s after the start to 2 s before the stop (ticks produced just
    # before the stop may be answered only after it: they belong to the disturbance)
    steady = (start + int(2e9), stopped_ns - int(2e9))
    for side in ("victim", "survivor"):
        arr = [(a, (sym, seq)) for a, pt, sym, seq in reader.timeline if owner.get(pt) == side]
        times = [a for a, _ in arr]
        steady_gap[side] = max_gap_ms(times, *steady)[0]
        before = sorted(
            (a - produced_at[k]) / 1e6
            for a, k in arr
            if k in produced_at and steady[0] <= produced_at[k] < steady[1]
        )
        steady_p99[side] = pct(before, 99) if before else float("nan")
        g, at = max_gap_ms(times, stopped_ns, end_ns)
        gap[side], gap_at[side] = g, (at - stopped_ns) / 1e9
        late = [
            (a, (a - produced_at[k]) / 1e6)
            for a, k in arr
            if k in produced_at and produced_at[k] >= steady[1]
        ]
        worst[side] = max((x for _, x in late), default=float("nan"))
        p50 = pct(before, 50) if before else float("nan")
        settled[side] = settled_s(late, stopped_ns, end_ns, 3 * p50)
    if dump is not None:
        _dump(
            dump / f"failover-{how.lower()}.json",
            {
                "stopped_ns": stopped_ns,
                "start_ns": start,
                "end_ns": end_ns,
                "victim": parts[1],
                "survivor": parts[0],
                "signals": [
                    [a, pt, sym, seq, produced_at.get((sym, seq))]
                    for a, pt, sym, seq in reader.timeline
                ],
            },
        )
    run = FailoverRun(
        how=how,
        rate=rate,
        victim=parts[1],
        survivor=parts[0],
        expected=expected,
        unique=reader.count,
        duplicates=reader.duplicates,
        steady_gap_ms=steady_gap,
        steady_p99_ms=steady_p99,
        gap_ms=gap,
        gap_start_s=gap_at,
        max_latency_ms=worst,
        settled_s=settled,
        reassigned_s=(later[0][0] - stopped_wall) if later and later[0][0] else None,
        survivor_parts_after=later[-1][1] if later else [],
        exit_code=exit_code,
        load=load(),
    )
    print(
        f"[{how}] victim partitions silent {gap['victim'] / 1e3:.2f} s, survivor's own "
        f"{gap['survivor'] / 1e3:.2f} s; {run.load}",
        flush=True,
    )
    return run


# ---------------------------------------------------------------------------------------------
# 5. memory over a long stream


@dataclass
class MemoryRun:
    driver: str
    events: int  # asked for
    processed: int
    seconds: float
    start_kb: int
    samples: list[tuple[int, int]]  # (events processed, rss kB)
    note: str
    load: str

    def at(self, fraction: float) -> tuple[int, int]:
        target = fraction * self.processed
        return min(self.samples, key=lambda s: abs(s[0] - target))


def run_memory_inprocess(events: int, symbols: int) -> MemoryRun:
    """The kernel over ``events`` synthetic ticks, generated in chunks (never all in memory);
    this process's RSS after every chunk (run it in a fresh process: ``main`` does)."""
    pipe = Pipeline(load_config())
    process = pipe.process
    chunks = generate(events, symbols, SYN_SEED)
    gc.collect()
    start = rss_kb()
    samples: list[tuple[int, int]] = []
    done = 0
    t0 = time.perf_counter()
    step = max(events // 20, 1)
    mark = step
    for chunk in chunks:
        for t in chunk:
            process(t)
        done += len(chunk)
        del chunk
        samples.append((done, rss_kb()))
        if done >= mark:
            mark += step
            print(
                f"[memory in-process] {done:,} events, RSS {samples[-1][1] / 1024:.0f} MB; "
                f"{load()}",
                flush=True,
            )
    return MemoryRun(
        "in-process kernel",
        events,
        done,
        time.perf_counter() - t0,
        start,
        samples,
        f"{symbols} symbols, chunks of 100,000 generated on the fly (generation timed too)",
        load(),
    )


def run_memory_worker(events: int, symbols: int, budget_s: float) -> MemoryRun:
    """A fused worker (Redis state) fed a long synthetic stream of pre-encoded packs by a
    producer thread kept at most :data:`AHEAD_TICKS` ahead of it; the worker's RSS from
    /proc/<pid>/status every second, against the ticks it has processed (per symbol, the
    highest tick number its signals carried). Ends at ``events`` or after ``budget_s``."""
    with fresh_topics("memory") as rt:
        reader = SignalLog(rt, keep=False)
        reader.start()
        with running_worker(rt, "memory", reader.probe_seen, worker_args("fused", "redis")) as w:
            topic = rt.topic("ticks")
            stop = threading.Event()
            sent = [0]
            failed: list[BaseException] = []

            def feed() -> None:
                try:
                    p = Producer(producer_config(rt))
                    packer = TickPacker(rt.topics.partitions, DEFAULT_PACK, window_s=float("inf"))
                    for chunk in generate(events, symbols, SYN_SEED):
                        while sent[0] - reader.processed > AHEAD_TICKS and not stop.is_set():
                            time.sleep(0.1)
                        if stop.is_set():
                            return
                        for t in chunk:
                            for pk in packer.add(t, 0.0):
                                _produce(p, topic, pk)
                        sent[0] += len(chunk)
                        p.poll(0)
                    for pk in packer.flush_all():
                        _produce(p, topic, pk)
                    p.flush(60)
                except BaseException as e:
                    failed.append(e)

            feeder = threading.Thread(target=feed, name="feeder", daemon=True)
            start_kb = rss_kb(w.proc.pid)
            samples: list[tuple[int, int]] = [(0, start_kb)]
            t0 = time.perf_counter()
            feeder.start()
            next_print = t0 + 30
            why = "all events processed"
            while True:
                time.sleep(1.0)
                done = reader.processed
                samples.append((done, rss_kb(w.proc.pid)))
                now = time.perf_counter()
                if now >= next_print:
                    next_print += 30
                    print(
                        f"[memory worker] {done:,} processed ({done / (now - t0):,.0f}/s), RSS "
                        f"{samples[-1][1] / 1024:.0f} MB; {load()}",
                        flush=True,
                    )
                if failed:
                    raise RuntimeError(f"feeder failed: {failed[0]!r}") from failed[0]
                if w.proc.poll() is not None:
                    why = f"the worker exited ({w.proc.returncode})"
                    break
                if done >= events - 1000 and not feeder.is_alive():
                    break  # the tail after each symbol's last trade carries no signal
                if now - t0 > budget_s:
                    why = f"time budget of {budget_s:.0f} s reached"
                    break
            stop.set()
            seconds = time.perf_counter() - t0
            feeder.join(timeout=60)
            reader.stop.set()
            reader.join(timeout=30)
    return MemoryRun(
        "fused worker (redis)",
        events,
        samples[-1][0],
        seconds,
        start_kb,
        samples,
        f"{symbols} symbols, packs of {DEFAULT_PACK}; {why}",
        load(),
    )


# ---------------------------------------------------------------------------------------------
# report


def _dump(path: Path, doc: dict[str, Any]) -> None:
    """Raw per-signal data of a run (``--dump DIR``), for looking closer than the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    print(f"  raw data: {path}", flush=True)


def _settled(x: float | None) -> str:
    return "never (slow to the end)" if x is None else f"{x:.2f} s"


def _r(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None or x != x else format(x, fmt)


def print_report(
    kernels: list[KernelRun],
    embedded: BacktestRun | None,
    throughput: list[ThroughputRun],
    latency: list[LatencyRun],
    groups: list[GroupRun],
    failovers: list[FailoverRun],
    memory: list[MemoryRun],
) -> None:
    print()
    print(f"machine: {machine()}")
    print(f"now: {load()}")
    if kernels:
        rates = [k.rate for k in kernels]
        print("\nin-process (sample, pre-read ticks: Pipeline(load_config()).process)")
        print("| run | ticks | signals | ticks/s | load |")
        print("|---|---:|---:|---:|---|")
        for i, k in enumerate(kernels, 1):
            print(f"| {i} | {k.ticks:,} | {k.signals:,} | {k.rate:,.0f} | {k.load} |")
        print(
            f"median {statistics.median(rates):,.0f} ticks/s (min {min(rates):,.0f}, max "
            f"{max(rates):,.0f}, {len(rates)} runs)"
        )
    if embedded is not None:
        print(
            f"embedded backtest (prefetch=False, parsing included): {embedded.rate:,.0f} ev/s, "
            f"{embedded.signals:,} signals of {embedded.events:,} events; {embedded.load}"
        )
    if throughput:
        med = statistics.median(k.rate for k in kernels) if kernels else None
        print("\nworker throughput (sample pre-loaded; first -> last expected signal)")
        print(
            "| mode | state | records | ticks/s | paired in-process | ratio (pair) | ratio "
            "(median) | worker CPU | CPU wait | window s | signals | start->1st s | RSS MB | load |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for t in throughput:
            ratio = f"{100 * t.rate / t.paired.rate:.0f} %" if t.rate else "-"
            ratio_m = f"{100 * t.rate / med:.0f} %" if t.rate and med else "-"
            sig = f"{t.signals:,}/{t.expected:,}"
            if t.ended != "complete":
                sig += f" ({t.ended})"
            print(
                f"| {t.mode} | {t.state} | {t.records:,} | {_r(t.rate)} | "
                f"{t.paired.rate:,.0f} | {ratio} | {ratio_m} | {_r(t.cpu_pct)} % | "
                f"{_r(t.wait_pct)} % | "
                f"{_r(t.window_s, '.2f')} | {sig} | {_r(t.first_signal_s, '.1f')} | "
                f"{t.max_rss_kb / 1024:.0f} | {t.load} |"
            )
            if t.duplicates or t.with_missing:
                print(f"  !! {t.duplicates} duplicate(s), {t.with_missing} with missing stages")
            full = [ln for ln in t.worker.log_problems if "producer buffer full" in ln]
            other = [ln for ln in t.worker.log_problems if "producer buffer full" not in ln]
            if full:
                print(
                    f"  ({t.mode}/{t.state}: Faust warned 'producer buffer full' {len(full):,} "
                    "times: send_soon outran its 100-message ProducerBuffer)"
                )
            if other:
                print(f"  !! worker log: {other[:3]}")
    for r in latency:
        lat = sorted(r.latencies_ms)
        hold = sorted(r.hold_ms)
        print(
            f"\nlatency {r.rate:,.0f} ticks/s, fused, packed (<= {DEFAULT_PACK} ticks, window "
            f"{PACK_WINDOW_S * 1e3:g} ms), state {r.state}, {r.input_name}, {r.seconds:.1f} s"
        )
        print(
            f"  paced             {r.ticks:,} ticks at {r.achieved_rate:,.1f}/s; max "
            f"{r.max_late_ms:.2f} ms behind schedule, {r.late_1ms:,} tick(s) > 1 ms late"
        )
        if hold:
            print(
                f"  packs             {r.records:,} records ({r.ticks / r.records:.1f} ticks "
                f"each); held p50 {pct(hold, 50):.2f} ms, max {hold[-1]:.2f} ms"
            )
        print(f"  signals           {len(lat):,} of {r.trades:,}; missing {r.missing:,}")
        if lat:
            thirds = [r.latencies_ms[i * len(lat) // 3 : (i + 1) * len(lat) // 3] for i in range(3)]
            p50s = " / ".join(_r(pct(sorted(t), 50), ".1f") if t else "-" for t in thirds)
            print(
                f"  latency ms        p50 {pct(lat, 50):.1f}  p95 {pct(lat, 95):.1f}  p99 "
                f"{pct(lat, 99):.1f}  max {lat[-1]:.1f}; p50 by third {p50s}"
            )
        if r.duplicates or r.with_missing:
            print(f"  !! {r.duplicates} duplicate(s), {r.with_missing} with missing stages")
        for line in r.stamping.summary():
            print(line)
        print(
            f"  cpu               worker {_r(r.cpu_pct)} % of a core (waited for a CPU "
            f"{_r(r.wait_pct)} % of the time), this process {r.self_cpu_pct:.0f} %; {r.load}"
        )
    if groups:
        print("\none vs two fused workers (redis), synthetic, pre-encoded packs")
        print(
            "| workers | ticks | records (produce s) | ticks/s | partitions | signals per worker "
            "| worker CPU | signals | load |"
        )
        print("|---:|---:|---:|---:|---|---|---|---:|---|")
        for g in groups:
            cpus = " / ".join(
                f"{_r(c)} % (wait {_r(w)} %)" for c, w in zip(g.cpu_pct, g.wait_pct, strict=True)
            )
            sig = f"{g.signals:,}/{g.expected:,}" + (
                "" if g.ended == "complete" else f" ({g.ended})"
            )
            print(
                f"| {g.workers} | {g.ticks:,} | {g.records:,} ({g.produce_s:.2f}) | {_r(g.rate)} | "
                f"{g.partitions} | {g.signals_per_worker} | {cpus} | {sig} | {g.load} |"
            )
    if failovers:
        print("\nlosing one of two fused workers (redis) on a steady packed stream")
        print(
            "| stop | rate | victim partitions | silence victim's partitions (starts at) | "
            "silence survivor's own | worst latency victim / survivor | steady: silence, "
            "p99 (victim / survivor) | settled victim / survivor | survivor reassigned | "
            "duplicates | missing | load |"
        )
        print("|---|---:|---|---|---|---|---|---:|---:|---:|---:|---|")
        for f in failovers:
            print(
                f"| {f.how} (exit {f.exit_code}) | {f.rate:,.0f} | {f.victim} | "
                f"{f.gap_ms['victim'] / 1e3:.2f} s (+{f.gap_start_s['victim']:.2f} s) | "
                f"{f.gap_ms['survivor'] / 1e3:.2f} s (+{f.gap_start_s['survivor']:.2f} s) | "
                f"{f.max_latency_ms['victim'] / 1e3:.2f} / "
                f"{f.max_latency_ms['survivor'] / 1e3:.2f} s | "
                f"{f.steady_gap_ms['victim']:.0f} / {f.steady_gap_ms['survivor']:.0f} ms, "
                f"{f.steady_p99_ms['victim']:.0f} / {f.steady_p99_ms['survivor']:.0f} ms | "
                f"{_settled(f.settled_s['victim'])} / {_settled(f.settled_s['survivor'])} | "
                f"{_r(f.reassigned_s, '.2f')} s -> "
                f"{len(f.survivor_parts_after)} partitions | {f.duplicates:,} | "
                f"{f.expected - f.unique:,} | {f.load} |"
            )
    if memory:
        print("\nresident memory over a long synthetic stream")
        print(
            "| driver | events processed | s | ev/s | RSS start | 10 % | 50 % | 100 % | max | note "
            "| load |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for m in memory:
            cols = " | ".join(f"{m.at(f)[1] / 1024:.0f} MB" for f in (0.1, 0.5, 1.0))
            top = max(s[1] for s in m.samples) / 1024
            print(
                f"| {m.driver} | {m.processed:,} | {m.seconds:.0f} | "
                f"{m.processed / m.seconds:,.0f} | {m.start_kb / 1024:.0f} MB | {cols} | "
                f"{top:.0f} MB | {m.note} | {m.load} |"
            )


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda s: [] if s in ("", "none") else [kind(x) for x in s.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bench_worker",
        description="Issue 8: the fused worker against the in-process kernel (default: all).",
    )
    ap.add_argument(
        "--mode",
        type=_csv(str),
        default=list(MODES),
        help=f"comma list of {','.join(MODES)} (none: skip); default all",
    )
    ap.add_argument("--state", type=_csv(str), default=["redis", "memory"], help="redis,memory")
    ap.add_argument("--latency", type=_csv(float), default=[1000.0, 10000.0], help="rates, ticks/s")
    ap.add_argument(
        "--latency-seconds", type=float, default=30.0, help="per rate, capped by the sample"
    )
    ap.add_argument(
        "--latency-input",
        choices=("sample", "synthetic"),
        default="sample",
        help=f"the Binance sample (2 symbols) or synthetic ticks ({SYN_SYMBOLS} symbols)",
    )
    ap.add_argument("--latency-state", type=_csv(str), default=["redis"], help="redis,memory")
    ap.add_argument("--two-workers", action="store_true", help="1 vs 2 workers, SIGKILL, SIGTERM")
    ap.add_argument(
        "--two-workers-parts",
        type=_csv(str),
        default=["throughput", "sigkill", "sigterm"],
        help="of --two-workers: throughput,sigkill,sigterm",
    )
    ap.add_argument(
        "--group-events", type=int, default=500_000, help="two-workers throughput input"
    )
    ap.add_argument("--failover-rate", type=float, default=1000.0)
    ap.add_argument("--failover-warm", type=float, default=15.0, help="s before the stop")
    ap.add_argument("--failover-after", type=float, default=30.0, help="s after the stop")
    ap.add_argument("--memory", action="store_true", help="RSS over a long synthetic stream")
    ap.add_argument("--memory-events", type=int, default=10_000_000)
    ap.add_argument("--memory-worker-seconds", type=float, default=600.0)
    ap.add_argument("--memory-drivers", type=_csv(str), default=["inprocess", "worker"])
    ap.add_argument("--repeat", type=int, default=1, help="in-process runs at the start (1)")
    ap.add_argument("--dump", type=Path, help="write each latency/failover run's raw data here")
    ap.add_argument(
        "--all", action="store_true", help="every part (also the default without flags)"
    )
    args = ap.parse_args(argv)
    given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
    everything = args.all or not given & {"--mode", "--latency", "--two-workers", "--memory"}
    if not everything:
        if "--mode" not in given:
            args.mode = []
        if "--latency" not in given:
            args.latency = []
    else:
        args.two_workers = args.memory = True
    bad = [m for m in args.mode if m not in MODES]
    if bad or any(s not in ("redis", "memory") for s in args.state + args.latency_state):
        ap.error(f"unknown mode/state: {bad or args.state + args.latency_state}")
    os.environ.setdefault("QUORUM_STATE_SECRET", "bench-only-state-secret-0123456789")

    print(f"machine: {machine()}", flush=True)
    kernels: list[KernelRun] = []
    embedded = None
    throughput: list[ThroughputRun] = []
    sample: list[Tick] = []
    if args.mode or args.latency:
        sample = load_ticks(SAMPLE)
        print(f"sample: {len(sample):,} ticks pre-read from {len(SAMPLE)} files", flush=True)
    if args.mode:
        for _ in range(max(args.repeat, 1)):
            kernels.append(run_kernel(sample))
            print(
                f"[in-process] kernel {kernels[-1].rate:,.0f} ticks/s; {kernels[-1].load}",
                flush=True,
            )
        if "inprocess" in args.mode:
            embedded = run_embedded(SAMPLE)
            print(f"[in-process] backtest {embedded.rate:,.0f} ev/s; {embedded.load}", flush=True)
        for mode in (m for m in MODES if m in args.mode and m != "inprocess"):
            for state in args.state:
                run = run_throughput(mode, state, SAMPLE, sample)
                throughput.append(run)
                kernels.append(run.paired)
    lat_input = sample
    if args.latency and args.latency_input == "synthetic":
        n = int(max(args.latency) * args.latency_seconds)
        lat_input = synthetic_ticks(n)
        print(f"latency input: {n:,} synthetic ticks, {SYN_SYMBOLS} symbols", flush=True)
    latency = [
        run_latency(rate, args.latency_seconds, st, lat_input, args.dump, args.latency_input)
        for rate in args.latency
        for st in args.latency_state
    ]
    groups: list[GroupRun] = []
    failovers: list[FailoverRun] = []
    if args.two_workers:
        parts = args.two_workers_parts
        syn = synthetic_ticks(args.group_events) if "throughput" in parts else []
        cache: dict[int, list[Pack]] = {}

        def packs_of(partitions: int) -> list[Pack]:
            if partitions not in cache:
                cache[partitions] = pack_all(syn, partitions)
            return cache[partitions]

        if "throughput" in parts:
            groups = [run_group(1, syn, packs_of), run_group(2, syn, packs_of)]
        long = synthetic_ticks(
            int(args.failover_rate * (args.failover_warm + args.failover_after)) + 1
        )
        failovers = [
            run_failover(
                how, args.failover_rate, args.failover_warm, args.failover_after, long, args.dump
            )
            for how in ("SIGKILL", "SIGTERM")
            if how.lower() in parts
        ]
    memory: list[MemoryRun] = []
    if args.memory:
        if "inprocess" in args.memory_drivers:
            # in a fresh process: this one holds the sample, packs and other runs' data
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                memory.append(pool.apply(run_memory_inprocess, (args.memory_events, SYN_SYMBOLS)))
        if "worker" in args.memory_drivers:
            memory.append(
                run_memory_worker(args.memory_events, SYN_SYMBOLS, args.memory_worker_seconds)
            )
    print_report(kernels, embedded, throughput, latency, groups, failovers, memory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
