"""The ``nexus`` command line. Thin: each command calls library functions and turns expected
failures into one clear line and a non-zero exit code (2 for configuration errors)."""

from __future__ import annotations

from typing import Annotated

import typer

from nexus import __version__
from nexus.cli import config_cmds, manual, remote, usage
from nexus.cli.output import ConfigOption, fail, load_or_exit, out
from nexus.errors import ConfigError

app = typer.Typer(
    name="nexus",
    help="Nexus: one OpenAI-compatible endpoint in front of many LLM backends.",
    epilog=manual.MAIN,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


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


@app.command(epilog=manual.page("serve"))
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address \\[env NEXUS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port \\[env NEXUS_PORT].")] = None,
    log_level: Annotated[
        str | None, typer.Option(help="trace|debug|info|warning|error \\[env NEXUS_LOG_LEVEL].")
    ] = None,
    no_discovery: Annotated[bool, typer.Option("--no-discovery", help="Disable mDNS.")] = False,
    no_health_check: Annotated[
        bool, typer.Option("--no-health-check", help="Disable background probes.")
    ] = False,
) -> None:
    """Start the gateway. SIGINT/SIGTERM drain in-flight requests (up to 10 s) and exit 0."""
    settings = load_or_exit(
        config,
        host=host,
        port=port,
        log_level=log_level,
        discovery=False if no_discovery else None,
        health_check=False if no_health_check else None,
    )
    from nexus.server import run  # keeps `nexus --help` and `config check` light

    try:
        run(settings)
    except ConfigError as exc:  # found before listening (e.g. an unusable usage ledger file)
        raise fail("; ".join(exc.problems), code=2) from None


app.add_typer(config_cmds.app, name="config")
remote.register(app)
app.command("usage", epilog=manual.page("usage"))(usage.usage)


def main() -> None:
    app()
