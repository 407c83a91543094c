"""``quorum feed binance|coinbase|serve``: live market data into the ticks topic, and a local
exchange simulator to point the connectors at (see :mod:`streams.feed`, :mod:`streams.feed_sim`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from quorum.cli_common import ConfigOpt, config_or_exit, console, fail

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from streams.feed import Feed

feed_app = typer.Typer(
    help="Live market data: venue connectors into the ticks topic, and a local simulator.",
    no_args_is_help=True,
)

SymbolsOpt = Annotated[
    str, typer.Option("--symbols", "-s", help="Comma-separated, e.g. BTCUSDT,ETHUSDT")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Websocket base URL (default: the venue's; a simulator's here)"),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option("--record", help="Write every raw frame to DIR (gzip, hourly), replayable"),
]
StaleOpt = Annotated[
    float, typer.Option("--stale-s", min=0.1, help="Reconnect after this long without a frame")
]
ReorderOpt = Annotated[
    float,
    typer.Option("--reorder-ms", min=0.0, help="Event-time reorder window (the reader's rule)"),
]
RotateOpt = Annotated[
    float | None,
    typer.Option("--rotate-s", min=1.0, help="Rotate the connection after this long"),
]
DurationOpt = Annotated[
    float | None, typer.Option("--duration", min=0.1, help="Stop after this many seconds")
]
MemoryOpt = Annotated[
    bool,
    typer.Option("--no-kafka", help="Print the status instead of producing (no services)"),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (documented: 9108; 0: any "
        "free port; default: off)",
    ),
]
MetricsHostOpt = Annotated[
    str, typer.Option("--metrics-host", help="Address the metrics server binds")
]


def _symbols(text: str) -> list[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise fail("--symbols needs at least one symbol")
    return out


def run_feed(
    venue_name: str,
    symbols: list[str],
    *,
    config: Path | None,
    url: str | None,
    record: Path | None,
    stale_s: float,
    reorder_ms: float,
    rotate_s: float | None,
    duration: float | None,
    no_kafka: bool,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    from streams.feed import VENUES, Feed, FeedConfig, MemorySink, Recorder, TickSink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sink: TickSink
    if no_kafka:
        sink = MemorySink()
    else:
        from streams.feed_kafka import KafkaTickSink
        from streams.replay import ReplayError

        runtime = config_or_exit(config).runtime
        try:
            sink = KafkaTickSink(runtime)
        except ReplayError as e:
            raise fail(str(e)) from None
    venue = VENUES[venue_name]()
    cfg = FeedConfig(
        symbols=symbols, url=url, stale_s=stale_s, reorder_ms=reorder_ms, rotate_s=rotate_s
    )
    recorder = Recorder(record, venue.name) if record is not None else None
    feed = Feed(venue, cfg, sink, recorder=recorder)
    log = logging.getLogger("quorum.feed")
    server = serve_feed_metrics(feed, metrics_port, metrics_host, log)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if duration is not None:
            loop.call_later(duration, stop.set)
        reporter = asyncio.create_task(_report(feed, stop, log))
        await feed.run(stop)
        reporter.cancel()

    asyncio.run(main())
    if server is not None:
        server.shutdown()
    recorded = f"; recorded {', '.join(map(str, recorder.files))}" if recorder else ""
    log.info("stopped %s: %s%s", venue.name, feed.stats.summary(), recorded)


def serve_feed_metrics(
    feed: Feed, port: int | None, host: str, log: logging.Logger
) -> WSGIServer | None:
    """Serve the feed's metrics (updated with every status record) when ``port`` is given."""
    if port is None:
        return None
    from streams.metrics import FeedMetrics, serve

    metrics = FeedMetrics()
    feed.on_status = metrics.update
    try:
        server = serve(metrics.registry, port, host)
    except OSError as e:
        raise fail(f"cannot serve metrics on {host}:{port}: {e}") from None
    log.info("metrics at http://%s:%d/metrics", host, server.server_port)
    return server


async def _report(feed: Feed, stop: asyncio.Event, log: logging.Logger) -> None:
    """A status line every 10 s (the full record goes to the feed.status topic every second)."""
    while not stop.is_set():
        await asyncio.sleep(10)
        log.info("%s: %s", feed.stats.venue, feed.stats.summary())


@feed_app.command("binance")
def feed_binance(
    symbols: SymbolsOpt,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    record: RecordOpt = None,
    stale_s: StaleOpt = 10.0,
    reorder_ms: ReorderOpt = 500.0,
    rotate_s: RotateOpt = None,
    duration: DurationOpt = None,
    no_kafka: MemoryOpt = False,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
) -> None:
    """Binance spot trades and best bid/ask into the ticks topic (combined streams)."""
    run_feed(
        "binance",
        _symbols(symbols),
        config=config,
        url=url,
        record=record,
        stale_s=stale_s,
        reorder_ms=reorder_ms,
        rotate_s=rotate_s,
        duration=duration,
        no_kafka=no_kafka,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )


@feed_app.command("coinbase")
def feed_coinbase(
    symbols: SymbolsOpt,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    record: RecordOpt = None,
    stale_s: StaleOpt = 10.0,
    reorder_ms: ReorderOpt = 500.0,
    duration: DurationOpt = None,
    no_kafka: MemoryOpt = False,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "127.0.0.1",
) -> None:
    """Coinbase Advanced Trade market_trades and ticker (with heartbeats) into the ticks topic.
    Symbols are product ids (BTC-USD)."""
    run_feed(
        "coinbase",
        _symbols(symbols),
        config=config,
        url=url,
        record=record,
        stale_s=stale_s,
        reorder_ms=reorder_ms,
        rotate_s=None,
        duration=duration,
        no_kafka=no_kafka,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )


@feed_app.command("serve")
def feed_serve(
    files: Annotated[list[Path], typer.Argument(help="Recordings (<recv_ns> <json>) or JSONL")],
    venue: Annotated[str, typer.Option("--venue", help="binance or coinbase")] = "binance",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: any free")] = 9443,
    speed: Annotated[
        float, typer.Option("--speed", min=0.0, help="1 = recorded rate; 0 = unpaced")
    ] = 1.0,
    close_after: Annotated[
        int | None, typer.Option("--close-after", help="Fault: close after N frames")
    ] = None,
    silence_after: Annotated[
        int | None, typer.Option("--silence-after", help="Fault: go silent after N frames")
    ] = None,
    silence_s: Annotated[float, typer.Option("--silence-s", help="...for S seconds")] = 15.0,
    gap_after: Annotated[
        int | None, typer.Option("--gap-after", help="Fault: skip trades after N frames")
    ] = None,
    gap_trades: Annotated[int, typer.Option("--gap-trades", help="...this many")] = 5,
    repeat: Annotated[
        int, typer.Option("--repeat", help="Fault: re-send the last N frames after a reconnect")
    ] = 0,
    shutdown_after: Annotated[
        int | None, typer.Option("--shutdown-after", help="Fault: server-shutdown event")
    ] = None,
    malformed_every: Annotated[
        int | None, typer.Option("--malformed-every", help="Fault: a bad frame every N")
    ] = None,
    keep_times: Annotated[
        bool, typer.Option("--keep-times", help="Serve exchange times as recorded")
    ] = False,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="Stop once every frame is served")
    ] = False,
) -> None:
    """Serve recorded frames on 127.0.0.1 the way the venue does, with optional faults."""
    from streams.feed_sim import Faults, Simulator, Venue, load_frames

    if venue not in ("binance", "coinbase"):
        raise fail(f"--venue must be binance or coinbase, got {venue!r}")
    for f in files:
        if not f.is_file():
            raise fail(f"{f}: no such file")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    faults = Faults(
        close_after=close_after,
        silence_after=silence_after,
        silence_s=silence_s,
        gap_after=gap_after,
        gap_trades=gap_trades,
        repeat=repeat,
        shutdown_after=shutdown_after,
        malformed_every=malformed_every,
    )
    v: Venue = "coinbase" if venue == "coinbase" else "binance"
    sim = Simulator(
        load_frames(files, v),
        v,
        speed=speed or None,
        faults=faults,
        retime=not keep_times,
        port=port,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sim.start()
        console.print(f"serving {venue} on {sim.url}", highlight=False)
        while not stop.is_set():
            with_timeout = asyncio.create_task(stop.wait())
            await asyncio.wait({with_timeout}, timeout=0.2)
            with_timeout.cancel()
            if exit_when_done and sim.stats.done and sim.stats.sent >= sim.stats.frames:
                await asyncio.sleep(1.0)  # let the last frames leave
                break
        await sim.stop()

    asyncio.run(main())
    logging.getLogger("quorum.feed.sim").info("stopped: %s", sim.stats)


def live(
    venue: Annotated[str, typer.Option("--venue", help="binance or coinbase")] = "binance",
    symbols: SymbolsOpt = "BTCUSDT,ETHUSDT",
    paper: Annotated[
        bool, typer.Option("--paper/--no-paper", help="Run the paper agent on the signals")
    ] = True,
    account: Annotated[str, typer.Option("--account", "-a", help="The paper account")] = "live",
    paper_config: Annotated[
        Path | None, typer.Option("--paper-config", help="Paper-trading YAML")
    ] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    record: RecordOpt = None,
    duration: DurationOpt = None,
    view: Annotated[
        bool | None, typer.Option("--view/--no-view", help="The terminal view (default: a tty)")
    ] = None,
    log_dir: Annotated[
        Path, typer.Option("--log-dir", help="Where the worker's and agent's logs go")
    ] = Path("out/live"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the final summary here")
    ] = None,
    stop_when_quiet: Annotated[
        float | None,
        typer.Option(
            "--stop-when-quiet",
            min=0.5,
            help="Stop once no frame came for this long (a simulator's replay has ended)",
        ),
    ] = None,
    reorder_ms: ReorderOpt = 500.0,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics",
            help="Prometheus metrics: the worker at its web port's /metrics (6066), the feed "
            "at 127.0.0.1:9108, the paper agent at 127.0.0.1:9109",
        ),
    ] = False,
) -> None:
    """The live loop: the feed, the worker and the paper agent under one command, with a
    terminal view; Ctrl-C (or --duration) stops them together and prints the paper result."""
    import os
    import sys

    import orjson

    from quorum.live import LiveOptions, run_live

    if venue not in ("binance", "coinbase"):
        raise fail(f"--venue must be binance or coinbase, got {venue!r}")
    if paper and len(os.environ.get("QUORUM_STATE_SECRET", "")) < 16:
        raise fail("set QUORUM_STATE_SECRET (at least 16 characters) for the paper account")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    runtime = config_or_exit(config).runtime
    opts = LiveOptions(
        venue=venue,
        symbols=_symbols(symbols),
        url=url,
        paper=paper,
        account=account,
        paper_config=paper_config,
        config=config,
        record=record,
        duration=duration,
        view=sys.stdout.isatty() if view is None else view,
        log_dir=log_dir,
        stop_when_quiet=stop_when_quiet,
        reorder_ms=reorder_ms,
        metrics=metrics,
    )
    summary = run_live(opts, runtime)
    text = orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if json_out is not None:
        json_out.write_text(text + "\n")
    if any(code not in (0, None) for code in summary["children"].values()):
        raise typer.Exit(code=1)
