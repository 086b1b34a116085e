"""The health state machine as one pure function. Probe results and request outcomes (passive
health) go through the same transitions.

- Unknown becomes Healthy or Unhealthy on the first result.
- Healthy becomes Unhealthy after ``failure_threshold`` consecutive failures, or at once on a hard
  failure (connection refused, credential rejected): a dead backend leaves rotation immediately.
- Unhealthy becomes Healthy after ``recovery_threshold`` consecutive successes.
- A 429 is not a health failure: it sets a cooldown until ``now + retry_after``.

A request's 5xx, broken answer or timeout is about one model on the backend
(:data:`~nexus.backends.state.MODEL_FAILURES`): :func:`advance_model` counts it for that model
alone, which is out for ``model_ejection_seconds`` after ``failure_threshold`` consecutive ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nexus.backends.state import HARD_FAILURES, Health, Status
from nexus.errors import Failure

#: Cooldown after a 429 that carried no usable Retry-After.
DEFAULT_COOLDOWN_SECONDS = 5.0
#: Longest cooldown honoured, whatever Retry-After says.
MAX_COOLDOWN_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    failure: int = 3
    recovery: int = 2
    model_ejection_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """Passive health of one model on one backend."""

    consecutive_failures: int = 0
    ejected_until: float | None = None  # monotonic seconds
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One probe or request result. ``failure`` is None exactly when it succeeded."""

    failure: Failure | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


SUCCESS = Outcome()


def advance(health: Health, outcome: Outcome, thresholds: Thresholds, now: float) -> Health:
    """The health after ``outcome`` happened at monotonic time ``now``."""
    if outcome.ok:
        successes = health.consecutive_successes + 1
        recovered = health.status is Status.UNHEALTHY and successes >= thresholds.recovery
        status = Status.HEALTHY if health.status is Status.UNKNOWN or recovered else health.status
        return replace(
            health, status=status, consecutive_failures=0, consecutive_successes=successes
        )
    if outcome.failure is Failure.RATE_LIMITED:
        wait = DEFAULT_COOLDOWN_SECONDS if outcome.retry_after is None else outcome.retry_after
        until = now + min(max(wait, 0.0), MAX_COOLDOWN_SECONDS)
        return replace(health, cooldown_until=max(until, health.cooldown_until or 0.0))
    failures = health.consecutive_failures + 1
    out = (
        health.status is Status.UNKNOWN
        or outcome.failure in HARD_FAILURES
        or failures >= thresholds.failure
    )
    return replace(
        health,
        status=Status.UNHEALTHY if out else health.status,
        consecutive_failures=failures,
        consecutive_successes=0,
        last_error=outcome.error,
    )


def advance_model(
    health: ModelHealth, outcome: Outcome, thresholds: Thresholds, now: float
) -> ModelHealth:
    """The model's health after a failed request at ``now`` (a success resets it: drop it)."""
    failures = health.consecutive_failures + 1
    ejected_until = health.ejected_until
    if failures >= thresholds.failure:
        ejected_until, failures = now + thresholds.model_ejection_seconds, 0
    return ModelHealth(failures, ejected_until, outcome.error)
