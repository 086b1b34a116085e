"""Human words for routing decisions: one detail per skipped backend, and the message of a 404
or 503 that says which tier, zone, capability or health problem left nothing to serve.
Pure; never includes request content beyond the model name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nexus.backends.quality_view import PairStatus, QualityView, seconds_left
from nexus.backends.state import BackendView
from nexus.routing.reasons import Role, SkipReason

if TYPE_CHECKING:
    from nexus.routing.requirements import Requirements
    from nexus.routing.route import Stage

#: How many names a message lists before "and N more".
LISTED = 5

_CAPABILITY_WORDS = {
    SkipReason.NO_VISION: "vision (image input)",
    SkipReason.NO_TOOLS: "tool calling",
    SkipReason.NO_JSON_MODE: "JSON mode",
}


def backend_json(backend: BackendView) -> dict[str, Any]:
    return {
        "backend": backend.name,
        "type": backend.kind.name,
        "location": backend.kind.location.value,
        "zone": backend.zone.value,
        "tier": backend.tier,
        "priority": backend.priority,
        "status": backend.status.value,
        "in_flight": backend.in_flight,
        "max_concurrent": backend.max_concurrent,
        "latency_ms": None if backend.latency_ms is None else round(backend.latency_ms, 1),
    }


def decision_json(
    backend: BackendView,
    skip: SkipReason | None,
    stage: Stage,
    requirements: Requirements,
    now: float,
) -> dict[str, Any]:
    return {
        **backend_json(backend),
        "decision": "kept" if skip is None else "skipped",
        "reason": None if skip is None else skip.value,
        "detail": None if skip is None else skip_detail(backend, skip, stage, requirements, now),
        "quality": quality_json(backend.name, skip, stage, now),
    }


def quality_json(
    name: str, skip: SkipReason | None, stage: Stage, now: float
) -> dict[str, Any] | None:
    """The backend's quality figures for the stage's model and what they did to it: ``excluded``
    (an outlier), ``probe`` (recovering, drawn for a probe: attempted first), ``kept: last`` (an
    outlier kept as the stage's last candidates), ``lowered`` (a smart-score penalty), else
    ``none``. None without figures."""
    view = stage.quality.get(name)
    if view is None:
        return None
    status = view.status(now)
    if skip is SkipReason.OUTLIER:
        effect = "excluded"
    elif name in stage.probes:
        effect = "probe"
    elif skip is None and status is PairStatus.EJECTED:
        effect = "kept: last"
    elif name in stage.penalties:
        effect = "lowered"
    else:
        effect = "none"
    return {
        "status": status.value,
        "error_rate": None if view.error_rate is None else round(view.error_rate, 4),
        "ttft_ms": None if view.ttft_ms is None else round(view.ttft_ms, 1),
        "penalty": round(stage.penalties.get(name, 0.0), 4),
        "effect": effect,
        "reason": view.reason,
        "back_in_seconds": seconds_left(view.ejected_until, now),
    }


def skip_detail(
    backend: BackendView,
    skip: SkipReason,
    stage: Stage,
    requirements: Requirements,
    now: float,
) -> str:
    """One short phrase: why ``backend`` could not serve ``stage.model``."""
    if skip is SkipReason.UNKNOWN_MODEL:
        return f"does not list model {stage.model!r}"
    if skip is SkipReason.PRIVACY_ZONE:
        return f"zone {backend.zone.value}; the request must stay on restricted backends"
    if skip is SkipReason.TIER:
        return f"tier {backend.tier}; tier {stage.min_tier} or higher is required"
    if skip is SkipReason.BUDGET:
        return "a cloud backend; a spend budget keeps this request on local backends"
    if skip in _CAPABILITY_WORDS:
        return f"model {stage.model!r} here lacks {_CAPABILITY_WORDS[skip]}"
    if skip is SkipReason.CONTEXT_LENGTH:
        return (
            f"context length {_window(backend, stage.model)} < {requirements.input_tokens} tokens"
        )
    if skip is SkipReason.OUTLIER:
        return _outlier_detail(stage.quality.get(backend.name), stage.model, now)
    return availability_detail(backend, skip, now, stage.model)


def _outlier_detail(view: QualityView | None, model: str, now: float) -> str:
    cause = f" ({view.reason})" if view is not None and view.reason else ""
    if view is not None and view.status(now) is PairStatus.EJECTED:
        assert view.ejected_until is not None
        left = math.ceil(view.ejected_until - now)
        return f"an outlier for {model!r}{cause}, ejected for {left} s more"
    return f"recovering for {model!r}{cause}; not drawn for its probe share this time"


def availability_detail(backend: BackendView, skip: SkipReason, now: float, model: str) -> str:
    if skip is SkipReason.MODEL_FAILING:
        until, error = backend.ejected_models[model]
        cause = f" (last: {error})" if error else ""
        return f"failing for {model!r}{cause}, out for {math.ceil(until - now)} s more"
    if skip is SkipReason.UNHEALTHY:
        return "unhealthy" + (f": {backend.last_error}" if backend.last_error else "")
    if skip is SkipReason.HEALTH_UNKNOWN:
        return "not yet confirmed healthy"
    if skip is SkipReason.COOLING_DOWN:
        left = math.ceil((backend.cooldown_until or now) - now)
        return f"cooling down after a rate limit ({left} s left)"
    return f"at capacity ({backend.in_flight}/{backend.max_concurrent} in flight)"


def names(items: Sequence[str], limit: int = LISTED) -> str:
    """``a, b, c`` or ``a, b, c and 4 more``."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def unknown_model_message(requested: str, available_models: Sequence[str]) -> str:
    listed = names(available_models, limit=20) if available_models else "none right now"
    return (
        f"The model {requested!r} does not exist: no backend lists it and it is not an alias "
        f"or fallback of this gateway. Available models: {listed}"
    )


def unavailable_message(
    requirements: Requirements, stages: Sequence[Stage], substitute_tier: int | None, now: float
) -> str:
    """Why nothing can serve the request: one sentence per kind of problem, per stage."""
    parts = [f"No backend can serve model {requirements.model!r} now."]
    for stage in stages:
        label = "Model" if stage.role is Role.REQUESTED else stage.role.value.capitalize()
        parts.extend(
            f"{label} {stage.model!r} {problem}." for problem in _stage_problems(stage, now)
        )
    if substitute_tier is not None:
        parts.append(
            f"Flexible mode found no other model on a backend of tier {substitute_tier} or higher "
            "that meets the other requirements."
        )
    return " ".join(parts)


def _stage_problems(stage: Stage, now: float) -> list[str]:
    if not stage.decisions:
        return ["is not listed by any backend"]
    by_reason: dict[SkipReason, list[BackendView]] = {}
    for decision in stage.decisions:
        if decision.skip is not None:
            by_reason.setdefault(decision.skip, []).append(decision.backend)
    return [_problem(skip, backends, stage, now) for skip, backends in by_reason.items()]


def _problem(skip: SkipReason, backends: list[BackendView], stage: Stage, now: float) -> str:
    if skip is SkipReason.PRIVACY_ZONE:
        listed = names([f"{b.name} ({b.zone.value})" for b in backends])
        return f"must stay on restricted backends; backends with it: {listed}"
    if skip is SkipReason.TIER:
        listed = names([f"{b.name} (tier {b.tier})" for b in backends])
        return f"needs tier {stage.min_tier}; backends with it: {listed}"
    if skip in _CAPABILITY_WORDS:
        listed = names([b.name for b in backends])
        return f"needs {_CAPABILITY_WORDS[skip]}, which it lacks on {listed}"
    if skip is SkipReason.BUDGET:
        listed = names([b.name for b in backends])
        return f"must stay on local backends (spend budget); cloud backends with it: {listed}"
    if skip is SkipReason.CONTEXT_LENGTH:
        windows = names([f"{b.name} ({_window(b, stage.model)})" for b in backends])
        return f"has too short a context for this request on {windows}"
    details = [
        f"backend {b.name!r} is "
        + (
            _outlier_detail(stage.quality.get(b.name), stage.model, now)
            if skip is SkipReason.OUTLIER
            else availability_detail(b, skip, now, stage.model)
        )
        for b in backends
    ]
    return "cannot be served now: " + names(details)


def _window(backend: BackendView, model: str) -> str:
    info = backend.models.get(model)
    return "unknown" if info is None or info.context_length is None else str(info.context_length)
