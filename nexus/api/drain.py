"""Graceful shutdown. When draining starts (first SIGTERM/SIGINT), the gateway keeps listening:
new ``/v1/*`` requests are refused with 503 and ``Retry-After`` (so clients and load balancers go
elsewhere) and ``/health/ready`` turns 503, while requests already in flight, streams included,
run to their end. The server exits once none is left, or after the drain limit.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.api.auth import PROTECTED_PREFIX
from nexus.api.openai_dialect import error_response
from nexus.gateway.drain import Drain
from nexus.gateway.failures import shutting_down
from nexus.headers import NexusHeaders, request_id


class DrainMiddleware:
    """Counts every HTTP request until its response is complete; refuses new ``/v1/*`` requests
    with 503 while draining."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.drain.draining and scope["path"].startswith(PROTECTED_PREFIX):
            return await _refusal(scope)(scope, receive, send)
        self.drain.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.end()


def _refusal(scope: Scope) -> Response:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    rid = request_id(headers.get("x-request-id"))
    return error_response(shutting_down(NexusHeaders(rid)))
