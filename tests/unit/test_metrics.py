"""Prometheus metrics (streams/metrics.py) by hand: each value below is computed on paper, and
each test names the bug it catches. Plus the docker side (Prometheus scrape config, Grafana
dashboard) checked against the registries, since Docker cannot run here.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from faust.types import TP
from prometheus_client import CollectorRegistry

from agents.paper_account import Account
from agents.voting import Decision, Scored
from config.runtime import RuntimeConfig
from models.ensemble import log_loss
from models.orders import Fill
from models.records import Action, Signal, StageVote
from streams import metrics as m
from streams.checkpoint import Checkpointer
from streams.faust_app import update_lag
from streams.feed import BinanceVenue, Feed, FeedConfig, MemorySink
from streams.metrics import FeedMetrics, PaperMetrics, WorkerMetrics, new_registry
from tests.unit.test_checkpoint import Clock, Event, Store
from tests.unit.test_layers import _imports

ROOT = Path(__file__).resolve().parents[2]
BTC, ETH = "BTCUSDT", "ETHUSDT"


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def signal(symbol: str, action: Action, weights: dict[str, float], seq: int = 0) -> Signal:
    stages = tuple(StageVote(n, f"{n}:1", 1, 0.5, w) for n, w in weights.items())
    return Signal("id", symbol, seq, 0, 5, action, 0.5, True, stages, (), "hash")


def scored(symbol: str, up: bool, **p: float | None) -> Scored:
    return Scored(symbol, 0, 0, up, Action.HOLD, 0.5, dict(p))


def decision(sig: Signal, *outcomes: Scored) -> Decision:
    return Decision(sig, tuple(outcomes))


def worker(window: int = 500) -> WorkerMetrics:
    return WorkerMetrics(new_registry(process=False), window=window)


# --- the worker ------------------------------------------------------------------------------


def test_rolling_log_loss_is_the_mean_over_the_scored_outcomes_skipping_abstentions() -> None:
    """Catches: an abstention (p None) counted as a coin, the down outcome scored with p
    instead of 1 - p, the mean over all outcomes instead of the stage's own."""
    w = worker()
    sig = signal(BTC, Action.HOLD, {"a": 1.0, "b": 1.0})
    w.decision(decision(sig, scored(BTC, True, a=0.8, b=None), scored(BTC, False, a=0.6, b=0.5)))
    w.decision(decision(sig, scored(BTC, True, a=0.3, b=None)))
    w.flush()
    want_a = (-math.log(0.8) - math.log(0.4) - math.log(0.3)) / 3  # 0.7364...
    assert value(w.registry, "quorum_stage_log_loss", stage="a", symbol=BTC) == pytest.approx(
        want_a, abs=1e-12
    )
    assert value(w.registry, "quorum_stage_log_loss", stage="b", symbol=BTC) == pytest.approx(
        math.log(2), abs=1e-12
    )  # its one vote, 0.5 on a down: ln 2; the two abstentions are not in it


def test_the_inlined_log_loss_is_the_ensembles() -> None:
    """Catches: the worker's rolling log-loss clipping differently from the reports'
    (models.ensemble.log_loss), so the two would disagree on a confident stage."""
    ps = [0.0, 1e-9, 1e-6, 0.3, 0.5, 0.77, 1 - 1e-7, 1.0]
    w = worker(window=1)
    for p in ps:
        for up in (True, False):
            w.decision(decision(signal(BTC, Action.HOLD, {"a": 1.0}), scored(BTC, up, a=p)))
            w.flush()
            got = value(w.registry, "quorum_stage_log_loss", stage="a", symbol=BTC)
            assert got == log_loss(p, up), (p, up)  # the same float


def test_rolling_log_loss_forgets_outcomes_older_than_the_window() -> None:
    """Catches: a cumulative mean where a rolling one is documented (an old good spell would
    hide a stage that broke)."""
    w = worker(window=2)
    sig = signal(ETH, Action.HOLD, {"a": 1.0})
    for p, up in ((0.9, True), (0.7, True), (0.2, False)):
        w.decision(decision(sig, scored(ETH, up, a=p)))
    w.flush()
    want = (-math.log(0.7) - math.log(0.8)) / 2  # the 0.9 fell out of the window
    got = value(w.registry, "quorum_stage_log_loss", stage="a", symbol=ETH)
    assert got == pytest.approx(want, abs=1e-12)


def test_signals_by_action_and_stage_weights_from_the_last_receipt() -> None:
    """Catches: signals counted under the wrong labels or twice per flush, a weight taken from
    the first signal of a batch instead of the last, an action's series missing until it first
    happens (rate() would miss the first SELL)."""
    w = worker()
    w.decision(decision(signal(BTC, Action.BUY, {"a": 0.2, "b": 1.8})))
    w.decision(decision(signal(BTC, Action.HOLD, {"a": 0.4, "b": 1.6})))
    w.decision(decision(signal(ETH, Action.HOLD, {"a": 1.0, "b": 1.0})))
    w.flush()
    w.decision(decision(signal(BTC, Action.HOLD, {"a": 0.5, "b": 1.5})))
    w.flush()
    w.flush()  # nothing new: nothing counted again
    r = w.registry
    assert value(r, "quorum_signals_total", symbol=BTC, action="BUY") == 1
    assert value(r, "quorum_signals_total", symbol=BTC, action="HOLD") == 2
    assert value(r, "quorum_signals_total", symbol=BTC, action="SELL") == 0
    assert value(r, "quorum_signals_total", symbol=ETH, action="HOLD") == 1
    assert value(r, "quorum_stage_weight", stage="a", symbol=BTC) == 0.5
    assert value(r, "quorum_stage_weight", stage="b", symbol=BTC) == 1.5
    assert value(r, "quorum_stage_weight", stage="a", symbol=ETH) == 1.0


def test_ticks_reach_the_counter_at_the_flush_once() -> None:
    """Catches: the per-tick counts lost or counted again by a second flush."""
    w = worker()
    w.pending_ticks[BTC] += 3
    w.pending_ticks[ETH] += 1
    assert value(w.registry, "quorum_ticks_total", symbol=BTC) is None  # per batch, not per tick
    w.flush()
    w.pending_ticks[BTC] += 2
    w.flush()
    w.flush()
    assert value(w.registry, "quorum_ticks_total", symbol=BTC) == 5
    assert value(w.registry, "quorum_ticks_total", symbol=ETH) == 1


def test_lag_is_end_minus_position_and_revoked_partitions_disappear() -> None:
    """Catches: lag as position - end, or the series of a revoked partition frozen at its last
    value (a dashboard would show lag on a partition this worker no longer reads)."""
    w = worker()
    w.set_lag({("ticks", 0): 100, ("ticks", 1): 5}, {("ticks", 0): 40, ("ticks", 1): 5})
    assert value(w.registry, "quorum_consumer_lag", topic="ticks", partition="0") == 60
    assert value(w.registry, "quorum_consumer_lag", topic="ticks", partition="1") == 0
    w.set_lag({("ticks", 0): 120}, {("ticks", 0): 120})
    assert value(w.registry, "quorum_consumer_lag", topic="ticks", partition="0") == 0
    assert value(w.registry, "quorum_consumer_lag", topic="ticks", partition="1") is None


class FakeConsumer:
    def __init__(self, ends: dict[Any, int], positions: dict[Any, int]) -> None:
        self.ends, self.positions, self.asked = ends, positions, []

    def assignment(self) -> set[Any]:
        return set(self.ends)

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp: Any) -> int:
        self.asked.append(tp)
        return self.positions[tp]


def test_worker_lag_uses_the_processed_offset_and_the_consumer_position_only_before_it() -> None:
    """Catches: the consumer's fetch position (ahead of what the agents processed) used for a
    partition the worker has processed; an empty partition queried every second."""
    tp = [TP("ticks", p) for p in range(3)]
    key = [(t.topic, t.partition) for t in tp]
    consumer = FakeConsumer({tp[0]: 900, tp[1]: 50, tp[2]: 0}, {tp[0]: 800, tp[1]: 20})
    w = worker()
    asyncio.run(update_lag(consumer, {tp[0]: 300}, w))  # 300 processed; fetched up to 800
    lags = {
        k: value(w.registry, "quorum_consumer_lag", topic=k[0], partition=str(k[1])) for k in key
    }
    assert lags == {key[0]: 600, key[1]: 30, key[2]: 0}
    assert consumer.asked == [tp[1]]  # only the partition with data and nothing processed


def test_checkpoint_latency_is_observed_for_saved_checkpoints_only() -> None:
    """Catches: a failed save observed as a fast checkpoint (latency would look fine while
    Redis is down), or the latency measured on the wrong clock."""
    w = worker()
    clock, log = Clock(), []
    store = Store(log)

    async def flush() -> None:
        clock.now += 0.25  # the outputs take 250 ms

    cp = Checkpointer(
        store,
        flush,
        every=10,
        interval_s=1.0,
        on_fenced=lambda e: None,
        clock=clock,
        sleep=clock.sleep,
        write=_now,
        on_saved=w.checkpoint_done,
    )
    cp.hold([Event("a")])
    assert asyncio.run(cp.checkpoint("events"))
    store.down = True
    cp.hold([Event("b")])
    assert not asyncio.run(cp.checkpoint("shutdown"))
    r = w.registry
    assert value(r, "quorum_checkpoint_seconds_count") == 1
    assert value(r, "quorum_checkpoint_seconds_sum") == pytest.approx(0.25)
    assert value(r, "quorum_checkpoint_seconds_bucket", le="0.1") == 0
    assert value(r, "quorum_checkpoint_seconds_bucket", le="0.25") == 1


async def _now(fn: Any) -> Any:
    return fn()


def test_record_drift_alarm_counts_into_the_current_worker_and_is_a_no_op_without_one() -> None:
    """Catches: the module-level hook the kernel's driver calls not reaching the worker's
    registry, or failing in a process with no worker (the embedded backtest)."""
    w = worker()
    m.set_current(None)
    m.record_drift_alarm("flow", BTC, "mute")  # no worker: nothing, no error
    m.set_current(w)
    try:
        m.record_drift_alarm("flow", BTC, "mute")
        m.record_drift_alarm("flow", BTC, "mute")
        w.record_drift_alarm("counts", ETH, "alert")
    finally:
        m.set_current(None)
    r = w.registry
    assert value(r, "quorum_drift_alarms_total", stage="flow", symbol=BTC, action="mute") == 2
    assert value(r, "quorum_drift_alarms_total", stage="counts", symbol=ETH, action="alert") == 1


# --- the feed and the paper agent -----------------------------------------------------------


def test_feed_counters_follow_the_stats_by_their_increase() -> None:
    """Catches: cumulative stats added again at every status (counters would grow
    quadratically), the per-symbol ticks read after the status cleared them, the offset in ns."""
    f = Feed(BinanceVenue(), FeedConfig(symbols=[BTC]), MemorySink())
    fm = FeedMetrics(new_registry(process=False))
    f.on_status = fm.update
    st = f.stats
    st.frames, st.gaps, st.missing, st.disconnects = 10, 1, 4, 1
    st.per_symbol.update({BTC: 7})
    f.offset.fix(1_270_000_000)
    f._status()
    st.frames, st.gaps = 25, 3
    st.per_symbol.update({BTC: 2, ETH: 1})
    f._status()
    r = fm.registry
    assert value(r, "quorum_feed_frames_total", venue="binance") == 25
    assert value(r, "quorum_feed_gaps_total", venue="binance") == 3
    assert value(r, "quorum_feed_missing_ids_total", venue="binance") == 4
    assert value(r, "quorum_feed_reconnects_total", venue="binance") == 1
    assert value(r, "quorum_feed_stale_total", venue="binance") == 0
    assert value(r, "quorum_feed_ticks_total", venue="binance", symbol=BTC) == 9
    assert value(r, "quorum_feed_ticks_total", venue="binance", symbol=ETH) == 1
    assert value(r, "quorum_feed_clock_offset_seconds", venue="binance") == 1.27
    assert value(r, "quorum_feed_connected", venue="binance") == 0
    assert not st.per_symbol  # the status record still got (and cleared) them


def test_paper_pnl_is_net_of_fees_per_symbol_and_sums_to_the_accounts_net_pnl() -> None:
    """Catches: PnL gross of fees, the unrealised part left out or taken at the entry price,
    fills counted from the total again at every update."""
    acct = Account(starting_cash=1_000.0)
    acct.apply(Fill("f1", "o1", "s1", BTC, 1, "buy", 100.0, 1.0, 0.1, "taker"))
    acct.apply(Fill("f2", "o2", "s2", BTC, 2, "sell", 110.0, 0.5, 0.055, "taker"))
    acct.apply(Fill("f3", "o3", "s3", ETH, 3, "sell", 10.0, 2.0, 0.02, "taker"))
    marks = {BTC: 120.0, ETH: 9.0}
    trader = SimpleNamespace(account=acct, marks=lambda: marks, halted=False)
    session: Any = SimpleNamespace(trader=trader)
    stats: Any = SimpleNamespace(fills=3, orders=3, ticks=40, signals=3)
    pm = PaperMetrics(new_registry(process=False))
    pm.update(session, stats)
    stats.fills = 5
    pm.update(session, stats)
    r = pm.registry
    # BTC: realised 0.5 x (110 - 100) = 5, unrealised 0.5 x (120 - 100) = 10, fees 0.155
    assert value(r, "quorum_paper_pnl", symbol=BTC) == pytest.approx(14.845)
    # ETH: short 2 at 10, mark 9: unrealised +2, fees 0.02
    assert value(r, "quorum_paper_pnl", symbol=ETH) == pytest.approx(1.98)
    assert value(r, "quorum_paper_position", symbol=BTC) == 0.5
    assert value(r, "quorum_paper_position", symbol=ETH) == -2.0
    equity = value(r, "quorum_paper_equity")
    assert equity == pytest.approx(acct.equity(marks))
    assert equity - 1_000.0 == pytest.approx(14.845 + 1.98)  # Σ per-symbol PnL = net PnL
    assert value(r, "quorum_paper_fills_total") == 5
    assert value(r, "quorum_paper_halted") == 0


# --- exposition ------------------------------------------------------------------------------


def test_served_metrics_are_the_text_format_and_every_name_starts_with_quorum() -> None:
    """Catches: a metric without the quorum_ prefix (the default registry's python_* or
    process_* series leaking in), or the exporter serving another registry."""
    w = WorkerMetrics()  # with the process collector, as in a real process
    w.pending_ticks[BTC] += 4
    w.decision(decision(signal(BTC, Action.SELL, {"a": 1.0}), scored(BTC, True, a=0.5)))
    w.flush()
    server = m.serve(w.registry, 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            ctype, body = resp.headers["Content-Type"], resp.read().decode()
    finally:  # shutdown() waits out the server's 0.5 s poll: let a thread do it

        def stop() -> None:
            server.shutdown()
            server.server_close()

        threading.Thread(target=stop, daemon=True).start()
    assert ctype.startswith("text/plain")
    names = {line.split("{")[0].split()[0] for line in body.splitlines() if line[:1] != "#"}
    assert 'quorum_ticks_total{symbol="BTCUSDT"} 4.0' in body
    assert "quorum_process_cpu_seconds_total" in names
    assert names and all(n.startswith(m.PREFIX) for n in names), sorted(names)
    body2, ctype2 = m.exposition(w.registry, "application/openmetrics-text")
    assert ctype2.startswith("application/openmetrics-text") and body2.endswith(b"# EOF\n")


def test_the_kernel_never_imports_prometheus() -> None:
    """Catches: metrics code creeping into agents/, models/ or config/ (the kernel must stay
    pure, the same in the backtest and on Kafka)."""
    bad = [
        str(p.relative_to(ROOT))
        for pkg in ("agents", "models", "config")
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "prometheus_client" in _imports(p)
    ]
    assert not bad


# --- docker: the scrape config and the dashboard against the registries ---------------------


def _registry_names() -> set[str]:
    names: set[str] = set()
    for reg in m.all_registries():
        names |= m.metric_names(reg)
    return names


def test_every_metric_the_dashboard_queries_exists() -> None:
    """Catches: a renamed metric leaving a dashboard panel silently empty."""
    dash = json.loads((ROOT / "docker/grafana/dashboards/quorum.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    queried = {n for e in exprs for n in re.findall(r"\bquorum_[a-z0-9_]+", e)}
    assert len(queried) >= 15, queried
    assert queried <= _registry_names(), sorted(queried - _registry_names())
    for needed in (
        "quorum_ticks_total",
        "quorum_consumer_lag",
        "quorum_signals_total",
        "quorum_stage_log_loss",
        "quorum_stage_weight",
        "quorum_drift_alarms_total",
        "quorum_checkpoint_seconds_bucket",
        "quorum_feed_gaps_total",
        "quorum_feed_clock_offset_seconds",
        "quorum_paper_pnl",
        "quorum_paper_position",
    ):
        assert needed in queried, needed
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert {t["datasource"]["uid"] for p in dash["panels"] for t in p.get("targets", [])} == {
        datasource["uid"]
    }
    assert datasource["url"] == "http://127.0.0.1:9090"


def test_the_scrape_config_targets_the_documented_ports_and_compose_mounts_it() -> None:
    """Catches: Prometheus scraping a port no quorum process serves on."""
    prom = yaml.safe_load((ROOT / "docker/prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in prom["scrape_configs"]
    }
    assert targets == {
        "quorum-worker": [f"127.0.0.1:{m.WORKER_PORT}"],
        "quorum-feed": [f"127.0.0.1:{m.FEED_PORT}"],
        "quorum-paper": [f"127.0.0.1:{m.PAPER_PORT}"],
    }
    assert all(job["metrics_path"] == "/metrics" for job in prom["scrape_configs"])
    assert RuntimeConfig().web.port == m.WORKER_PORT  # the worker's default web port
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert (
        "./docker/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (compose["prometheus"]["volumes"])
    )
    assert "127.0.0.1:9090" in " ".join(compose["prometheus"]["command"])
    for mount in compose["grafana"]["volumes"]:
        assert (ROOT / mount.split(":")[0]).exists(), mount
    assert all(compose[s]["network_mode"] == "host" for s in ("prometheus", "grafana"))


def test_the_feed_and_paper_commands_take_a_metrics_port() -> None:
    """Catches: the option dropped from one of the commands (their help is what says so)."""
    from quorum import feed_cmd, paper_cmd

    for command in (feed_cmd.feed_binance, feed_cmd.feed_coinbase, paper_cmd.run):
        params = inspect.signature(command).parameters
        assert params["metrics_port"].default is None  # off unless asked for
        assert params["metrics_host"].default == "127.0.0.1"
    assert inspect.signature(feed_cmd.live).parameters["metrics"].default is False
