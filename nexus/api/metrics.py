"""``GET /metrics``: the Prometheus text format of the app's own metrics registry (open even when
client keys are configured, like ``/health``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from nexus.observability.hub import Observability
from nexus.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["observability"])


def observability(request: Request) -> Observability:
    """The app's observers (set by :func:`nexus.api.observability.install_observability`)."""
    hub: Observability = request.app.state.observability
    return hub


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    body = observability(request).metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE)
