"""The ``nexus`` command line. Thin: each command calls library functions and turns expected
failures into one clear line and a non-zero exit code (2 for configuration errors)."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from nexus import __version__
from nexus.config import NexusConfig, load_config
from nexus.config.credentials import effective_config
from nexus.errors import ConfigError

app = typer.Typer(
    name="nexus",
    help="Nexus: one OpenAI-compatible endpoint in front of many LLM backends.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Write and check nexus.toml files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file [default: $NEXUS_CONFIG or ./nexus.toml].",
        dir_okay=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"nexus {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Nexus: one OpenAI-compatible endpoint in front of many LLM backends."""


def _load_or_exit(path: Path | None, **cli: object) -> NexusConfig:
    try:
        return load_config(path, cli=cli)
    except ConfigError as exc:
        for line in exc.problems:
            err.print(f"[red]error:[/red] {line}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env NEXUS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env NEXUS_PORT].")] = None,
    log_level: Annotated[
        str | None, typer.Option(help="trace|debug|info|warning|error [env NEXUS_LOG_LEVEL].")
    ] = None,
    no_discovery: Annotated[bool, typer.Option("--no-discovery", help="Disable mDNS.")] = False,
    no_health_check: Annotated[
        bool, typer.Option("--no-health-check", help="Disable background probes.")
    ] = False,
) -> None:
    """Start the gateway. SIGINT/SIGTERM drain in-flight requests (up to 10 s) and exit 0."""
    settings = _load_or_exit(
        config,
        host=host,
        port=port,
        log_level=log_level,
        discovery=False if no_discovery else None,
        health_check=False if no_health_check else None,
    )
    from nexus.server import run  # keeps `nexus --help` and `config check` light

    run(settings)


@config_app.command("init")
def config_init(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write.", dir_okay=False)
    ] = Path("nexus.toml"),
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite an existing file.")
    ] = False,
) -> None:
    """Write a commented example nexus.toml."""
    if output.exists() and not force:
        err.print(f"[red]error:[/red] {output} already exists; use --force to overwrite it")
        raise typer.Exit(1)
    try:
        output.write_text(example_config(), encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot write {output}: {exc.strerror}")
        raise typer.Exit(1) from None
    out.print(f"Wrote {output}. Check it with: nexus config check --config {output}")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate a config file and print the effective configuration (API keys masked)."""
    settings = _load_or_exit(config)
    sys.stdout.write(orjson.dumps(effective_config(settings), option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")
    err.print(f"[green]ok:[/green] valid configuration with {len(settings.backends)} backend(s)")


def example_config() -> str:
    """The commented example shipped with the package (also the repository's nexus.toml)."""
    return files("nexus").joinpath("example.toml").read_text(encoding="utf-8")


def main() -> None:
    app()
