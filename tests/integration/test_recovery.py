"""Crash safety with state in Redis: SIGKILL a worker three times, share the partitions of two
workers and stop one, lose Redis for a while — the de-duplicated signals equal the backtest's.
A tampered state blob is refused and the worker does not run it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from config.runtime import RuntimeConfig
from models.records import Tick
from models.sealed import StateSealer
from quorum import run_backtest
from streams.codecs import decode_signal, encode_tick
from streams.readers import read_ticks
from streams.redis_store import redis_client
from streams.replay import replay
from tests.conftest import SAMPLE_FILES
from tests.integration.conftest import (
    drain,
    log_counters,
    log_text,
    wait_for_group,
    wait_for_log,
    wait_until,
)
from tests.integration.test_worker import assert_same_signals, collect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

StartWorker = Callable[..., subprocess.Popen[bytes]]
SECRET = "recovery-test-secret-0123456789"
EVERY, INTERVAL_S = 200, 0.5  # the checkpoint cadence of these tests' workers
DURABLE = (
    "--state",
    "redis",
    "--checkpoint-every",
    str(EVERY),
    "--checkpoint-interval",
    str(INTERVAL_S),
    # split: a stage vote delayed by a hand-over on a loaded 2-core CI machine must not be
    # decided without (a lost vote still fails: it times out here too and shows as a differing
    # signal); the join's own timeout is tested in tests/unit/test_join.py
    "--join-timeout",
    "120",
)
# agents that share the held inputs: fused, the kernel agent; split, three stage agents and
# the voting agent (of which three read the ticks)
AGENTS = {"fused": 1, "split": 4}
TICK_AGENTS = {"fused": 1, "split": 3}
# the crash tests run fused on packed records (re-delivered batches skipped by element) and
# split on one tick per record; packs are small so a repeat bound still means something
PACKS = {"fused": 3, "split": None}
TOPOLOGIES = pytest.mark.parametrize("topology", ["fused", "split"])
SAVED = "first checkpoint since start or assignment saved"  # streams.checkpoint
FENCED = "state written by another worker"  # streams.redis_store.StateFencedError


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh pipeline name (Redis namespace) and signing secret for the workers."""
    name = f"it-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("QUORUM_PIPELINE", name)
    monkeypatch.setenv("QUORUM_STATE_SECRET", SECRET)
    yield name
    client = redis_client(os.environ.get("QUORUM_REDIS_URL", "redis://127.0.0.1:6379/0"))
    with contextlib.suppress(redis.RedisError):  # a test's own Redis may be gone already
        keys = list(client.scan_iter(match=f"quorum:{{{name}*"))
        if keys:
            client.delete(*keys)


class Watcher:
    """Counts distinct signal ids on the topic, and each symbol's partition, in the background."""

    def __init__(self, rt: RuntimeConfig) -> None:
        self.ids: set[str] = set()
        self.partition: dict[str, int] = {}  # symbol -> partition of its signals (= its ticks')
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(rt,), daemon=True)
        self._thread.start()

    def _run(self, rt: RuntimeConfig) -> None:
        topic = rt.topic("signals")
        consumer = Consumer(
            {**rt.librdkafka(), "group.id": rt.group(f"watch-{uuid.uuid4().hex[:8]}")}
        )
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is None:
                        s = decode_signal(msg.value() or b"")
                        self.ids.add(s.id)
                        self.partition[s.symbol] = msg.partition() or 0
        finally:
            consumer.close()

    def wait_for(self, n: int, timeout_s: float = 120.0) -> None:
        wait_until(f"{n} signals (have {len(self.ids)})", lambda: len(self.ids) >= n, timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def paced_replay(
    rt: RuntimeConfig, speed: float = 20.0, pack: int | None = None
) -> Iterator[Watcher]:
    """The sample replayed at ``speed`` x in the background, with a watcher of the signals; on
    exit the replay has ended (it is joined) and the watcher is stopped."""
    feeder = threading.Thread(
        target=replay, args=(SAMPLE_FILES, rt), kwargs={"speed": speed, "pack": pack}
    )
    feeder.start()
    watcher = Watcher(rt)
    try:
        yield watcher
    finally:
        feeder.join()
        watcher.stop()


def two_workers(
    rt: RuntimeConfig, start_worker: StartWorker, *args: str
) -> tuple[subprocess.Popen[bytes], ...]:
    workers = start_worker(*args), start_worker(*args)
    wait_for_group(rt, members=2)  # both joined: the six partitions are split between them
    return workers


def copies(rt: RuntimeConfig) -> dict[str, list[bytes]]:
    """Every copy of every signal on the topic, by id, as the bytes that were published."""
    out: dict[str, list[bytes]] = {}
    for _, _, value in drain(rt, rt.topic("signals"), timeout=60):
        out.setdefault(decode_signal(value).id, []).append(value)
    return out


@TOPOLOGIES
def test_sigkill_three_times_loses_and_repeats_nothing(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str, tmp_path: Path, topology: str
) -> None:
    """Catches: acks released before state is saved (signals lost after a kill), state not
    loaded on restart (signals differ), re-delivered inputs learned twice (signals differ, and
    skipped stays 0), checkpoints that never happen or cover less than they ack (repeats beyond
    one checkpoint's worth), and non-deterministic re-emission (copies differ by content)."""
    expected = run_backtest(SAMPLE_FILES).signals
    durable = (*DURABLE, "--topology", topology)
    pack = PACKS[topology]
    replay(SAMPLE_FILES, rt, speed=None, pack=pack)
    watcher = Watcher(rt)
    kills = (700, 1900, 3100)
    try:
        for n, kill_after in enumerate(kills):
            worker = start_worker(*durable)
            watcher.wait_for(kill_after)
            wait_for_log(tmp_path / f"worker{n}.log", SAVED)  # it did checkpoint before dying
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        last = start_worker(*durable)
        got = collect(rt, len(expected))
    finally:
        watcher.stop()
    assert_same_signals(got, expected)
    last.send_signal(signal.SIGTERM)
    assert last.wait(timeout=60) == 0

    for n in range(len(kills) + 1):
        counters = log_counters(tmp_path / f"worker{n}.log")
        assert any(c["checkpoints_ok"] >= 1 for c in counters), f"worker{n}: no checkpoint"
        if n > 0:  # every restarted worker loaded the state its predecessor saved
            assert any(c["state_keys_loaded"] > 0 for c in counters), f"worker{n}: none loaded"
    final = log_counters(tmp_path / f"worker{len(kills)}.log")[-1]  # the shutdown line
    assert final["skipped"] > 0, "no re-delivered input was skipped"
    assert final["checkpoints_failed"] == 0

    # What may repeat after a kill is what its last checkpoint did not cover: fewer than EVERY
    # held inputs before the batch that made one due, plus one batch (<= EVERY inputs) from
    # each agent before it got the gate. Each repeated signal needs at least one re-processed
    # input, so at most EVERY * (1 + AGENTS) repeats per kill. A worker that never saved (or
    # acked nothing) would repeat everything before each kill: >= sum(kills) = 5700 > 3000.
    # A packed record holds up to ``pack`` ticks, so it may repeat up to that many signals.
    bound = len(kills) * EVERY * (1 + AGENTS[topology]) * (pack or 1)
    assert bound < sum(kills)
    published = copies(rt)
    assert published.keys() == got.keys()
    repeats = sum(len(c) - 1 for c in published.values())
    print(f"{repeats} repeated copies of {len(published)} signals (bound {bound})")
    assert repeats <= bound
    differ = [sid for sid, c in published.items() if len(set(c)) > 1]
    assert not differ, f"{len(differ)} signals were re-published with other content"


@TOPOLOGIES
def test_two_workers_share_partitions_and_one_stops(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str, topology: str
) -> None:
    """Catches: a graceful hand-over (revocation) that loses or repeats learning."""
    expected = run_backtest(SAMPLE_FILES).signals
    first, second = two_workers(rt, start_worker, *DURABLE, "--topology", topology)
    with paced_replay(rt, pack=PACKS[topology]) as watcher:
        watcher.wait_for(1500)
        second.send_signal(signal.SIGTERM)  # graceful: checkpoint, hand over the partitions
        assert second.wait(timeout=60) == 0
    got = collect(rt, len(expected))
    assert first.poll() is None
    assert_same_signals(got, expected)


_ASSIGNED = re.compile(r"assigned partitions: (.*)")


def _ticks_partitions(log: str, ticks_topic: str) -> set[int]:
    """The ticks partitions of a worker's latest assignment (from its log)."""
    lines = _ASSIGNED.findall(log)
    if not lines:
        return set()
    for part in lines[-1].split("; "):
        topic, _, parts = part.partition(" ")
        if topic == ticks_topic:
            return {int(p) for p in parts.strip().strip("[]").split(",") if p.strip()}
    return set()


def _since_last_assignment(log: str) -> str:
    return log[log.rfind("assigned partitions:") :]


@TOPOLOGIES
def test_a_stalled_worker_is_fenced_off_and_changes_nothing(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str, tmp_path: Path, topology: str
) -> None:
    """A worker frozen past its session loses its partitions without noticing; when it wakes
    it must not overwrite its successor's state: it is fenced off and exits 3, and the signals
    stay the backtest's. Catches: a missing or broken fence (the zombie's save overwrites the
    successor's newer state, or it goes on acking), and a fenced worker that carries on."""
    expected = run_backtest(SAMPLE_FILES).signals
    workers = two_workers(rt, start_worker, *DURABLE, "--topology", topology)
    logs = [tmp_path / f"worker{n}.log" for n in (0, 1)]
    with paced_replay(
        rt, speed=4.0, pack=PACKS[topology]
    ) as watcher:  # ~30 s of ticks: data flows all along
        watcher.wait_for(300)
        wait_until("BTCUSDT's partition", lambda: "BTCUSDT" in watcher.partition)
        btc = watcher.partition["BTCUSDT"]
        owner = [btc in _ticks_partitions(log_text(p), rt.topic("ticks")) for p in logs]
        assert owner.count(True) == 1, owner
        z = owner.index(True)  # the zombie-to-be owns BTCUSDT: it has state to write
        zombie, successor, successor_log = workers[z], workers[1 - z], logs[1 - z]
        # frozen once it has saved, usually before its first offset commit: the successor then
        # takes over partitions with saved state but no committed offset (the case where
        # inputs a fetch dropped around the rebalance were lost, see seek_uncommitted_to_start)
        wait_for_log(logs[z], SAVED)
        zombie.send_signal(signal.SIGSTOP)  # frozen: no heartbeats, no checkpoints
        try:
            wait_for_group(rt, members=1)  # its session expired: the successor has it all
            wait_until(
                "the successor to own every partition",
                lambda: (
                    len(_ticks_partitions(log_text(successor_log), rt.topic("ticks")))
                    == rt.topics.partitions
                ),
            )
            wait_until(  # and it has saved their state since: the zombie's is stale now
                "the successor's checkpoint after taking over",
                lambda: SAVED in _since_last_assignment(log_text(successor_log)),
            )
        finally:
            zombie.send_signal(signal.SIGCONT)
        assert zombie.wait(timeout=120) == 3
    assert successor.poll() is None
    zombie_log = log_text(logs[z])
    assert FENCED in zombie_log and "exit 3" in zombie_log
    assert FENCED not in log_text(successor_log)
    got = collect(rt, len(expected))
    assert_same_signals(got, expected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of the test's own (own port, PID and directory), persisted with an
    append-only file so a stop and start keeps its data, like a real outage of a server."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found")
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir)]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        self._log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [binary, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        wait_until("redis-server to answer", lambda: self._pings(client), 30)

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits; its clients see it gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline: str) -> Iterator[OwnRedis]:
    """The workers of this test use a Redis nobody else uses: stopping it is a real outage."""
    server = OwnRedis(tmp_path / "redis")
    server.start()
    monkeypatch.setenv("QUORUM_REDIS_URL", server.url)
    try:
        yield server
    finally:
        server.stop()


def _failed_checkpoints(log: Path) -> int:
    return len(re.findall(r"checkpoint \(\w+\) failed", log_text(log)))


@TOPOLOGIES
def test_redis_outage_mid_stream_changes_nothing(
    rt: RuntimeConfig,
    start_worker: StartWorker,
    own_redis: OwnRedis,
    tmp_path: Path,
    topology: str,
) -> None:
    """Catches: acks released by failed checkpoints, a worker that dies or stalls for good
    when Redis goes away, and one that does not resume checkpointing when it is back."""
    expected = run_backtest(SAMPLE_FILES).signals
    worker = start_worker(*DURABLE, "--topology", topology)
    log = tmp_path / "worker0.log"
    with paced_replay(rt, pack=PACKS[topology]) as watcher:
        watcher.wait_for(1000)
        wait_for_log(log, SAVED)
        own_redis.stop()
        wait_until("two failed checkpoints", lambda: _failed_checkpoints(log) >= 2)
        own_redis.start()
    wait_for_log(log, "succeeded again")
    got = collect(rt, len(expected))
    assert worker.poll() is None
    assert_same_signals(got, expected)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    final = log_counters(log)[-1]
    assert final["checkpoints_failed"] >= 2 and final["checkpoints_ok"] >= 2


def _write_jsonl(path: Path, ticks: list[Tick]) -> Path:
    path.write_bytes(b"".join(encode_tick(t) + b"\n" for t in ticks))
    return path


def _group_lag(rt: RuntimeConfig, topic: str) -> int:
    """Messages of ``topic`` past the worker group's committed offsets (acked and committed)."""
    consumer = Consumer({**rt.librdkafka(), "group.id": rt.group("quorum-worker")})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in parts]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            high = consumer.get_watermark_offsets(tp, timeout=10)[1]
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


_UNACKED = re.compile(r"checkpoint \(\w+\) failed, (\d+) inputs stay unacknowledged")


@TOPOLOGIES
def test_a_worker_killed_during_a_redis_outage_loses_nothing(
    rt: RuntimeConfig,
    start_worker: StartWorker,
    own_redis: OwnRedis,
    tmp_path: Path,
    topology: str,
) -> None:
    """Part A is processed and saved; Redis goes down; part B is processed (checkpoints fail);
    the worker is SIGKILLed; Redis and a new worker come back and part C follows. Catches:
    acks (offset commits) released by a failed save — B would then not be re-delivered, the new
    worker would miss what B taught, and C's signals would differ or be missing."""
    ticks = list(read_ticks(SAMPLE_FILES))
    a, b = ticks[: len(ticks) // 2], ticks[len(ticks) // 2 : 3 * len(ticks) // 4]
    c = ticks[3 * len(ticks) // 4 :]
    expected = run_backtest([_write_jsonl(tmp_path / "all.jsonl", ticks)]).signals
    durable = (*DURABLE, "--topology", topology)
    pack = PACKS[topology]
    first = start_worker(*durable)
    log = tmp_path / "worker0.log"
    replay([_write_jsonl(tmp_path / "a.jsonl", a)], rt, speed=None, pack=pack)
    wait_until("part A saved and committed", lambda: _group_lag(rt, rt.topic("ticks")) == 0, 180)
    own_redis.stop()
    records = replay([_write_jsonl(tmp_path / "b.jsonl", b)], rt, speed=None, pack=pack).records
    held = TICK_AGENTS[topology] * records

    def b_processed_unsaved() -> bool:  # every agent's inputs of B are held, unacked
        return any(int(n) >= held for n in _UNACKED.findall(log_text(log)))

    wait_until("part B processed while Redis is down", b_processed_unsaved, 180)
    assert _group_lag(rt, rt.topic("ticks")) >= records  # nothing of B was committed
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    own_redis.start()
    second = start_worker(*durable)
    replay([_write_jsonl(tmp_path / "c.jsonl", c)], rt, speed=None, pack=pack)
    got = collect(rt, len(expected))
    assert_same_signals(got, expected)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    final = log_counters(tmp_path / "worker1.log")[-1]
    assert final["state_keys_loaded"] > 0  # part A's saved state
    assert final["ticks"] >= len(b) + len(c)  # B came again: it had never been acknowledged


def test_tampered_state_is_refused_by_the_worker(
    rt: RuntimeConfig,
    start_worker: StartWorker,
    pipeline: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = redis_client(os.environ.get("QUORUM_REDIS_URL", "redis://127.0.0.1:6379/0"))
    forged = StateSealer(b"not-the-real-secret-0123", pipeline).seal(
        "microstructure/BTCUSDT", {"evil": True}, version=1
    )
    client.set(f"quorum:{{{pipeline}:p0}}:state:microstructure/BTCUSDT", forged)
    monkeypatch.setenv("QUORUM_STATE_BACKEND", "redis")  # the config's way to ask for --state redis
    worker = start_worker()
    assert worker.wait(timeout=60) == 2
    log = (tmp_path / "worker0.log").read_text()
    assert "refusing to start" in log
    assert "microstructure/BTCUSDT: bad signature" in log
