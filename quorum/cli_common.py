"""What the ``quorum`` sub-commands share: the console, errors, the config option."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from config.settings import ConfigError, PipelineConfig, load_config

if TYPE_CHECKING:
    from config.runtime import RuntimeConfig

console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the caller raises the returned exit (code 2)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def config_or_exit(config: Path | None) -> PipelineConfig:
    """The config of ``config`` (or the default) with QUORUM_* variables applied."""
    try:
        return load_config(config)
    except ConfigError as e:
        raise fail(str(e)) from None


def runtime_or_exit(config: Path | None) -> RuntimeConfig:
    return config_or_exit(config).runtime
