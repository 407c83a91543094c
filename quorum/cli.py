"""The ``quorum`` command line."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.settings import ConfigError, load_config
from models.factory import ModelConfigError
from quorum.audit_cmd import audit_app
from quorum.cli_common import ConfigOpt, console
from quorum.cli_common import fail as _fail
from quorum.cli_common import runtime_or_exit as _runtime
from quorum.explain_cmd import explain
from quorum.feed_cmd import feed_app, live
from quorum.paper_cmd import paper_app
from quorum.state_cmd import open_store, state_app
from streams.readers import Format, ReaderError
from streams.timeparse import parse_time_ns

if TYPE_CHECKING:
    from models.records import Signal, StageVote
    from streams.replay import ReplaySummary

app = typer.Typer(
    help="quorum: an ensemble of small online River models voting on trading signals.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """quorum: an ensemble of small online River models voting on trading signals."""


def _time(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_ns(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from None


def _symbols(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [s.strip() for s in value.split(",") if s.strip()]


PathsArg = Annotated[list[Path], typer.Argument(help="Tick files (Binance raw, CSV, JSONL; gz ok)")]
FormatOpt = Annotated[Format | None, typer.Option("--format", help="Override format detection")]
SymbolsOpt = Annotated[str | None, typer.Option("--symbols", help="Comma-separated symbols")]
StartOpt = Annotated[str | None, typer.Option("--start", help="Inclusive: ns or ISO-8601+offset")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Exclusive: ns or ISO-8601+offset")]


def _progress(unit: str, quiet: bool) -> Progress:
    """A transient progress line on a terminal (count, rate-free, elapsed); silent otherwise."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn(f"{{task.completed:,.0f}} {unit}"),
        TextColumn("[dim]{task.fields[event]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=True,
    )


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _summary(report: dict[str, Any], out: Path) -> None:
    head = Table(title="quorum backtest", show_header=False, title_justify="left")
    head.add_row("inputs", ", ".join(report["inputs"]))
    head.add_row("window", f"{report['start']} → {report['end']}")
    head.add_row(
        "events",
        f"{report['events']:,} ({report['trades']:,} trades, {report['quotes']:,} quotes), "
        f"{report['rejected']:,} rejected",
    )
    head.add_row("speed", f"{report['elapsed_s']:.2f} s, {report['events_per_s']:,.0f} events/s")
    sig = report["signals"]
    head.add_row(
        "signals",
        f"{sig['total']:,}: BUY {sig['BUY']:,}  SELL {sig['SELL']:,}  HOLD {sig['HOLD']:,}; "
        f"BUY/SELL hit rate {_fmt(sig['hit_rate'], 3)} over {sig['n_hits_scored']:,}",
    )
    head.add_row("config", f"{report['config_name']} {report['config_hash']}")
    stab = report.get("weights_stability")
    if stab is not None:
        per = ", ".join(f"{k} {_fmt(v, 3)}" for k, v in stab["per_symbol"].items())
        head.add_row(
            "weights",
            f"largest change within {stab['window_s']:g} s: median {_fmt(stab['median'], 3)} "
            f"over {stab['minutes']:,} symbol-minutes ({per})",
        )
    if "trades_only" in report:
        t = report["trades_only"]
        head.add_row(
            "trades only",
            f"{t['quotes_dropped']:,} quotes dropped, {t['sides_removed']:,} sides removed",
        )
    console.print(head)
    scores = Table(title=f"scores on up/down outcomes, horizon {report['horizon_s']} s")
    for col in ("model", "n_scored", "accuracy", "log_loss", "brier"):
        scores.add_column(col, justify="left" if col == "model" else "right")
    rows = [("ensemble", report["ensemble"]), *report["stages"].items()]
    for name, s in rows:
        ll = s["log_loss"]
        style = "green" if ll is not None and ll < 0.6931 else "red"
        scores.add_row(
            name,
            f"{s['n_scored']:,}",
            _fmt(s["accuracy"]),
            f"[{style}]{_fmt(ll)}[/]",
            _fmt(s["brier"]),
        )
    scores.add_row("fair coin", "", "0.5000", "0.6931", "0.2500", style="dim")
    console.print(scores)
    console.print(f"wrote {out}/signals.jsonl, report.json, report.html, rejects.jsonl")


def _paper_summary(p: dict[str, Any], out: Path) -> None:
    table = Table(title=f"paper account ({p['venue']}), after fees", show_header=False)
    money = [
        ("net PnL", p["net_pnl"]),
        ("gross PnL (before fees)", p["gross_pnl"]),
        ("fees", p["fees"]),
        ("turnover", p["turnover"]),
    ]
    for label, v in money:
        table.add_row(label, f"{v:,.2f}")
    table.add_row("orders / fills", f"{p['n_orders']:,} / {p['n_fills']:,}")
    table.add_row("round trips, hit rate", f"{p['n_round_trips']:,}, {_fmt(p['hit_rate'], 3)}")
    table.add_row(
        "max drawdown", f"{100 * p['max_drawdown']:.3f} % over {p['max_drawdown_s']:.0f} s"
    )
    table.add_row("signal to fill", f"{_fmt(p['signal_to_fill_ms'], 1)} ms")
    table.add_row("denied", ", ".join(f"{k} {v:,}" for k, v in p["denied"].items()) or "none")
    console.print(table)
    console.print(f"wrote {out}/orders.jsonl, fills.jsonl, equity.jsonl")


@app.command()
def backtest(
    paths: PathsArg,
    config: ConfigOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory")] = Path("out"),
    horizon: Annotated[float | None, typer.Option("--horizon", help="Label horizon, s")] = None,
    symbols: SymbolsOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fmt: FormatOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary")] = False,
    paper: Annotated[
        bool, typer.Option("--paper", help="Trade the signals on a paper account")
    ] = False,
    paper_config: Annotated[
        Path | None,
        typer.Option("--paper-config", help="Paper-trading YAML (implies --paper)"),
    ] = None,
) -> None:
    """Run the pipeline in-process over recorded ticks; write signals and a scored report."""
    from config.paper import PaperConfigError, load_paper_config
    from quorum.backtest import run_backtest

    start_ns, end_ns = _time(start, "--start"), _time(end, "--end")
    try:
        paper_cfg = load_paper_config(paper_config) if paper or paper_config else None
    except PaperConfigError as e:
        raise _fail(str(e)) from None
    try:
        with _progress("events", quiet) as bar:
            task = bar.add_task("backtest", total=None, event="")
            result = run_backtest(
                paths,
                config=config,
                out_dir=out,
                horizon_s=horizon,
                symbols=_symbols(symbols),
                start_ns=start_ns,
                end_ns=end_ns,
                fmt=fmt,
                keep_signals=False,
                progress=lambda n: bar.update(task, completed=n),
                paper=paper_cfg,
            )
    except (ReaderError, ConfigError, ModelConfigError, ValueError) as e:
        raise _fail(str(e)) from None
    if not quiet:
        _summary(result.report, out)
        if "paper" in result.report:
            _paper_summary(result.report["paper"], out)


@app.command()
def evaluate(
    datasets: Annotated[
        list[str],
        typer.Argument(
            help="name=PATH_OR_GLOB[,...], a directory (its *.gz), a path or glob, or 'sample'"
        ),
    ],
    trades_only: Annotated[
        bool, typer.Option("--trades-only", help="Strip quotes and aggressor sides first")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write it as JSON")] = None,
    config: ConfigOpt = None,
    horizon: Annotated[float | None, typer.Option("--horizon", help="Label horizon, s")] = None,
) -> None:
    """Score the ensemble, its stages, two baselines and a coin, with HAC standard errors."""
    import orjson

    from quorum import evaluate as ev

    try:
        sets = [ev.parse_dataset(d) for d in datasets]
        result = ev.evaluate(sets, config=config, horizon_s=horizon, trades_only=trades_only)
    except (ReaderError, ConfigError, ModelConfigError, ValueError) as e:
        raise _fail(str(e)) from None
    ev.render(result, console)
    if json_out is not None:
        json_out.write_bytes(
            orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        console.print(f"wrote {json_out}")


# --- streaming on Kafka: services, topics, replay, signals ------------------------------------


class ServicesAction(StrEnum):
    UP = "up"
    DOWN = "down"
    STATUS = "status"


class ServiceName(StrEnum):
    KAFKA = "kafka"
    REDIS = "redis"


class SignalsFormat(StrEnum):
    JSONL = "jsonl"
    TABLE = "table"


def _speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        speed = float(value.strip().lower().removesuffix("x"))
    except ValueError:
        speed = -1.0
    if not speed > 0 or speed == float("inf"):
        raise typer.BadParameter(
            f"expected 'max' or a number > 0, got {value!r}", param_hint="--speed"
        )
    return speed


@app.command()
def services(
    action: Annotated[ServicesAction, typer.Argument(help="up, down or status")],
    only: Annotated[
        list[ServiceName] | None, typer.Option("--only", help="Only this one (repeatable)")
    ] = None,
) -> None:
    """Start, stop or show the local Kafka broker and Redis (127.0.0.1; no Docker needed)."""
    from quorum import services as svc

    try:
        cfg = svc.ServiceConfig.from_env()
        chosen = tuple(s.value for s in only) if only else svc.SERVICES

        def log(line: str) -> None:
            console.print(line, highlight=False)

        if action is ServicesAction.UP:
            current = svc.up(cfg, log=log, services=chosen)
        elif action is ServicesAction.DOWN:
            svc.down(cfg, log=log, services=chosen)
            current = svc.status(cfg)
        else:
            current = svc.status(cfg)
    except (svc.ServiceError, ValueError) as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(code=1) from None
    table = Table(*svc.ServiceStatus.HEADERS, title="quorum services", title_justify="left")
    for row in current.rows():
        table.add_row(*row)
    console.print(table)
    if action is ServicesAction.STATUS and not all(
        s.running for s in current.services if s.name in chosen
    ):
        raise typer.Exit(code=3)


app.add_typer(state_app, name="state")
app.add_typer(paper_app, name="paper")
app.add_typer(feed_app, name="feed")
app.command("live")(live)
app.add_typer(audit_app, name="audit")
app.command("explain")(explain)
topics_app = typer.Typer(help="The pipeline's Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@topics_app.command("create")
def topics_create(
    config: ConfigOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait")] = 30.0,
) -> None:
    """Create the ticks, votes, signals and rejected topics (idempotent)."""
    from streams.topics import TopicError, ensure_topics, wanted_partitions

    runtime = _runtime(config)
    try:
        names = ensure_topics(runtime, timeout=timeout)
    except TopicError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(code=1) from None
    partitions = wanted_partitions(runtime)
    table = Table("topic", "partitions", title=f"topics on {runtime.kafka.bootstrap}")
    for name in names:
        table.add_row(name, f">= {partitions[name]}")
    console.print(table)


def _replay_summary(s: ReplaySummary, topic: str) -> None:
    from streams.timeparse import format_time_ns

    table = Table(title=f"quorum replay → {topic}", show_header=False, title_justify="left")
    how = "one per record" if s.pack is None else f"{s.records:,} records of <= {s.pack:,}"
    table.add_row("sent", f"{s.sent:,} ticks, {how} (acknowledged by all replicas)")
    if s.per_symbol:
        table.add_row("symbols", ", ".join(f"{k} {v:,}" for k, v in sorted(s.per_symbol.items())))
    if s.first_ts is not None and s.last_ts is not None:
        span = (s.last_ts - s.first_ts) / 1e9
        window = f"{format_time_ns(s.first_ts)} → {format_time_ns(s.last_ts)} ({span:,.1f} s)"
        table.add_row("event time", window)
    table.add_row("rejected", f"{s.rejected:,} input lines (sent to the rejected topic)")
    style = "red" if s.delivery_errors else "green"
    table.add_row("delivery errors", f"[{style}]{s.delivery_errors:,}[/]")
    for err in s.errors:
        table.add_row("", f"[red]{err}[/]")
    table.add_row("elapsed", f"{s.elapsed_s:,.2f} s, {s.rate:,.0f} ticks/s")
    console.print(table)


@app.command()
def replay(
    paths: PathsArg,
    config: ConfigOpt = None,
    speed: Annotated[
        str, typer.Option("--speed", help="Event-time speed-up: 1 = real time, 10, …, or max")
    ] = "max",
    symbols: SymbolsOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    fmt: FormatOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary")] = False,
    pack: Annotated[
        int | None,
        typer.Option(
            "--pack",
            min=1,
            show_default=False,
            help="Most ticks of one partition per batch record (default 200: ~24 KB records, "
            "far below Kafka's 1 MB limit, already 200 times fewer records for the worker to "
            "handle). A pack also goes out once its first tick has waited 1 ms, before any "
            "pacing sleep, and at the end",
        ),
    ] = None,
    no_pack: Annotated[
        bool,
        typer.Option("--no-pack", help="One record per tick, keyed by symbol (as other producers)"),
    ] = False,
) -> None:
    """Produce recorded ticks to the Kafka ticks topic, packed per partition, paced by event time.

    A symbol's ticks go to the partition Kafka's murmur2 gives its key, in order, either way.
    """
    from streams.replay import DEFAULT_PACK, ReplayError
    from streams.replay import replay as run_replay
    from streams.timeparse import format_time_ns
    from streams.topics import TopicError

    pace = _speed(speed)
    if no_pack and pack is not None:
        raise typer.BadParameter("give --pack N or --no-pack, not both", param_hint="--pack")
    max_pack = None if no_pack else pack or DEFAULT_PACK
    start_ns, end_ns = _time(start, "--start"), _time(end, "--end")
    try:
        cfg = load_config(config)
    except ConfigError as e:
        raise _fail(str(e)) from None
    runtime = cfg.runtime
    try:
        with _progress("ticks", quiet) as bar:
            label = "replay (max speed)" if pace is None else f"replay ×{pace:g}"
            task = bar.add_task(label, total=None, event="")
            summary = run_replay(
                paths,
                runtime,
                speed=pace,
                symbols=_symbols(symbols),
                start_ns=start_ns,
                end_ns=end_ns,
                fmt=fmt,
                tolerance_ns=cfg.reader.reorder_tolerance_ms * 1_000_000,
                on_progress=lambda n, ts: bar.update(task, completed=n, event=format_time_ns(ts)),
                create_topics=True,
                pack=max_pack,
            )
    except ReaderError as e:
        raise _fail(str(e)) from None
    except (ReplayError, TopicError) as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(code=1) from None
    if not quiet:
        _replay_summary(summary, runtime.topic("ticks"))
    if summary.delivery_errors:
        raise typer.Exit(code=1)


def _stage_cell(sv: StageVote | None) -> str:
    if sv is None:
        return "[dim]absent[/]"
    p = "  -  " if sv.p_up is None else f"{sv.p_up:.3f}"
    return f"{p} [dim]w{sv.weight:.2f}[/]"


def _signal_row(s: Signal, stage_names: list[str], header: bool) -> tuple[Table, int]:
    """One signal as a one-row table with fixed widths, so rows line up while streaming.

    Returns the table and the width it needs, so piped output is not squeezed to 80 columns.
    """
    when = datetime.fromtimestamp(s.ts / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    table = Table(show_header=header, box=None, pad_edge=False, header_style="bold")
    widths = [23, 10, 6, 5, *(max(11, len(name)) for name in stage_names)]
    heads = ["time (UTC)", "symbol", "action", "p_up", *stage_names]
    for head, width in zip(heads, widths, strict=True):
        justify: Literal["left", "right"] = "right" if head == "p_up" else "left"
        table.add_column(head, width=width, no_wrap=True, justify=justify)
    color = {"BUY": "green", "SELL": "red"}.get(s.action.value, "dim")
    action = s.action.value if s.quorum_met else s.action.value.lower()
    by_name = {sv.name: sv for sv in s.stages}
    table.add_row(
        when,
        s.symbol,
        f"[{color}]{action}[/]",
        f"{s.p_up:.3f}",
        *(_stage_cell(by_name.get(name)) for name in stage_names),
    )
    return table, sum(widths) + 2 * (len(widths) - 1)


@app.command()
def signals(
    config: ConfigOpt = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Also print signals already on the topic")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Keep waiting for new signals")
    ] = True,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Stop after this many seconds without a message"),
    ] = None,
    symbols: SymbolsOpt = None,
    fmt: Annotated[
        SignalsFormat, typer.Option("--format", help="jsonl (stdout) or table")
    ] = SignalsFormat.JSONL,
    group: Annotated[
        str | None, typer.Option("--group", help="Consumer group (default: a new one per run)")
    ] = None,
) -> None:
    """Print signals from the Kafka signals topic, each signal id once."""
    from confluent_kafka import KafkaException

    from streams.codecs import encode_signal
    from streams.signal_consumer import ConsumerStats, iter_signals

    if timeout is not None and timeout <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--timeout")
    runtime = _runtime(config)
    stats = ConsumerStats()
    stage_names: list[str] | None = None
    table_out: Console | None = None
    out = sys.stdout.buffer
    try:
        for s in iter_signals(
            runtime,
            from_beginning=from_beginning,
            follow=follow and timeout is None,
            timeout_s=timeout,
            symbols=_symbols(symbols),
            group=group,
            stats=stats,
        ):
            if fmt is SignalsFormat.JSONL:
                out.write(encode_signal(s) + b"\n")
                out.flush()
            else:
                header = stage_names is None
                if stage_names is None:
                    stage_names = [sv.name for sv in s.stages]
                row, width = _signal_row(s, stage_names, header)
                if table_out is None:  # a terminal wraps; a pipe gets the full width
                    table_out = Console() if sys.stdout.isatty() else Console(width=width)
                table_out.print(row, highlight=False)
    except KeyboardInterrupt:
        pass
    except KafkaException as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False)
        raise typer.Exit(code=1) from None
    except BrokenPipeError:  # `quorum signals | head`: stop quietly, also at interpreter exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    console.print(
        f"[dim]{stats.yielded:,} signal(s); {stats.duplicates:,} duplicate(s), "
        f"{stats.filtered:,} other symbol(s), {stats.bad:,} bad message(s) skipped[/]",
        highlight=False,
    )


class StateBackend(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"


class Topology(StrEnum):
    FUSED = "fused"
    SPLIT = "split"


@app.command()
def worker(
    config: ConfigOpt = None,
    web_port: Annotated[
        int | None, typer.Option("--web-port", help="Faust web port (127.0.0.1 by default)")
    ] = None,
    no_web: Annotated[bool, typer.Option("--no-web", help="Do not start the web server")] = False,
    join_timeout: Annotated[
        float, typer.Option("--join-timeout", help="Seconds to wait for a late stage vote")
    ] = 10.0,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info",
    state: Annotated[
        StateBackend | None,
        typer.Option("--state", help="memory, or redis: checkpointed, crash-safe [runtime.state]"),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option("--checkpoint-every", min=1, help="Checkpoint after this many inputs"),
    ] = None,
    checkpoint_interval: Annotated[
        float | None,
        typer.Option("--checkpoint-interval", min=0.01, help="...or after this many seconds"),
    ] = None,
    topology: Annotated[
        Topology | None,
        typer.Option(
            "--topology",
            help="fused: one agent runs every stage and the voter per tick (fast); split: an "
            "agent per stage, a votes topic and a voting agent [runtime.topology]",
        ),
    ] = None,
) -> None:
    """Run a streaming worker on Kafka: the backtest's kernel, per tick (fused) or split over
    stage agents and a voting agent.

    With --state redis, model state lives in Redis (signed with QUORUM_STATE_SECRET) and is
    checkpointed together with the input offsets: a crashed worker resumes where it left off.
    """
    import faust

    from streams.faust_app import create_app
    from streams.topics import TopicError, ensure_topics

    try:
        cfg = load_config(config)
    except ConfigError as e:
        raise _fail(str(e)) from None
    runtime = cfg.runtime
    if web_port is not None:
        runtime = runtime.model_copy(
            update={"web": runtime.web.model_copy(update={"port": web_port})}
        )
    try:
        ensure_topics(runtime)  # Faust must not auto-create them (partitions, retention)
    except TopicError as e:
        raise _fail(str(e)) from None
    settings = runtime.state
    backend = state.value if state is not None else settings.backend
    store = open_store(runtime) if backend == StateBackend.REDIS.value else None
    if store is not None:
        import redis

        try:
            headers = store.headers()
        except redis.RedisError as e:
            raise _fail(f"cannot read state from Redis: {e}") from None
        refused = [(k, h) for k, h, _ in headers if isinstance(h, Exception)]
        if refused:  # verified without unpickling anything
            raise _fail(
                "refusing to start: state in Redis failed verification:\n"
                + "\n".join(f"  {h}" for _, h in refused)
                + "\n(inspect with `quorum state ls`; remove with `quorum state reset`)"
            )
    try:
        app_, _ = create_app(
            cfg,
            runtime,
            store=store,
            topology=topology.value if topology is not None else None,
            join_timeout_s=join_timeout,
            web_enabled=not no_web,
            checkpoint_every=checkpoint_every or settings.checkpoint_every,
            checkpoint_interval_s=checkpoint_interval or settings.checkpoint_interval_s,
        )
    except ValueError as e:  # a stage config the kernel refuses (extractor, features)
        raise _fail(str(e)) from None
    faust.Worker(app_, loglevel=loglevel, quiet=True).execute_from_commandline()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
