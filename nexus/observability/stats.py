"""Real request counts for ``GET /v1/stats``: totals, per backend and per model.

``success`` counts 2xx responses and ``errors`` every other response, client errors included
(the reference reported ``errors: 0`` always). A stream counts once, when it ended; one the
backend broke after it started is a 2xx (the client got a 200) and is also counted in
``streams_broken``. Model names are the bounded labels of :mod:`nexus.observability.labels`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nexus.backends.state import Snapshot
from nexus.observability.events import Completed
from nexus.observability.labels import status_class


@dataclass(slots=True)
class Tally:
    requests: int = 0
    errors: int = 0

    def add(self, ok: bool) -> None:
        self.requests += 1
        self.errors += not ok


class Stats:
    """The observer that counts responses."""

    def __init__(self, model_label: Callable[[str], str]) -> None:
        self._model_label = model_label
        self.by_class: Counter[str] = Counter()
        self.streams = 0
        self.streams_broken = 0
        self.backends: dict[str, Tally] = {}
        self.models: dict[str, Tally] = {}

    def completed(self, event: Completed) -> None:
        code = status_class(event.status)
        ok = code == "2xx"
        self.by_class[code] += 1
        self.streams += event.stream
        self.streams_broken += event.stream_broken
        if event.backend is not None:
            self.backends.setdefault(event.backend, Tally()).add(ok)
        self.models.setdefault(self._model_label(event.model), Tally()).add(ok)

    def body(self, snapshot: Snapshot, *, uptime_seconds: float) -> dict[str, Any]:
        """The ``/v1/stats`` document (contract section 3), plus errors by status class and
        stream counts."""
        total = sum(self.by_class.values())
        success = self.by_class["2xx"]
        return {
            "uptime_seconds": int(uptime_seconds),
            "requests": {
                "total": total,
                "success": success,
                "errors": total - success,
                "errors_by_class": {
                    code: count
                    for code, count in sorted(self.by_class.items())
                    if code != "2xx" and count
                },
                "streams": self.streams,
                "streams_broken": self.streams_broken,
            },
            "backends": self._backends(snapshot),
            "models": self._models(snapshot),
        }

    def _backends(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        """Every backend of the snapshot, then any that served requests and has gone since."""
        rows = []
        for backend in snapshot.backends:
            tally = self.backends.get(backend.name, Tally())
            latency = None if backend.latency_ms is None else round(backend.latency_ms, 1)
            rows.append(_backend_row(backend.name, tally, backend.in_flight, latency))
        present = {backend.name for backend in snapshot.backends}
        rows += [
            _backend_row(name, tally, 0, None)
            for name, tally in self.backends.items()
            if name not in present
        ]
        return rows

    def _models(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        """Every model a backend serves now (counted or not), then the other counted labels."""
        names = dict.fromkeys(model for backend in snapshot.backends for model in backend.models)
        names.update(dict.fromkeys(self.models))
        rows = []
        for name in names:
            tally = self.models.get(name, Tally())
            rows.append({"name": name, "requests": tally.requests, "errors": tally.errors})
        return rows


def _backend_row(
    name: str, tally: Tally, in_flight: int, latency_ms: float | None
) -> dict[str, Any]:
    return {
        "name": name,
        "requests": tally.requests,
        "errors": tally.errors,
        "in_flight": in_flight,
        "latency_ms": latency_ms,
    }
