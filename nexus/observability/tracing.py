"""OpenTelemetry traces (``[tracing] enabled = true``): one server span per request, one client
span per upstream attempt, exported over OTLP/HTTP by a batch processor on its own thread.

This module imports OpenTelemetry, so it is imported only when tracing is on
(:mod:`nexus.gateway.lifecycle`); off, the gateway's ``tracing`` is None and the request path
pays one ``is None`` test.

Spans follow OpenTelemetry's GenAI semantic conventions:

- the **server span** ``"{gen_ai.operation.name} {gen_ai.request.model}"`` (``chat``,
  ``text_completion`` or ``embeddings``), child of the client's W3C ``traceparent`` when it sent
  one (a sampled parent is always traced, an unsampled one never, a new trace is sampled at
  ``sample_ratio``), ends when the request is reported (a stream: when it ended);
- an **attempt span** ``"attempt {backend}"`` per upstream attempt, child of the server span;
  the backend is sent the attempt span's ``traceparent``, so its own spans hang under it.

Attributes are facts the gateway decided (backend, route reason, zone, tier, status, tokens,
cost); never request or response content, never a key or a header of the client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from nexus import __version__
from nexus.backends.state import BackendView
from nexus.config.kinds import Api
from nexus.config.tracing import TracingConfig
from nexus.observability.events import Completed

#: ``gen_ai.operation.name`` of each client API (Messages and Responses are chats).
OPERATIONS = {
    Api.CHAT: "chat",
    Api.MESSAGES: "chat",
    Api.RESPONSES: "chat",
    Api.COMPLETIONS: "text_completion",
    Api.EMBEDDINGS: "embeddings",
}

#: Backend types whose ``gen_ai.provider.name`` the conventions spell otherwise; any other type
#: is its own name (``openai``, ``anthropic``, ``vllm``, ``ollama``, ...).
PROVIDERS = {
    "google": "gcp.gemini",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}

_PROPAGATOR = TraceContextTextMapPropagator()


def provider_name(backend: BackendView) -> str:
    """``gen_ai.provider.name`` of ``backend``."""
    kind = backend.kind.name
    return PROVIDERS.get(kind, kind)


class Tracing:
    """The tracer provider of one gateway; :meth:`request` starts a request's trace."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("nexus", __version__)

    @classmethod
    def create(cls, config: TracingConfig, *, exporter: SpanExporter | None = None) -> Tracing:
        """Spans sampled parent-based at ``sample_ratio``, exported in batches to
        ``config.endpoint`` (or to ``exporter``: the bench's)."""
        resource = Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        )
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        provider = TracerProvider(sampler=sampler, resource=resource)
        exporter = exporter or OTLPSpanExporter(endpoint=config.endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def request(
        self, kind: Api, model: str, request_id: str, headers: Mapping[str, str]
    ) -> RequestTrace:
        """Start the server span of one request; ``headers`` are the client's (only
        ``traceparent`` and ``tracestate`` are read)."""
        operation = OPERATIONS.get(kind, "chat")
        span = self._tracer.start_span(
            f"{operation} {model}",
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": model,
                "nexus.request_id": request_id,
            },
        )
        return RequestTrace(self._tracer, span)

    def flush(self, timeout_millis: int = 5000) -> bool:
        """Export every ended span now (tests, shutdown)."""
        return self._provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the exporter thread (blocks up to the exporter's timeout)."""
        self._provider.shutdown()


class RequestTrace:
    """The server span of one request and the attempts under it."""

    __slots__ = ("_tracer", "span", "_streaming", "_served")

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self._tracer = tracer
        self.span = span
        self._streaming: Span | None = None  # a streamed answer's attempt, open until it ends
        self._served: tuple[BackendView, str] | None = None  # the answering backend, its model

    def attempt(self, backend: BackendView, model: str) -> AttemptTrace:
        """Start the span of one attempt on ``backend`` for ``model``."""
        attributes: dict[str, Any] = {}
        if self.span.is_recording():
            url = urlsplit(backend.url)
            attributes = {
                "nexus.backend": backend.name,
                "gen_ai.provider.name": provider_name(backend),
                "gen_ai.request.model": model,
                "server.address": url.hostname or "",
                "server.port": url.port or (443 if url.scheme == "https" else 80),
            }
        span = self._tracer.start_span(
            f"attempt {backend.name}",
            context=set_span_in_context(self.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return AttemptTrace(self, span, backend, model)

    def served(self, backend: BackendView, model: str, span: Span | None) -> None:
        """The attempt that answered; ``span`` stays open until the stream ends, when set."""
        self._served = (backend, model)
        self._streaming = span

    def end(self, event: Completed) -> None:
        """End the request's spans with the facts of its report."""
        span, streaming = self.span, self._streaming
        if streaming is not None:
            if event.stream_broken:
                _failed(streaming, "stream_broken")
            streaming.end()
        if span.is_recording():
            span.set_attributes(self._attributes(event))
            if event.stream_broken:
                _failed(span, "stream_broken")
            elif event.status >= 500:
                _failed(span, str(event.status))
        span.end()

    def _attributes(self, event: Completed) -> dict[str, Any]:
        found: dict[str, Any] = {
            "http.response.status_code": event.status,
            "nexus.stream": event.stream,
            "nexus.failed_attempts": event.failed_attempts,
        }
        if self._served is not None:
            backend, model = self._served
            found["gen_ai.response.model"] = model
            found["gen_ai.provider.name"] = provider_name(backend)
            found["nexus.privacy_zone"] = backend.zone.value
            found["nexus.tier"] = backend.tier
        optional = {
            "nexus.backend": event.backend,
            "nexus.route_reason": event.route_reason,
            "nexus.fallback_model": event.fallback_model,
            "nexus.cost_usd": event.cost_usd,
            "nexus.tenant": event.tenant,
            "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
        }
        found.update((key, value) for key, value in optional.items() if value is not None)
        return found


class AttemptTrace:
    """The span of one upstream attempt; ``headers`` carry it to the backend."""

    __slots__ = ("_request", "_span", "_backend", "_model", "headers")

    def __init__(self, request: RequestTrace, span: Span, backend: BackendView, model: str) -> None:
        self._request, self._span = request, span
        self._backend, self._model = backend, model
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
        self.headers = tuple(carrier.items())

    def answered(self, status: int, *, streaming: bool) -> None:
        """The backend answered ``status`` (a stream: its first chunk arrived)."""
        span = self._span
        span.set_attribute("http.response.status_code", status)
        if status >= 400:  # passed on to the client as it is, but an error of this call
            _failed(span, str(status))
        self._request.served(self._backend, self._model, span if streaming else None)
        if not streaming:
            span.end()

    def failed(self, error_type: str, status: int | None = None) -> None:
        """The attempt failed (``error_type``: the failure class, or the exception's name)."""
        span = self._span
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        _failed(span, error_type)
        span.end()


def _failed(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))
