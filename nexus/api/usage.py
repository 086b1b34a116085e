"""``GET /v1/usage``: what a tenant used and spent today and this month (UTC), its limits and how
far its budgets have gone, from the usage ledger (:mod:`nexus.state.ledger`) and the budgets
(:mod:`nexus.gateway.budgets`).

A client sees its own tenant. A client with ``admin = true``, and everyone when no client keys
are configured, sees every tenant (each ``[[clients]]`` entry, ``default`` and any other tenant
with usage this month) and the gateway's own month and budget. Tenants are named, never keyed.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from nexus.api.auth import TENANT
from nexus.api.context import gateway_of
from nexus.api.openapi import JSON, error_response_doc
from nexus.config.model import ClientConfig
from nexus.gateway import Gateway
from nexus.gateway.budgets import Budget
from nexus.gateway.tenants import DEFAULT, Tenant
from nexus.state.ledger import GLOBAL, Usage, periods

router = APIRouter(tags=["observability"])

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INTEGER_OR_NULL = {"type": ["integer", "null"]}
_TOTALS: dict[str, Any] = {
    "type": "object",
    "required": ["requests", "input_tokens", "output_tokens", "spend_usd"],
    "properties": {
        "requests": {"type": "integer"},
        "input_tokens": {"type": "integer"},
        "output_tokens": {"type": "integer"},
        "spend_usd": {"type": "number"},
    },
}
_BUDGET: dict[str, Any] = {
    "type": "object",
    "required": [
        "period", "limit_usd", "spent_usd", "remaining_usd", "status", "renews_in_seconds",
    ],
    "properties": {
        "period": {"enum": ["day", "month"]},
        "limit_usd": {"type": "number"},
        "spent_usd": {"type": "number", "description": "Running cloud requests included."},
        "remaining_usd": {"type": "number"},
        "status": {"enum": ["ok", "soft_limit", "hard_limit"]},
        "renews_in_seconds": {"type": "integer"},
        "hard_limit_action": {"type": "string", "description": "The gateway's budget only."},
    },
}  # fmt: skip
_LIMITS: dict[str, Any] = {
    "type": "object",
    "description": "As configured in [[clients]]; null when not set (always for default).",
    "properties": {
        "rpm": _INTEGER_OR_NULL,
        "tpm": _INTEGER_OR_NULL,
        "daily_usd": _NUMBER_OR_NULL,
        "monthly_usd": _NUMBER_OR_NULL,
        "soft_limit_percent": _NUMBER_OR_NULL,
        "hard_limit_action": {"type": ["string", "null"]},
    },
}
USAGE_SCHEMA: dict[str, Any] = {
    "title": "Usage",
    "type": "object",
    "required": ["object", "day", "month", "tenants"],
    "properties": {
        "object": {"const": "usage"},
        "day": {"type": "string", "description": "The UTC day, YYYY-MM-DD."},
        "month": {"type": "string", "description": "The UTC month, YYYY-MM."},
        "tenants": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "day", "month", "limits", "budgets"],
                "properties": {
                    "name": {"type": "string"},
                    "day": _TOTALS,
                    "month": _TOTALS,
                    "limits": _LIMITS,
                    "budgets": {"type": "array", "items": _BUDGET},
                },
            },
        },
        "gateway": {
            "type": "object",
            "description": "Admins only (and everyone without client keys).",
            "required": ["month", "budget"],
            "properties": {"month": _TOTALS, "budget": {"anyOf": [_BUDGET, {"type": "null"}]}},
        },
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Usage and budgets.", "content": {JSON: {"schema": USAGE_SCHEMA}}},
    401: error_response_doc("No valid client key (when client keys are configured)."),
}


@router.get("/v1/usage", responses=_RESPONSES)
async def usage(request: Request) -> dict[str, Any]:
    """Requests, input and output tokens and spend (USD) of the caller's tenant today and this
    month (UTC), with its rate limits and the state of its daily and monthly budgets.

    A client with `admin = true` (everyone when no client keys are configured) sees every tenant
    and, under `gateway`, the gateway's month and its `[routing.budget]`. Never shows a key."""
    gateway = gateway_of(request)
    tenant: Tenant | None = request.scope.get(TENANT)
    clients = {client.name: client for client in gateway.config.clients}
    if tenant is None or (tenant.name in clients and clients[tenant.name].admin):
        names, everyone = _every_tenant(gateway), True
    else:
        names, everyone = [tenant.name], False
    now = time.time()
    day, month = periods(now)
    body: dict[str, Any] = {
        "object": "usage",
        "day": day.removeprefix("d:"),
        "month": month.removeprefix("m:"),
        "tenants": [_tenant_json(gateway, name, clients.get(name), now) for name in names],
    }
    if everyone:
        body["gateway"] = _gateway_json(gateway, now)
    return body


def _every_tenant(gateway: Gateway) -> list[str]:
    """``default``, the configured clients in their order, then any other tenant with usage."""
    names = [DEFAULT.name, *(client.name for client in gateway.config.clients)]
    return names + [name for name in gateway.ledger.tenants() if name not in names]


def _tenant_json(
    gateway: Gateway, name: str, client: ClientConfig | None, now: float
) -> dict[str, Any]:
    ledger = gateway.ledger
    own = [b for b in gateway.budgets.budgets_of(name) if b.owner == name]
    return {
        "name": name,
        "day": _totals(ledger.usage(name, "day", at=now)),
        "month": _totals(ledger.usage(name, "month", at=now)),
        "limits": _limits(client),
        "budgets": [_budget_json(gateway, budget) for budget in own],
    }


def _gateway_json(gateway: Gateway, now: float) -> dict[str, Any]:
    budget = gateway.budgets.gateway_budget
    described = None
    if budget is not None:
        action = gateway.config.routing.budget.hard_limit_action
        described = {**_budget_json(gateway, budget), "hard_limit_action": action}
    return {"month": _totals(gateway.ledger.usage(GLOBAL, "month", at=now)), "budget": described}


def _totals(usage: Usage) -> dict[str, Any]:
    return {
        "requests": usage.requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "spend_usd": round(usage.spend_usd, 6),
    }


def _limits(client: ClientConfig | None) -> dict[str, Any]:
    if client is None:
        return dict.fromkeys(_LIMITS["properties"])
    return {
        "rpm": client.rpm,
        "tpm": client.tpm,
        "daily_usd": client.daily_usd,
        "monthly_usd": client.monthly_usd,
        "soft_limit_percent": client.soft_limit_percent,
        "hard_limit_action": client.hard_limit_action,
    }


def _budget_json(gateway: Gateway, budget: Budget) -> dict[str, Any]:
    budgets = gateway.budgets
    spent = budgets.spent(budget)
    return {
        "period": budget.period,
        "limit_usd": budget.limit_usd,
        "spent_usd": round(spent, 6),
        "remaining_usd": round(max(budget.limit_usd - spent, 0.0), 6),
        "status": budgets.status(budget).value,
        "renews_in_seconds": budgets.seconds_left(budget),
    }
