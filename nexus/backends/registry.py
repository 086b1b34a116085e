"""The live state of every backend, and the immutable snapshot the planner routes over.

The registry is the only mutable backend state in a process. Probes (:mod:`nexus.health.checker`)
and the proxy (request outcomes, in-flight counts) write to it; everything else reads snapshots.
All methods are synchronous and called from the event loop thread, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from nexus.backends.state import BackendView, Health, ModelInfo, ProbeResult, Snapshot, Status
from nexus.config.model import BackendConfig
from nexus.health.transitions import SUCCESS, Outcome, Thresholds, advance

#: Weight of a new latency sample in the moving average.
LATENCY_ALPHA = 0.2


@dataclass(slots=True)
class _Record:
    config: BackendConfig
    discovered: bool
    health: Health = field(default_factory=Health)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    in_flight: int = 0
    latency_ms: float | None = None
    last_check: float | None = None
    next_probe_at: float | None = None

    def observe_latency(self, sample_ms: float) -> None:
        old = self.latency_ms
        self.latency_ms = sample_ms if old is None else old + LATENCY_ALPHA * (sample_ms - old)


class Lease:
    """One in-flight request on a backend. ``release`` may be called any number of times; only
    the first call counts."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class Registry:
    """Backends by configured name, in configuration order (discovered ones after)."""

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
        for backend in backends:
            self.add(backend)

    # -- membership ----------------------------------------------------------------------------

    def add(self, backend: BackendConfig, *, discovered: bool = False) -> None:
        """Register ``backend``, status unknown until its first probe; replaces a same-named one."""
        self._records[backend.name] = _Record(backend, discovered)
        self._changed()

    def remove(self, name: str) -> None:
        if self._records.pop(name, None) is not None:
            self._changed()

    def configs(self) -> list[BackendConfig]:
        return [record.config for record in self._records.values()]

    def urls(self) -> set[str]:
        return {record.config.url.rstrip("/") for record in self._records.values()}

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
        if result.ok and result.latency_ms is not None:
            record.observe_latency(result.latency_ms)
        record.last_check = self._wall_clock()
        record.next_probe_at = next_probe_at
        self._changed()
        return changed

    def record_outcome(
        self, name: str, outcome: Outcome, latency_ms: float | None = None
    ) -> Status | None:
        """Passive health: a real request's result feeds the same transitions as a probe.
        Returns the new status when it changed, else None."""
        record = self._records.get(name)
        if record is None:
            return None
        changed = self._advance(record, outcome)
        if outcome.ok and latency_ms is not None:
            record.observe_latency(latency_ms)
        self._changed()
        return changed

    def _advance(self, record: _Record, outcome: Outcome) -> Status | None:
        before = record.health.status
        record.health = advance(record.health, outcome, self._thresholds, self._clock())
        return record.health.status if record.health.status is not before else None

    # -- load ----------------------------------------------------------------------------------

    def lease(self, name: str) -> Lease:
        """Count one in-flight request on ``name`` until the lease is released."""
        record = self._records.get(name)
        if record is None:
            return Lease(lambda: None)
        record.in_flight += 1
        self._changed()

        def release() -> None:
            record.in_flight -= 1
            self._changed()

        return Lease(release)

    @contextmanager
    def in_flight(self, name: str) -> Iterator[None]:
        """Count one in-flight request on ``name`` for the duration of the block, on every path."""
        lease = self.lease(name)
        try:
            yield
        finally:
            lease.release()

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """An immutable view of every backend now; cached until the next change."""
        if self._snapshot is None:
            self._snapshot = Snapshot(
                backends=tuple(_view(record) for record in self._records.values()),
                taken_at=self._clock(),
            )
        return self._snapshot

    def _changed(self) -> None:
        self._snapshot = None


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
        in_flight=record.in_flight,
        latency_ms=record.latency_ms,
        last_error=health.last_error,
        last_check=record.last_check,
        next_probe_at=record.next_probe_at,
        cooldown_until=health.cooldown_until,
        api_key_env=config.api_key_env,
        discovered=record.discovered,
    )
