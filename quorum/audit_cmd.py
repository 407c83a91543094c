"""``quorum audit verify FILE``: check a hash-chained audit log (``models.audit``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from quorum.cli_common import console, fail

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify_cmd(
    file: Annotated[Path, typer.Argument(help="An audit.jsonl")],
    head: Annotated[
        str | None,
        typer.Option("--head", help="The expected last hash (default: report.json beside it)"),
    ] = None,
) -> None:
    """Find a flipped byte, a deleted, inserted or moved record, or a cut-off end; name the
    first bad record (exit 1). The head kept in ``report.json`` catches a whole rewrite."""
    from models.audit import verify

    if not file.is_file():
        raise fail(f"{file}: no such file")
    source = "--head"
    if head is None:
        report = file.parent / "report.json"
        if report.is_file():
            try:
                head = orjson.loads(report.read_bytes())["audit"]["head"]
                source = str(report)
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise fail(f"{report} has no audit head (pass --head)") from None
    with file.open("rb") as f:
        v = verify((line.rstrip(b"\n") for line in f), head=head)
    checked = f", head checked against {source}" if head is not None else ", no head to check"
    if v.ok:
        console.print(f"ok: {v.records:,} records, head {v.head}{checked}", highlight=False)
        return
    console.print(f"[bold red]BAD[/] at record {v.bad_index}: {v.reason}", highlight=False)
    raise typer.Exit(code=1)
