"""``GET /metrics``: the Prometheus text format of the app's own metrics registry (open even when
client keys are configured, like ``/health``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from nexus.api.context import gateway_of
from nexus.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["observability"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    body = gateway_of(request).observability.metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE)
