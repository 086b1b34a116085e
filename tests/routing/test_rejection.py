"""404 for unknown models, 503 with the actionable context, and JSON for /v1/route."""

from __future__ import annotations

import orjson

from nexus.backends.state import Status
from nexus.config.kinds import Zone
from nexus.routing import Rejection, RoutePlan, plan
from tests.routing.fleet import NOW, backend, info, needs, policy, snapshot


def rejected(requirements, *backends, rules=None) -> Rejection:
    result = plan(requirements, snapshot(*backends), rules or policy(), now=NOW)
    assert isinstance(result, Rejection)
    return result


def test_unknown_model_is_a_404_listing_available_models() -> None:
    rules = policy(aliases={"fast": "b"})
    result = rejected(
        needs("nope"),
        backend("a", ["b", "a"]),
        backend("down", ["hidden"], status=Status.UNHEALTHY),
        rules=rules,
    )
    assert result.unknown_model
    assert result.available_models == ("a", "b", "fast")
    assert "'nope'" in result.message and "a, b, fast" in result.message


def test_a_model_named_by_an_alias_or_fallback_is_known() -> None:
    fleet = (backend("a", ["x"]),)
    alias_target = rejected(
        needs("gone", requested_model="old"), *fleet, rules=policy(aliases={"old": "gone"})
    )
    assert not alias_target.unknown_model
    fallback_key = rejected(needs("m"), *fleet, rules=policy(fallbacks={"m": ["y"]}))
    assert not fallback_key.unknown_model


def test_a_model_listed_only_by_an_unhealthy_backend_is_a_503() -> None:
    result = rejected(needs(), backend("a", status=Status.UNHEALTHY))
    assert not result.unknown_model


def test_context_always_has_the_four_keys() -> None:
    result = rejected(needs(), backend("a", status=Status.UNHEALTHY))
    assert result.context() == {
        "required_tier": None,
        "available_backends": [],
        "eta_seconds": None,
        "privacy_zone_required": None,
    }
    assert result.retry_after_seconds == 30


def test_tier_rejection_names_the_tier_and_the_backends() -> None:
    result = rejected(needs("x", min_tier=3), backend("a", ["x"], tier=1), backend("b", ["y"]))
    assert result.required_tier == 3
    assert "needs tier 3; backends with it: a (tier 1)" in result.message
    assert result.available_backends == ("a",)


def test_privacy_rejection_names_the_zone() -> None:
    result = rejected(needs(privacy=Zone.RESTRICTED), backend("c", cloud=True), backend("l", ["y"]))
    assert result.privacy_zone_required is Zone.RESTRICTED
    assert result.context()["privacy_zone_required"] == "restricted"
    assert "restricted" in result.message and "c (open)" in result.message


def test_capability_rejection_names_the_capability() -> None:
    result = rejected(needs(tools=True), backend("a", [info("m", tools=False)]))
    assert "tool calling" in result.message and "on a" in result.message
    long = rejected(needs(input_tokens=9000), backend("a", [info("m", context_length=4096)]))
    assert "a (4096)" in long.message


def test_available_backends_never_name_backends_that_do_not_serve_the_model() -> None:
    result = rejected(
        needs(), backend("a", status=Status.UNHEALTHY), backend("b", ["x"]), backend("c", ["y"])
    )
    assert result.available_backends == ()
    assert result.context()["available_backends"] == []


def test_available_backends_leave_out_a_backend_cooling_down() -> None:
    result = rejected(
        needs(tools=True),
        backend("a", cooldown_until=NOW + 5),
        backend("b", [info("m", tools=False)]),
    )
    assert result.available_backends == ("b",), "b serves m and is healthy; a waits out a 429"


def test_every_candidate_at_capacity_says_retry_in_a_second() -> None:
    # a slot frees when a running request ends, not at the next probe
    result = rejected(needs(), backend("a", max_concurrent=2, in_flight=2))
    assert result.retry_after_seconds == 1


def test_eta_is_the_soonest_probe_or_cooldown_among_candidates() -> None:
    result = rejected(
        needs(),
        backend("a", status=Status.UNHEALTHY, next_probe_at=NOW + 12.2),
        backend("b", cooldown_until=NOW + 7.5),
        backend("c", ["other"], status=Status.UNHEALTHY, next_probe_at=NOW + 1),
    )
    assert result.eta_seconds == 8
    assert result.retry_after_seconds == 8
    assert result.context()["eta_seconds"] == 8


def test_eta_of_an_unhealthy_backend_that_is_also_cooling_down_is_the_later_time() -> None:
    result = rejected(
        needs(),
        backend("a", status=Status.UNHEALTHY, next_probe_at=NOW + 2, cooldown_until=NOW + 9),
    )
    assert result.eta_seconds == 9


def test_eta_ignores_backends_that_could_never_serve() -> None:
    result = rejected(
        needs(privacy=Zone.RESTRICTED),
        backend("c", cloud=True, status=Status.UNHEALTHY, next_probe_at=NOW + 1),
        rules=policy(health_interval_seconds=15),
    )
    assert result.eta_seconds is None
    assert result.retry_after_seconds == 15


def test_overdue_probe_gives_at_least_one_second() -> None:
    result = rejected(needs(), backend("a", status=Status.UNHEALTHY, next_probe_at=NOW - 5))
    assert result.eta_seconds == 1


def test_unhealthy_message_names_the_backend_and_its_error() -> None:
    down = backend(
        "openai",
        cloud=True,
        status=Status.UNHEALTHY,
        last_error="API key rejected (OPENAI_API_KEY)",
        api_key_env="OPENAI_API_KEY",
    )
    result = rejected(needs(), down)
    assert "backend 'openai' is unhealthy: API key rejected (OPENAI_API_KEY)" in result.message


def test_capacity_and_cooldown_messages() -> None:
    result = rejected(
        needs(), backend("a", max_concurrent=4, in_flight=4), backend("b", cooldown_until=NOW + 3)
    )
    assert "backend 'a' is at capacity (4/4 in flight)" in result.message
    assert "backend 'b' is cooling down after a rate limit (3 s left)" in result.message


def test_rejection_and_plan_serialise_to_json() -> None:
    rules = policy(fallbacks={"m": ["f"]})
    rejection = rejected(
        needs(), backend("a", status=Status.UNHEALTHY), backend("c", ["x"]), rules=rules
    )
    data = orjson.loads(orjson.dumps(rejection.to_dict()))
    assert data["routable"] is False and data["unknown_model"] is False
    assert set(data["context"]) == {
        "required_tier",
        "available_backends",
        "eta_seconds",
        "privacy_zone_required",
    }
    stage = data["stages"][0]
    assert [(b["backend"], b["reason"]) for b in stage["backends"]] == [
        ("a", "unhealthy"),
        ("c", "unknown_model"),
    ]
    assert data["stages"][1]["role"] == "fallback"

    result = plan(
        needs(),
        snapshot(backend("a"), backend("b", cloud=True, priority=1, max_concurrent=1, in_flight=1)),
        rules,
        now=NOW,
    )
    assert isinstance(result, RoutePlan)
    data = orjson.loads(orjson.dumps(result.to_dict()))
    assert data["routable"] is True and data["route_reason"] == "capacity-overflow"
    assert data["candidates"][0]["backend"] == "a" and data["candidates"][0]["model"] == "m"
    assert data["stages"][0]["backends"][1]["detail"] == "at capacity (1/1 in flight)"
