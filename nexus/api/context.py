"""How a handler reaches the gateway: the app is a :class:`NexusApp`, which holds its
:class:`~nexus.gateway.Gateway` as a typed attribute (nothing else is kept on the app)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.api.endpoints import BY_PATH
from nexus.gateway import Gateway


class NexusApp(FastAPI):
    """A FastAPI app serving one :class:`Gateway`. A ``POST`` to an inference path goes to
    ``fast`` (:mod:`nexus.api.fastpath`) when it is set, everything else to FastAPI."""

    def __init__(self, gateway: Gateway, **options: Any) -> None:
        # FastAPI's native OpenTelemetry would trace every request with an application's
        # global provider, beside Nexus's own [tracing] spans, and checks whether to per request.
        options.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
        super().__init__(**options)
        self.gateway = gateway
        self.fast: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in BY_PATH
        ):
            scope["app"] = self
            return await self.fast(scope, receive, send)
        return await super().__call__(scope, receive, send)


def gateway_of(connection: HTTPConnection) -> Gateway:
    """The gateway of the app serving ``connection``."""
    app = connection.scope["app"]
    assert isinstance(app, NexusApp), "the app must be built by nexus.app.create_app"
    return app.gateway
