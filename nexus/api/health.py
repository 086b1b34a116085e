"""``GET /health`` (liveness: always 200 while serving) and ``GET /health/ready`` (200 when at
least one backend is healthy and the gateway is not draining, else 503 with the same body)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from nexus import __version__
from nexus.api.context import gateway_of
from nexus.backends.state import Snapshot, Status

router = APIRouter(tags=["health"])

HealthStatus = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True, slots=True)
class BackendCounts:
    total: int
    healthy: int
    unhealthy: int

    @classmethod
    def of(cls, snapshot: Snapshot) -> BackendCounts:
        statuses = [backend.status for backend in snapshot.backends]
        return cls(
            total=len(statuses),
            healthy=statuses.count(Status.HEALTHY),
            unhealthy=statuses.count(Status.UNHEALTHY),
        )


def overall_status(counts: BackendCounts) -> HealthStatus:
    """healthy: every backend healthy; degraded: some; unhealthy: none (or none configured)."""
    if counts.healthy == 0:
        return "unhealthy"
    return "healthy" if counts.healthy == counts.total else "degraded"


def served_models(snapshot: Snapshot) -> set[str]:
    """Distinct model ids on healthy backends."""
    return {
        model
        for backend in snapshot.backends
        if backend.status is Status.HEALTHY
        for model in backend.models
    }


def health_body(snapshot: Snapshot, *, uptime_seconds: float) -> dict[str, Any]:
    counts = BackendCounts.of(snapshot)
    return {
        "status": overall_status(counts),
        "version": __version__,
        "uptime_seconds": int(uptime_seconds),
        "backends": {
            "total": counts.total,
            "healthy": counts.healthy,
            "unhealthy": counts.unhealthy,
        },
        "models": len(served_models(snapshot)),
    }


def _body(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    return health_body(gateway.registry.snapshot(), uptime_seconds=gateway.uptime_seconds)


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return _body(request)


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    body = _body(request)
    draining = gateway_of(request).drain.draining
    status = 200 if body["backends"]["healthy"] > 0 and not draining else 503
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
