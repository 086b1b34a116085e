"""Planning a request against the live registry, and ``GET /v1/route?model=M``: the plan the
gateway would use now, with every backend considered and why it was kept or skipped. The request
headers (``X-Nexus-Privacy-Zone``, ``X-Nexus-Strict``, ``X-Nexus-Flexible``) count as they would
on a chat request; nothing is sent to any backend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import State

from nexus.routing import Rejection, RequestKind, Requirements, RoutePlan, plan, requirements_from

router = APIRouter(tags=["routing"])


def plan_now(
    state: State, requirements: Requirements, *, advance: bool = True
) -> RoutePlan | Rejection:
    """Plan over the registry's current snapshot. ``advance`` moves the model's round-robin
    counter (real requests do; ``/v1/route`` does not)."""
    rotation = state.rotation[requirements.model]
    if advance:
        state.rotation[requirements.model] += 1
    return plan(
        requirements,
        state.registry.snapshot(),
        state.policy,
        now=state.clock(),
        rotation=rotation,
        rng=state.rng,
    )


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
