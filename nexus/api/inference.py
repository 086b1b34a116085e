"""``POST /v1/chat/completions`` and ``POST /v1/embeddings``.

Only what routing needs is parsed (orjson, once); the raw bytes are what the backend receives.
Every response of these endpoints, success or error, carries the ``X-Nexus-*`` headers and
``X-Request-Id``. Errors use the OpenAI envelope (contract section 6).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import State
from starlette.responses import Response

from nexus.api.route import plan_now
from nexus.errors import UpstreamAuthError, UpstreamRateLimited, UpstreamTimeout, error_body
from nexus.headers import NexusHeaders, request_id
from nexus.observability.events import Completed, Observer
from nexus.proxy import AllFailed, Call, RelayStream, Served
from nexus.routing import InvalidRequest, Rejection, RequestKind, Requirements, requirements_from

router = APIRouter(tags=["inference"])
JSON = "application/json"


class BadRequest(Exception):
    """The client's request cannot be served as sent (400 or 413)."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await serve(request, RequestKind.CHAT, "/chat/completions")


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    return await serve(request, RequestKind.EMBEDDINGS, "/embeddings")


async def serve(request: Request, kind: RequestKind, path: str) -> Response:
    """Parse, plan, forward, answer, and report the request to the observers once it is over."""
    state = request.app.state
    report = _Report(state.observer, kind, request_id(request.headers.get("x-request-id")))
    try:
        raw = await _read_body(request, state.config.server.max_body_bytes)
        body = _parse(raw, kind)
        report.model = body["model"]
        requirements = _requirements(body, request, state, kind)
    except (BadRequest, InvalidRequest) as exc:
        status = exc.status if isinstance(exc, BadRequest) else 400
        rid = report.request_id
        return report.done(
            _error(status, exc.args[0], "invalid_request_error", rid, param=exc.param)
        )
    result = plan_now(state, requirements)
    if isinstance(result, Rejection):
        return report.done(_rejected(result, report.request_id))
    report.stream, report.input_tokens = requirements.stream, requirements.input_tokens
    exact = requirements.input_tokens if requirements.tokens_exact else None
    call = Call(
        path,
        raw,
        body,
        requirements.requested_model,
        requirements.stream,
        report.request_id,
        exact_input_tokens=exact,
    )
    outcome = await _unless_client_leaves(request, state.proxy.forward(result, call))
    if outcome is None:
        return report.done(_client_gone(report.request_id))
    if isinstance(outcome, AllFailed):
        report.failed_attempts = len(outcome.failures)
        return report.done(_all_failed(outcome, state, requirements))
    report.failed_attempts, report.ttfb_s = outcome.failed_attempts, outcome.ttfb_s
    report.output_tokens, report.cost_usd = outcome.output_tokens, outcome.headers.cost_usd
    if isinstance(outcome.response, RelayStream):
        outcome.response.on_done = report.stream_done
        return outcome.response
    return report.done(outcome.response)


#: Requests shorter than this never pay for a disconnect watcher (measured: ~6 % of a request).
WATCH_AFTER_SECONDS = 0.05


async def _unless_client_leaves(
    request: Request, work: Coroutine[Any, Any, Served | AllFailed]
) -> Served | AllFailed | None:
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


def _client_gone(rid: str) -> Response:
    """What is logged and counted for a client that left before the answer (never sent)."""
    body = error_body("the client closed the connection", error_type="client_closed_request")
    return Response(body, status_code=499, headers=NexusHeaders(request_id=rid).as_dict())


class _Report:
    """Collects what the observers learn about one request and tells them once."""

    def __init__(self, observer: Observer, kind: RequestKind, rid: str) -> None:
        self.observer = observer
        self.endpoint = "embeddings" if kind is RequestKind.EMBEDDINGS else "chat"
        self.request_id = rid
        self.model = "-"
        self.stream = False
        self.failed_attempts = 0
        self.ttfb_s: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cost_usd: float | None = None  # unrounded; the header has 4 decimals
        self.started_at = time.time()
        self.started = time.perf_counter()
        self.response: Response | None = None

    def done(self, response: Response, *, broken: bool = False) -> Response:
        headers = response.headers
        backend = headers.get("x-nexus-backend", "none")
        cost = headers.get("x-nexus-cost-estimated")
        self.observer.completed(
            Completed(
                request_id=self.request_id,
                endpoint=self.endpoint,
                model=self.model,
                backend=None if backend == "none" else backend,
                location=_or_none(headers.get("x-nexus-backend-type")),
                route_reason=_or_none(headers.get("x-nexus-route-reason")),
                status=response.status_code,
                stream=self.stream,
                started_at=self.started_at,
                duration_s=time.perf_counter() - self.started,
                ttfb_s=self.ttfb_s,
                failed_attempts=self.failed_attempts,
                fallback_model=headers.get("x-nexus-fallback-model"),
                cost_usd=self.cost_usd if self.cost_usd is not None else _float(cost),
                stream_broken=broken,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
            )
        )
        return response

    def stream_done(self, stream: RelayStream) -> None:
        self.done(stream, broken=stream.broken)


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _or_none(value: str | None) -> str | None:
    return None if value in (None, "none") else value


def _requirements(
    body: dict[str, Any], request: Request, state: State, kind: RequestKind
) -> Requirements:
    try:
        return requirements_from(body, request.headers, state.policy, kind=kind)
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"request body is larger than {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body is larger than {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes, kind: RequestKind) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("you must provide a model parameter (a non-empty string)", param="model")
    if kind is RequestKind.CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty array", param="messages")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise BadRequest("'stream' must be true or false", param="stream")
    elif not isinstance(body.get("input"), str | list):
        raise BadRequest("'input' must be a string or an array", param="input")
    return body


def _error(
    status: int,
    message: str,
    error_type: str,
    rid: str,
    *,
    param: str | None = None,
    code: str | None = None,
    context: dict[str, Any] | None = None,
    retry_after: int | None = None,
    headers: NexusHeaders | None = None,
) -> Response:
    body = error_body(message, error_type=error_type, code=code, param=param, context=context)
    extra = (headers or NexusHeaders(request_id=rid)).as_dict()
    if retry_after is not None:
        extra["retry-after"] = str(retry_after)
    return Response(body, status_code=status, headers=extra, media_type=JSON)


def _rejected(rejection: Rejection, rid: str) -> Response:
    if rejection.unknown_model:
        return _error(
            404, rejection.message, rejection.error_type, rid, param="model", code=rejection.code
        )
    return _error(
        503,
        rejection.message,
        rejection.error_type,
        rid,
        code=rejection.code,
        context=rejection.context(),
        retry_after=rejection.retry_after_seconds,
    )


def _all_failed(outcome: AllFailed, state: State, requirements: Requirements) -> Response:
    """Every attempt failed: 504 for a timeout, 503 with context when nothing can serve now,
    else the backend's own error status and body."""
    last, headers = outcome.failures[-1], outcome.headers
    rid = headers.request_id
    if isinstance(last, UpstreamTimeout):
        message = f"backend '{last.backend}' timed out: {last.message}"
        return _error(504, message, "gateway_timeout", rid, code="gateway_timeout", headers=headers)
    if last.body is not None and last.status >= 400 and not isinstance(last, UpstreamAuthError):
        extra = headers.as_dict()
        if isinstance(last, UpstreamRateLimited) and last.retry_after is not None:
            extra["retry-after"] = str(math.ceil(last.retry_after))
        elif last.status == 503:  # every 503 says when to retry
            extra["retry-after"] = str(math.ceil(state.config.health_check.interval_seconds))
        return Response(
            last.body, status_code=last.status, headers=extra, media_type=last.content_type or JSON
        )
    state_now = plan_now(state, requirements, advance=False)
    verb = "is unhealthy" if isinstance(last, UpstreamAuthError) else "failed"
    message = f"backend '{last.backend}' {verb}: {last.message}"
    if isinstance(state_now, Rejection):
        context, retry_after = state_now.context(), state_now.retry_after_seconds
    else:
        names = [c.backend.name for c in state_now.candidates]
        context = {
            "required_tier": requirements.min_tier,
            "available_backends": names,
            "eta_seconds": None,
            "privacy_zone_required": _zone(requirements),
        }
        retry_after = 1
    return _error(
        503,
        message,
        "service_unavailable",
        rid,
        code=last.code,
        context=context,
        retry_after=retry_after,
        headers=headers,
    )


def _zone(requirements: Requirements) -> str | None:
    return "restricted" if requirements.privacy.value == "restricted" else None
