"""Shared fixtures of the integration tests: the real broker and Redis, a fresh topic prefix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaException,
    TopicPartition,
)

from config.runtime import RuntimeConfig
from quorum.services import ServiceConfig, down, status, up
from streams.topics import admin_client, end_offsets, ensure_topics, retryable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def services() -> Iterator[ServiceConfig]:
    """The services ``scripts/services.sh up`` started (started here if not, then stopped)."""
    cfg = ServiceConfig.from_env()
    before = status(cfg)
    up(cfg)
    yield cfg
    if os.environ.get("QUORUM_KEEP_SERVICES"):
        return
    after = status(cfg)
    started_here = [
        a.name
        for b, a in zip(before.services, after.services, strict=True)
        if a.managed and not b.running
    ]
    if started_here:
        down(cfg, services=started_here)


@pytest.fixture
def prefix() -> str:
    return f"it-{uuid.uuid4().hex[:10]}."


@pytest.fixture
def rt(prefix: str) -> Iterator[RuntimeConfig]:
    """Runtime settings with a fresh topic prefix; the topics exist, and are deleted after."""
    runtime = RuntimeConfig().with_env({**os.environ, "QUORUM_TOPIC_PREFIX": prefix})
    names = ensure_topics(runtime)
    yield runtime
    admin = admin_client(runtime)  # keep a reference: a collected client fails its futures
    for future in admin.delete_topics(names, request_timeout=30).values():
        future.result(timeout=30)


@pytest.fixture
def start_worker(prefix: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``quorum worker`` processes on this test's topics (without the web server unless
    given ``--web-port``); all are stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "QUORUM_TOPIC_PREFIX": prefix}
        log = (tmp_path / f"worker{len(procs)}.log").open("wb")
        logs.append(log)
        web = [] if "--web-port" in args else ["--no-web"]  # the web server only when asked
        proc = subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "worker", *web, "-l", "info", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for log in logs:
        log.close()
    for n in range(len(logs)):  # shown by pytest only when the test failed
        lines = (tmp_path / f"worker{n}.log").read_text(errors="replace").splitlines()
        print(f"--- worker{n}.log (last 40 of {len(lines)} lines) ---")
        print("\n".join(lines[-40:]))


def drain(rt: RuntimeConfig, topic: str, timeout: float = 15.0) -> list[tuple[int, bytes, bytes]]:
    """Every message on ``topic`` as (partition, key, value), in per-partition order."""
    consumer = Consumer(
        {
            **rt.librdkafka(),
            "group.id": rt.group(f"drain-{uuid.uuid4().hex}"),
            "enable.auto.commit": False,
        }
    )
    out: list[tuple[int, bytes, bytes]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        high = dict(zip(partitions, end_offsets(consumer, topic, partitions), strict=True))
        todo = {p for p, h in high.items() if h > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or (msg.error() is not None and retryable(msg.error())):
                continue  # a topic whose metadata is still settling
            assert msg.error() is None, msg.error()
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            out.append((partition, msg.key() or b"", msg.value() or b""))
            if offset + 1 >= high[partition]:
                todo.discard(partition)
        assert not todo, f"partitions {sorted(todo)} of {topic} not read to the end in {timeout} s"
    finally:
        consumer.close()
    return out


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 90.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s`` (no fixed sleeps:
    the machine may be slow or busy with other tests)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.05)


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_log(path: Path, needle: str, count: int = 1, timeout_s: float = 90.0) -> None:
    """Wait until the worker log at ``path`` holds ``needle`` at least ``count`` times."""
    wait_until(
        f"{count} x {needle!r} in {path.name}",
        lambda: log_text(path).count(needle) >= count,
        timeout_s,
    )


_COUNTERS = re.compile(r"counters: ((?:\w+=\d+ ?)+)")


def log_counters(path: Path) -> list[dict[str, int]]:
    """Every ``counters: k=v ...`` line of a worker log, in order (streams.checkpoint)."""
    return [
        {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        for m in _COUNTERS.finditer(log_text(path))
    ]


def group_members(rt: RuntimeConfig) -> int | None:
    """Members of the worker group when it is stable with every member assigned, else None."""
    group = rt.group("quorum-worker")
    admin = admin_client(rt)
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)
    except KafkaException:
        return None  # coordinator not ready yet: ask again
    if desc.state != ConsumerGroupState.STABLE or not desc.members:
        return None
    if any(m.assignment is None or not m.assignment.topic_partitions for m in desc.members):
        return None
    return len(desc.members)


def wait_for_group(rt: RuntimeConfig, members: int, timeout_s: float = 120.0) -> None:
    """Wait until the worker group is stable with ``members`` members, each with partitions."""
    wait_until(f"a stable group of {members}", lambda: group_members(rt) == members, timeout_s)
