"""The hot path: the inference endpoints served straight from the ASGI scope, without FastAPI's
routing, dependency resolution and inner middleware layers.

It sits inside the app's own middlewares (drain, client keys), so they still apply; everything
else (other paths and methods) continues to FastAPI, whose routes for these endpoints stay
declared for the OpenAPI document. Measured on the bench: FastAPI's per-request machinery was
about a tenth of the gateway's CPU per relayed request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.api.endpoints import BY_PATH
from nexus.api.inference import serve


class InferenceFastPath:
    """ASGI middleware: answers the inference endpoints itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = BY_PATH.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        response = await serve(Request(scope, receive), endpoint)
        await response(scope, receive, send)
