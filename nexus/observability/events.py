"""What happened to one request, reported once when it is over, and who listens.

``Completed`` is emitted for every response of ``/v1/chat/completions`` and ``/v1/embeddings``,
errors included; for a stream, when the stream has ended (``stream_broken`` says whether the
backend broke it after it started). Observers must be fast and must not raise: they run on the
request path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from loguru import logger

from nexus.observability.logs import request_line


@dataclass(frozen=True, slots=True)
class Completed:
    request_id: str
    endpoint: str  # "chat" | "embeddings"
    model: str  # as the client asked ("-" when the request could not be parsed)
    backend: str | None  # the backend that answered last, None when none was chosen
    location: str | None  # "local" | "cloud"
    route_reason: str | None
    status: int
    stream: bool
    started_at: float  # wall-clock seconds
    duration_s: float
    ttfb_s: float | None  # time until the first byte of the body was ready
    failed_attempts: int
    fallback_model: str | None
    cost_usd: float | None
    stream_broken: bool = False
    failovers: int = 0  # moves from a failed attempt to another candidate
    input_tokens: int | None = None  # Nexus's own count of the request (exact or estimated)
    output_tokens: int | None = None  # from the response's usage, when Nexus read it
    tenant: str | None = None  # the client's tenant name (never its key); None: no keys
    outliers: tuple[str, ...] = ()  # backends quality tracking skipped for this request


class Observer(Protocol):
    def completed(self, event: Completed) -> None: ...


class RequestLog:
    """One log line per request: its id, model, backend, route reason, status, latency and the
    client's tenant name; never request or response content, never a key."""

    def completed(self, event: Completed) -> None:
        broken = " (stream broken)" if event.stream_broken else ""
        skipped = f" (skipped outliers: {', '.join(event.outliers)})" if event.outliers else ""
        fields = {
            "request_id": event.request_id,
            "model": event.model,
            "backend": event.backend or "none",
            "route_reason": event.route_reason or "none",
            "status": event.status,
            "latency_ms": round(event.duration_s * 1000, 1),
            "tenant": event.tenant or "-",
            "outliers": list(event.outliers),
        }
        message = f"{event.endpoint} {event.request_id} answered {event.status}{broken}{skipped}"
        request_line(__name__, message, fields)


class Observers:
    """Fans one event out to several observers; one failing observer does not stop the rest."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self._observers = tuple(observers)

    def completed(self, event: Completed) -> None:
        for observer in self._observers:
            try:
                observer.completed(event)
            except Exception:
                logger.exception("observer {} failed", type(observer).__name__)
