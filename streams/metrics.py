"""Prometheus metrics of the worker, the live feed and the paper agent; every name ``quorum_``.

Each process builds its metrics on its own :class:`~prometheus_client.CollectorRegistry`
(:func:`new_registry`), never on the library's global one, so tests can build several. How
they are served:

- the worker: ``/metrics`` on its Faust web port (``runtime.web``, default 127.0.0.1:6066;
  ``quorum worker --web-port``), see :func:`exposition`;
- the feed (``quorum feed binance|coinbase --metrics-port``, documented port
  :data:`FEED_PORT`) and the paper agent (``quorum paper run --metrics-port``,
  :data:`PAPER_PORT`): prometheus_client's HTTP server in a thread (:func:`serve`), bound to
  127.0.0.1 unless told otherwise.

The worker handles 10k+ ticks a second, so its hot path touches plain dicts only
(:attr:`WorkerMetrics.pending_ticks`, :meth:`WorkerMetrics.decision`); the Prometheus objects
are updated once per batch (:meth:`WorkerMetrics.flush`) and the consumer lag at most once a
second. The feed and the paper agent update theirs from their counters once a second.

The kernel (``agents/``, ``models/``) never imports this module or prometheus_client: only the
drivers in ``streams/`` do.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.exposition import choose_encoder

from models.records import Action

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from agents.paper_session import PaperSession
    from agents.voting import Decision
    from streams.feed import FeedStats
    from streams.paper_agent import AgentStats

__all__ = [
    "FEED_PORT",
    "LOSS_WINDOW",
    "PAPER_PORT",
    "PREFIX",
    "WORKER_PORT",
    "FeedMetrics",
    "PaperMetrics",
    "WorkerMetrics",
    "exposition",
    "metric_names",
    "new_registry",
    "record_drift_alarm",
    "serve",
    "set_current",
]

PREFIX = "quorum_"
#: The worker's Faust web port by default (``runtime.web.port``); ``/metrics`` is served there.
WORKER_PORT = 6066
#: The documented ``--metrics-port`` of ``quorum feed`` and ``quorum paper run``
#: (``docker/prometheus.yml`` scrapes these; both are off unless the option is given).
FEED_PORT = 9108
PAPER_PORT = 9109
#: Scored outcomes per stage and symbol in the rolling log-loss.
LOSS_WINDOW = 500
#: The worker refreshes the consumer lag at most this often.
LAG_INTERVAL_S = 1.0
#: Checkpoint latency buckets (seconds): a save is a few ms; seconds mean Redis trouble.
CHECKPOINT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_log = math.log
_EPS = 1e-6  # probabilities clipped as models.ensemble.log_loss clips them (tested)
_LO, _HI = _EPS, 1.0 - _EPS


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A registry of this process's own (not prometheus_client's global one), with the
    process's CPU, memory and file descriptors as ``quorum_process_*`` when ``process``.

    Also turns off the ``*_created`` series of counters and histograms in this process (they
    double the series and Prometheus does not need them)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    if process:
        ProcessCollector(namespace="quorum", registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The registry in the format the scraper's ``Accept`` header asks for (Prometheus text by
    default, OpenMetrics when asked) and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def serve(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1") -> WSGIServer:
    """Serve ``registry`` at ``http://addr:port/metrics`` from a daemon thread (the feed's and
    the paper agent's exporter); ``shutdown()`` the returned server to stop it."""
    server, _ = start_http_server(port, addr=addr, registry=registry)
    return server


def metric_names(registry: CollectorRegistry) -> set[str]:
    """The names a scrape of ``registry`` shows, with the ``_total``/``_bucket``/``_sum``/
    ``_count`` sample names of counters and histograms (what a PromQL query names)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


class WorkerMetrics:
    """The worker's metrics: ticks, consumer lag, signals by action, each stage's rolling
    log-loss and weight, drift alarms, checkpoint latency.

    Per tick the worker only bumps :attr:`pending_ticks`; per decision it calls
    :meth:`decision` (plain dicts and deques); :meth:`flush` moves both into the Prometheus
    objects once per batch. Not thread-safe: call everything from the worker's event loop
    (its web view, which scrapes, runs there too).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, window: int = LOSS_WINDOW
    ) -> None:
        self.registry = reg = registry if registry is not None else new_registry()
        self.window = window
        self.ticks = PromCounter(
            "quorum_ticks_total", "Ticks applied by the worker's kernel", ["symbol"], registry=reg
        )
        self.lag = Gauge(
            "quorum_consumer_lag",
            "Input records not yet processed: the partition's end offset minus the worker's "
            "position (refreshed at most once a second)",
            ["topic", "partition"],
            registry=reg,
        )
        self.signals = PromCounter(
            "quorum_signals_total", "Signals emitted", ["symbol", "action"], registry=reg
        )
        self.stage_log_loss = Gauge(
            "quorum_stage_log_loss",
            f"Each stage's mean log-loss over its last {window} scored outcomes (abstentions "
            "skipped; a coin scores ln 2 = 0.693)",
            ["stage", "symbol"],
            registry=reg,
        )
        self.stage_weight = Gauge(
            "quorum_stage_weight",
            "Each stage's weight in the voter, from the symbol's last signal's receipt",
            ["stage", "symbol"],
            registry=reg,
        )
        self.drift_alarms = PromCounter(
            "quorum_drift_alarms_total",
            "Drift alarms on a stage's skill, by the configured action",
            ["stage", "symbol", "action"],
            registry=reg,
        )
        self.checkpoint_seconds = Histogram(
            "quorum_checkpoint_seconds",
            "Checkpoint latency: inputs paused and the snapshot sealed, outputs flushed, the "
            "state written to Redis (successful checkpoints)",
            buckets=CHECKPOINT_BUCKETS,
            registry=reg,
        )
        #: ticks applied since the last flush, per symbol (the worker bumps it per tick)
        self.pending_ticks: Counter[str] = Counter()
        self._pending_signals: dict[tuple[str, Action], int] = {}
        self._last_signal: dict[str, Any] = {}  # symbol -> its last Signal since the flush
        self._losses: dict[str, dict[str, deque[float]]] = {}  # symbol -> stage -> losses
        self._dirty_losses: set[str] = set()  # symbols with new losses since the flush
        self._tick_children: dict[str, Any] = {}
        self._signal_children: dict[tuple[str, Action], Any] = {}
        self._weight_children: dict[tuple[str, str], Any] = {}
        self._lag_series: set[tuple[str, str]] = set()

    # --- the hot path: plain Python only -------------------------------------------------

    def decision(self, decision: Decision) -> None:
        """Count the signal and keep its receipt; add each stage's loss on the outcomes it
        resolved (a stage that abstained, p None, is skipped)."""
        signal = decision.signal
        symbol = signal.symbol
        key = (symbol, signal.action)
        pending = self._pending_signals
        pending[key] = pending.get(key, 0) + 1
        self._last_signal[symbol] = signal
        if decision.scored:  # the voter's outcomes, all of this symbol
            windows = self._losses.get(symbol)
            if windows is None:
                windows = self._losses[symbol] = {}
            for scored in decision.scored:
                up = scored.up
                for stage, p in scored.p_stages.items():
                    if p is None:
                        continue
                    window = windows.get(stage)
                    if window is None:
                        window = windows[stage] = deque(maxlen=self.window)
                    # models.ensemble.log_loss, inlined (per outcome and stage)
                    p = _LO if p < _LO else _HI if p > _HI else p
                    window.append(-_log(p if up else 1.0 - p))
            self._dirty_losses.add(symbol)

    # --- once per batch ------------------------------------------------------------------

    def flush(self, losses: bool = True) -> None:
        """Move what the hot path gathered into the Prometheus objects; the rolling log-losses
        (a mean over each window) only with ``losses`` (the worker: at most once a second,
        and at every scrape)."""
        if self.pending_ticks:
            for symbol, n in self.pending_ticks.items():
                child = self._tick_children.get(symbol)
                if child is None:
                    child = self._tick_children[symbol] = self.ticks.labels(symbol)
                child.inc(n)
            self.pending_ticks.clear()
        if self._pending_signals:
            for key, n in self._pending_signals.items():
                child = self._signal_children.get(key)
                if child is None:
                    self._new_symbol(key[0])
                    child = self._signal_children[key]
                child.inc(n)
            self._pending_signals.clear()
        if self._last_signal:
            weights = self._weight_children
            for symbol, signal in self._last_signal.items():
                for vote in signal.stages:
                    child = weights.get((vote.name, symbol))
                    if child is None:
                        child = weights[(vote.name, symbol)] = self.stage_weight.labels(
                            vote.name, symbol
                        )
                    child.set(vote.weight)
            self._last_signal.clear()
        if losses and self._dirty_losses:
            for symbol in self._dirty_losses:
                for stage, window in self._losses[symbol].items():
                    mean = math.fsum(window) / len(window)
                    self.stage_log_loss.labels(stage, symbol).set(mean)
            self._dirty_losses.clear()

    def _new_symbol(self, symbol: str) -> None:
        """Every action's series starts at 0 with the symbol's first signal, so rate() and
        increase() see the first BUY too."""
        for action in Action:
            self._signal_children[(symbol, action)] = self.signals.labels(symbol, action.value)

    # --- the rest ----------------------------------------------------------------------------

    def set_lag(
        self, ends: Mapping[tuple[str, int], int], positions: Mapping[tuple[str, int], int]
    ) -> None:
        """Lag = end offset − position per (topic, partition) given both; the series of
        partitions no longer in ``ends`` (revoked) are removed."""
        seen: set[tuple[str, str]] = set()
        for (topic, partition), end in ends.items():
            position = positions.get((topic, partition))
            if position is None:
                continue
            labels = (topic, str(partition))
            self.lag.labels(*labels).set(max(end - position, 0))
            seen.add(labels)
        for labels in self._lag_series - seen:
            self.lag.remove(*labels)
        self._lag_series = seen

    def checkpoint_done(self, seconds: float) -> None:
        self.checkpoint_seconds.observe(seconds)

    def record_drift_alarm(self, stage: str, symbol: str, action: str) -> None:
        """One drift alarm on ``stage`` for ``symbol``; ``action`` is what the alarm does
        (``alert``, ``mute``, ``reset``: the config's ``drift.action``)."""
        self.drift_alarms.labels(stage, symbol, action).inc()


_current: WorkerMetrics | None = None
_current_lock = threading.Lock()


def set_current(metrics: WorkerMetrics | None) -> None:
    """The worker metrics :func:`record_drift_alarm` counts into (the worker app sets its own)."""
    global _current
    with _current_lock:
        _current = metrics


def record_drift_alarm(stage: str, symbol: str, action: str) -> None:
    """Count a drift alarm in this process's worker metrics (the last worker app built); a
    no-op in a process without one (the embedded backtest)."""
    metrics = _current
    if metrics is not None:
        metrics.record_drift_alarm(stage, symbol, action)


class _Deltas:
    """Cumulative counts (a process's own stats) into Prometheus counters, by their increase."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, tuple[str, ...]], float] = {}

    def inc(self, counter: PromCounter, labels: tuple[str, ...], total: float) -> None:
        key = (id(counter), labels)
        delta = total - self._last.get(key, 0)
        child = counter.labels(*labels) if labels else counter
        if delta > 0:
            child.inc(delta)
            self._last[key] = total
        elif key not in self._last:
            self._last[key] = total  # the series exists from the start, at 0


class FeedMetrics:
    """A live feed's health from its :class:`~streams.feed.FeedStats`, updated with every
    status record (once a second) through :meth:`update` (the feed's ``on_status`` hook)."""

    COUNTS = (
        ("frames", "quorum_feed_frames_total", "Websocket frames received"),
        ("rejects", "quorum_feed_rejects_total", "Frames and ticks dead-lettered"),
        ("duplicates", "quorum_feed_duplicates_total", "Repeated frames dropped by id"),
        ("gaps", "quorum_feed_gaps_total", "Gaps in the venue's trade ids or sequence numbers"),
        ("missing", "quorum_feed_missing_ids_total", "Trade ids the gaps skipped"),
        ("late", "quorum_feed_late_total", "Ticks later than the reorder window"),
        ("connects", "quorum_feed_connects_total", "Websocket connections opened"),
        ("disconnects", "quorum_feed_reconnects_total", "Connections lost (then reconnected)"),
        ("stale", "quorum_feed_stale_total", "Connections dropped by the stale-feed watchdog"),
        ("rotations", "quorum_feed_rotations_total", "Planned connection rotations"),
        ("errors", "quorum_feed_venue_errors_total", "Error messages from the venue"),
    )

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = reg = registry if registry is not None else new_registry()
        self._counters = {
            attr: PromCounter(name, doc, ["venue"], registry=reg) for attr, name, doc in self.COUNTS
        }
        self.ticks = PromCounter(
            "quorum_feed_ticks_total",
            "Ticks sent to the ticks topic",
            ["venue", "symbol"],
            registry=reg,
        )
        self.clock_offset = Gauge(
            "quorum_feed_clock_offset_seconds",
            "Exchange time minus receive time (from trades; stamps quotes without a venue time)",
            ["venue"],
            registry=reg,
        )
        self.connected = Gauge(
            "quorum_feed_connected", "Open websocket connections", ["venue"], registry=reg
        )
        self.held = Gauge(
            "quorum_feed_held_ticks", "Ticks held in the reorder buffer", ["venue"], registry=reg
        )
        self._deltas = _Deltas()

    def update(self, stats: FeedStats, connected: int, held: int = 0) -> None:
        """Called before each status record, while ``stats.per_symbol`` holds the ticks sent
        per symbol since the last one."""
        venue = stats.venue
        for attr, counter in self._counters.items():
            self._deltas.inc(counter, (venue,), getattr(stats, attr))
        for symbol, n in stats.per_symbol.items():
            if n:
                self.ticks.labels(venue, symbol).inc(n)
        if stats.offset_ns is not None:
            self.clock_offset.labels(venue).set(stats.offset_ns / 1e9)
        self.connected.labels(venue).set(connected)
        self.held.labels(venue).set(held)


class PaperMetrics:
    """The paper account: PnL and position per symbol, equity, orders and fills; updated from
    the session by :meth:`update` (the agent calls it at most once a second and at stop)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = reg = registry if registry is not None else new_registry()
        self.pnl = Gauge(
            "quorum_paper_pnl",
            "Net PnL per symbol after fees: realised + unrealised at the mark − fees",
            ["symbol"],
            registry=reg,
        )
        self.position = Gauge(
            "quorum_paper_position", "Net position in base units", ["symbol"], registry=reg
        )
        self.fees = Gauge("quorum_paper_fees", "Fees paid per symbol", ["symbol"], registry=reg)
        self.equity = Gauge(
            "quorum_paper_equity", "Cash plus every position at its mark", registry=reg
        )
        self.halted = Gauge("quorum_paper_halted", "1 while the account is halted", registry=reg)
        self.fills = PromCounter("quorum_paper_fills_total", "Fills booked", registry=reg)
        self.orders = PromCounter(
            "quorum_paper_orders_total", "Order records (orders and denials)", registry=reg
        )
        self.ticks = PromCounter("quorum_paper_ticks_total", "Ticks applied", registry=reg)
        self.signals = PromCounter("quorum_paper_signals_total", "Signals read", registry=reg)
        self._deltas = _Deltas()

    def update(self, session: PaperSession, stats: AgentStats) -> None:
        account = session.trader.account
        marks = session.trader.marks()
        for symbol, pos in account.positions.items():
            size = pos.size if abs(pos.size) > 1e-12 else 0.0
            unrealised = size * (marks.get(symbol, pos.avg_price) - pos.avg_price)
            self.pnl.labels(symbol).set(pos.realised_pnl + unrealised - pos.fees)
            self.position.labels(symbol).set(size)
            self.fees.labels(symbol).set(pos.fees)
        self.equity.set(account.equity(marks))
        self.halted.set(1.0 if session.trader.halted else 0.0)
        for counter, total in (
            (self.fills, stats.fills),
            (self.orders, stats.orders),
            (self.ticks, stats.ticks),
            (self.signals, stats.signals),
        ):
            self._deltas.inc(counter, (), total)


def all_registries() -> Iterable[CollectorRegistry]:
    """One registry per process kind, each with every metric it defines (for the dashboard's
    and the scrape config's checks)."""
    return (
        WorkerMetrics(new_registry()).registry,
        FeedMetrics(new_registry()).registry,
        PaperMetrics(new_registry()).registry,
    )
