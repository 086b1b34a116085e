"""The routing decision as one pure function: :func:`plan`.

No I/O, no clock reads, no locks: ``now`` (monotonic seconds, the clock of the snapshot's
``cooldown_until`` and ``next_probe_at``), the round-robin ``rotation`` and the ``rng`` of the
random strategy are arguments.

For the requested model (already alias-resolved in the requirements), then each of its fallback
models in order, every backend that lists the model is checked in this order, and the first
failing check is its skip reason:

1. privacy: when the requirement (or the policy matching this stage's model) is restricted, only
   restricted backends remain;
2. tier: the highest of the requirement's ``min_tier`` and the policy's ``min_tier`` for this
   stage's model; lower tiers are removed, in every mode;
3. capabilities: vision, tools, JSON mode, and input tokens within the model's context length
   (an unknown context length passes);
4. availability: healthy, not cooling down, below ``max_concurrent``, and the model not ejected
   on that backend by passive health;
5. quality (:mod:`nexus.backends.quality`): the model not ejected on that backend as an outlier,
   and, while it is on probation after an ejection, drawn for its ``probe_share`` (then it is
   attempted first in its stage, whatever the strategy: a probe that is never sent proves
   nothing). This check never removes the last candidates of a stage (whose privacy zone and
   tier are fixed): when it would leave none kept, and no backend is merely at capacity (the
   queue waits for those), the outliers stay, since a 503 helps no one more than a slow answer.

Constraints only tighten along a fallback chain: privacy is never crossed and the tier never
drops through a fallback or a substitute. The backends kept in each stage are ordered by the
strategy and concatenated (requested model first, then each fallback), so the attempts can fail
over to a fallback model when every backend of the requested one fails.

Flexible mode (chat requests only: an embeddings model cannot be swapped without changing the
vectors): when no stage has a candidate, Nexus substitutes one other model. The required tier is
the stage's ``min_tier``, else the highest tier among the backends that list the requested model
(no such backend: no substitution). Among the models on available backends of at least that tier
that pass every check (models whose id contains ``embed`` are never chosen), the pick is the one on
the lowest such tier, then the lowest ``priority``, then configuration order, then model id.
Strict mode never substitutes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

from nexus.backends.quality_view import QualityView
from nexus.backends.state import BackendView, ModelInfo, Snapshot, Status
from nexus.config.kinds import Zone
from nexus.config.model import Strategy
from nexus.routing import explain, strategies
from nexus.routing.policy import RoutingPolicy
from nexus.routing.reasons import HEALTH_SKIPS, Role, SkipReason
from nexus.routing.requirements import CloudUse, RequestKind, Requirements, TierMode
from nexus.routing.route import Candidate, Decision, Rejection, RoutePlan, Stage

_RESTRICTED = Zone.RESTRICTED
_HEALTHY = Status.HEALTHY


def plan(
    requirements: Requirements,
    snapshot: Snapshot,
    policy: RoutingPolicy,
    *,
    now: float,
    rotation: int = 0,
    rng: random.Random | None = None,
    quality: Quality | None = None,
) -> RoutePlan | Rejection:
    """The route for ``requirements`` over ``snapshot`` at ``now``: a plan, or why there is none.

    ``rotation`` is the round-robin counter of the requested model (the caller advances it);
    ``rng`` drives the random strategy and the probe draws of recovering models (default
    ``random.Random(rotation)``); ``quality`` maps (backend, model) to its quality figures.
    """
    fleet = snapshot.backends
    rng = rng if rng is not None else random.Random(rotation)
    screen = _Screen(quality, policy, now, rng.random) if quality else None
    stages = [_stage(requirements.model, Role.REQUESTED, requirements, fleet, policy, now, screen)]
    for model in policy.fallbacks_for(requirements.model):
        stages.append(_stage(model, Role.FALLBACK, requirements, fleet, policy, now, screen))
    candidates = _candidates(stages, 0, policy, rotation, rng)
    known = bool(stages[0].decisions) or _named(requirements, policy)
    substitute_tier = None
    if not candidates and known and _may_substitute(requirements):
        substitute_tier = _required_tier(stages[0])
        if substitute_tier is not None:
            substitute = _substitute(requirements, stages, policy, now, substitute_tier, screen)
            if substitute is not None:
                stages.append(substitute)
                candidates = _candidates(stages, len(stages) - 1, policy, rotation, rng)
    if candidates:
        attempts = min(len(candidates), 1 + policy.max_retries)
        return RoutePlan(requirements, policy.strategy, tuple(stages), candidates, attempts, now)
    return _reject(requirements, tuple(stages), policy, fleet, now, known, substitute_tier)


def _named(requirements: Requirements, policy: RoutingPolicy) -> bool:
    """An alias (exact or glob) was applied, or the aliases and fallbacks name the model."""
    requested, model = requirements.requested_model, requirements.model
    return requested != model or policy.mentions(requested) or policy.mentions(model)


def _may_substitute(requirements: Requirements) -> bool:
    generative = requirements.kind is not RequestKind.EMBEDDINGS
    return requirements.tier_mode is TierMode.FLEXIBLE and generative


def constraints_for(
    model: str, requirements: Requirements, policy: RoutingPolicy, floor: int | None = None
) -> tuple[Zone, int | None]:
    """(privacy zone required, minimum tier) for ``model``: the request's constraints tightened
    by the policy matching ``model`` and by ``floor``; never loosened."""
    rule = policy.constraint_for(model)
    restricted = requirements.privacy is _RESTRICTED or rule.privacy is _RESTRICTED
    tiers = [t for t in (requirements.min_tier, rule.min_tier, floor) if t is not None]
    return (_RESTRICTED if restricted else Zone.OPEN), (max(tiers) if tiers else None)


def _stage(
    model: str,
    role: Role,
    requirements: Requirements,
    fleet: tuple[BackendView, ...],
    policy: RoutingPolicy,
    now: float,
    screen: _Screen | None,
    floor: int | None = None,
) -> Stage:
    privacy, min_tier = constraints_for(model, requirements, policy, floor)
    restricted = privacy is _RESTRICTED
    decisions = []
    for backend in fleet:
        info = backend.models.get(model)
        if info is not None:
            skip = skip_reason(backend, info, requirements, restricted, min_tier, now)
            decisions.append(Decision(backend, skip))
    if requirements.cloud is CloudUse.UNLESS_LOCAL:
        decisions = _local_first(decisions)
    if screen is None:
        return Stage(model, role, privacy, min_tier, tuple(decisions), fleet)
    decisions, views, penalties, probes = screen(model, decisions)
    return Stage(model, role, privacy, min_tier, tuple(decisions), fleet, views, penalties, probes)


Quality = Mapping[tuple[str, str], QualityView]


class _Screen:
    """The quality check of one plan (step 5 of the module docstring), and the smart-score
    penalties of the backends it keeps."""

    __slots__ = ("_draw", "_error_weight", "_now", "_quality", "_share", "_smart", "_ttft_weight")

    def __init__(
        self, quality: Quality, policy: RoutingPolicy, now: float, draw: Callable[[], float]
    ) -> None:
        self._quality, self._now, self._draw = quality, now, draw
        self._share = policy.probe_share
        self._smart = policy.strategy is Strategy.SMART
        self._ttft_weight, self._error_weight = policy.weights.ttft, policy.weights.error_rate

    def __call__(
        self, model: str, decisions: list[Decision]
    ) -> tuple[list[Decision], dict[str, QualityView], dict[str, float], frozenset[str]]:
        quality, now = self._quality, self._now
        views: dict[str, QualityView] = {}
        probes: set[str] = set()
        outliers = False
        for index, decision in enumerate(decisions):
            name = decision.backend.name
            view = quality.get((name, model))
            if view is None:
                continue
            views[name] = view
            if decision.skip is None and view.recovering:
                if view.allows(now, self._draw(), self._share):
                    probes.add(name)
                else:
                    decisions[index] = Decision(decision.backend, _OUTLIER)
                    outliers = True
        if outliers and not any(d.skip is None or d.skip is _AT_CAPACITY for d in decisions):
            decisions = [Decision(d.backend, None) if d.skip is _OUTLIER else d for d in decisions]
        penalties: dict[str, float] = {}
        if self._smart:
            for decision in decisions:
                view = views.get(decision.backend.name)
                if decision.skip is None and view is not None:
                    share = view.weighted_penalty(self._ttft_weight, self._error_weight)
                    if share > 0.0:
                        penalties[decision.backend.name] = share
        return decisions, views, penalties, frozenset(probes)


_OUTLIER, _AT_CAPACITY = SkipReason.OUTLIER, SkipReason.AT_CAPACITY


def _local_first(decisions: list[Decision]) -> list[Decision]:
    """A budget's soft limit: when a local backend is kept, the kept cloud ones are skipped."""
    if not any(d.skip is None and not d.backend.is_cloud for d in decisions):
        return decisions
    return [
        Decision(d.backend, SkipReason.BUDGET) if d.skip is None and d.backend.is_cloud else d
        for d in decisions
    ]


def skip_reason(
    backend: BackendView,
    info: ModelInfo,
    requirements: Requirements,
    restricted: bool,
    min_tier: int | None,
    now: float,
) -> SkipReason | None:
    """Why ``backend`` cannot serve the model described by ``info`` now, or None."""
    if restricted and backend.zone is not _RESTRICTED:
        return SkipReason.PRIVACY_ZONE
    if min_tier is not None and backend.tier < min_tier:
        return SkipReason.TIER
    if requirements.cloud is CloudUse.NEVER and backend.is_cloud:
        return SkipReason.BUDGET
    if requirements.vision and info.vision is False:
        return SkipReason.NO_VISION
    if requirements.tools and info.tools is False:
        return SkipReason.NO_TOOLS
    if requirements.json_mode and info.json_mode is False:
        return SkipReason.NO_JSON_MODE
    if info.context_length is not None and requirements.input_tokens > info.context_length:
        return SkipReason.CONTEXT_LENGTH
    skip = availability(backend, now)
    if skip is None and backend.ejected_models and backend.model_ejected(info.id, now):
        return SkipReason.MODEL_FAILING
    return skip


def availability(backend: BackendView, now: float) -> SkipReason | None:
    """Why ``backend`` cannot take a request at ``now`` whatever the model, or None."""
    if backend.status is not _HEALTHY:
        if backend.status is Status.UNHEALTHY:
            return SkipReason.UNHEALTHY
        return SkipReason.HEALTH_UNKNOWN
    if backend.cooling_down(now):
        return SkipReason.COOLING_DOWN
    if backend.at_capacity():
        return SkipReason.AT_CAPACITY
    return None


def _candidates(
    stages: Sequence[Stage],
    start: int,
    policy: RoutingPolicy,
    rotation: int,
    rng: random.Random,
) -> tuple[Candidate, ...]:
    """The kept backends of ``stages[start:]``, each stage ordered by the strategy."""
    candidates: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    for index in range(start, len(stages)):
        stage = stages[index]
        kept = stage.kept()
        ordered = strategies.rank(
            policy.strategy,
            kept,
            weights=policy.weights,
            rotation=rotation,
            rng=rng,
            penalties=stage.penalties,
        )
        if stage.probes:
            ordered.sort(key=lambda backend: backend.name not in stage.probes)  # stable
        for backend in ordered:
            if (backend.name, stage.model) not in seen:
                seen.add((backend.name, stage.model))
                candidates.append(Candidate(backend, stage.model, index))
    return tuple(candidates)


def _required_tier(requested: Stage) -> int | None:
    """The tier a flexible substitute must reach: never below the requested model's."""
    if requested.min_tier is not None:
        return requested.min_tier
    return max((d.backend.tier for d in requested.decisions), default=None)


def _substitute(
    requirements: Requirements,
    stages: Sequence[Stage],
    policy: RoutingPolicy,
    now: float,
    required_tier: int,
    screen: _Screen | None,
) -> Stage | None:
    """The stage of the best substitute model (see the module docstring), or None."""
    fleet = stages[0].fleet
    tried = {stage.model for stage in stages}
    eligible = sorted(
        (backend.tier, backend.priority, index)
        for index, backend in enumerate(fleet)
        if backend.tier >= required_tier and availability(backend, now) is None
    )
    for _, _, index in eligible:
        backend = fleet[index]
        for model in sorted(backend.models):
            if model in tried or "embed" in model.lower():
                continue
            zone, tier = constraints_for(model, requirements, policy, required_tier)
            info = backend.models[model]
            if skip_reason(backend, info, requirements, zone is _RESTRICTED, tier, now) is None:
                return _stage(
                    model, Role.SUBSTITUTE, requirements, fleet, policy, now, screen, tier
                )
    return None


def _reject(
    requirements: Requirements,
    stages: tuple[Stage, ...],
    policy: RoutingPolicy,
    fleet: tuple[BackendView, ...],
    now: float,
    known: bool,
    substitute_tier: int | None,
) -> Rejection:
    requested = stages[0]
    serving = [
        d.backend.name
        for d in requested.decisions
        if d.backend.status is _HEALTHY
        and not d.backend.cooling_down(now)
        and not d.backend.model_ejected(requested.model, now)
    ]
    eta = eta_seconds(stages, now)
    retry_after = eta if eta is not None else max(1, math.ceil(policy.health_interval_seconds))
    if any(d.skip is SkipReason.AT_CAPACITY for stage in stages for d in stage.decisions):
        retry_after = 1  # a slot frees when a running request ends, not at the next probe
    models: tuple[str, ...] = ()
    if known:
        message = explain.unavailable_message(requirements, stages, substitute_tier, now)
    else:
        models = available_models(fleet, policy)
        message = explain.unknown_model_message(requirements.requested_model, models)
    return Rejection(
        requirements=requirements,
        stages=stages,
        unknown_model=not known,
        message=message,
        required_tier=requested.min_tier if requested.min_tier is not None else substitute_tier,
        privacy_zone_required=_RESTRICTED if requested.privacy is _RESTRICTED else None,
        available_backends=tuple(serving),
        eta_seconds=eta,
        retry_after_seconds=retry_after,
        available_models=models,
        now=now,
    )


def eta_seconds(stages: Sequence[Stage], now: float) -> int | None:
    """Whole seconds (at least 1) until the soonest backend skipped for health could serve again:
    its next probe when it is not healthy, its cooldown end when cooling down (the later of the
    two when both apply). None when no such time is known."""
    soonest: float | None = None
    for stage in stages:
        for decision in stage.decisions:
            if decision.skip in HEALTH_SKIPS:
                ready = recovery_time(decision.backend, now, stage.model)
                if ready is not None and (soonest is None or ready < soonest):
                    soonest = ready
    return None if soonest is None else max(1, math.ceil(soonest - now))


def recovery_time(backend: BackendView, now: float, model: str | None = None) -> float | None:
    """When ``backend`` could serve (``model``) again: its next probe when it is not healthy, its
    cooldown end when cooling down, the model's ejection end (the latest of them); None when no
    such time is known."""
    times: list[float] = []
    if model is not None and backend.model_ejected(model, now):
        times.append(backend.ejected_models[model][0])
    if backend.status is not _HEALTHY:
        if backend.next_probe_at is None:
            return None
        times.append(backend.next_probe_at)
    if backend.cooling_down(now):
        assert backend.cooldown_until is not None
        times.append(backend.cooldown_until)
    return max(times) if times else None


def available_models(fleet: Sequence[BackendView], policy: RoutingPolicy) -> tuple[str, ...]:
    """Model ids on healthy backends plus alias names, sorted (for the 404 message)."""
    ids = set(policy.alias_names()).union(*(b.models for b in fleet if b.status is _HEALTHY))
    return tuple(sorted(ids))
