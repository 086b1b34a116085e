"""Quality in the planner: outliers skipped (never the last candidates of a stage), a probe share
while recovering, the smart-score penalty, and nothing changed for a fleet without failures."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import QualityView
from nexus.config.quality import QualityConfig
from nexus.routing import RoutePlan, plan
from nexus.routing.planner import Quality
from nexus.routing.reasons import RouteReason, SkipReason
from nexus.routing.route import Rejection
from tests.routing.fleet import NOW, backend, needs, policy, snapshot

EJECTED = QualityView(
    0.4,
    200.0,
    error_penalty=0.8,
    ejected_until=NOW + 25,
    recovering=True,
    reason="error rate 40% over 5 min (12 attempts)",
)
ON_PROBATION = QualityView(None, None, ejected_until=NOW - 1, recovering=True, reason="x")
SLOW = QualityView(0.0, 4500.0, ttft_penalty=0.5)


def routed(
    *backends: Any,
    quality: Quality | None,
    rng: random.Random | None = None,
    model: str = "m",
    **routing: Any,
) -> RoutePlan | Rejection:
    return plan(
        needs(model), snapshot(*backends), policy(**routing), now=NOW, rng=rng, quality=quality
    )


def order(*backends: Any, quality: Quality, **routing: Any) -> list[str]:
    result = routed(*backends, quality=quality, **routing)
    assert isinstance(result, RoutePlan)
    return [c.backend.name for c in result.candidates]


def test_an_ejected_model_is_skipped_and_the_next_backend_serves_as_a_failover() -> None:
    result = routed(backend("a"), backend("b"), quality={("a", "m"): EJECTED})
    assert isinstance(result, RoutePlan)
    assert [c.backend.name for c in result.candidates] == ["b"]
    assert result.stages[0].decisions[0].skip is SkipReason.OUTLIER
    assert result.route_reason is RouteReason.FAILOVER
    [first, _] = result.to_dict()["stages"][0]["backends"]
    assert first["reason"] == "outlier"
    assert "error rate 40% over 5 min (12 attempts)" in first["detail"]
    assert "25 s" in first["detail"]


def test_only_that_model_is_ejected_on_that_backend() -> None:
    a = backend("a", models=("m", "n"))
    assert order(a, backend("b", models=("m", "n")), quality={("a", "m"): EJECTED}, model="n") == [
        "a",
        "b",
    ]


def test_the_last_candidates_of_a_stage_are_never_ejected() -> None:
    result = routed(backend("a"), backend("b", status=_unhealthy()), quality={("a", "m"): EJECTED})
    assert isinstance(result, RoutePlan), "a slow or flaky answer beats a 503"
    assert [c.backend.name for c in result.candidates] == ["a"]
    assert result.to_dict()["stages"][0]["backends"][0]["quality"]["effect"] == "kept: last"


def test_an_outlier_is_not_kept_when_another_backend_is_only_busy() -> None:
    result = routed(
        backend("a"), backend("b", max_concurrent=1, in_flight=1), quality={("a", "m"): EJECTED}
    )
    assert isinstance(result, Rejection) and result.busy, "the queue waits for b"
    assert "backend 'a' is an outlier for 'm' (error rate 40%" in result.message


def test_a_recovering_model_gets_its_probe_share() -> None:
    rng = random.Random(7)
    firsts = [
        order(backend("a"), backend("b"), quality={("a", "m"): ON_PROBATION}, rng=rng)[0]
        for _ in range(2000)
    ]
    assert 140 <= firsts.count("a") <= 260  # 10 % of 2000, within 4.5 sigma


def test_smart_ranks_by_score_times_one_minus_the_penalty() -> None:
    # equal backends: configuration order; a slow first token halves a's score
    assert order(backend("a"), backend("b"), quality={}) == ["a", "b"]
    assert order(backend("a"), backend("b"), quality={("a", "m"): SLOW}) == ["b", "a"]
    # a fifth off a's score (80) keeps it above b at priority 60 (70), not at 0 (100)
    lighter = {("a", "m"): QualityView(None, 3600.0, ttft_penalty=0.2)}
    assert order(backend("a", priority=0), backend("b", priority=60), quality=lighter) == [
        "a",
        "b",
    ]
    assert order(backend("a", priority=0), backend("b", priority=0), quality=lighter) == [
        "b",
        "a",
    ]


def test_the_weights_scale_the_penalty() -> None:
    off = {"ttft": 0, "error_rate": 100}
    assert order(backend("a"), backend("b"), quality={("a", "m"): SLOW}, weights=off) == ["a", "b"]
    result = routed(backend("a"), backend("b"), quality={("a", "m"): SLOW}, weights=off)
    assert isinstance(result, RoutePlan) and not result.stages[0].penalties


def test_other_strategies_ignore_the_penalty_but_not_ejection() -> None:
    quality = {("a", "m"): SLOW, ("c", "m"): EJECTED}
    fleet = (backend("a"), backend("b"), backend("c"))
    assert order(*fleet, quality=quality, strategy="priority_only") == ["a", "b"]
    assert order(*fleet, quality=quality, strategy="round_robin") == ["a", "b"]


def test_route_explains_quality_per_candidate() -> None:
    result = routed(backend("a"), backend("b"), quality={("a", "m"): SLOW})
    assert isinstance(result, RoutePlan)
    a, b = result.to_dict()["stages"][0]["backends"]
    assert a["quality"] == {
        "status": "ok",
        "error_rate": 0.0,
        "ttft_ms": 4500.0,
        "penalty": 0.5,
        "effect": "lowered",
        "reason": None,
        "back_in_seconds": None,
    }
    assert b["quality"] is None


def _unhealthy() -> Any:
    from nexus.backends.state import Status

    return Status.UNHEALTHY


_MODELS = ("m", "n")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 5), st.sampled_from(_MODELS)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["smart", "round_robin", "priority_only", "random"]),
    st.integers(0, 50),
)
def test_a_fleet_without_failures_routes_exactly_as_without_quality(
    fleet: list[tuple[int, int, str]], strategy: str, rotation: int
) -> None:
    backends = [
        backend(f"b{i}", models=("m", extra), priority=priority, in_flight=load)
        for i, (priority, load, extra) in enumerate(fleet)
    ]
    clock = lambda: NOW  # noqa: E731
    store = QualityStore(QualityConfig(), clock=clock)
    for b in backends:  # every pair served, fast, without a failure
        for model in b.models:
            for _ in range(20):
                store.record_success(
                    b.name, model, ttft_s=0.3, total_s=1.2, output_tokens=50, stream=True
                )
    for model in _MODELS:
        args = (needs(model), snapshot(*backends), policy(strategy=strategy))
        with_quality = plan(*args, now=NOW, rotation=rotation, quality=store.view())
        without = plan(*args, now=NOW, rotation=rotation)
        if isinstance(without, Rejection):  # no backend lists the model
            assert isinstance(with_quality, Rejection)
            assert with_quality.message == without.message
            continue
        assert isinstance(with_quality, RoutePlan)
        assert with_quality.candidates == without.candidates
        assert with_quality.route_reason is without.route_reason


def test_a_drawn_probe_is_attempted_first_whatever_the_strategy() -> None:
    probing = QualityView(0.3, None, error_penalty=0.3, ejected_until=NOW - 1, recovering=True)
    fleet = (backend("a", priority=90), backend("b", priority=10), backend("c", priority=20))
    for strategy in ("smart", "priority_only", "round_robin"):
        result = plan(
            needs(),
            snapshot(*fleet),
            _policy_with_share(1.0, strategy=strategy),
            now=NOW,
            quality={("a", "m"): probing},
        )
        assert isinstance(result, RoutePlan)
        assert result.candidates[0].backend.name == "a", strategy
        assert result.to_dict()["stages"][0]["backends"][0]["quality"]["effect"] == "probe"


def _policy_with_share(share: float, **routing: Any) -> Any:
    from nexus.config.model import RoutingConfig
    from nexus.routing.policy import RoutingPolicy

    return RoutingPolicy(RoutingConfig(**routing), probe_share=share)
