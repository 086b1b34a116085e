"""``nexus usage``: a running gateway's ``GET /v1/usage`` as a table, or its JSON with ``--json``.

The gateway answers with the tenant of the client key sent (``--api-key``), or every tenant for
an admin client key or when it has no client keys configured.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from nexus.cli.output import out
from nexus.cli.remote import (
    DEFAULT_URL,
    KEY_HINT,
    JsonOption,
    KeyOption,
    UrlOption,
    fetch,
    print_json,
)

STATUS_STYLE = {"ok": "green", "soft_limit": "yellow", "hard_limit": "red"}


def usage(
    url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False
) -> None:
    """Show requests, tokens and spend today and this month, budgets and limits per tenant."""
    data = fetch(url, "/v1/usage", key=api_key, unauthorized=KEY_HINT)
    if as_json:
        return print_json(data)
    title = f"Usage on {data['day']} (UTC; month {data['month']})"
    columns = ("Tenant", "Requests", "Tokens in", "Tokens out", "Spend USD", "Budgets", "Limits")
    table = Table(*columns, title=title, caption="today / this month")
    for tenant in data["tenants"]:
        day, month = tenant["day"], tenant["month"]
        table.add_row(
            tenant["name"],
            f"{day['requests']:,} / {month['requests']:,}",
            f"{day['input_tokens']:,} / {month['input_tokens']:,}",
            f"{day['output_tokens']:,} / {month['output_tokens']:,}",
            f"{_usd(day['spend_usd'])} / {_usd(month['spend_usd'])}",
            "\n".join(_budget(b) for b in tenant["budgets"]) or "-",
            _limits(tenant["limits"]),
        )
    out.print(table)
    if "gateway" in data:
        out.print(_gateway(data["gateway"]))


def _usd(value: float) -> str:
    return f"{value:,.4f}"


def _budget(budget: dict[str, Any]) -> str:
    """``day: 0.4000 of 1.0000 left (soft_limit), renews in 3h 12m``."""
    status = budget["status"]
    left = f"{_usd(budget['remaining_usd'])} of {_usd(budget['limit_usd'])} left"
    styled = f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"
    return (
        f"{budget['period']}: {left} ({styled}), renews in {_duration(budget['renews_in_seconds'])}"
    )


def _duration(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m"


def _limits(limits: dict[str, Any]) -> str:
    parts = [f"{limits[key]:,} {key}" for key in ("rpm", "tpm") if limits.get(key) is not None]
    for key, period in (("daily_usd", "day"), ("monthly_usd", "month")):
        if limits.get(key) is not None:
            parts.append(f"{_usd(limits[key])} USD/{period}")
    if limits.get("daily_usd") is not None or limits.get("monthly_usd") is not None:
        parts.append(f"soft {limits['soft_limit_percent']:g}%, then {limits['hard_limit_action']}")
    return "\n".join(parts) or "-"


def _gateway(gateway: dict[str, Any]) -> str:
    month = gateway["month"]
    line = (
        f"Gateway this month: {month['requests']:,} requests, {month['input_tokens']:,} tokens "
        f"in, {month['output_tokens']:,} out, {_usd(month['spend_usd'])} USD"
    )
    budget = gateway.get("budget")
    if budget is None:
        return line + "; no gateway budget"
    return f"{line}; budget {_budget(budget)}, then {budget['hard_limit_action']}"
