"""``GET /v1/models``: one entry per model id available on a healthy backend, aliases included
(OpenAI list shape, with the extra fields ``backends``, ``context_length``, ``capabilities`` and,
for an alias, ``alias_for``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from nexus.api.context import gateway_of
from nexus.backends.state import Snapshot, Status
from nexus.routing import RoutingPolicy

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
