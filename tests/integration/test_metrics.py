"""The worker's /metrics on its Faust web port, scraped while it runs on the real Kafka (memory
and Redis state): the counts it exposes equal what went in (ticks replayed) and what came out
(signals on the topic), and the lag falls to 0.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from config.runtime import RuntimeConfig
from config.settings import load_config
from streams.redis_store import redis_client
from streams.replay import replay
from tests.conftest import SAMPLE_FILES
from tests.integration.conftest import drain, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

StartWorker = Callable[..., subprocess.Popen[bytes]]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> tuple[str, Samples] | None:
    """(content type, samples by name) from the worker's /metrics; None while it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            ctype, body = resp.headers["Content-Type"], resp.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return ctype, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    )


@pytest.mark.parametrize("state", ["memory", "redis"])
def test_worker_metrics_count_the_ticks_replayed_and_the_signals_sent(
    rt: RuntimeConfig, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    """Catches: /metrics not served on the web port, ticks or signals counted twice or lost
    (a batch not flushed, a decision counted per stage), the lag not falling back to 0 once
    everything is processed, a metric without the quorum_ prefix; with Redis state, saved
    checkpoints missing from the latency histogram."""
    pipeline = f"it-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("QUORUM_PIPELINE", pipeline)  # the worker's own Redis namespace
    monkeypatch.setenv("QUORUM_STATE_SECRET", "integration-test-secret-0123456789")
    port = free_port()
    try:
        _check_metrics(rt, start_worker("--web-port", str(port), "--state", state), port, state)
    finally:
        client = redis_client(os.environ.get("QUORUM_REDIS_URL", "redis://127.0.0.1:6379/0"))
        with contextlib.suppress(redis.RedisError):
            keys = list(client.scan_iter(match=f"quorum:{{{pipeline}*"))
            if keys:
                client.delete(*keys)


def _check_metrics(
    rt: RuntimeConfig, worker: subprocess.Popen[bytes], port: int, state: str
) -> None:
    files = SAMPLE_FILES[:1]  # tests/fixtures/btcusdt_head.gz
    summary = replay(files, rt, speed=None)
    assert summary.sent > 1000
    last: list[Samples] = [{}]

    def ticks_counted() -> bool:
        assert worker.poll() is None, "the worker exited"
        got = scrape(port)
        if got is None:
            return False
        last[0] = got[1]
        return total(got[1], "quorum_ticks_total") >= summary.sent

    wait_until("every replayed tick in quorum_ticks_total", ticks_counted, 180)
    assert total(last[0], "quorum_ticks_total") == summary.sent
    assert total(last[0], "quorum_ticks_total", symbol="BTCUSDT") == summary.sent

    signals_topic = rt.topic("signals")
    counted: list[tuple[int, float]] = [(-1, -1.0)]

    def signals_match() -> bool:
        got = scrape(port)
        assert got is not None
        n_metric = total(got[1], "quorum_signals_total")
        n_topic = len(drain(rt, signals_topic))
        counted[0] = (n_topic, n_metric)
        return n_topic > 0 and n_topic == n_metric

    wait_until("the signals on the topic to equal quorum_signals_total", signals_match, 60)
    n_signals = counted[0][0]

    partitions = rt.topics.partitions
    ticks_topic = rt.topic("ticks")

    def caught_up() -> bool:
        got = scrape(port)
        assert got is not None
        lags = [
            v for lab, v in got[1].get("quorum_consumer_lag", []) if lab["topic"] == ticks_topic
        ]
        return len(lags) == partitions and not any(lags)

    wait_until("a lag of 0 on every ticks partition", caught_up, 30)
    if state == "redis":  # checkpoints every 2 s: one has been saved by now or soon
        wait_until(
            "a checkpoint in quorum_checkpoint_seconds",
            lambda: total((scrape(port) or ("", {}))[1], "quorum_checkpoint_seconds_count") > 0,
            30,
        )

    ctype, samples = scrape(port) or ("", {})
    assert ctype.startswith("text/plain")
    assert all(name.startswith("quorum_") for name in samples), sorted(samples)
    assert total(samples, "quorum_signals_total") == n_signals  # nothing since
    assert total(samples, "quorum_signals_total", action="HOLD") > 0
    stages = [s.name for s in load_config(None).stages]
    for stage in stages:
        losses = [v for lab, v in samples["quorum_stage_log_loss"] if lab["stage"] == stage]
        weights = [v for lab, v in samples["quorum_stage_weight"] if lab["stage"] == stage]
        assert len(losses) == 1 and 0 < losses[0] < 5 and math.isfinite(losses[0]), stage
        assert len(weights) == 1 and weights[0] >= 0, stage
    assert "quorum_process_cpu_seconds_total" in samples
    n_checkpoints = total(samples, "quorum_checkpoint_seconds_count")
    assert (n_checkpoints > 0) == (state == "redis")
    if n_checkpoints:
        assert 0 < total(samples, "quorum_checkpoint_seconds_sum") < 5 * n_checkpoints
        assert total(samples, "quorum_checkpoint_seconds_bucket", le="+Inf") == n_checkpoints
