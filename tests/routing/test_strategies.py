"""The four strategies, pure over their inputs."""

from __future__ import annotations

import random
from typing import Any

from nexus.backends.state import Status
from nexus.config.model import Strategy
from nexus.routing import RoutePlan, plan
from nexus.routing.policy import Weights
from nexus.routing.strategies import rank, smart_score
from tests.routing.fleet import NOW, backend, needs, policy, snapshot

W = Weights()


def names(backends) -> list[str]:
    return [b.name for b in backends]


def order(strategy: str, *backends, rotation: int = 0, rng=None, **routing: Any) -> list[str]:
    result = plan(
        needs(),
        snapshot(*backends),
        policy(strategy=strategy, **routing),
        now=NOW,
        rotation=rotation,
        rng=rng,
    )
    assert isinstance(result, RoutePlan)
    return [c.backend.name for c in result.candidates]


def test_smart_prefers_lower_priority_value() -> None:
    assert order("smart", backend("a", priority=80), backend("b", priority=10)) == ["b", "a"]


def test_smart_prefers_less_load_and_lower_latency() -> None:
    assert order("smart", backend("busy", in_flight=20), backend("idle")) == ["idle", "busy"]
    assert order("smart", backend("slow", latency_ms=900), backend("fast", latency_ms=50)) == [
        "fast",
        "slow",
    ]


def test_smart_ties_keep_configuration_order() -> None:
    fleet = [backend(n) for n in "cab"]
    assert order("smart", *fleet) == ["c", "a", "b"]


def test_smart_weights_decide_the_trade_off() -> None:
    near_slow = backend("preferred", priority=10, latency_ms=1000)
    far_fast = backend("fast", priority=60, latency_ms=0)
    assert order("smart", near_slow, far_fast) == ["preferred", "fast"]
    latency_only = {"priority": 0, "load": 0, "latency": 100}
    assert order("smart", near_slow, far_fast, weights=latency_only) == ["fast", "preferred"]


def test_smart_score_formula() -> None:
    b = backend("a", priority=20, in_flight=10, latency_ms=300)
    assert smart_score(b, W) == (80 * 50 + 90 * 30 + 70 * 20) / 100
    assert smart_score(backend("z", priority=500, in_flight=500, latency_ms=10**6), W) == 0


def test_priority_only_orders_by_priority_then_configuration() -> None:
    fleet = [
        backend("a", priority=50),
        backend("b", priority=5),
        backend("c", priority=50, in_flight=0),
    ]
    assert order("priority_only", *fleet) == ["b", "a", "c"]


def test_round_robin_rotates_by_the_callers_counter() -> None:
    fleet = [backend(n) for n in "abc"]
    assert [order("round_robin", *fleet, rotation=r)[0] for r in range(4)] == ["a", "b", "c", "a"]
    assert order("round_robin", *fleet, rotation=1) == ["b", "c", "a"]


def test_round_robin_rotates_only_over_available_backends() -> None:
    fleet = [backend("a"), backend("down", status=Status.UNHEALTHY), backend("c")]
    assert [order("round_robin", *fleet, rotation=r)[0] for r in range(3)] == ["a", "c", "a"]


def test_random_is_reproducible_with_an_injected_rng() -> None:
    fleet = [backend(n) for n in "abcdef"]
    first = order("random", *fleet, rng=random.Random(7))
    assert first == order("random", *fleet, rng=random.Random(7))
    assert sorted(first) == list("abcdef")
    seen = {tuple(order("random", *fleet, rotation=r)) for r in range(20)}
    assert len(seen) > 1


def test_rank_of_zero_or_one_backend() -> None:
    assert rank(Strategy.RANDOM, [], weights=W) == []
    one = backend("a")
    assert rank(Strategy.ROUND_ROBIN, [one], weights=W, rotation=5) == [one]
