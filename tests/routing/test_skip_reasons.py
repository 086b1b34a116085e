"""Every skip reason, each on a backend that would otherwise serve, next to one that does."""

from __future__ import annotations

import pytest

from nexus.backends.state import Status
from nexus.config.kinds import Zone
from nexus.routing import RoutePlan, SkipReason, plan
from nexus.routing.route import Stage
from tests.routing.fleet import NOW, backend, info, needs, policy, snapshot


def decisions(result: RoutePlan) -> dict[str, SkipReason | None]:
    return {d.backend.name: d.skip for d in result.stages[0].all_decisions()}


def plan_ok(*backends, requirements=None, rules=None) -> RoutePlan:
    result = plan(
        requirements or needs(),
        snapshot(*backends, backend("ok", tier=5)),
        rules or policy(),
        now=NOW,
    )
    assert isinstance(result, RoutePlan)
    assert [c.backend.name for c in result.candidates] == ["ok"]
    return result


@pytest.mark.parametrize(
    ("skipped", "requirements", "reason"),
    [
        (backend("x", ["other"]), needs(), SkipReason.UNKNOWN_MODEL),
        (backend("x", cloud=True), needs(privacy=Zone.RESTRICTED), SkipReason.PRIVACY_ZONE),
        (backend("x", tier=1), needs(min_tier=1), None),
        (backend("x", [info("m", vision=False)]), needs(vision=True), SkipReason.NO_VISION),
        (backend("x", [info("m", tools=False)]), needs(tools=True), SkipReason.NO_TOOLS),
        (
            backend("x", [info("m", json_mode=False)]),
            needs(json_mode=True),
            SkipReason.NO_JSON_MODE,
        ),
        (
            backend("x", [info("m", context_length=100)]),
            needs(input_tokens=101),
            SkipReason.CONTEXT_LENGTH,
        ),
        (backend("x", status=Status.UNHEALTHY), needs(), SkipReason.UNHEALTHY),
        (backend("x", status=Status.UNKNOWN), needs(), SkipReason.HEALTH_UNKNOWN),
        (backend("x", cooldown_until=NOW + 5), needs(), SkipReason.COOLING_DOWN),
        (backend("x", max_concurrent=2, in_flight=2), needs(), SkipReason.AT_CAPACITY),
    ],
)
def test_each_skip_reason(skipped, requirements, reason) -> None:
    ok = backend("ok", tier=5)
    result = plan(requirements, snapshot(skipped, ok), policy(), now=NOW)
    assert isinstance(result, RoutePlan)
    expected = ["x", "ok"] if reason is None else ["ok"]
    assert sorted(c.backend.name for c in result.candidates) == sorted(expected)
    assert decisions(result) == {"x": reason, "ok": None}


def test_tier_skip() -> None:
    low, high = backend("low", tier=2), backend("high", tier=3)
    result = plan(needs(min_tier=3), snapshot(low, high), policy(), now=NOW)
    assert isinstance(result, RoutePlan)
    assert decisions(result) == {"low": SkipReason.TIER, "high": None}


def test_policy_tier_applies_even_when_requirements_lack_it() -> None:
    rules = policy(policies=[{"model_pattern": "m", "min_tier": 2}])
    result = plan_ok(backend("low", tier=1), requirements=needs(), rules=rules)
    assert decisions(result)["low"] is SkipReason.TIER


def test_policy_privacy_applies_even_when_requirements_lack_it() -> None:
    rules = policy(policies=[{"model_pattern": "m*", "privacy": "restricted"}])
    result = plan_ok(backend("cloud", cloud=True), rules=rules)
    assert decisions(result)["cloud"] is SkipReason.PRIVACY_ZONE


def test_context_length_unknown_passes_and_equal_passes() -> None:
    unknown = backend("unknown", [info("m", context_length=None)])
    exact = backend("exact", [info("m", context_length=50)])
    result = plan(needs(input_tokens=50), snapshot(unknown, exact), policy(), now=NOW)
    assert isinstance(result, RoutePlan)
    assert {c.backend.name for c in result.candidates} == {"unknown", "exact"}


def test_cooldown_in_the_past_does_not_skip() -> None:
    result = plan(needs(), snapshot(backend("x", cooldown_until=NOW - 1)), policy(), now=NOW)
    assert isinstance(result, RoutePlan)


def test_first_failing_check_is_the_reason() -> None:
    # open, low tier, no vision and unhealthy: privacy is checked first
    x = backend("x", [info("m", vision=False)], cloud=True, status=Status.UNHEALTHY)
    result = plan_ok(x, requirements=needs(privacy=Zone.RESTRICTED, min_tier=1, vision=True))
    assert decisions(result)["x"] is SkipReason.PRIVACY_ZONE


def test_every_backend_considered_has_a_decision_in_configuration_order() -> None:
    fleet = [backend("a", ["other"]), backend("b"), backend("c", status=Status.UNHEALTHY)]
    result = plan(needs(), snapshot(*fleet), policy(), now=NOW)
    assert isinstance(result, RoutePlan)
    stage: Stage = result.stages[0]
    assert [d.backend.name for d in stage.all_decisions()] == ["a", "b", "c"]
    assert [d.skip for d in stage.all_decisions()] == [
        SkipReason.UNKNOWN_MODEL,
        None,
        SkipReason.UNHEALTHY,
    ]


@pytest.mark.parametrize("field", ["vision", "tools", "json_mode"])
def test_an_unknown_capability_is_not_held_against_a_backend(field: str) -> None:
    unknown = backend("x", [info("m", **{field: None})])
    wanted: dict[str, bool] = {field: True}
    result = plan(needs("m", **wanted), snapshot(unknown), policy(), now=NOW)
    assert isinstance(result, RoutePlan)
    assert [c.backend.name for c in result.candidates] == ["x"]
