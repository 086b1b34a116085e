"""X-Nexus-Route-Reason, derived from the plan's structure (README, "HTTP API")."""

from __future__ import annotations

from nexus.backends.state import Status
from nexus.config.kinds import Zone
from nexus.routing import RoutePlan, RouteReason, plan
from tests.routing.fleet import NOW, backend, needs, policy, snapshot


def planned(*backends, requirements=None, rules=None) -> RoutePlan:
    result = plan(requirements or needs(), snapshot(*backends), rules or policy(), now=NOW)
    assert isinstance(result, RoutePlan)
    return result


def test_capability_match_when_nothing_preferred_was_skipped() -> None:
    result = planned(backend("a"), backend("b"))
    assert result.route_reason is RouteReason.CAPABILITY_MATCH


def test_capability_skips_do_not_change_the_reason() -> None:
    result = planned(backend("a", ["other"]), backend("b", tier=1), requirements=needs(min_tier=1))
    assert result.route_reason is RouteReason.CAPABILITY_MATCH


def test_failover_when_a_more_preferred_backend_is_unhealthy() -> None:
    result = planned(backend("a", priority=10, status=Status.UNHEALTHY), backend("b"))
    assert result.candidates[0].backend.name == "b"
    assert result.route_reason is RouteReason.FAILOVER


def test_failover_when_a_more_preferred_backend_is_cooling_down() -> None:
    result = planned(backend("a", cooldown_until=NOW + 3), backend("b"))
    assert result.route_reason is RouteReason.FAILOVER


def test_failover_when_preferred_backend_not_yet_healthy() -> None:
    result = planned(backend("a", status=Status.UNKNOWN), backend("b"))
    assert result.route_reason is RouteReason.FAILOVER


def test_a_less_preferred_unhealthy_backend_is_not_a_failover() -> None:
    result = planned(backend("a", priority=10), backend("b", priority=90, status=Status.UNHEALTHY))
    assert result.route_reason is RouteReason.CAPABILITY_MATCH


def test_equal_priority_uses_configuration_order() -> None:
    later_down = planned(backend("a"), backend("b", status=Status.UNHEALTHY))
    assert later_down.route_reason is RouteReason.CAPABILITY_MATCH
    earlier_down = planned(backend("a", status=Status.UNHEALTHY), backend("b"))
    assert earlier_down.route_reason is RouteReason.FAILOVER


def test_capacity_overflow_when_a_more_preferred_backend_is_full() -> None:
    local = backend("local", priority=10, max_concurrent=1, in_flight=1)
    cloud = backend("cloud", cloud=True, priority=50)
    result = planned(local, cloud)
    assert result.candidates[0].backend.name == "cloud"
    assert result.route_reason is RouteReason.CAPACITY_OVERFLOW


def test_failover_beats_capacity_overflow() -> None:
    full = backend("full", priority=5, max_concurrent=1, in_flight=1)
    down = backend("down", priority=6, status=Status.UNHEALTHY)
    result = planned(full, down, backend("c"))
    assert result.route_reason is RouteReason.FAILOVER


def test_capacity_overflow_beats_privacy() -> None:
    full = backend("full", priority=5, max_concurrent=1, in_flight=1)
    cloud = backend("cloud", cloud=True)
    result = planned(full, cloud, backend("c"), requirements=needs(privacy=Zone.RESTRICTED))
    assert result.route_reason is RouteReason.CAPACITY_OVERFLOW


def test_privacy_requirement_when_the_zone_removed_a_candidate() -> None:
    cloud = backend("cloud", cloud=True, priority=1)
    result = planned(cloud, backend("local"), requirements=needs(privacy=Zone.RESTRICTED))
    assert [c.backend.name for c in result.candidates] == ["local"]
    assert result.route_reason is RouteReason.PRIVACY_REQUIREMENT


def test_privacy_requirement_even_when_the_removed_backend_was_less_preferred() -> None:
    cloud = backend("cloud", cloud=True, priority=99)
    result = planned(backend("local"), cloud, requirements=needs(privacy=Zone.RESTRICTED))
    assert result.route_reason is RouteReason.PRIVACY_REQUIREMENT


def test_an_unhealthy_open_backend_counts_as_removed_by_privacy_not_as_failover() -> None:
    cloud = backend("cloud", cloud=True, priority=1, status=Status.UNHEALTHY)
    result = planned(cloud, backend("local"), requirements=needs(privacy=Zone.RESTRICTED))
    assert result.route_reason is RouteReason.PRIVACY_REQUIREMENT


def test_an_earlier_failed_attempt_is_a_failover() -> None:
    result = planned(backend("a"), backend("b"))
    assert result.reason_at(0) is RouteReason.CAPABILITY_MATCH
    assert result.reason_at(1, failed_attempts=1) is RouteReason.FAILOVER
    assert result.reason_at(0, failed_attempts=1) is RouteReason.FAILOVER


def test_a_fallback_model_is_a_failover_and_named() -> None:
    rules = policy(fallbacks={"m": ["f"]})
    result = planned(backend("a", status=Status.UNHEALTHY), backend("b", ["f"]), rules=rules)
    assert [(c.backend.name, c.model) for c in result.candidates] == [("b", "f")]
    assert result.route_reason is RouteReason.FAILOVER
    assert result.fallback_model_at(0) == "f"


def test_requested_model_has_no_fallback_model_header() -> None:
    rules = policy(fallbacks={"m": ["f"]})
    result = planned(backend("a"), backend("b", ["f"]), rules=rules)
    assert result.fallback_model_at(0) is None
    assert result.fallback_model_at(1) == "f"
    assert result.reason_at(1) is RouteReason.FAILOVER


def test_reason_is_recomputed_per_position() -> None:
    # candidate 1 is b; the unhealthy a ranks before b but after c
    fleet = (backend("c", priority=1), backend("a", priority=2, status=Status.UNHEALTHY))
    result = planned(*fleet, backend("b", priority=3))
    assert [c.backend.name for c in result.candidates] == ["c", "b"]
    assert result.reason_at(0) is RouteReason.CAPABILITY_MATCH
    assert result.reason_at(1) is RouteReason.FAILOVER
