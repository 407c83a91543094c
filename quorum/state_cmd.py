"""``quorum state ls|show|reset|export``: governance of the model state a worker keeps in Redis.

``ls`` reads only the verified headers (nothing is unpickled), so it also lists, and flags,
blobs that fail verification. ``show`` and ``export`` open one blob (verified first) and
describe it: which model, how many examples it learned, its calibration, its position in the
input. ``reset`` deletes state; stop the workers first, or they write it back at their next
checkpoint.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Column, Table

from quorum.cli_common import ConfigOpt, config_or_exit, console, fail

if TYPE_CHECKING:
    from config.runtime import RuntimeConfig
    from config.settings import PipelineConfig
    from models.sealed import SealedHeader
    from streams.redis_store import RedisStateStore

state_app = typer.Typer(
    help="Inspect, export or reset the model state in Redis (per stage and symbol).",
    no_args_is_help=True,
)

OwnerArg = Annotated[str, typer.Argument(help="A stage name, 'labels', 'voting' or 'join'")]
SymbolArg = Annotated[str, typer.Argument(help="The symbol, e.g. BTCUSDT")]


def open_store(runtime: RuntimeConfig) -> RedisStateStore:
    """The Redis state store of this pipeline; the signing secret comes from the environment."""
    from agents.describe import meta
    from models.sealed import StateSealer
    from streams.redis_store import RedisStateStore, redis_client

    secret = os.environ.get("QUORUM_STATE_SECRET", "")
    if len(secret) < 16:
        raise fail(
            "set QUORUM_STATE_SECRET (at least 16 characters): state blobs in Redis are "
            "signed with it and refused when the signature does not match"
        )
    sealer = StateSealer(secret.encode(), runtime.pipeline.name)
    return RedisStateStore(redis_client(runtime.redis.url), sealer, meta=meta)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.RedisError,)


def _headers(store: RedisStateStore) -> list[tuple[str, SealedHeader | Exception, int]]:
    try:
        return list(store.headers())
    except _redis_errors() as e:
        raise fail(f"cannot read state from Redis: {e}") from None


def _check_owner(cfg: PipelineConfig, owner: str) -> None:
    known = [s.name for s in cfg.stages] + ["labels", "voting", "join"]
    if owner not in known:
        raise fail(f"unknown stage {owner!r}; expected one of {', '.join(known)}")


def _open(store: RedisStateStore, key: str) -> tuple[SealedHeader, Any, bytes]:
    from models.sealed import StateIntegrityError

    try:
        store.headers()  # learns which partition's hash slot holds the key
        blob = store.client.get(store.redis_key(key))
    except _redis_errors() as e:
        raise fail(f"cannot read state from Redis: {e}") from None
    if blob is None:
        raise fail(f"no state for {key} in pipeline {store.sealer.pipeline!r}")
    data = bytes(blob)  # type: ignore[arg-type]
    try:
        head, value = store.sealer.open(key, data)
    except StateIntegrityError as e:
        raise fail(f"refused: {e}") from None
    return head, value, data


def _document(
    cfg: PipelineConfig, store: RedisStateStore, owner: str, symbol: str
) -> tuple[dict[str, Any], bytes]:
    """Header, description and model identity of one key, as plain data."""
    from agents.describe import describe
    from models.factory import model_id

    key = f"{owner}/{symbol}"
    head, value, data = _open(store, key)
    doc: dict[str, Any] = {
        "pipeline": head.pipeline,
        "key": head.key,
        "version": head.version,
        "bytes": len(data),
        "header": head.meta,
    }
    stage_cfg = next((s for s in cfg.stages if s.name == owner), None)
    if stage_cfg is not None:
        doc["model_id"] = model_id(stage_cfg)
        doc["stage_config"] = stage_cfg.model_dump(mode="json")
    doc["state"] = describe(value)
    return doc, data


@state_app.command("ls")
def state_ls(
    config: ConfigOpt = None,
    owner: Annotated[str | None, typer.Option("--stage", help="Only this stage")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this symbol")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines on stdout")] = False,
) -> None:
    """List the stored states with version, examples learned and position (verified headers).

    Exits 3 when any blob fails verification (tampered, another pipeline, unknown format).
    """
    cfg = config_or_exit(config)
    store = open_store(cfg.runtime)
    rows = []
    for key, head, size in _headers(store):
        own, _, sym = key.partition("/")
        if (owner and own != owner) or (symbol and sym != symbol):
            continue
        rows.append((own, sym, head, size))
    refused = sum(isinstance(h, Exception) for *_, h, _ in rows)
    if as_json:
        for own, sym, head, size in rows:
            line: dict[str, Any] = {"stage": own, "symbol": sym, "bytes": size}
            if isinstance(head, Exception):
                line["refused"] = str(head)
            else:
                line.update(version=head.version, **head.meta)
            typer.echo(orjson.dumps(line).decode())
    else:
        title = f"state of pipeline {cfg.runtime.pipeline.name!r} ({len(rows)} keys)"
        table = Table(
            Column("stage", no_wrap=True),
            Column("symbol", no_wrap=True),
            "version",
            "examples",
            "ticks",
            Column("position", no_wrap=True),
            "bytes",
            "status",
            title=title,
            title_justify="left",
        )
        for own, sym, head, size in rows:
            if isinstance(head, Exception):
                table.add_row(own, sym, "", "", "", "", str(size), f"[red]REFUSED: {head}[/]")
                continue
            m = head.meta
            pos = m.get("position")
            table.add_row(
                own,
                sym,
                str(head.version),
                str(m.get("examples_learned", "")),
                str(m.get("ticks_seen", "")),
                "" if pos is None else f"p{pos[0]}@{pos[1]}" + (f"#{pos[2]}" if pos[2:] else ""),
                str(size),
                "ok",
            )
        console.print(table)
    if refused:
        console.print(f"[red]{refused} blob(s) failed verification[/]", highlight=False)
        raise typer.Exit(code=3)


@state_app.command("show")
def state_show(
    owner: OwnerArg,
    symbol: SymbolArg,
    config: ConfigOpt = None,
) -> None:
    """Describe one state as JSON: model, parameters, learned weights, examples, calibration."""
    cfg = config_or_exit(config)
    _check_owner(cfg, owner)
    doc, _ = _document(cfg, open_store(cfg.runtime), owner, symbol)
    typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


@state_app.command("export")
def state_export(
    owner: OwnerArg,
    symbol: SymbolArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Dump one state: its description plus the exact sealed blob (base64, still signed)."""
    cfg = config_or_exit(config)
    _check_owner(cfg, owner)
    doc, data = _document(cfg, open_store(cfg.runtime), owner, symbol)
    doc["sealed_b64"] = base64.b64encode(data).decode("ascii")
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        console.print(f"exported {doc['key']} (version {doc['version']}) to {out}")


@state_app.command("reset")
def state_reset(
    owner: Annotated[
        str | None, typer.Argument(help="A stage name, 'labels', 'voting' or 'join'")
    ] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only this symbol")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every key of the pipeline (models, joins, voter)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask")] = False,
    config: ConfigOpt = None,
) -> None:
    """Delete state so the model starts again from scratch. Stop the workers first."""
    cfg = config_or_exit(config)
    if owner is None and not everything:
        raise fail("name a stage (and optionally --symbol), or pass --all")
    if owner is not None:
        _check_owner(cfg, owner)
    store = open_store(cfg.runtime)
    try:
        stored = store.keys()
        keys = [
            k
            for k in stored
            if (owner is None or k.partition("/")[0] == owner)
            and (symbol is None or k.partition("/")[2] == symbol)
        ]
    except _redis_errors() as e:
        raise fail(f"cannot read state from Redis: {e}") from None
    if not keys:
        console.print("nothing to reset")
        return
    console.print("\n".join(f"  {k}" for k in keys), highlight=False)
    if not yes and not typer.confirm(
        f"delete these {len(keys)} key(s) of pipeline {cfg.runtime.pipeline.name!r}?"
    ):
        raise typer.Exit(code=1)
    deleted = store.delete(keys)
    console.print(
        f"deleted {deleted} key(s); a running worker writes its live state back at its next "
        "checkpoint, so reset with the workers stopped"
    )
