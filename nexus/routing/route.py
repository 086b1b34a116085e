"""What the planner returns: a :class:`RoutePlan` (ordered candidates, and why every backend was
kept or skipped) or a :class:`Rejection` (404/503 with the actionable context). Immutable values;
the same object drives the gateway's attempts, the ``X-Nexus-*`` headers, the 503 body,
``GET /v1/route`` and the logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from nexus.backends.quality_view import QualityView
from nexus.backends.state import BackendView
from nexus.config.kinds import Zone
from nexus.config.model import Strategy
from nexus.routing import explain
from nexus.routing.reasons import HEALTH_SKIPS, Role, RouteReason, SkipReason
from nexus.routing.requirements import Requirements

_NONE: Mapping[str, Any] = MappingProxyType({})


class Decision(NamedTuple):
    """One backend that lists the stage's model; ``skip`` is None when it was kept."""

    backend: BackendView
    skip: SkipReason | None


@dataclass(frozen=True, slots=True)
class Stage:
    """One model run through the checks: the requested model, a fallback, or a substitute.

    ``decisions`` holds the backends that list ``model``, in configuration order; every other
    backend of ``fleet`` counts as skipped with :attr:`SkipReason.UNKNOWN_MODEL`.
    ``privacy`` is RESTRICTED when only restricted backends may serve (OPEN: any zone).
    ``quality`` holds the quality figures of the deciding backends that have some (by backend
    name), ``penalties`` the smart-score penalties they were ranked with (non-zero only),
    ``probes`` the backends drawn for a probe while recovering (attempted first).
    """

    model: str
    role: Role
    privacy: Zone
    min_tier: int | None
    decisions: tuple[Decision, ...]
    fleet: tuple[BackendView, ...]
    quality: Mapping[str, QualityView] = field(default_factory=lambda: _NONE)
    penalties: Mapping[str, float] = field(default_factory=lambda: _NONE)
    probes: frozenset[str] = frozenset()

    def kept(self) -> list[BackendView]:
        return [d.backend for d in self.decisions if d.skip is None]

    def all_decisions(self) -> list[Decision]:
        """Every backend of the fleet, in configuration order, with its decision."""
        listed = {d.backend.name: d for d in self.decisions}
        return [listed.get(b.name) or Decision(b, SkipReason.UNKNOWN_MODEL) for b in self.fleet]

    def skipped_ahead_of(self, backend: BackendView) -> set[SkipReason]:
        """Skip reasons of the backends more preferred than ``backend``: lower ``priority``, or
        equal priority and earlier in configuration order (the static preference order)."""
        position = next(i for i, d in enumerate(self.decisions) if d.backend is backend)
        rank = (backend.priority, position)
        return {
            d.skip
            for i, d in enumerate(self.decisions)
            if d.skip is not None and (d.backend.priority, i) < rank
        }

    def privacy_removed_any(self) -> bool:
        return any(d.skip is SkipReason.PRIVACY_ZONE for d in self.decisions)

    def to_dict(self, requirements: Requirements, now: float) -> dict[str, Any]:
        return {
            "model": self.model,
            "role": self.role.value,
            "privacy_zone_required": "restricted" if self.privacy is Zone.RESTRICTED else None,
            "required_tier": self.min_tier,
            "backends": [
                explain.decision_json(d.backend, d.skip, self, requirements, now)
                for d in self.all_decisions()
            ],
        }


class Candidate(NamedTuple):
    """A backend to attempt, the model to send it, and the index of its :class:`Stage`."""

    backend: BackendView
    model: str
    stage: int


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The candidates to attempt, in order, and every stage that produced them.

    ``candidates`` is the full ordered list: the requested model's backends, then each fallback
    model's, or a flexible substitute's; the attempts stop after ``max_attempts`` (1 +
    ``max_retries``). Every candidate is healthy, not cooling down and below capacity at ``now``.
    """

    requirements: Requirements
    strategy: Strategy
    stages: tuple[Stage, ...]
    candidates: tuple[Candidate, ...]
    max_attempts: int
    now: float

    @property
    def route_reason(self) -> RouteReason:
        """The route reason when the first candidate serves at the first attempt."""
        return self.reason_at(0)

    def reason_at(self, index: int, *, failed_attempts: int = 0) -> RouteReason:
        """The route reason when ``candidates[index]`` serves after ``failed_attempts`` failed.

        Failover: an earlier attempt failed, the candidate's model is a fallback or substitute,
        or a more preferred backend was skipped as unhealthy or cooling down. Else capacity
        overflow: a more preferred backend was at its in-flight limit. Else budget limit: a
        spend budget skipped a more preferred cloud backend. Else privacy requirement:
        the privacy requirement removed a backend. Else capability match.
        """
        candidate = self.candidates[index]
        stage = self.stages[candidate.stage]
        if failed_attempts > 0 or stage.role is not Role.REQUESTED:
            return RouteReason.FAILOVER
        ahead = stage.skipped_ahead_of(candidate.backend)
        if ahead & HEALTH_SKIPS:
            return RouteReason.FAILOVER
        if SkipReason.AT_CAPACITY in ahead:
            return RouteReason.CAPACITY_OVERFLOW
        if SkipReason.BUDGET in ahead:
            return RouteReason.BUDGET_LIMIT
        if stage.privacy_removed_any():
            return RouteReason.PRIVACY_REQUIREMENT
        return RouteReason.CAPABILITY_MATCH

    def outliers(self) -> tuple[str, ...]:
        """The backends quality tracking skipped (``outlier``), in plan order."""
        return tuple(
            d.backend.name
            for stage in self.stages
            if stage.quality  # no figures for the stage's model: nothing was screened
            for d in stage.decisions
            if d.skip is SkipReason.OUTLIER
        )

    def fallback_model_at(self, index: int) -> str | None:
        """The ``X-Nexus-Fallback-Model`` value when ``candidates[index]`` serves, else None."""
        candidate = self.candidates[index]
        role = self.stages[candidate.stage].role
        return None if role is Role.REQUESTED else candidate.model

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``GET /v1/route`` and ``nexus route --explain``."""
        return {
            "routable": True,
            "model": self.requirements.model,
            "requested_model": self.requirements.requested_model,
            "strategy": self.strategy.value,
            "route_reason": self.route_reason.value,
            "fallback_model": self.fallback_model_at(0),
            "max_attempts": self.max_attempts,
            "requirements": self.requirements.to_dict(),
            "candidates": [
                {
                    **explain.backend_json(c.backend),
                    "model": c.model,
                    "route_reason": self.reason_at(i).value,
                }
                for i, c in enumerate(self.candidates)
            ],
            "stages": [stage.to_dict(self.requirements, self.now) for stage in self.stages],
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """Nothing can serve the request: the model is unknown (no backend, alias or fallback names
    it), or it is known and :meth:`context` (always the four contract keys) says why not now.

    ``eta_seconds`` is the time until the soonest next probe or cooldown end among the backends
    that could serve but are out; ``retry_after_seconds`` is that, else the health interval.
    """

    requirements: Requirements
    stages: tuple[Stage, ...]
    unknown_model: bool
    message: str
    required_tier: int | None
    privacy_zone_required: Zone | None
    available_backends: tuple[str, ...]
    eta_seconds: int | None
    retry_after_seconds: int
    available_models: tuple[str, ...]
    now: float

    @property
    def busy(self) -> bool:
        """Some backend passed every check but capacity: the request could wait for a slot."""
        return not self.unknown_model and any(
            d.skip is SkipReason.AT_CAPACITY for stage in self.stages for d in stage.decisions
        )

    def context(self) -> dict[str, Any]:
        """The 503 body's ``context`` object."""
        zone = self.privacy_zone_required
        return {
            "required_tier": self.required_tier,
            "available_backends": list(self.available_backends),
            "eta_seconds": self.eta_seconds,
            "privacy_zone_required": None if zone is None else zone.value,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``GET /v1/route`` and ``nexus route --explain``."""
        return {
            "routable": False,
            "model": self.requirements.model,
            "requested_model": self.requirements.requested_model,
            "message": self.message,
            "unknown_model": self.unknown_model,
            "context": self.context(),
            "retry_after_seconds": self.retry_after_seconds,
            "available_models": list(self.available_models),
            "requirements": self.requirements.to_dict(),
            "stages": [stage.to_dict(self.requirements, self.now) for stage in self.stages],
        }
