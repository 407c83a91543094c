"""Crash safety with state in Redis: SIGKILL a worker three times, share the partitions of two
workers and stop one, lose Redis for a while — the de-duplicated signals equal the backtest's.
A tampered state blob is refused and the worker does not run it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from config.runtime import RuntimeConfig
from models.sealed import StateSealer
from quorum import run_backtest
from streams.codecs import decode_signal
from streams.redis_store import redis_client
from streams.replay import replay
from streams.services import ServiceConfig, down, up
from tests.conftest import SAMPLE_FILES
from tests.integration.test_worker import assert_same_signals, collect

pytestmark = pytest.mark.integration

StartWorker = Callable[..., subprocess.Popen[bytes]]
SECRET = "recovery-test-secret-0123456789"
DURABLE = ("--state", "redis", "--checkpoint-every", "1500", "--checkpoint-interval", "0.5")


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh pipeline name (Redis namespace) and signing secret for the workers."""
    name = f"it-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("QUORUM_PIPELINE", name)
    monkeypatch.setenv("QUORUM_STATE_SECRET", SECRET)
    yield name
    client = redis_client(os.environ.get("QUORUM_REDIS_URL", "redis://127.0.0.1:6379/0"))
    keys = list(client.scan_iter(match=f"quorum:{name}:*"))
    if keys:
        client.delete(*keys)


class Watcher:
    """Counts distinct signal ids on the topic, in the background."""

    def __init__(self, rt: RuntimeConfig) -> None:
        self.ids: set[str] = set()
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
                        self.ids.add(decode_signal(msg.value() or b"").id)
        finally:
            consumer.close()

    def wait_for(self, n: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.ids) < n:
            assert time.monotonic() < deadline, f"only {len(self.ids)} of {n} signals arrived"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def paced_replay(rt: RuntimeConfig) -> Iterator[Watcher]:
    """The sample replayed at 20x in the background, with a watcher of the signals; on exit
    the replay has ended (it is joined) and the watcher is stopped."""
    feeder = threading.Thread(target=replay, args=(SAMPLE_FILES, rt), kwargs={"speed": 20.0})
    feeder.start()
    watcher = Watcher(rt)
    try:
        yield watcher
    finally:
        feeder.join()
        watcher.stop()


def two_workers(start_worker: StartWorker) -> tuple[subprocess.Popen[bytes], ...]:
    workers = start_worker(*DURABLE), start_worker(*DURABLE)
    time.sleep(8)  # both joined: the six partitions are split between them
    return workers


def test_sigkill_three_times_loses_and_repeats_nothing(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str
) -> None:
    expected = run_backtest(SAMPLE_FILES).signals
    replay(SAMPLE_FILES, rt, speed=None)
    watcher = Watcher(rt)
    try:
        for kill_after in (700, 1900, 3100):
            worker = start_worker(*DURABLE)
            watcher.wait_for(kill_after)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        start_worker(*DURABLE)
        got = collect(rt, len(expected))
    finally:
        watcher.stop()
    assert_same_signals(got, expected)


def test_two_workers_share_partitions_and_one_stops(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str
) -> None:
    expected = run_backtest(SAMPLE_FILES).signals
    first, second = two_workers(start_worker)
    with paced_replay(rt) as watcher:
        watcher.wait_for(1500)
        second.send_signal(signal.SIGTERM)  # graceful: checkpoint, hand over the partitions
        second.wait(timeout=60)
    got = collect(rt, len(expected))
    assert first.poll() is None
    assert_same_signals(got, expected)


def test_a_stalled_worker_is_fenced_off_and_changes_nothing(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str, tmp_path: Path
) -> None:
    """A worker frozen past its session loses its partitions without noticing; when it wakes
    it must not overwrite its successor's state: it is fenced off (exit 3) or told of the
    rebalance first. Either way, the signals stay the backtest's."""
    expected = run_backtest(SAMPLE_FILES).signals
    first, second = two_workers(start_worker)
    with paced_replay(rt) as watcher:
        watcher.wait_for(1000)
        second.send_signal(signal.SIGSTOP)  # frozen: no heartbeats, no checkpoints
        time.sleep(16)  # > the 10 s session: the first worker takes every partition
        second.send_signal(signal.SIGCONT)
    if first.poll() is not None:  # the first one was the fenced one: keep one running
        start_worker(*DURABLE)
    got = collect(rt, len(expected))
    assert_same_signals(got, expected)
    logs = "".join((tmp_path / f"worker{n}.log").read_text() for n in (0, 1))
    exited_fenced = 3 in (first.poll(), second.poll())
    assert exited_fenced == ("state written by another worker" in logs)


def test_redis_outage_mid_stream_changes_nothing(
    rt: RuntimeConfig, start_worker: StartWorker, pipeline: str
) -> None:
    expected = run_backtest(SAMPLE_FILES).signals
    start_worker(*DURABLE)
    services = ServiceConfig.from_env()
    try:
        with paced_replay(rt) as watcher:
            watcher.wait_for(1000)
            down(services, services=("redis",))
            time.sleep(4)
            up(services, services=("redis",))
        got = collect(rt, len(expected))
    finally:
        up(services, services=("redis",))
    assert_same_signals(got, expected)


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
    client.set(f"quorum:{pipeline}:state:microstructure/BTCUSDT", forged)
    monkeypatch.setenv("QUORUM_STATE_BACKEND", "redis")  # the config's way to ask for --state redis
    worker = start_worker()
    assert worker.wait(timeout=60) == 2
    log = (tmp_path / "worker0.log").read_text()
    assert "refusing to start" in log
    assert "microstructure/BTCUSDT: bad signature" in log
