"""The embedded backtest: the pipeline in-process, no Kafka, no Redis.

It writes ``signals.jsonl`` (byte-identical across runs of the same input and config),
``report.json``, ``report.html`` and ``rejects.jsonl``, and returns the same to Python callers.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from agents.pipeline import Pipeline
from agents.voting import Decision, Scored
from config.paper import PaperConfig
from config.settings import PipelineConfig, load_config
from models.records import Action, ModelEvent, Reject, Signal, Tick, Trade
from quorum.audit_run import DEFAULT_SIGNAL_EVERY, AuditWriter, drift_summary
from quorum.metrics import BinaryScore, Decimator, RollingAccuracy
from quorum.paper_run import open_session
from quorum.stats import ReliabilityHistogram
from streams.codecs import encode_reject, encode_signal
from streams.prefetch import read_ticks_prefetched
from streams.readers import Format, ReaderStats, read_ticks
from streams.timeparse import format_time_ns

ProgressHook = Callable[[int], None]
ScoredHook = Callable[[Scored], None]
ROLLING_WINDOW = 500
STABILITY_WINDOW_NS = 60 * 1_000_000_000
MINUTE_NS = 60 * 1_000_000_000
RELIABILITY_BINS = 10
HOUR_NS = 3600 * 1_000_000_000
HOUR_BUCKETS = 400  # of the per-hour calibration histograms (the others have 4000)


@dataclass
class StripStats:
    """What :func:`strip_to_trades` removed."""

    quotes_dropped: int = 0
    sides_removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"quotes_dropped": self.quotes_dropped, "sides_removed": self.sides_removed}


def strip_to_trades(ticks: Iterable[Tick], stats: StripStats | None = None) -> Iterator[Tick]:
    """The ticks as exchange prints / TAQ would have them: no quotes, no aggressor side.

    Every :class:`~models.records.Quote` is dropped and every trade with a side comes out as
    a new :class:`~models.records.Trade` with ``side=None`` (the input is not mutated).
    ``stats`` counts both.
    """
    st = stats if stats is not None else StripStats()
    for tick in ticks:
        if not isinstance(tick, Trade):
            st.quotes_dropped += 1
            continue
        if tick.side is not None:
            st.sides_removed += 1
            tick = Trade(tick.symbol, tick.ts, tick.price, tick.size, None)
        yield tick


class WeightStability:
    """How fast one symbol's ensemble weights move: the report's ``weights_stability``.

    Definition. Take the symbol's signals in event-time order and, for each, the stage
    weights its receipt shows (``sig.stages[i].weight``). For a signal s at time tₛ, its window
    holds every signal of the symbol with tₛ ≤ t ≤ tₛ + 60 s (both ends in; at the end of the
    data the window is what there is). The window's change is the largest, over stages, of
    (max − min of that stage's weight over the window). A minute of event time
    (⌊tₛ / 60 s⌋, UTC-aligned) in which at least one signal starts scores the largest change of
    the windows starting in it; minutes without signals score nothing. The run's number is the
    median of these minute scores over all symbols × minutes; per symbol, the median over its
    minutes.

    Streaming and exact: the open windows are the signals of the last 60 s (a deque), with one
    monotonic max- and min-deque per stage, so each signal costs O(stages) amortised; memory is
    the last 60 s of signals plus one float per minute with signals.
    """

    def __init__(self, window_ns: int = STABILITY_WINDOW_NS, minute_ns: int = MINUTE_NS) -> None:
        self.window_ns = window_ns
        self.minute_ns = minute_ns
        self.starts: deque[tuple[int, int]] = deque()  # (index, ts) of windows not yet closed
        self.maxq: list[deque[tuple[int, float]]] = []
        self.minq: list[deque[tuple[int, float]]] = []
        self.n = 0
        self.minutes: dict[int, float] = {}

    def add(self, ts: int, weights: Sequence[float]) -> None:
        starts = self.starts
        while starts and ts - starts[0][1] > self.window_ns:
            self._close()
        if not self.maxq:
            self.maxq = [deque() for _ in weights]
            self.minq = [deque() for _ in weights]
        i = self.n
        self.n += 1
        for k, w in enumerate(weights):
            mx, mn = self.maxq[k], self.minq[k]
            while mx and mx[-1][1] <= w:
                mx.pop()
            mx.append((i, w))
            while mn and mn[-1][1] >= w:
                mn.pop()
            mn.append((i, w))
        starts.append((i, ts))

    def _close(self) -> None:
        i, ts = self.starts.popleft()
        change = 0.0
        for mx, mn in zip(self.maxq, self.minq, strict=True):
            while mx[0][0] < i:
                mx.popleft()
            while mn[0][0] < i:
                mn.popleft()
            change = max(change, mx[0][1] - mn[0][1])
        minute = ts // self.minute_ns
        if change > self.minutes.get(minute, -1.0):
            self.minutes[minute] = change

    def finish(self) -> list[float]:
        """Close the remaining windows; the minute scores in time order."""
        while self.starts:
            self._close()
        return [v for _, v in sorted(self.minutes.items())]


def weights_stability(per_symbol: dict[str, WeightStability]) -> dict[str, Any]:
    """The report entry: medians of :class:`WeightStability`'s minute scores."""
    pooled: list[float] = []
    per: dict[str, float | None] = {}
    for sym, ws in sorted(per_symbol.items()):
        minutes = ws.finish()
        pooled += minutes
        per[sym] = statistics.median(minutes) if minutes else None
    return {
        "window_s": STABILITY_WINDOW_NS / 1e9,
        "median": statistics.median(pooled) if pooled else None,
        "minutes": len(pooled),
        "per_symbol": per,
    }


class _Calibration:
    """Every model's scored (p, up) pairs in :class:`quorum.stats.ReliabilityHistogram` form,
    per symbol and per UTC hour of the prediction's event time: constant memory in the outcomes
    (a long backtest stays memory-flat), for the report's ``calibration`` block and the
    reliability charts.

    Each scored prediction costs one :meth:`~quorum.stats.ReliabilityHistogram.add_both` per
    model: its symbol's histogram and its hour's (one bucket index for both). The overall
    histogram of a model is its symbols' merged at the end (same buckets, so the same as adding
    every outcome to one). Abstentions (p None) are not scored.
    """

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = models
        self.symbols: dict[str, dict[str, ReliabilityHistogram]] = {}
        self.hours: dict[int, dict[str, ReliabilityHistogram]] = {}

    def add(self, sc: Scored) -> None:
        per_sym = self.symbols.get(sc.symbol)
        if per_sym is None:
            per_sym = self.symbols[sc.symbol] = {m: ReliabilityHistogram() for m in self.models}
        hour = sc.ts // HOUR_NS % 24  # the UTC hour of day of the prediction
        per_hour = self.hours.get(hour)
        if per_hour is None:
            # 24 × models of these: a tenth of the buckets keeps them at 16 kB each
            # (bin edges rounded to 1/400 of p, the sums in each bin still exact)
            per_hour = self.hours[hour] = {
                m: ReliabilityHistogram(HOUR_BUCKETS) for m in self.models
            }
        up = sc.up
        per_sym["ensemble"].add_both(per_hour["ensemble"], sc.p_ensemble, up)
        for name, p in sc.p_stages.items():
            if p is not None:
                per_sym[name].add_both(per_hour[name], p, up)

    def overall(self) -> dict[str, ReliabilityHistogram]:
        out = {m: ReliabilityHistogram() for m in self.models}
        for _, per_sym in sorted(self.symbols.items()):
            for m, h in per_sym.items():
                out[m].merge(h)
        return out

    def report(self) -> dict[str, Any]:
        """The report's ``calibration`` block: per model, overall, per symbol and per hour
        ("00".."23", only hours with outcomes of the model); bins in the first two only."""
        overall = self.overall()

        def model(m: str) -> dict[str, Any]:
            syms = {
                sym: c.as_dict()
                for sym, hs in sorted(self.symbols.items())
                if (c := hs[m].calibration(RELIABILITY_BINS)).n
            }
            hours = {
                f"{hour:02d}": c.as_dict(bins=False)
                for hour, hs in sorted(self.hours.items())
                if (c := hs[m].calibration(RELIABILITY_BINS)).n
            }
            return {
                "overall": overall[m].calibration(RELIABILITY_BINS).as_dict(),
                "per_symbol": syms,
                "per_hour": hours,
            }

        return {
            "bins": RELIABILITY_BINS,
            "buckets": ReliabilityHistogram().buckets,
            "hour_buckets": HOUR_BUCKETS,
            "ensemble": model("ensemble"),
            "stages": {m: model(m) for m in self.models if m != "ensemble"},
        }


@dataclass
class BacktestResult:
    """What a backtest produced: the signals (when kept), the report, and where files went."""

    signals: list[Signal]
    report: dict[str, Any]
    out_dir: Path | None = None
    charts: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class _SymbolCharts:
    price: Decimator = field(default_factory=Decimator)
    buy: Decimator = field(default_factory=lambda: Decimator(capacity=2000))
    sell: Decimator = field(default_factory=lambda: Decimator(capacity=2000))
    weights: dict[str, Decimator] = field(default_factory=dict)


class _Scoreboard:
    """Accumulates the report's numbers and the charts' series from decisions."""

    def __init__(self, stage_names: tuple[str, ...]) -> None:
        self.stage_names = stage_names
        self.ensemble = BinaryScore()
        self.stages = {n: BinaryScore() for n in stage_names}
        self.per_symbol: dict[str, dict[str, Any]] = {}
        self.rolling = {n: RollingAccuracy(ROLLING_WINDOW) for n in ("ensemble", *stage_names)}
        self.rolling_series = {n: Decimator() for n in ("ensemble", *stage_names)}
        self.actions = {a.value: 0 for a in Action}
        self.hits = BinaryScore()
        self.charts: dict[str, _SymbolCharts] = {}
        self.last_price: dict[str, float] = {}
        self.stability: dict[str, WeightStability] = {}
        self.calibration = _Calibration(("ensemble", *stage_names))

    def _symbol(self, symbol: str) -> dict[str, Any]:
        s = self.per_symbol.get(symbol)
        if s is None:
            s = {"events": 0, "trades": 0, "quotes": 0, "signals": 0, "ensemble": BinaryScore()}
            self.per_symbol[symbol] = s
            self.charts[symbol] = _SymbolCharts(weights={n: Decimator() for n in self.stage_names})
            self.stability[symbol] = WeightStability()
        return s

    def tick(self, symbol: str, is_trade: bool, price: float) -> None:
        s = self._symbol(symbol)
        s["events"] += 1
        s["trades" if is_trade else "quotes"] += 1
        self.last_price[symbol] = price

    def decision(self, d: Decision) -> None:
        sig = d.signal
        s = self.per_symbol[sig.symbol]
        s["signals"] += 1
        self.actions[sig.action.value] += 1
        charts = self.charts[sig.symbol]
        price = self.last_price[sig.symbol]
        charts.price.add(sig.ts, price)
        if sig.action is Action.BUY:
            charts.buy.add(sig.ts, price)
        elif sig.action is Action.SELL:
            charts.sell.add(sig.ts, price)
        for sv in sig.stages:
            charts.weights[sv.name].add(sig.ts, sv.weight)
        self.stability[sig.symbol].add(sig.ts, [sv.weight for sv in sig.stages])
        calibration = self.calibration
        for sc in d.scored:
            calibration.add(sc)
            self.ensemble.update(sc.p_ensemble, sc.up)
            s["ensemble"].update(sc.p_ensemble, sc.up)
            self.rolling_series["ensemble"].add(
                sig.ts, self.rolling["ensemble"].update(sc.p_ensemble, sc.up)
            )
            for name, p in sc.p_stages.items():
                if p is not None:
                    self.stages[name].update(p, sc.up)
                    self.rolling_series[name].add(sig.ts, self.rolling[name].update(p, sc.up))
            if sc.action is not Action.HOLD:
                self.hits.update(1.0 if sc.action is Action.BUY else 0.0, sc.up)

    def charts_dict(self, calibration: dict[str, Any] | None = None) -> dict[str, Any]:
        """The charts' series; the reliability diagrams from ``calibration`` (the report's
        block, so the page draws the bins it reports) or, without it, computed here."""
        cal = calibration if calibration is not None else self.calibration.report()
        models = {"ensemble": cal["ensemble"], **cal["stages"]}
        return {
            "symbols": {
                sym: {
                    "price": c.price.points,
                    "buy": c.buy.points,
                    "sell": c.sell.points,
                    "weights": {n: w.points for n, w in c.weights.items()},
                }
                for sym, c in sorted(self.charts.items())
            },
            "rolling_accuracy": {n: d.points for n, d in self.rolling_series.items()},
            "rolling_window": ROLLING_WINDOW,
            # equal-mass bins (quorum.stats.reliability): [mean p, observed up rate, n]
            "reliability": {n: m["overall"]["bins"] for n, m in models.items()},
            "reliability_bins": RELIABILITY_BINS,
        }


def _resolve_config(config: PipelineConfig | Path | str | None) -> PipelineConfig:
    if isinstance(config, PipelineConfig):
        return config
    return load_config(config)


def run_backtest(
    paths: Iterable[Path | str],
    *,
    config: PipelineConfig | Path | str | None = None,
    out_dir: Path | str | None = None,
    horizon_s: float | None = None,
    symbols: Iterable[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    fmt: Format | str | None = None,
    keep_signals: bool = True,
    progress: ProgressHook | None = None,
    prefetch: bool = True,
    on_scored: ScoredHook | None = None,
    trades_only: bool = False,
    paper: PaperConfig | None = None,
    audit_signal_every: int = DEFAULT_SIGNAL_EVERY,
) -> BacktestResult:
    """Run the pipeline over recorded ticks and score it.

    ``config`` is a validated config, a YAML path, or None for the packaged default.
    With ``out_dir``, the output files are written there, with ``audit.jsonl`` (the run's
    hash-chained record; every ``audit_signal_every``-th signal in full; its head in
    ``report.json``). ``keep_signals=False`` keeps
    memory flat on long runs (the signals are still written to ``signals.jsonl``).
    ``prefetch`` parses the input in a child process, overlapping it with the pipeline; the
    ticks, their order and the rejects are the same either way.
    ``on_scored`` is called with every scored up/down outcome (:class:`agents.voting.Scored`),
    in the order the voter scores them. ``trades_only`` runs on the ticks as exchange prints
    would have them (:func:`strip_to_trades`: no quotes, no aggressor side); the report then
    says what was stripped under ``trades_only``. Both off leave every output unchanged.
    ``paper`` trades the signals on a paper account (:class:`agents.paper_session.PaperSession`):
    ``orders.jsonl``, ``fills.jsonl`` and ``equity.jsonl`` beside the other files, and a
    ``paper`` section in the report (its time counts in ``elapsed_s``).
    Raises :class:`streams.readers.ReaderError` for a missing or unusable input file and
    :class:`config.settings.ConfigError` for an invalid config.
    """
    cfg = _resolve_config(config)
    if horizon_s is not None:
        cfg = cfg.with_overrides(horizon_s=horizon_s)
    files = [Path(p) for p in paths]
    pipeline = Pipeline(cfg)
    board = _Scoreboard(tuple(s.name for s in cfg.stages))
    stats = ReaderStats()
    signals: list[Signal] = []
    out = Path(out_dir) if out_dir is not None else None

    sig_file: IO[bytes] | None = None
    rej_file: IO[bytes] | None = None
    audit: AuditWriter | None = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        sig_file = (out / "signals.jsonl").open("wb")
        rej_file = (out / "rejects.jsonl").open("wb")
        audit = AuditWriter(out / "audit.jsonl", cfg, audit_signal_every)
        audit.start(files)
    session, paper_sink = (
        open_session(paper, tuple(cfg.trigger), out) if paper is not None else (None, None)
    )

    def on_reject(r: Reject) -> None:
        if rej_file is not None:
            rej_file.write(encode_reject(r) + b"\n")

    first_ts: int | None = None
    last_ts = 0
    audit_head: dict[str, Any] | None = None
    model_events: list[ModelEvent] = []
    strip = StripStats()
    t0 = time.perf_counter()
    try:
        reader = read_ticks_prefetched if prefetch else read_ticks
        ticks: Iterable[Tick] = reader(
            files,
            fmt=fmt,
            symbols=list(symbols) if symbols is not None else None,
            start_ns=start_ns,
            end_ns=end_ns,
            tolerance_ns=cfg.reader.reorder_tolerance_ms * 1_000_000,
            on_reject=on_reject,
            stats=stats,
        )
        if trades_only:
            ticks = strip_to_trades(ticks, strip)
        n = 0
        for tick in ticks:
            n += 1
            if first_ts is None:
                first_ts = tick.ts
            last_ts = tick.ts
            if audit is not None:
                audit.tick(tick.symbol, tick.ts)
            if isinstance(tick, Trade):
                board.tick(tick.symbol, True, tick.price)
            else:
                board.tick(tick.symbol, False, tick.mid)
            decision = pipeline.process(tick)
            if pipeline.events:  # drift alarms, mutes, resets: before the signal they mark
                for event in pipeline.take_events():
                    model_events.append(event)
                    if audit is not None:
                        audit.model_event(event)
            if session is not None:  # the tick first: a signal's order arrives after it
                session.tick(0, tick)
                if decision is not None:
                    session.signal(decision.signal)
                session.drain()
            if decision is not None:
                board.decision(decision)
                if on_scored is not None:
                    for sc in decision.scored:
                        on_scored(sc)
                if sig_file is not None:
                    line = encode_signal(decision.signal) + b"\n"
                    sig_file.write(line)
                    if audit is not None:
                        audit.signal(decision.signal, line)
                if keep_signals:
                    signals.append(decision.signal)
            if progress is not None and n % 10_000 == 0:
                progress(n)
        if session is not None:
            session.finish()
        if progress is not None:
            progress(n)
        if audit is not None:
            audit.models_final(pipeline)
        audit_head = audit.end(n, last_ts) if audit is not None else None
    finally:
        if audit is not None:
            audit.close()
        if paper_sink is not None:
            paper_sink.close()
        if sig_file is not None:
            sig_file.close()
        if rej_file is not None:
            rej_file.close()
    elapsed = time.perf_counter() - t0

    report = _report(cfg, files, pipeline, board, stats, elapsed, first_ts, last_ts)
    if cfg.drift is not None:
        report["drift"] = drift_summary(cfg, pipeline, model_events)
    if trades_only:
        report["trades_only"] = strip.as_dict()
    if audit_head is not None:
        report["audit"] = audit_head  # the chain's head, kept apart from the log it seals
    charts = board.charts_dict(report["calibration"])
    if session is not None:
        report["paper"] = session.report()
        charts["paper"] = {"equity": [[ts, eq] for ts, eq in session.equity]}
        if paper_sink is not None:
            charts["paper"]["positions"] = paper_sink.positions
            charts["paper"]["fills"] = paper_sink.fills
    if out is not None:
        (out / "report.json").write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        from quorum.report_html import render_html

        (out / "report.html").write_text(render_html(report, charts), encoding="utf-8")
    return BacktestResult(signals=signals, report=report, out_dir=out, charts=charts)


def _report(
    cfg: PipelineConfig,
    files: list[Path],
    pipeline: Pipeline,
    board: _Scoreboard,
    stats: ReaderStats,
    elapsed: float,
    first_ts: int | None,
    last_ts: int,
) -> dict[str, Any]:
    events = stats.ticks
    trades = sum(s["trades"] for s in board.per_symbol.values())
    voter_states = {sym: pipeline.voter.state(sym) for sym in sorted(board.per_symbol)}
    stages: dict[str, Any] = {}
    for stage in pipeline.stages:
        entry = board.stages[stage.name].as_dict()
        entry["model"] = stage.model_id
        entry["features"] = list(stage.features)
        entry["final_weight"] = {
            sym: st.weights.weights[stage.name] for sym, st in voter_states.items()
        }
        entry["examples_learned"] = {sym: stage.state(sym).learned for sym in voter_states}
        signing = {
            sym: dict(s)
            for sym in voter_states
            if (s := getattr(stage.state(sym).extractor, "signing", None)) is not None
        }
        if signing:  # which rule signed the trades: exchange side, Lee-Ready, tick rule
            entry["signing"] = signing
        stages[stage.name] = entry
    labels_pending = sum(len(pipeline.labels(sym).pending) for sym in voter_states)
    hits = board.hits
    return {
        "config_name": cfg.name,
        "config_hash": cfg.config_hash(),
        "horizon_s": cfg.horizon_s,
        "dead_band_bps": cfg.dead_band_bps,
        "inputs": [str(f) for f in files],
        "start": format_time_ns(first_ts) if first_ts is not None else None,
        "end": format_time_ns(last_ts) if first_ts is not None else None,
        "events": events,
        "trades": trades,
        "quotes": events - trades,
        "rejected": stats.rejected,
        "skipped": stats.skipped,
        "duplicates": stats.duplicates,
        "trade_id_gaps": stats.trade_id_gaps,
        "missing_trade_ids": stats.missing_trade_ids,
        "filtered": stats.filtered,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(events / elapsed, 1) if elapsed > 0 else None,
        "ensemble": board.ensemble.as_dict(),
        "stages": stages,
        "signals": {
            "total": sum(board.actions.values()),
            **board.actions,
            "hit_rate": hits.hits / hits.n if hits.n else None,
            "n_hits_scored": hits.n,
        },
        "labels": {
            "flat": sum(st.flats for st in voter_states.values()),
            "unresolved_at_end": labels_pending,
        },
        # what the bounded buffers had to drop (oldest first): pending labels per stage
        # (the stages share one labeler per symbol, bounded by the smallest
        # stages.<name>.max_pending) and the voter's pending outcomes (voting.max_pending,
        # per symbol); 0 unless a bound was hit
        "dropped": {
            "labels": {
                stage.name: sum(pipeline.labels(sym).dropped for sym in voter_states)
                for stage in pipeline.stages
            },
            "voter_pending": sum(st.dropped for st in voter_states.values()),
        },
        "weights_stability": weights_stability(board.stability),
        # ECE, Brier and its decomposition over equal-mass bins (quorum.stats.decompose)
        "calibration": board.calibration.report(),
        "per_symbol": {
            sym: {
                "events": s["events"],
                "trades": s["trades"],
                "quotes": s["quotes"],
                "signals": s["signals"],
                "ensemble": s["ensemble"].as_dict(),
            }
            for sym, s in sorted(board.per_symbol.items())
        },
    }
