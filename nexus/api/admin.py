"""``GET /v1/backends``: every backend's configuration and live state, never a key."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from nexus.api.context import gateway_of
from nexus.backends.quality import QualityStore
from nexus.backends.state import BackendView
from nexus.config.kinds import Api

router = APIRouter(tags=["admin"])


def backend_json(backend: BackendView) -> dict[str, Any]:
    """One backend as the admin API shows it (README, "HTTP API")."""
    return {
        "name": backend.name,
        "type": backend.kind.name,
        "url": backend.url,
        "zone": backend.zone.value,
        "tier": backend.tier,
        "priority": backend.priority,
        "status": backend.status.value,
        "models": list(backend.models),
        "models_stale": backend.models_stale,
        "in_flight": backend.in_flight,
        "latency_ms": None if backend.latency_ms is None else round(backend.latency_ms, 1),
        "last_error": backend.last_error,
        "last_check": _iso(backend.last_check),
        "location": backend.kind.location.value,
        "max_concurrent": backend.max_concurrent,
        "discovered": backend.discovered,
        "apis": sorted(api.value for api in Api if backend.speaks(api)),
    }


def quality_json(store: QualityStore, now: float) -> dict[str, dict[str, dict[str, Any]]]:
    """Backend -> model -> its figures over the last 5 minutes and its ejection state."""
    shown: dict[str, dict[str, dict[str, Any]]] = {}
    for backend, model in store.pairs():
        figures = store.figures(backend, model, "5m")
        state = store.state(backend, model)
        until = state.ejected_until
        speed = figures.tokens_per_second
        shown.setdefault(backend, {})[model] = {
            "status": state.status.value,
            "back_in_seconds": None if until is None or until <= now else math.ceil(until - now),
            "reason": state.reason,
            "attempts_5m": figures.attempts,
            "failures_5m": {kind.value: count for kind, count in figures.failures.items()},
            "error_rate_5m": figures.error_rate,
            "ttft_ms_5m": None if figures.ttft_ms is None else round(figures.ttft_ms, 1),
            "tokens_per_second_5m": None if speed is None else round(speed, 1),
        }
    return shown


def failing_models(backend: BackendView, now: float) -> dict[str, dict[str, Any]]:
    """The models passive health has taken out on ``backend``, with seconds left and the cause."""
    return {
        model: {"seconds_left": math.ceil(until - now), "last_error": error}
        for model, (until, error) in backend.ejected_models.items()
        if until > now
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@router.get("/v1/backends")
async def list_backends(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    snapshot, now = gateway.registry.snapshot(), gateway.clock()
    quality = quality_json(gateway.quality, now)
    data = [
        {
            **backend_json(b),
            "failing_models": failing_models(b, now),
            "quality": quality.get(b.name, {}),
        }
        for b in snapshot.backends
    ]
    return {"object": "list", "data": data}
