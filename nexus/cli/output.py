"""What every command shares: the consoles, the --config option, and loading a config or exiting
with code 2 and one line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from nexus.config import NexusConfig, load_config
from nexus.errors import ConfigError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file \\[default: $NEXUS_CONFIG or ./nexus.toml].",
        dir_okay=False,
    ),
]


def load_or_exit(path: Path | None, **cli: object) -> NexusConfig:
    try:
        return load_config(path, cli=cli, warn=warning)
    except ConfigError as exc:
        for line in exc.problems:
            err.print(f"[red]error:[/red] {escape(line)}")
        raise typer.Exit(2) from None


def warning(line: str) -> None:
    """One warning line on stderr, shaped like the error lines."""
    err.print(f"[yellow]warning:[/yellow] {escape(line)}")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as one error line; return the Exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)
