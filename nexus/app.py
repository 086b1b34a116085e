"""The application factory. State lives on the app, never in module globals; background work
(probes, discovery, the shared-state sync) starts and stops in the lifespan."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from loguru import logger
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException

from nexus import __version__
from nexus.api import admin, health, inference, models, route
from nexus.api.auth import ClientAuthMiddleware, ClientKeys
from nexus.api.drain import Drain, DrainMiddleware
from nexus.api.fastpath import InferenceFastPath
from nexus.api.observability import install_observability
from nexus.backends.registry import Registry
from nexus.backends.state import ProbeResult
from nexus.backends.transitions import Thresholds
from nexus.config import NexusConfig
from nexus.config.kinds import Transport
from nexus.config.model import BackendConfig
from nexus.discovery import MdnsDiscovery
from nexus.errors import error_body
from nexus.headers import NexusHeaders, request_id
from nexus.health.checker import HealthChecker
from nexus.health.probes import ShowCache, probe_all
from nexus.observability.events import Observers, RequestLog
from nexus.proxy import Proxy
from nexus.routing import RoutingPolicy
from nexus.upstream.relay import relay_session

if TYPE_CHECKING:
    from nexus.state import SharedState

JSON = "application/json"
INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})


def create_app(
    config: NexusConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
    environ: Mapping[str, str] | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """Build the gateway for ``config``. ``transport``, ``clock`` and ``environ`` (where API
    keys are read) are seams for tests; ``drain`` is shared with the server for shutdown."""
    app = FastAPI(
        title="Nexus", version=__version__, docs_url=None, redoc_url=None, lifespan=_lifespan
    )
    checks = config.health_check
    app.state.config = config
    app.state.transport = transport
    app.state.clock = clock
    app.state.environ = environ
    app.state.started_at = clock()
    app.state.registry = Registry(
        config.backends,
        thresholds=Thresholds(checks.failure_threshold, checks.recovery_threshold),
        clock=clock,
    )
    app.state.observer = Observers([RequestLog()])
    app.state.policy = RoutingPolicy.from_config(config)
    app.state.rotation = Counter[str]()
    app.state.rng = random.Random()
    for module in (inference, models, route, admin, health):
        app.include_router(module.router)
    install_observability(app)
    app.add_middleware(InferenceFastPath)  # innermost: drain and client keys still apply
    _install_error_handlers(app)
    if config.server.api_keys_env is not None:
        keys = ClientKeys(config.server.api_keys_env, environ)
        if not keys.configured:
            logger.error(
                "{} holds no client keys: every /v1/* request will be refused",
                config.server.api_keys_env,
            )
        app.add_middleware(ClientAuthMiddleware, keys=keys)
    app.state.drain = drain or Drain()
    app.add_middleware(DrainMiddleware, drain=app.state.drain)  # outermost: counts everything
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app.state
    config: NexusConfig = state.config
    timeout = httpx.Timeout(
        config.server.request_timeout_seconds, connect=config.server.connect_timeout_seconds
    )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    async with (
        httpx.AsyncClient(transport=state.transport, timeout=timeout, limits=limits) as client,
        relay_session(connect_timeout=config.server.connect_timeout_seconds) as session,
    ):
        state.client = client  # probes
        state.shared = await _start_shared_state(state)
        state.proxy = Proxy(
            config,
            state.registry,
            session,  # the relay: aiohttp measured 2-3x cheaper per request than httpx here
            environ=state.environ,
            clock=state.clock,
            admission=state.shared,
        )
        cache = ShowCache()

        async def probe(backends: Sequence[BackendConfig]) -> dict[str, ProbeResult]:
            return await probe_all(
                backends,
                client,
                timeout=config.health_check.timeout_seconds,
                environ=state.environ,
                show_cache=cache,
            )

        state.checker = HealthChecker(
            state.registry,
            probe,
            interval=config.health_check.interval_seconds,
            enabled=config.health_check.enabled,
            clock=state.clock,
        )
        state.checker.start()
        discovery = _discovery(state)
        await discovery.start()
        translated = _warm_up_translation(config)
        try:
            yield
        finally:
            await discovery.stop()
            await state.checker.stop()
            if state.shared is not None:
                await state.shared.stop()
            if translated is not None:
                await translated
                await _translated_module().shutdown()


async def _start_shared_state(state: State) -> SharedState | None:
    """With ``[state] backend = "redis"``, share backend state with the other replicas (the
    redis client is imported only then); with the default memory backend, nothing."""
    config: NexusConfig = state.config
    if config.state.backend != "redis":
        return None
    from nexus.state import create_shared_state

    shared = create_shared_state(
        config.state, state.registry, state.observability.stats, clock=state.clock
    )
    await shared.start()
    return shared


def _warm_up_translation(config: NexusConfig) -> asyncio.Task[None] | None:
    """With a translated backend configured, import LiteLLM in a thread (about 3 s) while the
    gateway already answers; with local backends only, LiteLLM is never imported."""
    if not any(b.kind.transport is Transport.TRANSLATED for b in config.backends):
        return None

    def warm_up() -> None:
        try:
            _translated_module().warm_up()
        except Exception:  # the first translated request will try again and say why
            logger.exception("LiteLLM warm-up failed")

    return asyncio.get_running_loop().create_task(
        asyncio.to_thread(warm_up), name="litellm-warm-up"
    )


def _translated_module() -> ModuleType:
    import nexus.upstream.translated as translated  # the LiteLLM border: only when configured

    return translated


def _discovery(state: State) -> MdnsDiscovery:
    """mDNS discovery feeding the registry; a discovered backend is probed at once."""
    registry: Registry = state.registry
    tasks: set[asyncio.Task[None]] = set()

    def added(backend: BackendConfig) -> None:
        registry.add(backend, discovered=True)
        task = asyncio.get_running_loop().create_task(state.checker.probe([backend]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return MdnsDiscovery(
        state.config.discovery,
        on_added=added,
        on_removed=registry.remove,
        registered=lambda: {backend.name: backend.url for backend in registry.configs()},
    )


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the OpenAI envelope; tracebacks go to the log, never the client."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        body = error_body(str(exc.detail), error_type=kind, code=str(exc.status_code))
        headers = dict(exc.headers or {})
        if request.url.path in INFERENCE_PATHS:  # every response there carries the headers
            rid = request_id(request.headers.get("x-request-id"))
            headers.update(NexusHeaders(request_id=rid).as_dict())
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
        rid = request_id(request.headers.get("x-request-id"))
        logger.opt(exception=exc).bind(request_id=rid).error(
            "unexpected error on {} {}", request.method, request.url.path
        )
        message = f"internal error in Nexus (request {rid}); see its log"
        body = error_body(message, error_type="server_error")
        headers = NexusHeaders(request_id=rid).as_dict()
        return Response(body, status_code=500, media_type=JSON, headers=headers)
