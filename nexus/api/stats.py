"""``GET /v1/stats`` (real request counts, per backend and per model, and uptime) and
``GET /v1/history`` (the last 100 requests, newest first)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from nexus.api.metrics import observability

router = APIRouter(tags=["observability"])


@router.get("/v1/stats")
async def stats(request: Request) -> dict[str, Any]:
    state = request.app.state
    uptime = state.clock() - state.started_at
    return observability(request).stats.body(state.registry.snapshot(), uptime_seconds=uptime)


@router.get("/v1/history")
async def history(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": observability(request).history.entries()}
