"""The pure health state machine, exhaustively."""

from __future__ import annotations

import pytest

from nexus.backends.state import Health, Status
from nexus.backends.transitions import (
    DEFAULT_COOLDOWN_SECONDS,
    MAX_COOLDOWN_SECONDS,
    SUCCESS,
    Outcome,
    Thresholds,
    advance,
)
from nexus.errors import Failure

T = Thresholds(failure=3, recovery=2)
SOFT = Outcome(Failure.TIMEOUT, "request timeout after 5s")


def run(health: Health, *outcomes: Outcome, now: float = 0.0) -> Health:
    for outcome in outcomes:
        health = advance(health, outcome, T, now)
    return health


def test_unknown_becomes_healthy_on_first_success() -> None:
    assert run(Health(), SUCCESS).status is Status.HEALTHY


@pytest.mark.parametrize("failure", list(Failure.__members__.values()))
def test_unknown_becomes_unhealthy_on_first_failure_except_429(failure: Failure) -> None:
    health = run(Health(), Outcome(failure, "boom"))
    expected = Status.UNKNOWN if failure is Failure.RATE_LIMITED else Status.UNHEALTHY
    assert health.status is expected


def test_healthy_needs_threshold_soft_failures() -> None:
    healthy = run(Health(), SUCCESS)
    assert run(healthy, SOFT, SOFT).status is Status.HEALTHY
    out = run(healthy, SOFT, SOFT, SOFT)
    assert out.status is Status.UNHEALTHY
    assert out.last_error == "request timeout after 5s"
    assert out.consecutive_failures == 3


def test_a_success_resets_the_failure_count() -> None:
    healthy = run(Health(), SUCCESS)
    assert run(healthy, SOFT, SOFT, SUCCESS, SOFT, SOFT).status is Status.HEALTHY


@pytest.mark.parametrize("failure", [Failure.REFUSED, Failure.AUTH])
def test_hard_failures_take_a_healthy_backend_out_at_once(failure: Failure) -> None:
    assert run(run(Health(), SUCCESS), Outcome(failure, "x")).status is Status.UNHEALTHY


def test_recovery_needs_threshold_successes() -> None:
    unhealthy = run(Health(), SOFT)
    assert run(unhealthy, SUCCESS).status is Status.UNHEALTHY
    recovered = run(unhealthy, SUCCESS, SUCCESS)
    assert recovered.status is Status.HEALTHY
    assert recovered.consecutive_failures == 0


def test_a_failure_interrupts_recovery() -> None:
    unhealthy = run(Health(), SOFT)
    assert run(unhealthy, SUCCESS, SOFT, SUCCESS).status is Status.UNHEALTHY


def test_rate_limit_sets_cooldown_without_touching_health() -> None:
    healthy = run(Health(), SUCCESS)
    limited = advance(healthy, Outcome(Failure.RATE_LIMITED, "429", retry_after=7), T, now=100)
    assert limited.status is Status.HEALTHY
    assert limited.cooldown_until == 107
    assert limited.consecutive_failures == 0


def test_rate_limit_default_and_cap() -> None:
    plain = advance(Health(), Outcome(Failure.RATE_LIMITED), T, now=10)
    assert plain.cooldown_until == 10 + DEFAULT_COOLDOWN_SECONDS
    huge = advance(Health(), Outcome(Failure.RATE_LIMITED, retry_after=10**6), T, now=10)
    assert huge.cooldown_until == 10 + MAX_COOLDOWN_SECONDS


def test_a_shorter_retry_after_does_not_shorten_a_cooldown() -> None:
    first = advance(Health(), Outcome(Failure.RATE_LIMITED, retry_after=30), T, now=0)
    second = advance(first, Outcome(Failure.RATE_LIMITED, retry_after=1), T, now=1)
    assert second.cooldown_until == 30
