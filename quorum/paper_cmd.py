"""``quorum paper run|status|positions|orders|fills|halt|resume|flatten|reset``: the Kafka paper
agent and the account it keeps in Redis (see :mod:`streams.paper_agent`).

``status``, ``positions`` and ``orders`` read the account's last checkpoint (verified, then
opened); ``fills`` reads the fills topic, each fill id once. ``halt``, ``resume`` and
``flatten`` queue a command the running agent applies at its next batch (a stopped agent
applies it when it starts); it checkpoints at once, so a halt survives a restart.
"""

from __future__ import annotations

import getpass
import os
import signal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from quorum.cli_common import ConfigOpt, config_or_exit, console, fail

if TYPE_CHECKING:
    from config.runtime import RuntimeConfig
    from streams.paper_agent import AgentState
    from streams.redis_store import RedisStateStore

paper_app = typer.Typer(
    help="Paper trading on Kafka: run the agent, inspect and control its account.",
    no_args_is_help=True,
)

AccountOpt = Annotated[str, typer.Option("--account", "-a", help="The paper account")]


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, json or jsonl")]


def paper_store(runtime: RuntimeConfig) -> RedisStateStore:
    """The Redis store of paper accounts (signed with QUORUM_STATE_SECRET, like the models),
    one namespace per pipeline name and topic prefix."""
    from models.sealed import StateSealer
    from streams.redis_store import RedisStateStore, redis_client

    secret = os.environ.get("QUORUM_STATE_SECRET", "")
    if len(secret) < 16:
        raise fail(
            "set QUORUM_STATE_SECRET (at least 16 characters): the account in Redis is "
            "signed with it and refused when the signature does not match"
        )
    # one namespace per pipeline and topic prefix: an account belongs to the topics it read
    sealer = StateSealer(secret.encode(), f"{runtime.pipeline.name}.paper.{runtime.topics.prefix}")
    return RedisStateStore(redis_client(runtime.redis.url), sealer)


def _load(config: Path | None, account: str) -> tuple[RedisStateStore, AgentState]:
    import redis

    from models.sealed import StateIntegrityError
    from streams.paper_agent import AgentState, account_key

    store = paper_store(config_or_exit(config).runtime)
    try:
        state = store.get(account_key(account))
    except redis.RedisError as e:
        raise fail(f"cannot read the account from Redis: {e}") from None
    except StateIntegrityError as e:
        raise fail(f"the saved account failed verification: {e}") from None
    if state is None:
        raise fail(f"no paper account {account!r} in Redis (start one: quorum paper run)")
    if not isinstance(state, AgentState):
        raise fail(f"{account_key(account)} is not a paper account")
    return store, state


def _print(doc: Any, fmt: Format) -> None:
    if fmt is Format.JSONL and isinstance(doc, list):
        for row in doc:
            print(orjson.dumps(row).decode())
    else:
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


@paper_app.command("run")
def run(
    config: ConfigOpt = None,
    account: AccountOpt = "default",
    paper_config: Annotated[
        Path | None, typer.Option("--paper-config", help="Paper-trading YAML")
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            "--checkpoint-every",
            min=1,
            help="Checkpoint after this many records read plus events applied",
        ),
    ] = 5000,
    checkpoint_interval: Annotated[
        float, typer.Option("--checkpoint-interval", min=0.01, help="...or this many seconds")
    ] = 2.0,
    idle_grace: Annotated[
        float,
        typer.Option(
            "--idle-grace",
            min=0.0,
            help="Seconds a partition stays at its end before it holds nothing back",
        ),
    ] = 1.0,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle", min=0.1, help="Stop once every input is read and quiet this long"
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (documented: 9109; 0: "
            "any free port; default: off)",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics server binds")
    ] = "127.0.0.1",
) -> None:
    """Run the paper agent: trade the signals topic on an account kept in Redis.

    It reads every partition of the ticks and signals topics (one agent per account) and
    writes the orders, fills and positions topics. SIGTERM or Ctrl-C checkpoint and stop.
    """
    import logging

    from config.paper import PaperConfigError, load_paper_config
    from streams.paper_agent import PaperAgent
    from streams.redis_store import StateFencedError
    from streams.topics import TopicError, ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config_or_exit(config)
    try:
        paper_cfg = load_paper_config(paper_config)
    except PaperConfigError as e:
        raise fail(str(e)) from None
    runtime = cfg.runtime
    try:
        ensure_topics(runtime)
    except TopicError as e:
        raise fail(str(e)) from None
    store = paper_store(runtime)
    stopping = [False]

    def stop(signum: int, frame: Any) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics = None
    if metrics_port is not None:
        from streams.metrics import PaperMetrics, serve

        metrics = PaperMetrics()
        try:
            server = serve(metrics.registry, metrics_port, metrics_host)
        except OSError as e:
            raise fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {e}") from None
        logging.getLogger("quorum.paper").info(
            "metrics at http://%s:%d/metrics", metrics_host, server.server_port
        )
    agent = PaperAgent(
        runtime,
        paper_cfg,
        tuple(cfg.trigger),
        account,
        store,
        checkpoint_every=checkpoint_every,
        checkpoint_interval_s=checkpoint_interval,
        idle_grace_s=idle_grace,
        metrics=metrics,
    )
    try:
        agent.run(lambda: stopping[0], exit_when_idle_s=exit_when_idle)
    except StateFencedError as e:
        logging.getLogger("quorum.paper").critical("%s; stopping (exit 3)", e)
        raise typer.Exit(code=3) from None


@paper_app.command("status")
def status(
    config: ConfigOpt = None, account: AccountOpt = "default", fmt: FormatOpt = Format.TABLE
) -> None:
    """The account: equity, PnL, fees, orders, fills, denials, halt state, input progress."""
    from streams.paper_agent import alive_key, queued_commands

    store, st = _load(config, account)
    s = st.session
    rep = s.report()
    doc = {
        "account": account,
        "running": bool(store.client.exists(alive_key(store, account))),
        "halted": s.trader.halted,
        "pending_commands": [f for _, f in queued_commands(store, account, st.control_id)],
        "last_event_ts": s.last_ts,
        "inputs": st.inputs,
        "offsets": {t: {str(p): o for p, o in sorted(ps.items())} for t, ps in st.offsets.items()},
        "commands": st.commands,
        **{
            k: rep[k]
            for k in (
                "equity",
                "net_pnl",
                "gross_pnl",
                "fees",
                "realised_pnl",
                "unrealised_pnl",
                "n_orders",
                "n_fills",
                "turnover",
                "denied",
                "open_orders",
                "merge",
            )
        },
        "max_drawdown": s.trader.account.max_drawdown,
        "cash": s.trader.account.cash,
    }
    if fmt is not Format.TABLE:
        _print(doc, fmt)
        return
    table = Table(title=f"paper account {account}", show_header=False)
    for k, v in doc.items():
        table.add_row(k, v if isinstance(v, str) else orjson.dumps(v).decode())
    console.print(table)


@paper_app.command("positions")
def positions(
    config: ConfigOpt = None, account: AccountOpt = "default", fmt: FormatOpt = Format.TABLE
) -> None:
    """Open positions at their marks (the mid of the last quote applied)."""
    _, st = _load(config, account)
    s = st.session
    rows = [
        s.position_record(sym, s.last_ts or 0)
        for sym, p in sorted(s.trader.account.positions.items())
        if abs(p.size) > 1e-12
    ]
    if fmt is not Format.TABLE:
        _print(rows, fmt)
        return
    table = Table("symbol", "size", "avg price", "mark", "realised", "fees", title="positions")
    for r in rows:
        table.add_row(
            r["symbol"],
            f"{r['size']:.6g}",
            f"{r['avg_price']:.6g}",
            f"{r['mark']:.6g}" if r["mark"] is not None else "-",
            f"{r['realised_pnl']:.2f}",
            f"{r['fees']:.2f}",
        )
    console.print(table)


@paper_app.command("orders")
def orders(
    config: ConfigOpt = None, account: AccountOpt = "default", fmt: FormatOpt = Format.TABLE
) -> None:
    """Open orders (working at the simulated venue or on their way to it)."""
    from agents.paper_session import order_record

    _, st = _load(config, account)
    rows = [order_record(o) for o in st.session.trader.open_orders()]
    if fmt is not Format.TABLE:
        _print(rows, fmt)
        return
    table = Table("id", "symbol", "side", "size", "reason", "ts", title="open orders")
    for r in rows:
        table.add_row(
            r["id"], r["symbol"], r["side"], f"{r['size']:.6g}", r["reason"], str(r["ts"])
        )
    console.print(table)


@paper_app.command("fills")
def fills(
    config: ConfigOpt = None,
    account: AccountOpt = "default",
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Read the topic from its start")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Stop after this many quiet seconds")
    ] = 5.0,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """The account's fills from the fills topic, each fill id once."""
    from streams.paper_agent import iter_fills

    runtime = config_or_exit(config).runtime
    rows = iter_fills(runtime, account, from_beginning=from_beginning, timeout_s=timeout)
    if fmt is Format.JSONL:
        for row in rows:
            print(orjson.dumps(row).decode(), flush=True)
        return
    got = list(rows)
    if fmt is Format.JSON:
        _print(got, fmt)
        return
    table = Table("id", "symbol", "side", "price", "size", "fee", "liquidity", "ts", title="fills")
    for r in got:
        table.add_row(
            r["id"],
            r["symbol"],
            r["side"],
            f"{r['price']:.6g}",
            f"{r['size']:.6g}",
            f"{r['fee']:.4f}",
            r["liquidity"],
            str(r["ts"]),
        )
    console.print(table)


def _command(config: Path | None, account: str, command: str, operator: str | None) -> None:
    from streams.paper_agent import alive_key, send_control

    store = paper_store(config_or_exit(config).runtime)
    rid = send_control(store, account, command, operator or getpass.getuser())
    running = bool(store.client.exists(alive_key(store, account)))
    console.print(
        f"{command} queued for account {account} (command {rid}); "
        + (
            "the running agent applies it at its next batch"
            if running
            else "no agent is running: it applies it when it starts"
        )
    )


OperatorOpt = Annotated[str | None, typer.Option("--operator", help="Who (default: $USER)")]


@paper_app.command("halt")
def halt(
    config: ConfigOpt = None, account: AccountOpt = "default", operator: OperatorOpt = None
) -> None:
    """Kill switch: no new orders (horizon exits included) until resumed; flatten to close."""
    _command(config, account, "halt", operator)


@paper_app.command("resume")
def resume(
    config: ConfigOpt = None, account: AccountOpt = "default", operator: OperatorOpt = None
) -> None:
    """Lift a halt."""
    _command(config, account, "resume", operator)


@paper_app.command("flatten")
def flatten(
    config: ConfigOpt = None, account: AccountOpt = "default", operator: OperatorOpt = None
) -> None:
    """Cancel open orders and close every position with market orders (allowed when halted)."""
    _command(config, account, "flatten", operator)


@paper_app.command("reset")
def reset(
    config: ConfigOpt = None,
    account: AccountOpt = "default",
    force: Annotated[bool, typer.Option("--force", help="Even if an agent seems to run")] = False,
) -> None:
    """Delete the account (its checkpoint and queued commands); the next run starts afresh."""
    from streams.paper_agent import account_key, alive_key, control_key

    store = paper_store(config_or_exit(config).runtime)
    if store.client.exists(alive_key(store, account)) and not force:
        raise fail(f"an agent of account {account!r} is running: stop it first (or --force)")
    n = store.delete([account_key(account)])
    store.client.delete(control_key(store, account))
    console.print(f"account {account}: {'deleted' if n else 'nothing to delete'}")
