"""Execute a :class:`~nexus.routing.RoutePlan`: attempt candidates in order, fail over, feed
passive health, and answer with the backend's own bytes plus the ``X-Nexus-*`` header values.

Before the first byte reaches the client, any :class:`~nexus.errors.UpstreamError` (a connect
error, timeout, 5xx, 429 or 401/403; an answer that should not fail over is returned by the
opener, not raised) moves the request to the next candidate (at most ``1 + max_retries``
attempts; the plan never holds a candidate outside the request's privacy zone or below its tier).
For a stream, "the first byte" is the first chunk of the body: it is read before the answer is
returned, so a backend that answers 200 and then dies is still a failover.

In-flight counts are taken for the whole attempt, streams included, and released on every path:
success, failure, timeout and client disconnect (which also cancels the upstream request). With
shared state, an attempt on a backend with ``max_concurrent`` is first admitted across replicas
(:class:`Admission`, bounded in time); a refusal moves on to the next candidate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from nexus.backends.quality import QualityStore
from nexus.backends.registry import Lease, Registry
from nexus.backends.state import BackendView
from nexus.backends.transitions import SUCCESS, Outcome
from nexus.config.kinds import Api
from nexus.errors import (
    BackendAtCapacity,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from nexus.gateway.opener import Call, Opener
from nexus.gateway.outcome import JSON, Answer
from nexus.gateway.stream import ENDINGS, RelayedStream
from nexus.headers import NexusHeaders
from nexus.pricing import PriceTable, provider_id, stream_bound, usage_tokens
from nexus.routing import Candidate, RoutePlan
from nexus.upstream.reply import Reply

if TYPE_CHECKING:
    from nexus.observability.tracing import RequestTrace


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Every attempt failed; ``failures`` in attempt order, ``headers`` name the last backend."""

    failures: tuple[UpstreamError, ...]
    headers: NexusHeaders

    @property
    def at_capacity(self) -> bool:
        """Every attempt was refused by the admission across replicas: nothing was sent."""
        return all(isinstance(failure, BackendAtCapacity) for failure in self.failures)


class Admission(Protocol):
    """Admits an attempt on a backend with ``max_concurrent`` across replicas (shared state)."""

    async def admit(self, backend: BackendView, lease: Lease) -> None:
        """Return when ``lease`` may proceed; raise :class:`BackendAtCapacity` when not."""


class Attempts:
    """Attempts and failover through one :class:`~nexus.gateway.opener.Opener`. One per app."""

    def __init__(
        self,
        registry: Registry,
        opener: Opener,
        prices: PriceTable,
        *,
        request_timeout: float,
        clock: Callable[[], float],
        admission: Admission | None = None,
        quality: QualityStore | None = None,
    ) -> None:
        self._registry = registry
        self._opener = opener
        self._prices = prices
        self._timeout = request_timeout
        self._clock = clock
        self._admission = admission
        self._quality = quality

    async def run(
        self,
        plan: RoutePlan,
        call: Call,
        *,
        lease: Lease | None = None,
        trace: RequestTrace | None = None,
    ) -> Answer | Exhausted:
        """Serve ``call`` through the first candidate of ``plan`` that answers (a plan has at
        least one candidate). ``lease``, taken on the first candidate already (the queue's), is
        used by the first attempt. With ``trace`` (tracing on), each attempt is a span."""
        failures: list[UpstreamError] = []
        headers = None
        for index, candidate in enumerate(plan.candidates[: plan.max_attempts]):
            headers = _headers(plan, index, len(failures), call.request_id)
            taken, lease = lease, None
            try:
                if trace is not None:
                    return await self._traced(trace, candidate, call, headers, len(failures), taken)
                return await self._attempt(candidate, call, headers, len(failures), taken)
            except UpstreamError as exc:
                failures.append(exc)
                self._failed(candidate, exc, call.request_id)
        assert headers is not None
        return Exhausted(tuple(failures), headers)

    async def _traced(
        self,
        trace: RequestTrace,
        candidate: Candidate,
        call: Call,
        headers: NexusHeaders,
        failed: int,
        taken: Lease | None,
    ) -> Answer:
        """:meth:`_attempt` in its own span, whose ``traceparent`` the backend is sent."""
        attempt = trace.attempt(candidate.backend, candidate.model)
        try:
            traced = replace(call, trace=attempt.headers)
            answer = await self._attempt(candidate, traced, headers, failed, taken)
        except UpstreamError as exc:
            attempt.failed(exc.failure.value, exc.upstream_status)
            raise
        except BaseException as exc:  # cancelled (the client left), or a bug
            attempt.failed(type(exc).__name__)
            raise
        attempt.answered(answer.status, streaming=answer.stream is not None)
        return answer

    async def _attempt(
        self,
        candidate: Candidate,
        call: Call,
        headers: NexusHeaders,
        failed: int,
        taken: Lease | None = None,
    ) -> Answer:
        backend = candidate.backend
        started = self._clock()
        owned = taken or self._registry.lease(backend.name)
        lease: Lease | None = owned  # released here unless a stream takes it over
        try:
            async with asyncio.timeout(self._timeout):
                if self._admission is not None and backend.max_concurrent is not None:
                    await self._admission.admit(backend, owned)
                reply = await self._opener(backend, candidate.model, call, timeout=self._timeout)
                if call.stream and reply.status_code < 300:
                    stream = await self._stream(candidate, call, reply, headers, owned, started)
                    lease = None  # the stream owns it now
                    ttfb = self._succeeded(candidate, started)
                    self._measured(candidate, ttfb, None, None, stream=True)
                    if self._quality is not None:
                        stream.finished = partial(self._stream_end, candidate, started, ttfb)
                    status, content_type = reply.status_code, stream.content_type
                    return Answer(
                        status,
                        content_type,
                        stream.headers,
                        stream=stream,
                        failed_attempts=failed,
                        ttfb_s=ttfb,
                    )
                try:
                    content = await reply.read()
                finally:
                    await reply.aclose()
        except TimeoutError:
            limit = f"{self._timeout:g} s"
            raise UpstreamTimeout(f"no answer within {limit}", backend=backend.name) from None
        finally:
            if lease is not None:
                lease.release()
        ttfb = self._succeeded(candidate, started)
        cost, output_tokens = self._body_cost(candidate, reply.status_code, content)
        if reply.status_code < 400:  # a 4xx passed on is the client's, not the backend's
            total = self._clock() - started
            self._measured(candidate, ttfb, total, output_tokens, stream=False)
        return Answer(
            reply.status_code,
            reply.content_type or JSON,
            replace(headers, cost_usd=cost),
            body=content,
            failed_attempts=failed,
            ttfb_s=ttfb,
            output_tokens=output_tokens,
        )

    async def _stream(
        self,
        candidate: Candidate,
        call: Call,
        reply: Reply,
        headers: NexusHeaders,
        lease: Lease,
        started: float,
    ) -> RelayedStream:
        """A stream whose first chunk has arrived (an empty stream is a failover)."""
        chunks = reply.chunks()
        first = await _first_chunk(reply, chunks)
        if not first:
            await reply.aclose()
            raise UpstreamBadResponse("answered an empty stream", backend=candidate.backend.name)
        headers = replace(headers, cost_usd=self.cost_bound(candidate, call))
        return RelayedStream(
            first,
            reply,
            chunks,
            lease=lease,
            headers=headers,
            content_type=reply.content_type or "text/event-stream",
            deadline=started + self._timeout,
            clock=self._clock,
            endings=ENDINGS.get(call.kind, ENDINGS[Api.CHAT]),
        )

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

    def cost_bound(self, candidate: Candidate, call: Call) -> float | None:
        """A cloud request's upper bound: exact input tokens plus the output limit (None for a
        local backend, or when either is unknown)."""
        backend = candidate.backend
        if not backend.is_cloud:
            return None
        provider = provider_id(backend.kind.name)
        return stream_bound(
            self._prices, candidate.model, provider, call.exact_input_tokens, call.max_tokens
        )

    def _succeeded(self, candidate: Candidate, started: float) -> float:
        """Record a success; return its time to the first byte in seconds."""
        elapsed = self._clock() - started
        self._registry.record_outcome(
            candidate.backend.name, SUCCESS, latency_ms=elapsed * 1000, model=candidate.model
        )
        return elapsed

    def _stream_end(self, candidate: Candidate, started: float, ttft: float, events: int) -> None:
        """A stream ended complete: its total time, and its SSE data events after the first as
        its output tokens (one token per event on the servers Nexus fronts; a server that sends
        several tokens per event shows a lower rate)."""
        assert self._quality is not None
        total = self._clock() - started
        self._quality.record_end(
            candidate.backend.name,
            candidate.model,
            ttft_s=ttft,
            total_s=total,
            output_tokens=max(events - 1, 0),
        )

    def _measured(
        self,
        candidate: Candidate,
        ttft: float,
        total: float | None,
        output: int | None,
        *,
        stream: bool,
    ) -> None:
        if self._quality is not None:
            backend, model = candidate.backend.name, candidate.model
            self._quality.record_success(
                backend, model, ttft_s=ttft, total_s=total, output_tokens=output, stream=stream
            )

    def _failed(self, candidate: Candidate, exc: UpstreamError, request_id: str) -> None:
        name = candidate.backend.name
        if isinstance(exc, BackendAtCapacity):  # nothing was sent: not a health failure
            logger.bind(request_id=request_id, backend=name).info(exc.message)
            return
        if self._quality is not None:
            self._quality.record_failure(name, candidate.model, exc.failure)
        retry_after = exc.retry_after if isinstance(exc, UpstreamRateLimited) else None
        changed = self._registry.record_outcome(
            name, Outcome(exc.failure, exc.message, retry_after), model=candidate.model
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
