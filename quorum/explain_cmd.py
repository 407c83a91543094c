"""``quorum explain SIGNAL_ID --run DIR``: a signal's receipt, its ensemble P(up) re-derived
from the receipt alone, and with ``--input`` the signal recomputed from the raw input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from quorum.cli_common import ConfigOpt, config_or_exit, console, fail

TOLERANCE = 1e-12


def find_signal(run: Path, signal_id: str) -> bytes:
    path = run / "signals.jsonl"
    if not path.is_file():
        raise fail(f"{path}: no such file (a backtest's --out folder has one)")
    needle = f'"id":"{signal_id}"'.encode()
    with path.open("rb") as f:
        for line in f:
            if needle in line:
                return line.rstrip(b"\n")
    raise fail(f"no signal {signal_id} in {path}")


def explain(
    signal_id: Annotated[str, typer.Argument(help="The signal's id (32 hex digits)")],
    run: Annotated[Path, typer.Option("--run", help="A backtest output folder")],
    config: ConfigOpt = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--input", help="The run's input files: recompute the signal from them"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a signal's receipt, re-derive its ensemble P(up) from it (to 1e-12), and with
    --input recompute the signal from the raw ticks bit for bit (exit 1 on any difference)."""
    from agents.voting import rederive
    from models.ensemble import logit
    from streams.codecs import decode_signal, encode_signal

    line = find_signal(run, signal_id)
    sig = decode_signal(line)
    cfg = config_or_exit(config)
    if cfg.config_hash() != sig.config_hash:
        raise fail(
            f"signal {signal_id} was made with config {sig.config_hash}, this config is "
            f"{cfg.config_hash()}: pass the run's --config"
        )
    p_up, quorum_met, action = rederive(sig.stages, cfg.voting)
    delta = abs(p_up - sig.p_up)
    ok = delta <= TOLERANCE and action == sig.action and quorum_met == sig.quorum_met
    doc: dict[str, Any] = {
        "id": sig.id,
        "symbol": sig.symbol,
        "ts": sig.ts,
        "action": sig.action.value,
        "p_up": sig.p_up,
        "rederived_p_up": p_up,
        "abs_diff": delta,
        "rederived_action": action.value,
        "quorum_met": sig.quorum_met,
        "method": cfg.voting.method,
        "stages": [
            {
                "name": v.name,
                "model": v.model,
                "version": v.version,
                "p_up": v.p_up,
                "weight": v.weight,
                "contribution": None if v.p_up is None else v.weight * logit(v.p_up),
            }
            for v in sig.stages
        ],
        "rederived": ok,
    }
    if inputs:
        from quorum import run_backtest

        result = run_backtest(inputs, config=cfg, prefetch=False)
        again = next((s for s in result.signals if s.id == signal_id), None)
        doc["recomputed"] = again is not None and encode_signal(again) == line
        ok = ok and doc["recomputed"]
    if as_json:
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        _show(doc)
    if not ok:
        raise typer.Exit(code=1)


def _show(doc: dict[str, Any]) -> None:
    t = Table(
        "stage", "model", "version", "p_up", "weight", "w·logit p", title=f"signal {doc['id']}"
    )
    for v in doc["stages"]:
        t.add_row(
            v["name"],
            v["model"],
            str(v["version"]),
            "abstained" if v["p_up"] is None else f"{v['p_up']:.6f}",
            f"{v['weight']:.6f}",
            "" if v["contribution"] is None else f"{v['contribution']:+.6f}",
        )
    console.print(t)
    mark = "ok" if doc["rederived"] else "DOES NOT MATCH"
    console.print(
        f"{doc['symbol']} at {doc['ts']}: {doc['action']} with P(up) {doc['p_up']!r} "
        f"({doc['method']}); re-derived from the receipt {doc['rederived_p_up']!r} "
        f"({doc['rederived_action']}), |Δ| {doc['abs_diff']:.3g}: {mark}",
        highlight=False,
    )
    if "recomputed" in doc:
        got = "bit for bit" if doc["recomputed"] else "DIFFERENT (or missing)"
        console.print(f"recomputed from the input: {got}", highlight=False)
