"""The ``quorum`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.settings import ConfigError
from models.factory import ModelConfigError
from streams.readers import Format, ReaderError
from streams.timeparse import parse_time_ns

app = typer.Typer(
    help="quorum: an ensemble of small online River models voting on trading signals.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


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
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config")]
FormatOpt = Annotated[Format | None, typer.Option("--format", help="Override format detection")]
SymbolsOpt = Annotated[str | None, typer.Option("--symbols", help="Comma-separated symbols")]
StartOpt = Annotated[str | None, typer.Option("--start", help="Inclusive: ns or ISO-8601+offset")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Exclusive: ns or ISO-8601+offset")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


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
) -> None:
    """Run the pipeline in-process over recorded ticks; write signals and a scored report."""
    from quorum.backtest import run_backtest

    start_ns, end_ns = _time(start, "--start"), _time(end, "--end")
    show = not quiet and console.is_terminal
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,.0f} events"),
            TimeElapsedColumn(),
            console=console,
            disable=not show,
            transient=True,
        ) as bar:
            task = bar.add_task("backtest", total=None)
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
            )
    except (ReaderError, ConfigError, ModelConfigError, ValueError) as e:
        raise _fail(str(e)) from None
    if not quiet:
        _summary(result.report, out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
