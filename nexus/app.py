"""The application factory. State lives on the app, never in module globals."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from nexus import __version__
from nexus.api import health
from nexus.config import NexusConfig
from nexus.errors import error_body

JSON = "application/json"


def create_app(
    config: NexusConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the gateway for ``config``. ``transport`` and ``clock`` are seams for tests."""
    app = FastAPI(title="Nexus", version=__version__, docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.transport = transport
    app.state.clock = clock
    app.state.started_at = clock()
    app.include_router(health.router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the OpenAI envelope; tracebacks go to the log, never the client."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        body = error_body(str(exc.detail), error_type=kind, code=str(exc.status_code))
        return Response(body, status_code=exc.status_code, media_type=JSON, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        body = error_body(
            str(first.get("msg", "invalid request")),
            error_type="invalid_request_error",
            param=param,
        )
        return Response(body, status_code=400, media_type=JSON)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.opt(exception=exc).error(
            "unexpected error on {} {}", request.method, request.url.path
        )
        body = error_body("internal error in Nexus; see its log", error_type="server_error")
        return Response(body, status_code=500, media_type=JSON)
