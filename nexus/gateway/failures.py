"""The :class:`~nexus.gateway.outcome.Failed` value for each way a request can fail, built from
what the gateway already holds (the plan, the attempts' errors, the backends' current state):
a request is never planned twice to explain its failure."""

from __future__ import annotations

import math
from dataclasses import replace

from nexus.backends.state import Snapshot, Status
from nexus.config.model import QueueConfig
from nexus.errors import (
    BodyTooLarge,
    InvalidRequest,
    UpstreamAuthError,
    UpstreamTimeout,
)
from nexus.gateway.attempts import Exhausted
from nexus.gateway.budgets import Budget, Budgets
from nexus.gateway.outcome import Failed, Problem
from nexus.gateway.queue import Ending, Refused
from nexus.headers import NexusHeaders
from nexus.routing import Rejection, RoutePlan, recovery_time

#: Tells the OpenAI and Anthropic SDKs not to retry (they obey it before Retry-After: the
#: anthropic SDK would otherwise sleep a Retry-After of weeks).
NO_RETRY = ("x-should-retry", "false")
#: Retry-After of a request answered because the gateway is shutting down.
SHUTDOWN_RETRY_SECONDS = 5


def invalid(exc: InvalidRequest | RecursionError, headers: NexusHeaders) -> Failed:
    """The client's request cannot be served as sent (400, or 413 for a too large body)."""
    if isinstance(exc, RecursionError):
        return Failed(Problem.INVALID_REQUEST, "request body is nested too deeply", headers)
    problem = Problem.BODY_TOO_LARGE if isinstance(exc, BodyTooLarge) else Problem.INVALID_REQUEST
    return Failed(problem, exc.message, headers, param=exc.param)


def rejected(rejection: Rejection, headers: NexusHeaders) -> Failed:
    """The planner found no candidate: 404 for an unknown model, else 503 with the context."""
    if rejection.unknown_model:
        return Failed(Problem.UNKNOWN_MODEL, rejection.message, headers, param="model")
    return Failed(
        Problem.UNAVAILABLE,
        rejection.message,
        headers,
        context=rejection.context(),
        retry_after=rejection.retry_after_seconds,
    )


def budget_spent(budget: Budget, budgets: Budgets, headers: NexusHeaders) -> Failed:
    """A budget whose hard-limit action is block is spent: 429 until its period renews."""
    left = budgets.seconds_left(budget)
    spent = budgets.spent(budget)
    renews = "tomorrow (00:00 UTC)" if budget.period == "day" else "on the 1st (00:00 UTC)"
    message = (
        f"{budget.describe()} of {budget.limit_usd:.2f} USD is spent ({spent:.2f} USD); "
        f"requests are refused until it renews {renews}"
    )
    headers = replace(headers, extra=(*headers.extra, NO_RETRY))
    return Failed(Problem.BUDGET_SPENT, message, headers, retry_after=left)


def shutting_down(headers: NexusHeaders) -> Failed:
    """Draining: a new request, or one still waiting in the queue, goes elsewhere."""
    message = "Nexus is shutting down; retry on another instance or in a few seconds"
    return Failed(Problem.SHUTTING_DOWN, message, headers, retry_after=SHUTDOWN_RETRY_SECONDS)


def queue_refused(
    refused: Refused,
    rejection: Rejection | None,
    config: QueueConfig,
    model: str,
    headers: NexusHeaders,
) -> Failed:
    """The queue did not give the request a backend: full, out of time, or shutting down. The
    context is the planner's view now (None when only another replica's count is full)."""
    if refused.ending is Ending.SHUTDOWN:
        return shutting_down(headers)
    busy = f"every backend that can serve '{model}' is at capacity"
    if refused.ending is Ending.FULL:
        message = f"{busy} and the queue is full ({config.max_size} requests waiting)"
    else:
        message = f"{busy}: still so after waiting {config.max_wait_seconds:g} s in the queue"
    context = rejection.context() if rejection is not None else None
    retry_after = math.ceil(config.max_wait_seconds)
    return Failed(Problem.UNAVAILABLE, message, headers, context=context, retry_after=retry_after)


def exhausted(
    out: Exhausted, plan: RoutePlan, snapshot: Snapshot, *, health_interval: float
) -> Failed:
    """Every attempt failed: a timeout is a 504; the last backend's own error answer is passed
    on; otherwise (nothing answered, or its key was rejected) a 503 whose context comes from the
    plan and the current state of the backends it tried."""
    last, headers, count = out.failures[-1], out.headers, len(out.failures)
    if isinstance(last, UpstreamTimeout):
        message = f"backend '{last.backend}' timed out: {last.message}"
        return Failed(Problem.UPSTREAM_TIMEOUT, message, headers, failed_attempts=count)
    if last.body is not None and not isinstance(last, UpstreamAuthError):
        retry_after = None
        if last.retry_after is not None:  # the backend's own wait, passed on
            retry_after = math.ceil(last.retry_after)
        elif last.upstream_status == 503:  # every 503 says when to retry
            retry_after = math.ceil(health_interval)
        return Failed(
            Problem.UPSTREAM_ERROR,
            last.message,
            headers,
            status=last.upstream_status or 0,
            retry_after=retry_after,
            upstream_body=last.body,
            upstream_content_type=last.content_type,
            failed_attempts=count,
        )
    verb = "is unhealthy" if isinstance(last, UpstreamAuthError) else "failed"
    available, eta = _still_available(plan, {f.backend for f in out.failures}, snapshot)
    requirements = plan.requirements
    context = {
        "required_tier": requirements.min_tier,
        "available_backends": available,
        "eta_seconds": eta,
        "privacy_zone_required": requirements.privacy_zone_required,
    }
    if available:
        retry_after = 1
    else:
        retry_after = eta if eta is not None else max(1, math.ceil(health_interval))
    return Failed(
        Problem.UNAVAILABLE,
        f"backend '{last.backend}' {verb}: {last.message}",
        headers,
        code=last.code,
        context=context,
        retry_after=retry_after,
        failed_attempts=count,
    )


def _still_available(
    plan: RoutePlan, failed: set[str], snapshot: Snapshot
) -> tuple[list[str], int | None]:
    """The plan's candidates that did not fail here and are still healthy and not cooling down
    now, and the whole seconds until the soonest failed one could serve again (None: unknown)."""
    now = snapshot.taken_at
    views = {view.name: view for view in snapshot.backends}
    available: list[str] = []
    soonest: float | None = None
    for candidate in plan.candidates:
        view = views.get(candidate.backend.name)
        if view is None or view.name in available:
            continue
        if view.name not in failed:
            if (
                view.status is Status.HEALTHY
                and not view.cooling_down(now)
                and not view.model_ejected(candidate.model, now)
            ):
                available.append(view.name)
            continue
        ready = recovery_time(view, now, candidate.model)
        if ready is not None and (soonest is None or ready < soonest):
            soonest = ready
    eta = None if soonest is None else max(1, math.ceil(soonest - now))
    return available, eta
