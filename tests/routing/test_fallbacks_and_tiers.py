"""Aliases, fallback chains, strict and flexible tier modes, through the planner."""

from __future__ import annotations

from nexus.backends.state import Snapshot, Status
from nexus.config.kinds import Zone
from nexus.routing import Rejection, RequestKind, Role, RoutePlan, TierMode, plan
from tests.routing.fleet import NOW, backend, info, needs, policy, snapshot

FLEX = TierMode.FLEXIBLE


def served(result) -> list[tuple[str, str]]:
    assert isinstance(result, RoutePlan), getattr(result, "message", result)
    return [(c.backend.name, c.model) for c in result.candidates]


# aliases ----------------------------------------------------------------------------------------


def test_alias_wins_over_a_real_model_of_the_same_name() -> None:
    rules = policy(aliases={"fast": "llama3"})
    fleet = snapshot(backend("a", ["fast"]), backend("b", ["llama3"]))
    requirements = needs(rules.resolve("fast"), requested_model="fast")
    assert served(plan(requirements, fleet, rules, now=NOW)) == [("b", "llama3")]


def test_a_name_without_alias_is_used_directly() -> None:
    rules = policy(aliases={"other": "llama3"})
    fleet = snapshot(backend("a", ["fast"]), backend("b", ["llama3"]))
    assert served(plan(needs(rules.resolve("fast")), fleet, rules, now=NOW)) == [("a", "fast")]


def test_three_hop_alias_chain_reaches_the_model() -> None:
    rules = policy(aliases={"a": "b", "b": "c", "c": "d"})
    assert rules.resolve("a") == "d"
    fleet = snapshot(backend("x", ["d"]))
    assert served(plan(needs(rules.resolve("a")), fleet, rules, now=NOW)) == [("x", "d")]


# fallbacks --------------------------------------------------------------------------------------


def test_fallbacks_are_tried_in_order_after_the_requested_model() -> None:
    rules = policy(fallbacks={"m": ["f1", "f2"]})
    fleet = snapshot(backend("a", ["f2"]), backend("b", ["f1"]), backend("c", ["m"]))
    assert served(plan(needs(), fleet, rules, now=NOW)) == [("c", "m"), ("b", "f1"), ("a", "f2")]


def test_first_fallback_that_can_serve_leads() -> None:
    rules = policy(fallbacks={"m": ["f1", "f2"]})
    fleet = snapshot(
        backend("a", ["m"], status=Status.UNHEALTHY),
        backend("b", ["f1"], status=Status.UNHEALTHY),
        backend("c", ["f2"]),
    )
    result = plan(needs(), fleet, rules, now=NOW)
    assert served(result) == [("c", "f2")]
    assert [s.role for s in result.stages] == [Role.REQUESTED, Role.FALLBACK, Role.FALLBACK]


def test_fallbacks_never_cross_the_privacy_requirement() -> None:
    rules = policy(fallbacks={"m": ["gpt"]})
    fleet = snapshot(
        backend("local", ["m"], status=Status.UNHEALTHY), backend("cloud", ["gpt"], cloud=True)
    )
    result = plan(needs(privacy=Zone.RESTRICTED), fleet, rules, now=NOW)
    assert isinstance(result, Rejection)
    assert result.privacy_zone_required is Zone.RESTRICTED


def test_a_fallback_model_policy_tightens_privacy() -> None:
    rules = policy(
        fallbacks={"m": ["secret"]}, policies=[{"model_pattern": "secret", "privacy": "restricted"}]
    )
    fleet = snapshot(backend("cloud", ["secret"], cloud=True), backend("local", ["secret"]))
    assert served(plan(needs(), fleet, rules, now=NOW)) == [("local", "secret")]


def test_fallbacks_keep_the_tier_of_the_requested_model() -> None:
    rules = policy(fallbacks={"big": ["small"]}, policies=[{"model_pattern": "big", "min_tier": 3}])
    fleet = snapshot(
        backend("a", ["big"], tier=3, status=Status.UNHEALTHY), backend("b", ["small"], tier=1)
    )
    requirements = needs("big", min_tier=rules.constraint_for("big").min_tier)
    result = plan(requirements, fleet, rules, now=NOW)
    assert isinstance(result, Rejection)
    assert result.required_tier == 3


def test_fallback_entries_are_not_followed_recursively() -> None:
    rules = policy(fallbacks={"m": ["f"], "f": ["g"]})
    fleet = snapshot(backend("a", ["g"]))
    result = plan(needs(), fleet, rules, now=NOW)
    assert isinstance(result, Rejection)
    assert not result.unknown_model


# strict and flexible ----------------------------------------------------------------------------


def fleet_with_dead_model() -> Snapshot:
    return snapshot(
        backend("dead", ["m"], tier=3, status=Status.UNHEALTHY),
        backend("low", ["small"], tier=2),
        backend("same", ["peer"], tier=3, priority=60),
        backend("high", ["huge"], tier=4, priority=10),
    )


def test_strict_never_substitutes() -> None:
    result = plan(needs(), fleet_with_dead_model(), policy(), now=NOW)
    assert isinstance(result, Rejection)
    assert [s.role for s in result.stages] == [Role.REQUESTED]


def test_flexible_substitutes_the_closest_tier_never_lower() -> None:
    result = plan(needs(tier_mode=FLEX), fleet_with_dead_model(), policy(), now=NOW)
    assert served(result) == [("same", "peer")]
    assert isinstance(result, RoutePlan)
    assert result.stages[-1].role is Role.SUBSTITUTE
    assert result.fallback_model_at(0) == "peer"
    assert result.route_reason.value == "failover"


def test_flexible_uses_the_policy_tier_when_there_is_one() -> None:
    rules = policy(policies=[{"model_pattern": "m", "min_tier": 4}])
    result = plan(needs(tier_mode=FLEX, min_tier=4), fleet_with_dead_model(), rules, now=NOW)
    assert served(result) == [("high", "huge")]


def test_flexible_rejects_rather_than_downgrade() -> None:
    fleet = snapshot(
        backend("dead", ["m"], tier=3, status=Status.UNHEALTHY), backend("low", ["small"], tier=2)
    )
    result = plan(needs(tier_mode=FLEX), fleet, policy(), now=NOW)
    assert isinstance(result, Rejection)
    assert result.required_tier == 3
    assert "tier 3 or higher" in result.message


def test_flexible_keeps_the_privacy_requirement() -> None:
    fleet = snapshot(
        backend("dead", ["m"], tier=2, status=Status.UNHEALTHY),
        backend("cloud", ["gpt"], cloud=True, tier=5),
        backend("local", ["llama"], tier=2, priority=90),
    )
    result = plan(needs(tier_mode=FLEX, privacy=Zone.RESTRICTED), fleet, policy(), now=NOW)
    assert served(result) == [("local", "llama")]


def test_flexible_honours_capabilities_of_the_substitute() -> None:
    fleet = snapshot(
        backend("dead", ["m"], status=Status.UNHEALTHY),
        backend("a", [info("blind", vision=False)]),
        backend("b", [info("sees", vision=True)], priority=90),
    )
    result = plan(needs(tier_mode=FLEX, vision=True), fleet, policy(), now=NOW)
    assert served(result) == [("b", "sees")]


def test_flexible_never_picks_embedding_models_or_serves_embeddings() -> None:
    fleet = snapshot(
        backend("dead", ["m"], status=Status.UNHEALTHY),
        backend("a", ["nomic-embed-text", "chat"]),
    )
    assert served(plan(needs(tier_mode=FLEX), fleet, policy(), now=NOW)) == [("a", "chat")]
    embeddings = needs(tier_mode=FLEX, kind=RequestKind.EMBEDDINGS)
    assert isinstance(plan(embeddings, fleet, policy(), now=NOW), Rejection)


def test_flexible_does_not_substitute_an_unknown_model() -> None:
    fleet = snapshot(backend("a", ["chat"]))
    result = plan(needs("nope", tier_mode=FLEX), fleet, policy(), now=NOW)
    assert isinstance(result, Rejection) and result.unknown_model


def test_flexible_runs_only_when_the_requested_model_cannot_be_served() -> None:
    fleet = snapshot(backend("a", ["m"]), backend("b", ["other"], tier=5))
    assert served(plan(needs(tier_mode=FLEX), fleet, policy(), now=NOW)) == [("a", "m")]
