"""``quorum live``: the live loop under one command — the feed (in this process), the worker and
the paper agent (child processes), on the services of ``quorum services up``, with a terminal
view, stopped cleanly together.

Stopping (Ctrl-C, SIGTERM or ``--duration``) stops the feed first, waits until the worker's
signals and the paper account stop moving (everything fed is processed), then stops the paper
agent (it checkpoints) and the worker, and prints the paper result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from rich.console import Group
from rich.live import Live
from rich.table import Table

from config.runtime import RuntimeConfig
from streams.feed import VENUES, Feed, FeedConfig, Recorder
from streams.feed_kafka import KafkaTickSink
from streams.metrics import FEED_PORT, PAPER_PORT, FeedMetrics, serve
from streams.topics import end_offsets

log = logging.getLogger("quorum.live")


@dataclass
class LiveOptions:
    venue: str
    symbols: list[str]
    url: str | None = None
    paper: bool = True
    account: str = "live"
    paper_config: Path | None = None
    config: Path | None = None
    record: Path | None = None
    duration: float | None = None
    view: bool = True
    log_dir: Path = Path("out/live")
    quiet_s: float = 4.0  # nothing new for this long after the feed stopped: all processed
    rotate_s: float | None = None
    stop_when_quiet: float | None = None  # stop once no frame came for this long (a replay)
    reorder_ms: float = 500.0
    metrics: bool = False  # Prometheus metrics on the documented ports (streams.metrics)


@dataclass
class _Watch:
    """What the view shows, read from the topics and Redis."""

    signals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=6))
    actions: Counter[str] = field(default_factory=Counter)
    account: dict[str, Any] | None = None


def _child(args: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    out = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", *args], stdout=out, stderr=subprocess.STDOUT
    )
    return proc, out


def _account(runtime: RuntimeConfig, account: str) -> dict[str, Any] | None:
    """The paper account's last checkpoint, summarised (None until it has one)."""
    from quorum.paper_cmd import paper_store
    from streams.paper_agent import AgentState, account_key

    try:
        st = paper_store(runtime).get(account_key(account))
    except Exception as e:  # a view must not kill the loop: say why it is blank
        return {"error": str(e)}
    if not isinstance(st, AgentState):
        return None
    s = st.session
    rep = s.report()
    positions = {
        sym: round(p.size, 8)
        for sym, p in sorted(s.trader.account.positions.items())
        if abs(p.size) > 1e-12
    }
    return {
        "inputs": st.inputs,
        "equity": rep["equity"],
        "net_pnl": rep["net_pnl"],
        "fees": rep["fees"],
        "n_orders": rep["n_orders"],
        "n_fills": rep["n_fills"],
        "positions": positions,
        "halted": s.trader.halted,
    }


def _view(feed: Feed, watch: _Watch, opts: LiveOptions) -> Group:
    st = feed.stats
    last = feed.sink.last_status if isinstance(feed.sink, KafkaTickSink) else None
    health = Table(title=f"feed {opts.venue}", show_header=False)
    rates = (last or {}).get("ticks_per_s", {})
    lat = (last or {}).get("frame_to_tick_ms", {})
    for k, v in (
        ("ticks/s", ", ".join(f"{s} {r:,.0f}" for s, r in rates.items()) or "-"),
        ("ticks / rejects", f"{st.ticks:,} / {st.rejects:,}"),
        ("connects / stale / rotations", f"{st.connects} / {st.stale} / {st.rotations}"),
        ("duplicates / gaps (ids)", f"{st.duplicates:,} / {st.gaps} ({st.missing})"),
        ("clock offset", f"{(st.offset_ns or 0) / 1e6:.1f} ms"),
        ("frame to tick p50/p99", f"{lat.get('p50')} / {lat.get('p99')} ms"),
    ):
        health.add_row(k, v)
    sig = Table("signal", "action", "p_up", "stages (p_up × weight)", title="last signals")
    for s in reversed(watch.signals):
        stages = " ".join(
            f"{v['name']}:{(v['p_up'] if v['p_up'] is not None else float('nan')):.2f}"
            f"×{v['weight']:.2f}"
            for v in s.get("stages", [])
        )
        sig.add_row(f"{s['symbol']} {s['id'][:8]}", s["action"], f"{s['p_up']:.3f}", stages)
    acct = Table(title=f"paper {opts.account}", show_header=False)
    for k, v in (watch.account or {"waiting": "for the first checkpoint"}).items():
        acct.add_row(k, f"{v:,.2f}" if isinstance(v, float) else str(v))
    counts = ", ".join(f"{a} {n:,}" for a, n in sorted(watch.actions.items())) or "-"
    acct.add_row("signals", counts)
    return Group(health, sig, acct)


def run_live(opts: LiveOptions, runtime: RuntimeConfig) -> dict[str, Any]:
    """Run the loop; the final summary (feed, signals, paper account)."""
    from streams.topics import ensure_topics

    ensure_topics(runtime)
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    cfg_args = ["--config", str(opts.config)] if opts.config else []
    children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
    feed_metrics, server = None, None
    if opts.metrics:  # first: a port in use stops us before any child starts
        feed_metrics = FeedMetrics()
        server = serve(feed_metrics.registry, FEED_PORT)
    # with metrics the worker serves /metrics on its web port (runtime.web), the agent and
    # the feed (here) on the documented ports
    web = [] if opts.metrics else ["--no-web"]
    worker, wlog = _child(["worker", *web, "-l", "warning", *cfg_args], opts.log_dir / "worker.log")
    children.append(("worker", worker, wlog))
    if opts.paper:
        args = ["paper", "run", "--account", opts.account, *cfg_args]
        if opts.paper_config is not None:
            args += ["--paper-config", str(opts.paper_config)]
        if opts.metrics:
            args += ["--metrics-port", str(PAPER_PORT)]
        agent, plog = _child(args, opts.log_dir / "paper.log")
        children.append(("paper", agent, plog))
    venue = VENUES[opts.venue]()
    sink = KafkaTickSink(runtime)
    recorder = Recorder(opts.record, venue.name) if opts.record is not None else None
    feed = Feed(
        venue,
        FeedConfig(
            symbols=opts.symbols, url=opts.url, rotate_s=opts.rotate_s, reorder_ms=opts.reorder_ms
        ),
        sink,
        recorder=recorder,
    )
    if feed_metrics is not None:
        feed.on_status = feed_metrics.update
    watch = _Watch()
    signals_topic = runtime.topic("signals")
    consumer = Consumer(
        {
            **runtime.librdkafka(),
            "group.id": runtime.group("live-view"),
            "enable.auto.commit": False,
        }
    )
    n_parts = len(consumer.list_topics(signals_topic, timeout=10).topics[signals_topic].partitions)
    # from the end as it is now (resolved here, not at the first read, which comes later)
    ends = end_offsets(consumer, signals_topic, range(n_parts))
    consumer.assign([TopicPartition(signals_topic, p, ends[p]) for p in range(n_parts)])

    def read_signals() -> None:
        for msg in consumer.consume(500, timeout=0):
            if msg.error() is None:
                with contextlib.suppress(orjson.JSONDecodeError):
                    s = orjson.loads(msg.value() or b"")
                    watch.actions[s["action"]] += 1
                    if s["action"] != "HOLD":
                        watch.signals.append(s)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if opts.duration is not None:
            loop.call_later(opts.duration, stop.set)
        task = asyncio.create_task(feed.run(stop))
        live = Live(_view(feed, watch, opts), refresh_per_second=2) if opts.view else None
        with live if live is not None else contextlib.nullcontext():
            last_acct = 0.0
            frames, frames_at = -1, time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.5)
                read_signals()
                if feed.stats.frames != frames:
                    frames, frames_at = feed.stats.frames, time.monotonic()
                elif (
                    opts.stop_when_quiet is not None
                    and frames > 0
                    and time.monotonic() - frames_at >= opts.stop_when_quiet
                ):
                    log.warning("no frame for %.1f s: stopping", opts.stop_when_quiet)
                    stop.set()
                for name, proc, _ in children:
                    if proc.poll() is not None:
                        log.error("%s exited (code %s): stopping", name, proc.returncode)
                        stop.set()
                if opts.paper and time.monotonic() - last_acct >= 2.0:
                    last_acct = time.monotonic()
                    watch.account = await asyncio.to_thread(_account, runtime, opts.account)
                if live is not None:
                    live.update(_view(feed, watch, opts))
            await task
            # everything fed is processed once signals and the account stop moving
            quiet_since, marks, inputs = time.monotonic(), None, None
            while time.monotonic() - quiet_since < opts.quiet_s:
                await asyncio.sleep(0.5)
                read_signals()
                now_marks = end_offsets(consumer, signals_topic, range(n_parts))
                now_inputs = None
                if opts.paper:
                    watch.account = await asyncio.to_thread(_account, runtime, opts.account)
                    now_inputs = (watch.account or {}).get("inputs")
                if (now_marks, now_inputs) != (marks, inputs):
                    marks, inputs, quiet_since = now_marks, now_inputs, time.monotonic()
                if live is not None:
                    live.update(_view(feed, watch, opts))

    try:
        asyncio.run(main())
    finally:
        for name, proc, out in reversed(children):  # the paper agent first: it checkpoints
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    log.error("%s did not stop in 60 s: killing it", name)
                    proc.kill()
                    proc.wait()
            out.close()
        consumer.close()
        if server is not None:
            server.shutdown()
    if opts.paper:
        watch.account = _account(runtime, opts.account)
    st = feed.stats
    return {
        "venue": opts.venue,
        "symbols": opts.symbols,
        "feed": {
            **st.counts(),
            "recorded": [str(p) for p in recorder.files] if recorder else [],
        },
        "signals": dict(watch.actions),
        "paper": watch.account,
        "children": {name: proc.returncode for name, proc, _ in children},
        "logs": str(opts.log_dir),
        "topic_prefix": runtime.topics.prefix,
        "pid": os.getpid(),
    }
