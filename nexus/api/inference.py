"""The inference endpoints (:data:`nexus.api.endpoints.INFERENCE`): read the body, let the
endpoint's dialect parse it, hand it to the gateway, render the outcome.

Only what routing needs is parsed (orjson, once); the raw bytes are what the backend receives.
Every response of these endpoints, success or error, carries the ``X-Nexus-*`` headers and
``X-Request-Id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from nexus.api.auth import TENANT
from nexus.api.context import gateway_of
from nexus.api.endpoints import INFERENCE, Endpoint
from nexus.api.openapi import inference_route
from nexus.errors import BodyTooLarge, InvalidRequest
from nexus.gateway import Outcome
from nexus.headers import request_id

router = APIRouter(tags=["inference"])


async def serve(request: Request, endpoint: Endpoint) -> Response:
    """Serve one inference request; the gateway reports it once it is over."""
    gateway = gateway_of(request)
    rid = request_id(request.headers.get("x-request-id"))
    exchange = gateway.exchange(endpoint.kind, endpoint.upstream_path, rid)
    dialect = endpoint.dialect
    try:
        raw = await _read_body(request, gateway.config.server.max_body_bytes)
        body = dialect.parse(raw, endpoint.kind)
    except InvalidRequest as exc:
        return dialect.render(exchange.refuse(exc))
    tenant = request.scope.get(TENANT)
    work = exchange.run(raw, body, request.headers, tenant)
    outcome = await _unless_client_leaves(request, work)
    return dialect.render(outcome if outcome is not None else exchange.client_left())


def _route(endpoint: Endpoint) -> None:
    """Declare ``endpoint`` to FastAPI (the OpenAPI document; the hot path serves it first)."""

    async def handler(request: Request) -> Response:
        return await serve(request, endpoint)

    handler.__name__ = endpoint.upstream_path.strip("/").replace("/", "_")
    router.add_api_route(endpoint.path, handler, methods=["POST"], **inference_route(endpoint.kind))


for _endpoint in INFERENCE:
    _route(_endpoint)

#: Requests shorter than this never pay for a disconnect watcher (measured: ~6 % of a request).
WATCH_AFTER_SECONDS = 0.05


async def _unless_client_leaves(
    request: Request, work: Coroutine[Any, Any, Outcome]
) -> Outcome | None:
    """Run ``work`` in this task; when the client disconnects first, cancel it (the attempt's
    ``finally`` blocks release its in-flight lease and cancel the upstream request) and return
    None. The watcher starts only if ``work`` is still running after
    :data:`WATCH_AFTER_SECONDS`; the body has been read, so ``receive`` only reports a
    disconnect."""
    this = asyncio.current_task()
    assert this is not None
    loop = asyncio.get_running_loop()
    left = asyncio.Event()
    watcher: list[asyncio.Task[None]] = []

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left.set()
        this.cancel()

    timer = loop.call_later(WATCH_AFTER_SECONDS, lambda: watcher.append(loop.create_task(watch())))
    try:
        return await work
    except asyncio.CancelledError:
        if not left.is_set():
            raise
        this.uncancel()
        return None
    finally:
        timer.cancel()
        for task in watcher:
            task.cancel()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
