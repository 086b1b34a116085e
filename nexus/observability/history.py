"""The most recent requests, for ``GET /v1/history`` and the dashboard.

Each entry is what an operator needs to see what the gateway did (time, model, backend, status,
duration, route reason), never request or response content. Model names are cut at
:data:`MAX_MODEL_CHARS`: they come from clients.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

from nexus.observability.events import Completed

#: How many requests are kept.
SIZE = 100
MAX_MODEL_CHARS = 256


class History:
    """A ring buffer of the last :data:`SIZE` completed requests. ``version`` grows with every
    entry, so a reader can tell cheaply whether anything changed. Events are kept as they came
    and rendered when read: recording one stays cheap on the request path."""

    def __init__(self, size: int = SIZE) -> None:
        self._events: deque[Completed] = deque(maxlen=size)
        self.version = 0

    def completed(self, event: Completed) -> None:
        self._events.appendleft(event)
        self.version += 1

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first; at most ``limit`` when given."""
        events = list(self._events)
        return [history_entry(event) for event in events[:limit]]


def history_entry(event: Completed) -> dict[str, Any]:
    """One request as ``/v1/history`` shows it; ``time`` is when it ended (UTC, ISO 8601)."""
    ended = datetime.fromtimestamp(event.started_at + event.duration_s, UTC)
    return {
        "time": ended.isoformat(timespec="milliseconds"),
        "request_id": event.request_id,
        "endpoint": event.endpoint,
        "model": event.model[:MAX_MODEL_CHARS],
        "backend": event.backend,
        "status": event.status,
        "duration_ms": round(event.duration_s * 1000, 1),
        "ttfb_ms": None if event.ttfb_s is None else round(event.ttfb_s * 1000, 1),
        "route_reason": event.route_reason,
        "stream": event.stream,
        "stream_broken": event.stream_broken,
        "fallback_model": event.fallback_model,
        "failed_attempts": event.failed_attempts,
        "cost_usd": event.cost_usd,
        "tenant": event.tenant,
        "outliers_skipped": list(event.outliers),
    }
