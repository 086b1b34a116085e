"""Builders for routing tests: backends, snapshots, policies and requirements in one line each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nexus.backends.state import BackendView, ModelInfo, Snapshot, Status
from nexus.config.kinds import BUILTIN_KINDS, Zone
from nexus.config.model import RoutingConfig
from nexus.routing.policy import RoutingPolicy
from nexus.routing.requirements import Requirements

NOW = 1000.0


def info(model_id: str, **capabilities: Any) -> ModelInfo:
    """A model that can do everything unless told otherwise (capability tests say otherwise)."""
    values: dict[str, Any] = {"vision": True, "tools": True, "json_mode": True}
    values.update(capabilities)
    return ModelInfo(model_id, **values)


def backend(
    name: str,
    models: Iterable[str | ModelInfo] = ("m",),
    *,
    cloud: bool = False,
    zone: Zone | None = None,
    tier: int = 1,
    priority: int = 50,
    status: Status = Status.HEALTHY,
    **state: Any,
) -> BackendView:
    kind = BUILTIN_KINDS["openai" if cloud else "ollama"]
    infos = [info(m) if isinstance(m, str) else m for m in models]
    return BackendView(
        name=name,
        kind=kind,
        url=f"http://{name}.test",
        zone=zone if zone is not None else kind.default_zone,
        tier=tier,
        priority=priority,
        max_concurrent=state.pop("max_concurrent", None),
        status=status,
        models={i.id: i for i in infos},
        **state,
    )


def snapshot(*backends: BackendView) -> Snapshot:
    return Snapshot(backends=tuple(backends), taken_at=NOW)


def policy(health_interval_seconds: float = 30.0, **routing: Any) -> RoutingPolicy:
    return RoutingPolicy(RoutingConfig(**routing), health_interval_seconds=health_interval_seconds)


def needs(model: str = "m", **fields: Any) -> Requirements:
    return Requirements(model=model, **fields)
