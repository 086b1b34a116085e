"""Planning a request against the live registry, and ``GET /v1/route?model=M``: the plan the
gateway would use now, with every backend considered and why it was kept or skipped. The request
headers (``X-Nexus-Privacy-Zone``, ``X-Nexus-Strict``, ``X-Nexus-Flexible``) count as they would
on a chat request; nothing is sent to any backend."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import State

from nexus.routing import Rejection, RequestKind, Requirements, RoutePlan, plan, requirements_from

router = APIRouter(tags=["routing"])


def plan_now(
    state: State, requirements: Requirements, *, advance: bool = True
) -> RoutePlan | Rejection:
    """Plan over the registry's current snapshot. ``advance`` moves the model's round-robin
    counter (real requests do; ``/v1/route`` does not). The planner's own time is reported to
    ``state.planner_timing`` (seconds) when the app has one (the metrics set it)."""
    rotation = state.rotation[requirements.model]
    if advance:
        state.rotation[requirements.model] += 1
    snapshot, now = state.registry.snapshot(), state.clock()
    started = time.perf_counter()
    result = plan(requirements, snapshot, state.policy, now=now, rotation=rotation, rng=state.rng)
    timing = getattr(state, "planner_timing", None)
    if timing is not None:
        timing(time.perf_counter() - started)
    return result


@router.get("/v1/route")
async def route(
    request: Request, model: str = Query(min_length=1, max_length=256)
) -> dict[str, Any]:
    requirements = requirements_from(
        {"model": model, "messages": []},
        request.headers,
        request.app.state.policy,
        kind=RequestKind.CHAT,
    )
    return plan_now(request.app.state, requirements, advance=False).to_dict()
