"""``GET /v1/models``: one entry per model id available on a healthy backend (OpenAI list shape,
with the extra fields ``backends``, ``context_length`` and ``capabilities``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from nexus.backends.state import Snapshot, Status

router = APIRouter(tags=["models"])


def model_entries(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Models on healthy backends, in first-seen order; context is the largest any backend has."""
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
    return list(entries.values())


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": model_entries(request.app.state.registry.snapshot())}
