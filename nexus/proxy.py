"""Execute a :class:`~nexus.routing.RoutePlan`: attempt candidates in order, fail over, feed
passive health, and answer with the backend's own bytes plus the ``X-Nexus-*`` headers.

Before the first byte reaches the client, a connect error, timeout, 5xx, 429 or 401/403 moves the
request to the next candidate (at most ``1 + max_retries`` attempts; the plan never holds a
candidate outside the request's privacy zone or below its tier). For a stream, "the first byte" is
the first chunk of the body: it is read before the response starts, so a backend that answers 200
and then dies is still a failover. After that, a failure ends the stream with one final
``data: {"error": ...}`` event, never a silent truncation.

In-flight counts are taken for the whole attempt, streams included, and released on every path:
success, failure, timeout and client disconnect (which also cancels the upstream request). With
shared state, an attempt on a backend with ``max_concurrent`` is first admitted across replicas
(:class:`Admission`, bounded in time); a refusal moves on to the next candidate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import aiohttp
from loguru import logger
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nexus.backends.registry import Lease, Registry
from nexus.backends.state import BackendView
from nexus.backends.transitions import SUCCESS, Outcome
from nexus.config.credentials import read_credential
from nexus.config.kinds import Transport
from nexus.config.model import NexusConfig
from nexus.errors import (
    BackendAtCapacity,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    error_body,
)
from nexus.headers import NexusHeaders
from nexus.pricing import PriceTable, provider_id, requested_max_tokens, stream_bound, usage_tokens
from nexus.routing import Candidate, RoutePlan
from nexus.upstream.body import rewrite_model
from nexus.upstream.relay import endpoint, open_relay, request_headers
from nexus.upstream.reply import Reply

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Call:
    """One client request, parsed only as far as routing needed."""

    path: str  # the OpenAI API path: "/chat/completions" or "/embeddings"
    raw: bytes  # the body exactly as the client sent it
    body: Mapping[str, Any]  # the same, parsed (the translated transport needs it)
    model_sent: str  # the "model" value in ``raw``
    stream: bool
    request_id: str
    exact_input_tokens: int | None = None  # the request's tiktoken count, when exact


@dataclass(frozen=True, slots=True)
class Served:
    """A response from one backend, the headers that say so, and how it went."""

    response: Response
    headers: NexusHeaders
    failed_attempts: int
    ttfb_s: float | None  # until the body (or a stream's first chunk) was ready
    output_tokens: int | None = None  # from a cloud JSON answer's usage


@dataclass(frozen=True, slots=True)
class AllFailed:
    """Every attempt failed; ``failures`` in attempt order, ``headers`` name the last backend."""

    failures: tuple[UpstreamError, ...]
    headers: NexusHeaders


class Admission(Protocol):
    """Admits an attempt on a backend with ``max_concurrent`` across replicas (shared state)."""

    async def admit(self, backend: BackendView, lease: Lease) -> None:
        """Return when ``lease`` may proceed; raise :class:`BackendAtCapacity` when not."""


class Proxy:
    """Attempts and failover over the shared HTTP client. One per app."""

    def __init__(
        self,
        config: NexusConfig,
        registry: Registry,
        session: aiohttp.ClientSession,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        admission: Admission | None = None,
    ) -> None:
        self._registry = registry
        self._admission = admission
        self._session = session
        self._environ = environ
        self._clock = clock
        self._prices = PriceTable(config.pricing)
        self._request_timeout = config.server.request_timeout_seconds

    async def forward(self, plan: RoutePlan, call: Call) -> Served | AllFailed:
        """Serve ``call`` through the first candidate of ``plan`` that answers."""
        failures: list[UpstreamError] = []
        headers = _headers(plan, 0, 0, call.request_id)
        for index, candidate in enumerate(plan.candidates[: plan.max_attempts]):
            headers = _headers(plan, index, len(failures), call.request_id)
            started = self._clock()
            try:
                response, headers, output_tokens = await self._attempt(
                    candidate, call, headers, started
                )
            except UpstreamError as exc:
                failures.append(exc)
                self._failed(candidate, exc, call.request_id)
                continue
            ttfb = self._clock() - started
            return Served(response, headers, len(failures), ttfb, output_tokens)
        return AllFailed(tuple(failures), headers)

    async def _attempt(
        self, candidate: Candidate, call: Call, headers: NexusHeaders, started: float
    ) -> tuple[Response, NexusHeaders, int | None]:
        name = candidate.backend.name
        owned = self._registry.lease(name)
        lease: Lease | None = owned  # released here unless a stream takes it over
        try:
            async with asyncio.timeout(self._request_timeout):
                if self._admission is not None and candidate.backend.max_concurrent is not None:
                    await self._admission.admit(candidate.backend, owned)
                reply = await self._open(candidate, call)
                if call.stream and reply.status_code < 300:
                    chunks = reply.chunks()
                    first = await _first_chunk(reply, chunks)
                    if not first:  # nothing at all: a failover, not an empty 200
                        await reply.aclose()
                        raise UpstreamBadResponse("answered an empty stream", backend=name)
                    headers = replace(headers, cost_usd=self._stream_cost(candidate, call))
                    stream = RelayStream(
                        first,
                        chunks,
                        upstream=reply,
                        lease=owned,
                        backend=name,
                        deadline=started + self._request_timeout,
                        status_code=reply.status_code,
                        headers=headers.as_dict(),
                        media_type=reply.content_type or "text/event-stream",
                    )
                    lease = None  # the stream owns it now
                    self._succeeded(name, started)
                    return stream, headers, None
                try:
                    content = await reply.read()
                finally:
                    await reply.aclose()
        except TimeoutError:
            limit = f"{self._request_timeout:g} s"
            raise UpstreamTimeout(f"no answer within {limit}", backend=name) from None
        finally:
            if lease is not None:
                lease.release()
        self._succeeded(name, started)
        cost, output_tokens = self._body_cost(candidate, reply.status_code, content)
        headers = replace(headers, cost_usd=cost)
        response = Response(
            content,
            status_code=reply.status_code,
            headers=headers.as_dict(),
            media_type=reply.content_type or JSON,
        )
        return response, headers, output_tokens

    def _body_cost(
        self, candidate: Candidate, status: int, content: bytes
    ) -> tuple[float | None, int | None]:
        """Cost and output tokens from a cloud answer's usage (local bodies are never parsed)."""
        backend = candidate.backend
        if not backend.is_cloud or status >= 300:
            return None, None
        tokens = usage_tokens(content)
        if tokens is None:
            return None, None
        provider = provider_id(backend.kind.name)
        return self._prices.estimate(candidate.model, *tokens, provider=provider), tokens[1]

    def _stream_cost(self, candidate: Candidate, call: Call) -> float | None:
        """A cloud stream's upper bound: exact input tokens plus the output limit."""
        backend = candidate.backend
        if not backend.is_cloud:
            return None
        provider = provider_id(backend.kind.name)
        limit = requested_max_tokens(call.body)
        return stream_bound(self._prices, candidate.model, provider, call.exact_input_tokens, limit)

    async def _open(self, candidate: Candidate, call: Call) -> Reply:
        backend = candidate.backend
        key = None
        if backend.api_key_env is not None:
            key = read_credential(backend.api_key_env, self._environ).value
        if backend.transport is Transport.TRANSLATED:
            import nexus.upstream.translated as translated  # imports litellm: only when needed

            return await translated.open_translated(
                backend=backend,
                path=call.path,
                body=call.body,
                model=candidate.model,
                api_key=key,
                stream=call.stream,
                timeout=self._request_timeout,
            )
        body = call.raw
        if candidate.model != call.model_sent:
            body = rewrite_model(call.raw, candidate.model)
        return await open_relay(
            self._session,
            backend=backend.name,
            url=endpoint(backend.url, call.path),
            body=body,
            headers=request_headers(key, stream=call.stream),
            read_timeout=self._request_timeout,
            api_key_env=backend.api_key_env,
        )

    def _succeeded(self, name: str, started: float) -> None:
        latency_ms = (self._clock() - started) * 1000
        self._registry.record_outcome(name, SUCCESS, latency_ms=latency_ms)

    def _failed(self, candidate: Candidate, exc: UpstreamError, request_id: str) -> None:
        name = candidate.backend.name
        if isinstance(exc, BackendAtCapacity):  # nothing was sent: not a health failure
            logger.bind(request_id=request_id, backend=name).info(exc.message)
            return
        retry_after = exc.retry_after if isinstance(exc, UpstreamRateLimited) else None
        changed = self._registry.record_outcome(
            name, Outcome(exc.failure, exc.message, retry_after)
        )
        log = logger.bind(request_id=request_id, backend=name)
        log.warning("attempt on backend {} failed: {}", name, exc.message)
        if changed is not None:
            log.info("backend {} is {}: {}", name, changed, exc.message)


def _headers(plan: RoutePlan, index: int, failed: int, request_id: str) -> NexusHeaders:
    backend = plan.candidates[index].backend
    return NexusHeaders(
        request_id=request_id,
        backend=backend.name,
        location=backend.kind.location.value,
        route_reason=plan.reason_at(index, failed_attempts=failed).value,
        zone=backend.zone.value,
        fallback_model=plan.fallback_model_at(index),
    )


async def _first_chunk(reply: Reply, chunks: AsyncIterator[bytes]) -> bytes:
    """The first body chunk of a stream (b"" for an empty body); closes the reply on failure."""
    try:
        return await anext(chunks, b"")
    except BaseException:
        await reply.aclose()
        raise


class RelayStream(StreamingResponse):
    """The rest of a stream after its first chunk. Always closes its upstream and releases its
    in-flight lease, even when the client disconnects before the first chunk is sent; a failure
    after the start ends the stream with one ``data: {"error": ...}`` event. ``on_done`` (set by
    the caller) learns when it is over and whether the backend broke it."""

    def __init__(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        *,
        upstream: Reply,
        lease: Lease,
        backend: str,
        deadline: float,
        status_code: int,
        headers: Mapping[str, str],
        media_type: str,
    ) -> None:
        super().__init__(
            self._relay(first, chunks),
            status_code=status_code,
            headers=headers,
            media_type=media_type,
        )
        self._upstream = upstream
        self._lease = lease
        self._backend = backend
        self._deadline = deadline
        self._sse = media_type.startswith("text/event-stream")
        self.broken = False
        self.on_done: Callable[[RelayStream], None] | None = None

    async def _relay(self, first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        tail = first[-_TAIL:]
        yield first
        try:
            while (chunk := await self._next(chunks)) is not None:
                tail = (tail + chunk)[-_TAIL:]
                yield chunk
            if self._sse and not tail.rstrip().endswith(b"[DONE]"):
                raise UpstreamBadResponse("ended without 'data: [DONE]'", backend=self._backend)
        except UpstreamError as exc:
            self.broken = True
            yield _error_event(self._backend, exc)

    async def _next(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """The next chunk, or None at the end; a stall past the whole-request limit fails."""
        try:
            async with asyncio.timeout(self._deadline - time.monotonic()):
                return await anext(chunks, None)
        except TimeoutError:
            raise UpstreamTimeout("the whole-request limit passed", backend=self._backend) from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._upstream.aclose()
            self._lease.release()
            if self.on_done is not None:
                self.on_done(self)


#: How many trailing bytes of a stream are kept to see its end (``data: [DONE]``).
_TAIL = 32


def _error_event(backend: str, exc: UpstreamError) -> bytes:
    timed_out = isinstance(exc, UpstreamTimeout)
    logger.bind(backend=backend).warning("stream from backend {} broke: {}", backend, exc.message)
    event = error_body(
        f"the stream from backend '{backend}' broke after it started: {exc.message}",
        error_type="upstream_error",
        code="gateway_timeout" if timed_out else "stream_interrupted",
    )
    return b"data: " + event + b"\n\n"
