"""``GET /v1/models``: one entry per model id available on a healthy backend, aliases included
(OpenAI list shape, with the extra fields ``backends``, ``context_length``, ``capabilities`` and,
for an alias, ``alias_for``). ``GET /v1/models/{id}``: one such entry; a model the gateway knows
but nothing serves now has ``backends: []`` (never a 404); an unknown id is 404
``model_not_found``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from nexus.api.context import gateway_of
from nexus.api.openai_dialect import error_response
from nexus.api.openapi import error_response_doc
from nexus.backends.state import Snapshot, Status
from nexus.gateway import Failed, Problem
from nexus.headers import NexusHeaders, request_id
from nexus.routing import RoutingPolicy
from nexus.routing.explain import unknown_model_message
from nexus.routing.planner import available_models

router = APIRouter(tags=["models"])


def model_entries(snapshot: Snapshot, policy: RoutingPolicy) -> list[dict[str, Any]]:
    """Models on healthy backends, in first-seen order (context: the largest any backend has),
    then each alias whose target is among them, with the target's details and ``alias_for``."""
    entries: dict[str, dict[str, Any]] = {}
    for backend in snapshot.backends:
        if backend.status is not Status.HEALTHY:
            continue
        for model in backend.models.values():
            entry = entries.setdefault(
                model.id,
                {
                    "id": model.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": backend.kind.name,
                    "backends": [],
                    "context_length": None,
                    "capabilities": [],
                },
            )
            entry["backends"].append(backend.name)
            if model.context_length is not None:
                entry["context_length"] = max(entry["context_length"] or 0, model.context_length)
            entry["capabilities"] = sorted({*entry["capabilities"], *model.capabilities()})
    aliases = [
        {**entries[target], "id": alias, "owned_by": "nexus", "alias_for": target}
        for alias in policy.alias_names()
        if alias not in entries and (target := policy.resolve(alias)) in entries
    ]
    return [*entries.values(), *aliases]


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    return {"object": "list", "data": model_entries(gateway.registry.snapshot(), gateway.policy)}


@router.get(
    "/v1/models/{model_id:path}",
    response_model=None,
    responses={404: error_response_doc("No backend, alias or fallback knows the model.")},
)
async def retrieve_model(model_id: str, request: Request) -> dict[str, Any] | Response:
    gateway = gateway_of(request)
    snapshot, policy = gateway.registry.snapshot(), gateway.policy
    entry = model_entry(model_id, snapshot, policy)
    if entry is not None:
        return entry
    rid = request_id(request.headers.get("x-request-id"))
    message = unknown_model_message(model_id, available_models(snapshot.backends, policy))
    return error_response(Failed(Problem.UNKNOWN_MODEL, message, NexusHeaders(rid), param="model"))


def model_entry(name: str, snapshot: Snapshot, policy: RoutingPolicy) -> dict[str, Any] | None:
    """The entry of ``name`` (a model id or an alias, glob aliases included), or None when the
    gateway does not know it: no backend lists it, in any state, and no alias or fallback names
    it."""
    entries = {entry["id"]: entry for entry in model_entries(snapshot, policy)}
    target = policy.resolve(name)
    alias = {"id": name, "owned_by": "nexus", "alias_for": target} if target != name else {}
    if target in entries:
        return {**entries[target], **alias}
    listed = any(target in backend.models for backend in snapshot.backends)
    if not (listed or alias or policy.mentions(name) or policy.mentions(target)):
        return None
    unavailable = {"id": target, "object": "model", "created": 0, "owned_by": "nexus"}
    return {**unavailable, "backends": [], "context_length": None, "capabilities": [], **alias}
