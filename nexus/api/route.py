"""``GET /v1/route?model=M``: the plan the gateway would use now, with every backend considered
and why it was kept or skipped. The request headers (``X-Nexus-Privacy-Zone``, ``X-Nexus-Strict``,
``X-Nexus-Flexible``) count as they would on a chat request; nothing is sent to any backend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from nexus.api.context import gateway_of
from nexus.gateway.failures import rejected
from nexus.headers import NexusHeaders, request_id
from nexus.routing import Rejection, RequestKind

router = APIRouter(tags=["routing"])


@router.get("/v1/route")
async def route(
    request: Request, model: str = Query(min_length=1, max_length=256)
) -> dict[str, Any]:
    gateway = gateway_of(request)
    body = {"model": model, "messages": []}
    requirements = gateway.requirements(body, request.headers, RequestKind.CHAT)
    result = gateway.plan(requirements, advance=False)
    if not isinstance(result, Rejection):
        return result.to_dict()
    failed = rejected(result, NexusHeaders(request_id(None)))  # what a request would get
    return {**result.to_dict(), "status": failed.status, "code": failed.code}
