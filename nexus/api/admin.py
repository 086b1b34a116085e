"""``GET /v1/backends``: every backend's configuration and live state, never a key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from nexus.api.context import gateway_of
from nexus.backends.state import BackendView

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
        "in_flight": backend.in_flight,
        "latency_ms": None if backend.latency_ms is None else round(backend.latency_ms, 1),
        "last_error": backend.last_error,
        "last_check": _iso(backend.last_check),
        "location": backend.kind.location.value,
        "max_concurrent": backend.max_concurrent,
        "discovered": backend.discovered,
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@router.get("/v1/backends")
async def list_backends(request: Request) -> dict[str, Any]:
    snapshot = gateway_of(request).registry.snapshot()
    return {"object": "list", "data": [backend_json(b) for b in snapshot.backends]}
