"""``GET /health``: liveness. Always 200 while the process serves; the body says how well."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request

from nexus import __version__

router = APIRouter()

HealthStatus = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True, slots=True)
class BackendCounts:
    total: int
    healthy: int
    unhealthy: int


def overall_status(counts: BackendCounts) -> HealthStatus:
    """healthy: every backend healthy; degraded: some; unhealthy: none (or none configured)."""
    if counts.healthy == 0:
        return "unhealthy"
    return "healthy" if counts.healthy == counts.total else "degraded"


def health_body(counts: BackendCounts, *, uptime_seconds: float, models: int) -> dict[str, Any]:
    return {
        "status": overall_status(counts),
        "version": __version__,
        "uptime_seconds": int(uptime_seconds),
        "backends": {
            "total": counts.total,
            "healthy": counts.healthy,
            "unhealthy": counts.unhealthy,
        },
        "models": models,
    }


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    # Until a backend has been probed healthy it is not counted as healthy.
    counts = BackendCounts(total=len(state.config.backends), healthy=0, unhealthy=0)
    return health_body(counts, uptime_seconds=state.clock() - state.started_at, models=0)
