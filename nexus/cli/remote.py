"""Commands that ask a *running* gateway over HTTP: ``backends list``, ``models``, ``health``,
``route``.

Each prints a table, or the gateway's JSON with ``--json``. An unreachable gateway is one line on
stderr and exit code 1.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.table import Table

from nexus.cli import manual
from nexus.cli.output import fail, out

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOption = Annotated[
    str, typer.Option("--url", envvar="NEXUS_URL", help="The running gateway's base URL.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="NEXUS_API_KEY",
        help="A client key, when the gateway requires one.",
        show_default=False,
    ),
]
KEY_HINT = "send a client key with --api-key or NEXUS_API_KEY"

backends_app = typer.Typer(help="Show the backends of a running gateway.", no_args_is_help=True)


def fetch(
    url: str,
    path: str,
    *,
    ok_statuses: tuple[int, ...] = (200,),
    key: str | None = None,
    unauthorized: str | None = None,
) -> Any:
    """GET ``path`` from the gateway at ``url`` (with the client ``key`` as a bearer token) and
    return its JSON, or exit 1 with one line (``unauthorized``: what to say after a 401)."""
    target = url.rstrip("/") + path
    headers = {"authorization": f"Bearer {key.strip()}"} if key and key.strip() else None
    try:
        response = httpx.get(target, timeout=10.0, headers=headers)
    except httpx.TransportError as exc:
        raise fail(f"cannot reach Nexus at {url}: {_cause(exc)}") from None
    if response.status_code == 401 and unauthorized:
        refused = "the key was refused" if headers else "it needs a client key"
        raise fail(f"{target} answered HTTP 401: {refused}; {unauthorized}")
    if response.status_code not in ok_statuses:
        raise fail(f"{target} answered HTTP {response.status_code}")
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise fail(f"{target} did not answer JSON; is it a Nexus gateway?") from None


def _cause(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unknown (is `nexus serve` running?)"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer within 10 s"
    return type(exc).__name__


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


STATUS_STYLE = {"healthy": "green", "unhealthy": "red", "unknown": "yellow"}


@backends_app.command("list", epilog=manual.page("backends list"))
def backends_list(
    url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False
) -> None:
    """List backends with status, zone, tier, models and latency."""
    data = fetch(url, "/v1/backends", key=api_key, unauthorized=KEY_HINT)
    if as_json:
        return print_json(data)
    table = Table("Name", "Type", "URL", "Status", "Zone", "Tier", "Models", "In flight", "Latency")
    for b in data["data"]:
        status = f"[{STATUS_STYLE.get(b['status'], 'white')}]{b['status']}[/]"
        latency = "-" if b["latency_ms"] is None else f"{b['latency_ms']:.0f} ms"
        row = (b["name"], b["type"], b["url"], status, b["zone"], str(b["tier"]))
        table.add_row(*row, str(len(b["models"])), str(b["in_flight"]), latency)
    out.print(table)
    for b in data["data"]:
        if b["status"] != "healthy" and b["last_error"]:
            out.print(f"{b['name']}: {b['last_error']}", markup=False)


def models(
    url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False
) -> None:
    """List the models available on healthy backends."""
    data = fetch(url, "/v1/models", key=api_key, unauthorized=KEY_HINT)
    if as_json:
        return print_json(data)
    table = Table("Model", "Backends", "Context", "Capabilities")
    for m in data["data"]:
        context = "-" if m.get("context_length") is None else f"{m['context_length']:,}"
        capabilities = ", ".join(m.get("capabilities", [])) or "-"
        table.add_row(m["id"], ", ".join(m.get("backends", [])), context, capabilities)
    out.print(table)


def health(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Show the gateway's health: status, version, uptime, backends and models."""
    data = fetch(url, "/health")
    if as_json:
        return print_json(data)
    minutes, seconds = divmod(int(data["uptime_seconds"]), 60)
    hours, minutes = divmod(minutes, 60)
    style = {"healthy": "green", "degraded": "yellow"}.get(data["status"], "red")
    backends = data["backends"]
    out.print(f"Status:   [{style}]{data['status']}[/]")
    out.print(f"Version:  {data['version']}")
    out.print(f"Uptime:   {hours}h {minutes}m {seconds}s")
    out.print(f"Backends: {backends['healthy']}/{backends['total']} healthy")
    out.print(f"Models:   {data['models']} available")


def route(
    model: Annotated[str, typer.Argument(help="The model a client would ask for.")],
    explain: Annotated[
        bool, typer.Option("--explain", help="Show every backend considered and why.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show how the running gateway would route a request for MODEL now, without sending it."""
    query = httpx.QueryParams(model=model)
    data = fetch(url, f"/v1/route?{query}", key=api_key, unauthorized=KEY_HINT)
    if as_json:
        return print_json(data)
    if data["routable"]:
        order = " -> ".join(f"{c['backend']} ({c['model']})" for c in data["candidates"])
        out.print(f"{model}: {data['route_reason']}, tried in order: {order}", markup=False)
    else:
        out.print(f"{model}: HTTP {data['status']} {data['code']}: {data['message']}", markup=False)
    if explain:
        for stage in data["stages"]:
            out.print(_stage_table(stage))


def _stage_table(stage: dict[str, Any]) -> Table:
    title = f"model {stage['model']} ({stage['role']})"
    table = Table("Backend", "Status", "Zone", "Tier", "Decision", "Why", "Quality", title=title)
    for b in stage["backends"]:
        decision = "[green]kept[/]" if b["decision"] == "kept" else "[red]skipped[/]"
        row = (b["backend"], b["status"], b["zone"], str(b["tier"]))
        table.add_row(*row, decision, b["detail"] or "", quality_cell(b.get("quality")))
    return table


def quality_cell(quality: dict[str, Any] | None) -> str:
    """One backend's quality figures for the stage's model and what they did to its place, e.g.
    ``lowered 50 %: ttft 4500 ms, errors 2.0 %``; empty without figures."""
    if not quality:
        return ""
    figures = []
    if quality["ttft_ms"] is not None:
        figures.append(f"ttft {quality['ttft_ms']:g} ms")
    if quality["error_rate"] is not None:
        figures.append(f"errors {quality['error_rate']:.1%}")
    effect = quality["effect"]
    if effect == "lowered":
        effect = f"lowered {quality['penalty']:.0%}"
    elif quality["back_in_seconds"] is not None:
        effect = f"{effect}, back in {quality['back_in_seconds']} s"
    return f"{effect}: {', '.join(figures)}" if figures else effect


def register(app: typer.Typer) -> None:
    """Add these commands to the top-level ``nexus`` app."""
    app.add_typer(backends_app, name="backends")
    app.command("models", epilog=manual.page("models"))(models)
    app.command("health", epilog=manual.page("health"))(health)
    app.command("route", epilog=manual.page("route"))(route)
