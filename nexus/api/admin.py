"""``GET /v1/backends``: every backend's configuration and live state, never a key."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from nexus.api.context import gateway_of
from nexus.backends.quality import PairState, QualityStore
from nexus.backends.quality_view import PairStatus, seconds_left
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
        speed = figures.tokens_per_second
        shown.setdefault(backend, {})[model] = {
            **state_json(store.state(backend, model), now),
            "attempts_5m": figures.attempts,
            "failures_5m": {kind.value: count for kind, count in figures.failures.items()},
            "error_rate_5m": figures.error_rate,
            "ttft_ms_5m": None if figures.ttft_ms is None else round(figures.ttft_ms, 1),
            "tokens_per_second_5m": None if speed is None else round(speed, 1),
        }
    return shown


def troubled_models(store: QualityStore, now: float) -> dict[str, dict[str, dict[str, Any]]]:
    """Backend -> model -> :func:`state_json`, for the pairs ejected or recovering only."""
    shown: dict[str, dict[str, dict[str, Any]]] = {}
    for backend, model in store.pairs():
        state = store.state(backend, model)
        if state.status is not PairStatus.OK:
            shown.setdefault(backend, {})[model] = state_json(state, now)
    return shown


def state_json(state: PairState, now: float) -> dict[str, Any]:
    """A pair's quality status, whole seconds until its ejection ends (None when it is not
    ejected) and the reason of its last ejection."""
    return {
        "status": state.status.value,
        "back_in_seconds": seconds_left(state.ejected_until, now),
        "reason": state.reason,
    }


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
