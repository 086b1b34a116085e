"""The hot path: the inference endpoints served straight from the ASGI scope, around FastAPI.

:class:`~nexus.api.context.NexusApp` hands a ``POST`` to an inference path to :func:`fast_path`:
the app's own middlewares (drain, CORS, client keys), built a second time from the same list,
around :func:`inference`. FastAPI's layers (its telemetry check, Starlette's error and body-limit
middlewares, routing, dependency resolution) are skipped; their one duty here, an unexpected
error answered in the OpenAI envelope, is kept. Other paths and methods go to FastAPI, whose
routes for these endpoints stay declared for the OpenAPI document. Measured on the bench:
FastAPI's per-request machinery was about a tenth of the CPU of a relayed request, and its outer
layers another few per cent.
"""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.api.endpoints import BY_PATH
from nexus.api.inference import serve
from nexus.api.openai_dialect import error_response
from nexus.gateway import Failed, Problem
from nexus.headers import NexusHeaders, request_id


async def inference(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one inference request (``scope`` is a ``POST`` to a path of :data:`BY_PATH`)."""
    request = Request(scope, receive)
    try:
        response = await serve(request, BY_PATH[scope["path"]])
    except Exception as exc:
        response = unexpected_error(request, exc)
    await response(scope, receive, send)


def fast_path(middleware: Sequence[Middleware]) -> ASGIApp:
    """:func:`inference` inside ``middleware`` (outermost first), as Starlette nests them."""
    app: ASGIApp = inference
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app


def unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug's answer: a 500 in the OpenAI envelope naming the request; the traceback is logged,
    never sent."""
    rid = request_id(request.headers.get("x-request-id"))
    logger.opt(exception=exc).bind(request_id=rid).error(
        "unexpected error on {} {}", request.method, request.url.path
    )
    message = f"internal error in Nexus (request {rid}); see its log"
    return error_response(Failed(Problem.INTERNAL, message, NexusHeaders(request_id=rid)))
