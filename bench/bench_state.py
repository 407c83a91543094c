"""Cost of keeping model state in Redis: checkpoints, and a worker's restart.

    python -m bench.bench_state                       # both parts
    python -m bench.bench_state --checkpoint --every 1000 --repeats 5
    python -m bench.bench_state --restart --files data/binance/spot/*.gz

1. checkpoint: the embedded pipeline runs the sample with a :class:`RedisStateStore` and
   checkpoints every ``--every`` ticks (each checkpoint seals and writes every stage-symbol and
   voter key in one MULTI/EXEC). Prints ms per checkpoint and per key, bytes per key by owner,
   how much of it is sealing (pickle + HMAC) vs the Redis round trip, and events/s with
   checkpoints on vs off: runs alternate off, on, off, on, ... (``--repeats`` pairs, each on a
   fresh pipeline), and each pair, the median and the spread are printed, so the difference
   can be read against the run-to-run noise. Needs Redis.
2. restart: ticks are replayed into a ``quorum worker --state redis``; once some signals have
   come, the worker is stopped (SIGKILL, then SIGTERM) and started again. Prints the time from
   the restart to its group holding the partitions, to the first signal, and to the first
   signal never seen before. Needs Kafka and Redis.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from agents.describe import meta
from agents.pipeline import Pipeline
from bench.bench_backtest import machine
from bench.bench_kafka import (
    BENCH_SECRET,
    FIXTURES,
    JOIN_TIMEOUT_S,
    SAMPLE,
    fresh_topics,
    group_joined,
    pct,
)
from config.runtime import RuntimeConfig
from config.settings import PipelineConfig, load_config
from models.records import Tick
from models.sealed import StateSealer
from streams.codecs import decode_signal
from streams.readers import read_ticks
from streams.redis_store import RedisStateStore, redis_client
from streams.replay import replay
from streams.topics import admin_client

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# 1. checkpoint cost


@dataclass
class CheckpointResult:
    ticks: int
    every: int
    checkpoints: int  # per checkpointed run
    ms: list[float]  # per checkpoint of every "on" run, seal + MULTI/EXEC
    keys: list[int]
    seal_ms: list[float]  # per checkpoint, sealing alone (same keys, no Redis)
    bytes_by_owner: dict[str, list[int]]
    off_s: list[float]  # per repeat: the ticks, no checkpoints
    on_s: list[float]  # per repeat: with checkpoints (their time included)


def _run_off(cfg: PipelineConfig, ticks: Sequence[Tick]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    plain = Pipeline(cfg)
    for tick in ticks:
        plain.process(tick)
    return time.perf_counter() - t0


def _run_on(
    cfg: PipelineConfig,
    ticks: Sequence[Tick],
    every: int,
    url: str,
    out: CheckpointResult,
    measure_sealing: bool,
) -> float:
    """One checkpointed run on its own Redis namespace (deleted after); its checkpoint times
    are added to ``out``, and with ``measure_sealing`` sealing alone and key sizes too."""
    name = f"bench-state-{uuid.uuid4().hex[:10]}"
    sealer = StateSealer(BENCH_SECRET.encode(), name)
    client = redis_client(url)
    store = RedisStateStore(client, sealer, meta=meta)
    n = 0
    try:
        gc.collect()
        t0 = time.perf_counter()
        pipe = Pipeline(cfg, store)
        for i, tick in enumerate(ticks, 1):
            pipe.process(tick)
            if i % every == 0:
                store.touch_all()
                stats = store.checkpoint()
                out.ms.append(stats.elapsed_ms)
                out.keys.append(stats.keys)
                n += 1
        elapsed = time.perf_counter() - t0
        out.checkpoints = n
        if measure_sealing:  # on the final state: pickle + HMAC of every key, no network
            for _ in range(5):
                s0 = time.perf_counter()
                stored_keys = store.keys()  # a store, not a dict: keys() is its API
                for key in stored_keys:
                    value = store.get(key)
                    blob = sealer.seal(key, value, 1, meta(key, value))
                    out.bytes_by_owner.setdefault(key.split("/", 1)[0], []).append(len(blob))
                out.seal_ms.append((time.perf_counter() - s0) * 1e3)
    finally:
        stored = list(client.scan_iter(match=f"quorum:{{{name}*"))
        if stored:
            client.delete(*stored)
    return elapsed


def run_checkpoint(paths: Sequence[Path], every: int, url: str, repeats: int) -> CheckpointResult:
    """``repeats`` pairs of runs, alternating: off, on, off, on, ... (each a fresh pipeline over
    the same ticks, parsed once up front), so slow drift in the machine's load hits both."""
    cfg = load_config()
    ticks = list(read_ticks(paths))
    print(
        f"[checkpoint] {len(ticks):,} ticks, a checkpoint every {every:,}; {repeats} x (off, on)",
        flush=True,
    )
    out = CheckpointResult(len(ticks), every, 0, [], [], [], {}, [], [])
    for r in range(repeats):
        out.off_s.append(_run_off(cfg, ticks))
        out.on_s.append(_run_on(cfg, ticks, every, url, out, measure_sealing=r == repeats - 1))
        print(
            f"[checkpoint] repeat {r + 1}/{repeats}: off {len(ticks) / out.off_s[-1]:,.0f} ev/s,"
            f" on {len(ticks) / out.on_s[-1]:,.0f} ev/s",
            flush=True,
        )
    return out


def _spread(values: Sequence[float], fmt: str) -> str:
    """median, min-max and the range as % of the median."""
    med = statistics.median(values)
    rng = 100 * (max(values) - min(values)) / med if med else float("nan")
    return (
        f"median {med:{fmt}}  min {min(values):{fmt}}  max {max(values):{fmt}}  "
        f"(range {rng:.1f}% of the median)"
    )


def print_checkpoint(r: CheckpointResult) -> None:
    ms = sorted(r.ms)
    keys = statistics.median(r.keys)
    per_key = [m / k for m, k in zip(r.ms, r.keys, strict=True) if k]
    seal = statistics.median(r.seal_ms)
    print(f"checkpoint cost (embedded pipeline, a checkpoint every {r.every:,} ticks)")
    print(f"  checkpoints       {r.checkpoints:,} of {keys:.0f} keys each")
    print(
        f"  ms / checkpoint   p50 {pct(ms, 50):.2f}  p95 {pct(ms, 95):.2f}  max {ms[-1]:.2f}  "
        f"(seal + MULTI/EXEC)"
    )
    print(
        f"  ms / key          p50 {statistics.median(per_key):.3f}; sealing alone "
        f"{seal / keys:.3f} (pickle + HMAC), the rest is the Redis round trip"
    )
    for owner, sizes in sorted(r.bytes_by_owner.items()):
        print(f"  bytes / key       {owner:<15} {statistics.median(sizes):,.0f}")
    off = [r.ticks / s for s in r.off_s]
    on = [r.ticks / s for s in r.on_s]
    slower = [100 * (a - b) / a for a, b in zip(off, on, strict=True)]
    print(f"  events/s, runs alternating off/on ({len(off)} pairs, in run order):")
    for i, (a, b, d) in enumerate(zip(off, on, slower, strict=True), 1):
        print(f"    pair {i}:  off {a:>9,.0f}   on {b:>9,.0f}   on is {d:+.1f}% slower")
    print(f"  off               {_spread(off, ',.0f')}")
    print(f"  on                {_spread(on, ',.0f')}")
    print(
        f"  on vs off, paired median {statistics.median(slower):+.1f}% slower "
        f"(pairs from {min(slower):+.1f}% to {max(slower):+.1f}%)"
    )
    extra = statistics.median(b - a for a, b in zip(r.off_s, r.on_s, strict=True))
    inside = sum(r.ms) / 1e3 / len(r.on_s)
    print(
        f"  time              a checkpointed run takes {extra:+.2f} s more (paired median), of "
        f"which {inside:.2f} s inside checkpoint() calls"
    )


# ---------------------------------------------------------------------------------------------
# 2. restart to the first new signal


@dataclass
class Restart:
    how: str
    joined_s: float | None = None
    first_s: float | None = None
    first_new_s: float | None = None


@dataclass
class RestartResult:
    signals: int
    restarts: list[Restart] = field(default_factory=list)


class Arrivals(threading.Thread):
    """Signal ids with their first arrival (monotonic), read from the start of the topic."""

    def __init__(self, runtime: RuntimeConfig) -> None:
        super().__init__(name="arrivals", daemon=True)
        self.runtime = runtime
        self.first: dict[str, float] = {}
        self.last_any = 0.0  # any arrival, repeats included
        self.times: list[float] = []  # every arrival
        self.stop = threading.Event()

    def run(self) -> None:
        rt = self.runtime
        topic = rt.topic("signals")
        c = Consumer(
            {
                **rt.librdkafka(),
                "group.id": rt.group(f"bench-restart-{uuid.uuid4().hex[:6]}"),
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            c.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in parts])
            while not self.stop.is_set():  # repeats count as arrivals too: no de-duplication
                for m in c.consume(1000, 0.05):
                    if m.error() is None:
                        now = time.monotonic()
                        self.last_any = now
                        self.times.append(now)
                        self.first.setdefault(decode_signal(m.value() or b"").id, now)
        finally:
            c.close()


def start_worker(rt: RuntimeConfig, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QUORUM_TOPIC_PREFIX": rt.topics.prefix,
        "QUORUM_PIPELINE": rt.topics.prefix.rstrip("."),
        "QUORUM_STATE_SECRET": os.environ.get("QUORUM_STATE_SECRET", BENCH_SECRET),
    }
    args = ["worker", "--no-web", "-l", "warning", "--state", "redis"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``cond()`` held; an error naming ``what`` after ``timeout_s``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"{what} within {timeout_s:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - t0


def members(admin: AdminClient, group: str) -> set[str]:
    """Member ids of ``group`` now (empty when it cannot be described)."""
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=5)
    except (KafkaException, TimeoutError):
        return set()
    return {m.member_id for m in desc.members}


def restart_once(
    rt: RuntimeConfig,
    log: Path,
    arrivals: Arrivals,
    worker: subprocess.Popen[bytes],
    how: str,
    target: int,
) -> tuple[subprocess.Popen[bytes], Restart]:
    """Once ``target`` signals have come, stop ``worker`` (``how``), start a new one, and time
    it to its group's join, its first signal and its first signal never seen before."""
    admin = admin_client(rt)
    group, ticks = rt.group("quorum-worker"), rt.topic("ticks")
    wait_until(lambda: len(arrivals.first) >= target, 600, f"{target} signals")
    old = members(admin, group)
    worker.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
    worker.wait(timeout=60)
    time.sleep(1.0)  # signals already in flight arrive before the clock starts
    seen = set(arrivals.first)
    r = Restart(how)
    t0 = time.monotonic()
    worker = start_worker(rt, log)
    r.joined_s = wait_until(  # a killed member stays in the group until its session times out
        lambda: (
            group_joined(admin, group, ticks, rt.topics.partitions)
            and not members(admin, group) & old
        ),
        JOIN_TIMEOUT_S,
        "the worker did not join",
    )
    wait_until(lambda: arrivals.last_any > t0, 120, "no signal after the restart")
    r.first_s = min(t for t in arrivals.times if t > t0) - t0
    wait_until(lambda: len(arrivals.first) > len(seen), 120, "no new signal")
    r.first_new_s = min(ts for i, ts in arrivals.first.items() if i not in seen) - t0
    return worker, r


def run_restart(paths: Sequence[Path], cycles: int) -> RestartResult:
    trades = sum(1 for t in read_ticks(paths) if t.kind == "trade")
    print(f"[restart] {trades:,} signals expected; {cycles} SIGKILL and {cycles} SIGTERM restarts")
    log = Path(tempfile.mkstemp(prefix="quorum-bench-restart-", suffix=".log")[1])
    result = RestartResult(trades)
    with fresh_topics("restart") as rt:
        replay(paths, rt, speed=None)
        arrivals = Arrivals(rt)
        arrivals.start()
        worker = start_worker(rt, log)
        plan = ["SIGKILL"] * cycles + ["SIGTERM"] * cycles
        try:
            for n, how in enumerate(plan, 1):
                target = trades * n // (len(plan) + 1)
                worker, r = restart_once(rt, log, arrivals, worker, how, target)
                result.restarts.append(r)
                print(
                    f"[restart] {how}: joined {r.joined_s:.2f} s, first signal {r.first_s:.2f} s,"
                    f" first new signal {r.first_new_s:.2f} s",
                    flush=True,
                )
            wait_until(lambda: len(arrivals.first) >= trades, 600, "all signals")
        finally:
            arrivals.stop.set()
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
    print(f"  worker log: {log}")
    return result


def print_restart(r: RestartResult) -> None:
    print(f"restart (worker --state redis, {r.signals:,} signals; times from the new process)")
    for x in r.restarts:
        print(
            f"  after {x.how:<8}  group joined {x.joined_s:6.2f} s   first signal "
            f"{x.first_s:6.2f} s   first new signal {x.first_new_s:6.2f} s"
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_state", description=__doc__)
    ap.add_argument("--checkpoint", action="store_true", help="checkpoint cost only")
    ap.add_argument("--restart", action="store_true", help="restart time only")
    ap.add_argument("--every", type=int, default=5000, help="ticks between checkpoints (5000)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="--checkpoint: pairs of runs, alternating checkpoints off/on (3)",
    )
    ap.add_argument("--cycles", type=int, default=2, help="restarts of each kind (2)")
    ap.add_argument("--files", nargs="+", type=Path, help="input (default: the sample)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.every < 1:
        ap.error("--repeats and --every must be >= 1")
    both = not (args.checkpoint or args.restart)
    url = load_config().runtime.redis.url
    checkpoint = None
    if both or args.checkpoint:
        checkpoint = run_checkpoint(args.files or SAMPLE, args.every, url, args.repeats)
    restart = run_restart(args.files or FIXTURES, args.cycles) if both or args.restart else None
    print()
    print(f"machine: {machine()}")
    if checkpoint is not None:
        print_checkpoint(checkpoint)
    if restart is not None:
        print_restart(restart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
