"""``GET /v1/stats`` (real request counts, per backend and per model, uptime, the queue and each
(backend, model) pair's quality) and
``GET /v1/history`` (the last 100 requests, newest first)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from nexus.api.context import gateway_of
from nexus.observability.stats import quality_rows

router = APIRouter(tags=["observability"])


@router.get("/v1/stats")
async def stats(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    snapshot = gateway.registry.snapshot()
    body = gateway.observability.stats.body(snapshot, uptime_seconds=gateway.uptime_seconds)
    body["queue"] = gateway.queue.summary()
    body["quality"] = quality_rows(gateway.quality, gateway.clock())
    return body


@router.get("/v1/history")
async def history(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": gateway_of(request).observability.history.entries()}
