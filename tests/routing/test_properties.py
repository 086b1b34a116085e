"""Property-based tests over random fleets, policies and requests: the planner's invariants."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.backends.state import BackendView, ModelInfo, Snapshot, Status
from nexus.config.kinds import BUILTIN_KINDS, Zone
from nexus.config.model import RoutingConfig
from nexus.routing import (
    Rejection,
    RequestKind,
    Requirements,
    Role,
    RoutePlan,
    RouteReason,
    RoutingPolicy,
    TierMode,
    plan,
)
from tests.routing.fleet import NOW

MODELS = ["m0", "m1", "m2", "m3", "embed-x"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _info(
    model_id: str, flags: tuple[int | None, bool | None, bool | None, bool | None]
) -> ModelInfo:
    return ModelInfo(model_id, *flags)


MOSTLY_FALSE = st.sampled_from([False, False, False, True])


def mostly_none(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(MOSTLY_FALSE, values).map(lambda pair: pair[1] if pair[0] else None)


#: A capability flag: None (unknown, what most backends report; it counts as supported) most often.
CAPABILITIES = st.sampled_from([None, None, True, False])
FLAGS = st.tuples(mostly_none(st.integers(20, 400)), CAPABILITIES, CAPABILITIES, CAPABILITIES)
MODEL_INFOS = st.dictionaries(st.sampled_from(MODELS), FLAGS, min_size=1, max_size=4).map(
    lambda found: {model: _info(model, flags) for model, flags in found.items()}
)
BOOLS = st.booleans()
ZONES = st.sampled_from(Zone)
STATUSES = st.sampled_from([Status.HEALTHY] * 3 + [Status.UNHEALTHY, Status.UNKNOWN])
TIERS = st.integers(1, 5)
PRIORITIES = st.integers(0, 120)
LIMITS = mostly_none(st.integers(1, 3))
IN_FLIGHT = st.integers(0, 3)
LATENCIES = st.none() | st.floats(0, 5000)
TIMES = mostly_none(st.floats(NOW - 5, NOW + 60))


@st.composite
def backends(draw: st.DrawFn, index: int) -> BackendView:
    kind = BUILTIN_KINDS["openai" if draw(BOOLS) else "vllm"]
    return BackendView(
        name=f"b{index}",
        kind=kind,
        url=f"http://b{index}.test",
        zone=draw(ZONES),
        tier=draw(TIERS),
        priority=draw(PRIORITIES),
        max_concurrent=draw(LIMITS),
        status=draw(STATUSES),
        models=draw(MODEL_INFOS),
        in_flight=draw(IN_FLIGHT),
        latency_ms=draw(LATENCIES),
        next_probe_at=draw(TIMES),
        cooldown_until=draw(TIMES),
    )


BACKENDS = [backends(i) for i in range(8)]
FLEET_SIZES = st.integers(1, 8)


@st.composite
def fleets(draw: st.DrawFn) -> Snapshot:
    count = draw(FLEET_SIZES)
    return Snapshot(backends=tuple(draw(BACKENDS[i]) for i in range(count)), taken_at=NOW)


ALIASES = st.dictionaries(
    st.sampled_from(["a0", "a1", "m3"]), st.sampled_from(MODELS[:3]), max_size=3
)
FALLBACKS = st.dictionaries(
    st.sampled_from(MODELS), st.lists(st.sampled_from(MODELS), max_size=3), max_size=3
).map(lambda found: {model: [f for f in chain if f != model] for model, chain in found.items()})
RULES = st.lists(
    st.fixed_dictionaries(
        {
            "model_pattern": st.sampled_from(["m*", "m?", "m[01]", "*", "embed-*", "m2"]),
            "privacy": st.sampled_from(["restricted", "open"]),
            "min_tier": st.none() | TIERS,
        }
    ),
    max_size=3,
)
STRATEGIES = st.sampled_from(["smart", "round_robin", "priority_only", "random"])
POLICIES = st.builds(
    lambda strategy, aliases, fallbacks, rules: RoutingPolicy(
        RoutingConfig(strategy=strategy, aliases=aliases, fallbacks=fallbacks, policies=rules)
    ),
    STRATEGIES,
    ALIASES,
    FALLBACKS,
    RULES,
)
REQUESTED = st.sampled_from([*MODELS, "a0", "a1", "unknown"])
KINDS = st.sampled_from(RequestKind)
MODES = st.sampled_from(TierMode)
TOKENS = st.integers(0, 200)
ROTATIONS = st.integers(0, 50)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Requirements, Snapshot, RoutingPolicy, int]:
    rules = draw(POLICIES)
    requested = draw(REQUESTED)
    model = rules.resolve(requested)
    rule = rules.constraint_for(model)
    restricted = draw(MOSTLY_FALSE) or rule.privacy is Zone.RESTRICTED
    tiers = [t for t in (rule.min_tier, draw(mostly_none(TIERS))) if t is not None]
    requirements = Requirements(
        model=model,
        requested_model=requested,
        kind=draw(KINDS),
        vision=draw(MOSTLY_FALSE),
        tools=draw(MOSTLY_FALSE),
        json_mode=draw(MOSTLY_FALSE),
        input_tokens=draw(TOKENS),
        privacy=Zone.RESTRICTED if restricted else Zone.OPEN,
        min_tier=max(tiers) if tiers else None,
        tier_mode=draw(MODES),
    )
    return requirements, draw(fleets()), rules, draw(ROTATIONS)


Scenario = tuple[Requirements, Snapshot, RoutingPolicy, int]


def run(scenario: Scenario) -> RoutePlan | Rejection:
    requirements, snapshot, rules, rotation = scenario
    return plan(
        requirements, snapshot, rules, now=NOW, rotation=rotation, rng=random.Random(rotation)
    )


@FAST
@given(scenarios())
def test_restricted_requirement_never_yields_an_open_backend(scenario) -> None:
    requirements = scenario[0]
    result = run(scenario)
    if isinstance(result, RoutePlan) and requirements.privacy is Zone.RESTRICTED:
        assert all(c.backend.zone is Zone.RESTRICTED for c in result.candidates)


@FAST
@given(scenarios())
def test_a_policy_on_any_served_model_is_honoured(scenario) -> None:
    rules = scenario[2]
    result = run(scenario)
    if isinstance(result, RoutePlan):
        for c in result.candidates:
            rule = rules.constraint_for(c.model)
            if rule.privacy is Zone.RESTRICTED:
                assert c.backend.zone is Zone.RESTRICTED
            if rule.min_tier is not None:
                assert c.backend.tier >= rule.min_tier


@FAST
@given(scenarios())
def test_min_tier_never_yields_a_lower_tier(scenario) -> None:
    requirements = scenario[0]
    result = run(scenario)
    if isinstance(result, RoutePlan) and requirements.min_tier is not None:
        assert all(c.backend.tier >= requirements.min_tier for c in result.candidates)


@FAST
@given(scenarios())
def test_a_substitute_is_never_a_lower_tier(scenario) -> None:
    requirements, snapshot = scenario[0], scenario[1]
    result = run(scenario)
    if isinstance(result, RoutePlan) and result.stages[-1].role is Role.SUBSTITUTE:
        assert requirements.tier_mode is TierMode.FLEXIBLE
        listing = [b.tier for b in snapshot.backends if requirements.model in b.models]
        floor = requirements.min_tier if requirements.min_tier is not None else max(listing)
        assert all(c.backend.tier >= floor for c in result.candidates)


@FAST
@given(scenarios())
def test_every_candidate_is_available_and_capable(scenario) -> None:
    requirements = scenario[0]
    result = run(scenario)
    if not isinstance(result, RoutePlan):
        return
    assert result.candidates
    for c in result.candidates:
        b = c.backend
        assert b.status is Status.HEALTHY
        assert not b.cooling_down(NOW)
        assert not b.at_capacity()
        info = b.models[c.model]  # unknown (None) counts as supported; only False excludes
        assert info.vision is not False or not requirements.vision
        assert info.tools is not False or not requirements.tools
        assert info.json_mode is not False or not requirements.json_mode
        assert info.context_length is None or requirements.input_tokens <= info.context_length
    pairs = [(c.backend.name, c.model) for c in result.candidates]
    assert len(pairs) == len(set(pairs))


def _assumed_capable(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` with every unknown capability known to be supported."""

    def known(info: ModelInfo) -> ModelInfo:
        return ModelInfo(
            info.id,
            10**9 if info.context_length is None else info.context_length,
            True if info.vision is None else info.vision,
            True if info.tools is None else info.tools,
            True if info.json_mode is None else info.json_mode,
        )

    views = tuple(
        replace(b, models={name: known(info) for name, info in b.models.items()})
        for b in snapshot.backends
    )
    return replace(snapshot, backends=views)


@FAST
@given(scenarios())
def test_an_unknown_capability_is_treated_as_supported(scenario) -> None:
    requirements, snapshot, rules, rotation = scenario
    known = run((requirements, _assumed_capable(snapshot), rules, rotation))
    result = run(scenario)
    assert type(result) is type(known)
    if isinstance(result, RoutePlan) and isinstance(known, RoutePlan):
        pairs = [(c.backend.name, c.model) for c in result.candidates]
        assert pairs == [(c.backend.name, c.model) for c in known.candidates]


@FAST
@given(scenarios())
def test_strict_mode_only_serves_the_requested_model_or_its_fallbacks(scenario) -> None:
    requirements, _, rules, _ = scenario
    result = run(scenario)
    if isinstance(result, RoutePlan) and requirements.tier_mode is TierMode.STRICT:
        allowed = {requirements.model, *rules.fallbacks_for(requirements.model)}
        assert {c.model for c in result.candidates} <= allowed


@FAST
@given(scenarios())
def test_outcomes_are_well_formed_and_serialisable(scenario) -> None:
    requirements, snapshot, rules, _ = scenario
    result = run(scenario)
    orjson.dumps(result.to_dict())
    if isinstance(result, Rejection):
        assert set(result.context()) == {
            "required_tier",
            "available_backends",
            "eta_seconds",
            "privacy_zone_required",
        }
        listed = any(requirements.model in b.models for b in snapshot.backends)
        known = (
            listed
            or rules.mentions(requirements.model)
            or rules.mentions(requirements.requested_model)
        )
        assert result.unknown_model is (not known)
        assert result.retry_after_seconds >= 1
        assert result.eta_seconds is None or result.eta_seconds >= 1
    else:
        for index in range(len(result.candidates)):
            assert isinstance(result.reason_at(index), RouteReason)
            assert result.reason_at(index, failed_attempts=1) is RouteReason.FAILOVER
        assert 1 <= result.max_attempts <= len(result.candidates)


@FAST
@given(scenarios())
def test_plan_is_deterministic_for_the_same_inputs(scenario) -> None:
    first, second = run(scenario), run(scenario)
    assert first.to_dict() == second.to_dict()
