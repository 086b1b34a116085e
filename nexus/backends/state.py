"""Immutable values describing backends: what a probe found, what a request outcome was, and the
frozen snapshot the planner routes over. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from nexus.config.kinds import Api, BackendKind, Transport, Zone
from nexus.errors import Failure


class Status(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model a backend serves, with what it can do. ``None`` means unknown: an unknown
    capability is not held against the model (the backend is tried), a known ``False`` is."""

    id: str
    context_length: int | None = None
    vision: bool | None = None
    tools: bool | None = None
    json_mode: bool | None = None

    def capabilities(self) -> list[str]:
        """Names of the capabilities known to be supported, for JSON output."""
        flags = (("vision", self.vision), ("tools", self.tools), ("json_mode", self.json_mode))
        return [name for name, on in flags if on]


#: Failures that take a backend out of rotation at once instead of after ``failure_threshold``.
HARD_FAILURES = frozenset({Failure.REFUSED, Failure.AUTH})
#: Request failures that count against the model on the backend, not the whole backend: the server
#: answered (or took too long) for this model, which says nothing about its other models.
MODEL_FAILURES = frozenset({Failure.SERVER_ERROR, Failure.BAD_RESPONSE, Failure.TIMEOUT})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one health probe found. ``models`` None on failure (the previous list is kept)."""

    ok: bool
    latency_ms: float | None = None
    models: tuple[ModelInfo, ...] | None = None
    failure: Failure | None = None
    error: str | None = None

    @classmethod
    def failed(cls, failure: Failure, error: str, latency_ms: float | None = None) -> ProbeResult:
        return cls(ok=False, failure=failure, error=error, latency_ms=latency_ms)


@dataclass(frozen=True, slots=True)
class Health:
    """The health part of a backend's state; :func:`nexus.backends.transitions.advance` moves it."""

    status: Status = Status.UNKNOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_error: str | None = None
    cooldown_until: float | None = None  # monotonic seconds; set by 429 Retry-After


def _frozen_models(models: Mapping[str, ModelInfo]) -> Mapping[str, ModelInfo]:
    return MappingProxyType(dict(models))


@dataclass(frozen=True, slots=True)
class BackendView:
    """One backend as the planner sees it at one instant. Known by its configured ``name``."""

    name: str
    kind: BackendKind
    url: str
    zone: Zone
    tier: int
    priority: int
    max_concurrent: int | None
    status: Status
    models: Mapping[str, ModelInfo] = field(default_factory=dict)
    in_flight: int = 0
    latency_ms: float | None = None  # EWMA over real requests and probes
    last_error: str | None = None
    last_check: float | None = None  # wall-clock seconds of the last probe
    next_probe_at: float | None = None  # monotonic seconds
    cooldown_until: float | None = None  # monotonic seconds
    api_key_env: str | None = None
    discovered: bool = False
    models_stale: bool = False  # the last probe failed: ``models`` is the last list it found
    #: Models ejected by passive health: id -> (monotonic end of the ejection, last error).
    ejected_models: Mapping[str, tuple[float, str | None]] = field(default_factory=dict)
    apis: frozenset[Api] | None = None  # spoken natively; None: the type's defaults

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", _frozen_models(self.models))
        if self.ejected_models:
            object.__setattr__(self, "ejected_models", MappingProxyType(dict(self.ejected_models)))

    @property
    def is_cloud(self) -> bool:
        return self.kind.is_cloud

    @property
    def transport(self) -> Transport:
        return self.kind.transport

    def speaks(self, api: Api) -> bool:
        """Whether a request in ``api`` is relayed to this backend as it is (else translated)."""
        return api in (self.kind.apis if self.apis is None else self.apis)

    def cooling_down(self, now: float) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until

    def model_ejected(self, model: str, now: float) -> bool:
        """Whether passive health has taken ``model`` out on this backend at ``now``."""
        ejection = self.ejected_models.get(model)
        return ejection is not None and now < ejection[0]

    def at_capacity(self) -> bool:
        return self.max_concurrent is not None and self.in_flight >= self.max_concurrent


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every backend at monotonic time ``taken_at``, in configuration order (static first)."""

    backends: tuple[BackendView, ...]
    taken_at: float
