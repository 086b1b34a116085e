"""Graceful shutdown. When draining starts (first SIGTERM/SIGINT), the gateway keeps listening:
new ``/v1/*`` requests are refused with 503 and ``Retry-After`` (so clients and load balancers go
elsewhere) and ``/health/ready`` turns 503, while requests already in flight, streams included,
run to their end. The server exits once none is left, or after the drain limit.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.api.auth import PROTECTED_PREFIX
from nexus.errors import error_body
from nexus.headers import NexusHeaders, request_id

RETRY_AFTER_SECONDS = 5


class Drain:
    """Counts requests in progress and knows whether the gateway is draining."""

    def __init__(self) -> None:
        self.draining = False
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.active += 1
        self._idle.clear()

    def end(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in progress; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


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
            return await _refuse(scope, send)
        self.drain.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.end()


async def _refuse(scope: Scope, send: Send) -> None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    rid = request_id(headers.get("x-request-id"))
    body = error_body(
        "Nexus is shutting down; retry on another instance or in a few seconds",
        error_type="service_unavailable",
        code="shutting_down",
    )
    raw = [(b"content-type", b"application/json"), (b"retry-after", b"%d" % RETRY_AFTER_SECONDS)]
    raw += [(k.encode(), v.encode()) for k, v in NexusHeaders(request_id=rid).as_list()]
    start: Message = {"type": "http.response.start", "status": 503, "headers": raw}
    await send(start)
    await send({"type": "http.response.body", "body": body})
