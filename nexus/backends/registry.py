"""The live state of every backend, and the immutable snapshot the planner routes over.

The registry is the only mutable backend state in a process. Probes (:mod:`nexus.health.checker`)
and the gateway's attempts (request outcomes, in-flight counts) write to it; everything else
reads snapshots.
All methods are synchronous and called from the event loop thread, so no lock is needed.

Shared state (:mod:`nexus.state`, several replicas) hooks in without any network wait here: a
:class:`StateListener` is told of local health changes, cooldowns and leases (it queues them), and
the ``apply_shared_*`` / :meth:`Registry.set_shared_in_flight` methods take in what other replicas
saw. Without a listener (the memory backend) nothing else happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from nexus.backends.state import (
    MODEL_FAILURES,
    BackendView,
    Health,
    ModelInfo,
    ProbeResult,
    Snapshot,
    Status,
)
from nexus.backends.transitions import (
    SUCCESS,
    ModelHealth,
    Outcome,
    Thresholds,
    advance,
    advance_model,
)
from nexus.config.model import BackendConfig

#: Weight of a new latency sample in the moving average.
LATENCY_ALPHA = 0.2


@dataclass(slots=True)
class _Record:
    config: BackendConfig
    discovered: bool
    health: Health = field(default_factory=Health)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    models_stale: bool = False
    model_health: dict[str, ModelHealth] = field(default_factory=dict)  # failing models only
    in_flight: int = 0
    shared_in_flight: int = 0  # other replicas' leases, as of the last sync
    latency_ms: float | None = None
    last_check: float | None = None
    next_probe_at: float | None = None
    view: BackendView | None = None  # cached for snapshots until this record changes

    def observe_latency(self, sample_ms: float) -> None:
        old = self.latency_ms
        self.latency_ms = sample_ms if old is None else old + LATENCY_ALPHA * (sample_ms - old)


class Lease:
    """One in-flight request on a backend, numbered ``id`` (unique in this registry).
    ``release`` may be called any number of times; only the first call counts."""

    __slots__ = ("_release", "id")

    def __init__(self, release: Callable[[], None], lease_id: int = 0) -> None:
        self._release: Callable[[], None] | None = release
        self.id = lease_id

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class StateListener(Protocol):
    """Learns the local changes other replicas must know. Called on the request path: must only
    record them (no I/O, no waiting) and must not raise."""

    def status_changed(self, name: str, status: Status, error: str | None) -> None: ...

    def cooled_down(self, name: str, seconds: float) -> None: ...

    def leased(self, name: str, lease_id: int) -> None: ...

    def released(self, name: str, lease_id: int) -> None: ...


class Registry:
    """Backends by configured name, in configuration order (discovered ones after).
    ``listener`` (None by default) is told of local changes, see :class:`StateListener`."""

    def __init__(
        self,
        backends: Iterable[BackendConfig],
        *,
        thresholds: Thresholds,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._records: dict[str, _Record] = {}
        self._thresholds = thresholds
        self._clock = clock
        self._wall_clock = wall_clock
        self._snapshot: Snapshot | None = None
        self._leases = 0
        self.listener: StateListener | None = None
        self.on_freed: Callable[[], None] | None = None  # told after each lease ends (the queue)
        for backend in backends:
            self.add(backend)

    # -- membership ----------------------------------------------------------------------------

    def add(self, backend: BackendConfig, *, discovered: bool = False) -> None:
        """Register ``backend``, status unknown until its first probe; replaces a same-named one.
        Its configured ``models`` are known from the start (capabilities unknown until a probe):
        a request for one of them while the backend is down is a 503, never a 404."""
        record = _Record(backend, discovered)
        record.models = {model: ModelInfo(model) for model in backend.models or ()}
        self._records[backend.name] = record
        self._changed()

    def remove(self, name: str) -> None:
        if self._records.pop(name, None) is not None:
            self._changed()

    def configs(self) -> list[BackendConfig]:
        return [record.config for record in self._records.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._records

    # -- health ------------------------------------------------------------------------------

    def record_probe(
        self, name: str, result: ProbeResult, *, next_probe_at: float | None
    ) -> Status | None:
        """Apply a probe result: health transition, models (kept on failure), latency.
        Returns the new status when it changed, else None."""
        record = self._records.get(name)
        if record is None:  # removed while the probe ran
            return None
        outcome = SUCCESS if result.ok else Outcome(result.failure, result.error)
        changed = self._advance(record, outcome)
        if result.models is not None:
            record.models = {model.id: model for model in result.models}
        record.models_stale = not result.ok and bool(record.models)
        if result.ok and result.latency_ms is not None:
            record.observe_latency(result.latency_ms)
        record.last_check = self._wall_clock()
        record.next_probe_at = next_probe_at
        self._changed(record)
        return changed

    def record_outcome(
        self,
        name: str,
        outcome: Outcome,
        latency_ms: float | None = None,
        *,
        model: str | None = None,
    ) -> Status | None:
        """Passive health: a real request's result feeds the same transitions as a probe, but a
        failure of ``model`` in :data:`MODEL_FAILURES` counts against that model on this backend
        only. Returns the backend's new status when it changed, else None."""
        record = self._records.get(name)
        if record is None:
            return None
        if model is not None and outcome.failure in MODEL_FAILURES:
            before = record.model_health.get(model, ModelHealth())
            now = self._clock()
            record.model_health[model] = advance_model(before, outcome, self._thresholds, now)
            self._changed(record)
            return None
        if model is not None and outcome.ok:
            record.model_health.pop(model, None)
        changed = self._advance(record, outcome)
        if outcome.ok and latency_ms is not None:
            record.observe_latency(latency_ms)
        self._changed(record)
        return changed

    def _advance(self, record: _Record, outcome: Outcome) -> Status | None:
        before, now = record.health, self._clock()
        after = record.health = advance(before, outcome, self._thresholds, now)
        if self.listener is not None:
            name = record.config.name
            if after.status is not before.status:
                self.listener.status_changed(name, after.status, after.last_error)
            if after.cooldown_until is not None and after.cooldown_until != before.cooldown_until:
                self.listener.cooled_down(name, after.cooldown_until - now)
        return after.status if after.status is not before.status else None

    # -- shared state (other replicas) ---------------------------------------------------------

    def apply_shared_status(self, name: str, status: Status, error: str | None) -> bool:
        """Take in a status another replica reached (the listener is not told). A backend
        becoming unhealthy keeps its failure count; the success count restarts. Returns whether
        the status changed."""
        record = self._records.get(name)
        if record is None or record.health.status is status:
            return False
        healthy = status is Status.HEALTHY
        record.health = replace(
            record.health,
            status=status,
            consecutive_failures=0 if healthy else record.health.consecutive_failures,
            consecutive_successes=0,
            last_error=record.health.last_error if healthy else error,
        )
        self._changed()
        return True

    def apply_shared_cooldown(self, name: str, seconds: float) -> None:
        """Cool ``name`` down for ``seconds`` from now, unless it already is for longer."""
        record = self._records.get(name)
        if record is None or seconds <= 0:
            return
        until = self._clock() + seconds
        if record.health.cooldown_until is None or record.health.cooldown_until < until:
            record.health = replace(record.health, cooldown_until=until)
            self._changed()

    def set_shared_in_flight(self, counts: Mapping[str, int]) -> None:
        """Other replicas' in-flight counts by backend (absent: 0); snapshots show the sum."""
        for name, record in self._records.items():
            count = counts.get(name, 0)
            if record.shared_in_flight != count:
                record.shared_in_flight = count
                self._changed(record)

    # -- load ----------------------------------------------------------------------------------

    def lease(self, name: str) -> Lease:
        """Count one in-flight request on ``name`` until the lease is released."""
        record = self._records.get(name)
        if record is None:
            return Lease(lambda: None)
        record.in_flight += 1
        self._leases += 1
        lease_id, listener = self._leases, self.listener
        if listener is not None:
            listener.leased(name, lease_id)
        self._changed(record)

        def release() -> None:
            record.in_flight -= 1
            if listener is not None:
                listener.released(name, lease_id)
            self._changed(record)
            if self.on_freed is not None:
                self.on_freed()

        return Lease(release, lease_id)

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """An immutable view of every backend now; cached until the next change. Only the
        views of backends that changed are rebuilt (a request changes one in-flight count)."""
        if self._snapshot is None:
            for record in self._records.values():
                if record.view is None:
                    record.view = _view(record)
            views = tuple(record.view for record in self._records.values() if record.view)
            self._snapshot = Snapshot(backends=views, taken_at=self._clock())
        return self._snapshot

    def _changed(self, record: _Record | None = None) -> None:
        """Drop the cached snapshot, and the view of ``record`` (of every backend when None)."""
        self._snapshot = None
        for changed in (record,) if record is not None else self._records.values():
            changed.view = None


def _view(record: _Record) -> BackendView:
    config, health = record.config, record.health
    return BackendView(
        name=config.name,
        kind=config.kind,
        url=config.url,
        zone=config.zone,
        tier=config.tier,
        priority=config.priority,
        max_concurrent=config.max_concurrent,
        status=health.status,
        models=record.models,
        in_flight=record.in_flight + record.shared_in_flight,
        latency_ms=record.latency_ms,
        last_error=health.last_error,
        last_check=record.last_check,
        next_probe_at=record.next_probe_at,
        cooldown_until=health.cooldown_until,
        api_key_env=config.api_key_env,
        apis=config.native_apis,
        discovered=record.discovered,
        models_stale=record.models_stale,
        ejected_models={
            model: (entry.ejected_until, entry.last_error)
            for model, entry in record.model_health.items()
            if entry.ejected_until is not None
        },
    )
