"""The application factory: a :class:`~nexus.gateway.Gateway` behind its HTTP routes and
middlewares. The gateway's background work starts and stops in the app's lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from nexus import __version__
from nexus.api import (
    admin,
    count_tokens,
    dashboard,
    health,
    inference,
    metrics,
    models,
    route,
    stats,
    usage,
)
from nexus.api.auth import ClientAuthMiddleware, ClientKeys
from nexus.api.context import NexusApp
from nexus.api.drain import DrainMiddleware
from nexus.api.endpoints import BY_PATH, COUNT_TOKENS, dialect_for
from nexus.api.fastpath import fast_path, unexpected_error
from nexus.api.openai_dialect import error_response
from nexus.api.openapi import openapi_document
from nexus.config import NexusConfig
from nexus.errors import error_body
from nexus.gateway import Drain, Failed, Gateway, Opener, Problem
from nexus.headers import HEADER_NAMES, NexusHeaders, request_id

JSON = "application/json"
#: Named in the 404 of any other ``/v1`` path.
SERVED = ", ".join(
    [
        *(f"POST {endpoint.path}" for endpoint in BY_PATH.values()),
        f"POST {COUNT_TOKENS}",
        "GET /v1/models[/{id}]",
    ]
)


def create_app(
    config: NexusConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
    environ: Mapping[str, str] | None = None,
    drain: Drain | None = None,
    opener: Opener | None = None,
) -> NexusApp:
    """Build the gateway for ``config`` and its app. ``transport`` (health probes), ``opener``
    (upstream attempts), ``clock`` and ``environ`` (where API keys are read) are seams for
    tests; ``drain`` is shared with the server for shutdown."""
    gateway = Gateway(
        config, clock=clock, environ=environ, opener=opener, transport=transport, drain=drain
    )
    app = NexusApp(
        gateway,
        title="Nexus",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
        middleware=_middleware(config, gateway, environ),
    )
    routers = (inference, count_tokens, models, route, admin, health, metrics, stats, usage)
    for module in (*routers, dashboard):
        app.include_router(module.router)
    app.openapi = openapi_document(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    app.fast = fast_path(app.user_middleware)
    return app


def _middleware(
    config: NexusConfig, gateway: Gateway, environ: Mapping[str, str] | None
) -> list[Middleware]:
    """The app's middlewares, outermost first: drain counts everything; CORS answers a
    preflight, which carries no key, before the client-key check."""
    middleware = [Middleware(DrainMiddleware, drain=gateway.drain)]
    if config.server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.server.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["*"],
                expose_headers=list(HEADER_NAMES),
                max_age=600,
            )
        )
    if config.server.api_keys_env is not None or config.clients:
        keys = ClientKeys(config.server.api_keys_env, environ, config.clients)
        if not keys.configured:
            logger.error(
                "{} holds no client keys: every /v1/* request will be refused", keys.env_var
            )
        for client in keys.unset:
            logger.error("client {} has no key in its variable: it cannot be served", client)
        middleware.append(Middleware(ClientAuthMiddleware, keys=keys))
    return middleware


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    assert isinstance(app, NexusApp)
    async with app.gateway.running():
        yield


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the OpenAI envelope; tracebacks go to the log, never the client."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        dialect = dialect_for(request.url.path)
        if dialect is not None:  # an inference path: its dialect, with the headers
            problem = Problem.NOT_FOUND if exc.status_code == 404 else Problem.METHOD_NOT_ALLOWED
            rid = request_id(request.headers.get("x-request-id"))
            failed = Failed(problem, str(exc.detail), NexusHeaders(request_id=rid))
            response = dialect.render(failed)
            response.headers.update(exc.headers or {})
            return response
        if exc.status_code == 404 and request.url.path.startswith("/v1/"):
            rid = request_id(request.headers.get("x-request-id"))
            message = f"{request.url.path} is not an endpoint of Nexus; it serves {SERVED}"
            return error_response(Failed(Problem.NOT_FOUND, message, NexusHeaders(rid)))
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        body = error_body(str(exc.detail), error_type=kind, code=str(exc.status_code))
        headers = dict(exc.headers or {})
        return Response(body, status_code=exc.status_code, media_type=JSON, headers=headers)

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
        return unexpected_error(request, exc)
