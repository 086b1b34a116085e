"""Real request counts for ``GET /v1/stats``: totals, per backend, per model and per client API.

``success`` counts 2xx responses and ``errors`` every other response, client errors included
(the reference reported ``errors: 0`` always). A stream counts once, when it ended; one the
backend broke after it started is a 2xx (the client got a 200) and is also counted in
``streams_broken``. Model names are the bounded labels of :mod:`nexus.observability.labels`.

With shared state (:mod:`nexus.state`) the counts are the cluster's: :meth:`Stats.flat` gives
this process's counters as flat fields, the sync publishes them and sets :attr:`Stats.remote` to
what the other replicas counted, and the body shows the sum. ``process`` says which process
answered and whether its counts are shared.

``quality`` (:func:`quality_rows`) is read from the quality store at request time: one row per
(backend, model) pair the store knows, sorted by backend then model, with its ejection state and
rolling figures. The 1 h and 24 h figures are this process's own (replicas share only their
routing-window sums and ejections: an ejection another replica started shows here too).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import seconds_left
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


#: Separates the parts of a flat counter name: ``class\t2xx``, ``backend\t<name>\terrors``.
SEP = "\t"


@dataclass(slots=True)
class _Counts:
    by_class: Counter[str]
    streams: int
    streams_broken: int
    backends: dict[str, Tally]
    models: dict[str, Tally]
    apis: dict[str, Tally]
    tenants: dict[str, Tally]


class Stats:
    """The observer that counts responses."""

    def __init__(self, model_label: Callable[[str], str]) -> None:
        self._model_label = model_label
        self.by_class: Counter[str] = Counter()
        self.streams = 0
        self.streams_broken = 0
        self.backends: dict[str, Tally] = {}
        self.models: dict[str, Tally] = {}
        self.apis: dict[str, Tally] = {}
        self.tenants: dict[str, Tally] = {}
        self.remote: dict[str, int] = {}  # other replicas' flat counters (shared state)
        self.scope: dict[str, Any] = {"state": "memory"}  # shown as ``process``

    def completed(self, event: Completed) -> None:
        code = status_class(event.status)
        ok = code == "2xx"
        self.by_class[code] += 1
        self.streams += event.stream
        self.streams_broken += event.stream_broken
        if event.backend is not None:
            self.backends.setdefault(event.backend, Tally()).add(ok)
        self.models.setdefault(self._model_label(event.model), Tally()).add(ok)
        self.apis.setdefault(event.endpoint, Tally()).add(ok)
        if event.tenant is not None:
            self.tenants.setdefault(event.tenant, Tally()).add(ok)

    def flat(self) -> dict[str, int]:
        """This process's counters as flat fields (see :data:`SEP`), for shared state."""
        fields = {f"class{SEP}{code}": count for code, count in self.by_class.items()}
        fields["streams"], fields["streams_broken"] = self.streams, self.streams_broken
        for kind, tallies in self._tallies():
            for name, tally in tallies.items():
                fields[f"{kind}{SEP}{name}{SEP}requests"] = tally.requests
                fields[f"{kind}{SEP}{name}{SEP}errors"] = tally.errors
        return fields

    def _tallies(self) -> tuple[tuple[str, dict[str, Tally]], ...]:
        return (
            ("backend", self.backends),
            ("model", self.models),
            ("api", self.apis),
            ("tenant", self.tenants),
        )

    def body(self, snapshot: Snapshot, *, uptime_seconds: float) -> dict[str, Any]:
        """The ``/v1/stats`` document (README, "HTTP API"), plus errors by status class, stream
        counts and the answering process."""
        counts = self._counts()
        total = sum(counts.by_class.values())
        success = counts.by_class["2xx"]
        return {
            "uptime_seconds": int(uptime_seconds),
            "requests": {
                "total": total,
                "success": success,
                "errors": total - success,
                "errors_by_class": {
                    code: count
                    for code, count in sorted(counts.by_class.items())
                    if code != "2xx" and count
                },
                "streams": counts.streams,
                "streams_broken": counts.streams_broken,
            },
            "backends": _backends(snapshot, counts.backends),
            "models": _models(snapshot, counts.models),
            "apis": _rows(counts.apis),
            "tenants": _rows(counts.tenants),
            "process": {"pid": os.getpid(), **self.scope},
        }

    def _counts(self) -> _Counts:
        """This process's counts plus the other replicas' (:attr:`remote`)."""
        if not self.remote:
            return _Counts(
                self.by_class,
                self.streams,
                self.streams_broken,
                self.backends,
                self.models,
                self.apis,
                self.tenants,
            )
        counts = _Counts(
            Counter(self.by_class),
            self.streams,
            self.streams_broken,
            *({name: Tally(t.requests, t.errors) for name, t in tallies.items()}
              for _, tallies in self._tallies()),
        )  # fmt: skip
        by_kind = dict(zip(("backend", "model", "api", "tenant"), _tallies(counts), strict=True))
        for field, count in self.remote.items():
            kind, _, rest = field.partition(SEP)
            if kind == "class":
                counts.by_class[rest] += count
            elif kind in ("streams", "streams_broken"):
                setattr(counts, kind, getattr(counts, kind) + count)
            elif kind in by_kind:
                name, _, what = rest.rpartition(SEP)
                tally = by_kind[kind].setdefault(name, Tally())
                if what == "requests":
                    tally.requests += count
                elif what == "errors":
                    tally.errors += count
        return counts


def _backends(snapshot: Snapshot, tallies: dict[str, Tally]) -> list[dict[str, Any]]:
    """Every backend of the snapshot, then any that served requests and has gone since."""
    rows = []
    for backend in snapshot.backends:
        tally = tallies.get(backend.name, Tally())
        latency = None if backend.latency_ms is None else round(backend.latency_ms, 1)
        rows.append(_backend_row(backend.name, tally, backend.in_flight, latency))
    present = {backend.name for backend in snapshot.backends}
    rows += [
        _backend_row(name, tally, 0, None) for name, tally in tallies.items() if name not in present
    ]
    return rows


def _models(snapshot: Snapshot, tallies: dict[str, Tally]) -> list[dict[str, Any]]:
    """Every model a backend serves now (counted or not), then the other counted labels."""
    names = dict.fromkeys(model for backend in snapshot.backends for model in backend.models)
    names.update(dict.fromkeys(tallies))
    rows = []
    for name in names:
        tally = tallies.get(name, Tally())
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


def _tallies(counts: _Counts) -> tuple[dict[str, Tally], ...]:
    return counts.backends, counts.models, counts.apis, counts.tenants


def _rows(tallies: dict[str, Tally]) -> list[dict[str, Any]]:
    """Named counts, sorted by name (the per-API and per-tenant lists)."""
    return [
        {"name": name, "requests": tally.requests, "errors": tally.errors}
        for name, tally in sorted(tallies.items())
    ]


def quality_rows(store: QualityStore, now: float) -> list[dict[str, Any]]:
    """``/v1/stats`` ``quality``: each (backend, model) pair, sorted, with ``status`` (ok,
    ejected, recovering), ``back_in_seconds`` (whole seconds until an ejection ends, else None),
    ``reason`` (of the last ejection, kept while recovering), and the Rust Nexus figures per pair:
    ``error_rate_1h`` and ``success_rate_24h`` (successes and errors only, a 429 is neither;
    None below ``min_requests`` attempts), ``avg_ttft_ms`` (mean time to first token over 1 h),
    plus ``tokens_per_second_1h`` (streams' output tokens after their first). ``now``: the
    store's clock (monotonic seconds)."""
    rows = []
    for backend, model in sorted(store.pairs()):
        state = store.state(backend, model)
        hour = store.figures(backend, model, "1h")
        day = store.figures(backend, model, "24h")
        judged = day.successes + day.errors
        success_rate = None if day.error_rate is None else day.successes / judged
        rows.append(
            {
                "backend": backend,
                "model": model,
                "status": state.status.value,
                "back_in_seconds": seconds_left(state.ejected_until, now),
                "reason": state.reason,
                "error_rate_1h": hour.error_rate,
                "avg_ttft_ms": _round(hour.ttft_ms),
                "success_rate_24h": success_rate,
                "tokens_per_second_1h": _round(hour.tokens_per_second),
            }
        )
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
