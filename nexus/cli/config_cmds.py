"""``nexus config init`` and ``nexus config check``."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import orjson
import typer

from nexus.cli import manual
from nexus.cli.output import ConfigOption, err, fail, load_or_exit, out
from nexus.config.credentials import effective_config

app = typer.Typer(help="Write and check nexus.toml files.", no_args_is_help=True)


@app.command("init", epilog=manual.page("config init"))
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
        raise fail(f"{output} already exists; use --force to overwrite it")
    try:
        output.write_text(example_config(), encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror}") from None
    out.print(f"Wrote {output}. Check it with: nexus config check --config {output}")


@app.command("check", epilog=manual.page("config check"))
def config_check(config: ConfigOption = None) -> None:
    """Validate a config file and print the effective configuration (API keys masked)."""
    settings = load_or_exit(config)
    sys.stdout.write(orjson.dumps(effective_config(settings), option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")
    err.print(f"[green]ok:[/green] valid configuration with {len(settings.backends)} backend(s)")


def example_config() -> str:
    """The commented example shipped with the package (also the repository's nexus.toml)."""
    return files("nexus").joinpath("example.toml").read_text(encoding="utf-8")
