"""The dashboard: ``GET /`` (a server-rendered snapshot), its two static files, and
``GET /dashboard/events``, server-sent events that push the same data whenever it changed.

These paths sit outside ``/v1/`` like ``/health`` and ``/metrics``: a browser's EventSource cannot
send an ``Authorization`` header. Nothing here shows a URL, a key or request content: backends
with their status, zone, tier, models, load and last error, the models quality has ejected or
is letting back in (``quality``), and the recent requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from nexus import __version__
from nexus.api.admin import backend_json, troubled_models
from nexus.api.context import gateway_of
from nexus.backends.state import Snapshot
from nexus.dashboard.page import asset, render_page
from nexus.gateway import Gateway
from nexus.gateway.queue import RequestQueue
from nexus.observability.hub import Observability

router = APIRouter(tags=["dashboard"], include_in_schema=False)

#: How often the event stream looks for changes (so a change shows within about this long).
TICK_SECONDS = 0.5
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
#: Requests the dashboard shows (``/v1/history`` has all that are kept).
RECENT = 50
#: What the dashboard shows of a backend (``/v1/backends`` has the rest).
BACKEND_FIELDS = (
    "name",
    "type",
    "location",
    "zone",
    "tier",
    "status",
    "models",
    "in_flight",
    "max_concurrent",
    "latency_ms",
    "last_error",
)
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
NO_STORE = {"cache-control": "no-store"}


def dashboard_data(
    snapshot: Snapshot,
    hub: Observability,
    queue: RequestQueue,
    quality: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """What the page shows: backends (with their models quality has ejected or is letting back
    in, from :func:`~nexus.api.admin.troubled_models`), recent requests (newest first), request
    totals and the requests waiting in the queue."""
    backends = []
    for view in snapshot.backends:
        full = backend_json(view)
        shown = {key: full[key] for key in BACKEND_FIELDS}
        shown["quality"] = dict((quality or {}).get(view.name, {}))
        backends.append(shown)
    stats = hub.stats
    total = sum(stats.by_class.values())
    success = stats.by_class["2xx"]
    return {
        "version": __version__,
        "backends": backends,
        "requests": hub.history.entries(RECENT),
        "totals": {"requests": total, "success": success, "errors": total - success},
        "queue": {"enabled": queue.enabled, "waiting": sum(queue.depth().values())},
    }


@router.get("/", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    gateway = gateway_of(request)
    snapshot = gateway.registry.snapshot()
    quality = troubled_models(gateway.quality, gateway.clock())
    data = dashboard_data(snapshot, gateway.observability, gateway.queue, quality)
    return HTMLResponse(render_page(data), headers=NO_STORE)


@router.get("/dashboard/events", response_model=None)
async def events(request: Request) -> Response:
    """``event: state`` with the page's data at once, then again whenever it changed (checked
    every :data:`TICK_SECONDS`). Ends when the gateway starts draining; refused (503) while it
    drains, so browsers stop reconnecting."""
    gateway = gateway_of(request)
    if gateway.drain.draining:
        return Response("draining", status_code=503, media_type="text/plain")
    headers = {**NO_STORE, "x-accel-buffering": "no"}
    return StreamingResponse(state_events(gateway), media_type="text/event-stream", headers=headers)


@router.get("/dashboard/{name}")
async def static_file(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(asset(name), media_type=media_type, headers={"cache-control": "no-cache"})


async def state_events(gateway: Gateway) -> AsyncGenerator[bytes, None]:
    """The SSE body: a ``retry`` hint, then ``event: state`` whenever the registry snapshot or
    the history changed and the data differs from the last sent; a comment line when quiet for
    :data:`KEEPALIVE_SECONDS`; it ends once the gateway drains."""
    yield b"retry: 2000\n\n"
    seen: tuple[Snapshot, int, int] | None = None
    last: bytes | None = None
    quiet = 0.0
    loop = asyncio.get_running_loop()
    hub = gateway.observability
    while not gateway.drain.draining:
        snapshot = gateway.registry.snapshot()
        now = (snapshot, hub.history.version, gateway.queue.version)
        if seen is None or now[0] is not seen[0] or now[1:] != seen[1:]:
            seen = now
            quality = troubled_models(gateway.quality, gateway.clock())
            data = orjson.dumps(dashboard_data(snapshot, hub, gateway.queue, quality))
            if data != last:
                last, quiet = data, loop.time()
                yield b"event: state\ndata: " + data + b"\n\n"
        if loop.time() - quiet > KEEPALIVE_SECONDS:
            quiet = loop.time()
            yield b": keep-alive\n\n"
        await asyncio.sleep(TICK_SECONDS)
