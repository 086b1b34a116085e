"""Passive health per backend and model (issue 14, defect 6): a request that the backend answered
with a 5xx, a broken answer or a timeout counts against that model on that backend only, so one
client's unsupported request cannot take the backend out for other models; a refused connection or
a rejected key still takes the whole backend out. Ejection lasts ``model_ejection_seconds``."""

from __future__ import annotations

import pytest

from nexus.backends.registry import Registry
from nexus.backends.state import ModelInfo, ProbeResult, Status
from nexus.backends.transitions import SUCCESS, Outcome, Thresholds
from nexus.config.model import BackendConfig, RoutingConfig
from nexus.errors import Failure
from nexus.routing.planner import plan
from nexus.routing.policy import RoutingPolicy
from nexus.routing.reasons import SkipReason
from nexus.routing.requirements import RequestKind, Requirements
from nexus.routing.route import Rejection, RoutePlan
from tests.backends.views import view

BROKEN = Outcome(Failure.SERVER_ERROR, "HTTP 500")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> Registry:
    config = BackendConfig.model_validate(
        {"name": "gpu", "url": "http://127.0.0.1:1", "type": "vllm"}
    )
    registry = Registry(
        [config],
        thresholds=Thresholds(failure=3, recovery=2, model_ejection_seconds=30.0),
        clock=clock,
    )
    models = (ModelInfo("chat-model"), ModelInfo("embed-model"))
    registry.record_probe("gpu", ProbeResult(ok=True, models=models), next_probe_at=130.0)
    return registry


def route(registry: Registry, model: str, now: float) -> RoutePlan | Rejection:
    requirements = Requirements(model=model, requested_model=model, kind=RequestKind.EMBEDDINGS)
    return plan(requirements, registry.snapshot(), RoutingPolicy(RoutingConfig()), now=now)


def fail(registry: Registry, model: str, times: int, outcome: Outcome = BROKEN) -> None:
    for _ in range(times):
        registry.record_outcome("gpu", outcome, model=model)


def test_server_errors_on_one_model_leave_the_backend_and_its_other_models_in(
    registry: Registry, clock: Clock
) -> None:
    fail(registry, "embed-model", 3)
    gpu = view(registry.snapshot(), "gpu")
    assert gpu.status is Status.HEALTHY
    assert gpu.model_ejected("embed-model", clock.now)
    assert not gpu.model_ejected("chat-model", clock.now)
    assert isinstance(route(registry, "chat-model", clock.now), RoutePlan)
    rejected = route(registry, "embed-model", clock.now)
    assert isinstance(rejected, Rejection)
    assert rejected.stages[0].decisions[0].skip is SkipReason.MODEL_FAILING
    assert rejected.retry_after_seconds == 30
    assert rejected.available_backends == ()
    assert "HTTP 500" in rejected.message


def test_an_ejected_model_comes_back_after_the_ejection_time(
    registry: Registry, clock: Clock
) -> None:
    fail(registry, "embed-model", 3)
    clock.now += 30.0
    assert isinstance(route(registry, "embed-model", clock.now), RoutePlan)


def test_below_the_threshold_or_interrupted_by_a_success_nothing_is_ejected(
    registry: Registry, clock: Clock
) -> None:
    fail(registry, "embed-model", 2)
    registry.record_outcome("gpu", SUCCESS, model="embed-model")
    fail(registry, "embed-model", 2)
    assert not view(registry.snapshot(), "gpu").model_ejected("embed-model", clock.now)


@pytest.mark.parametrize("failure", [Failure.TIMEOUT, Failure.BAD_RESPONSE])
def test_timeouts_and_broken_answers_count_per_model_too(
    registry: Registry, clock: Clock, failure: Failure
) -> None:
    fail(registry, "embed-model", 3, Outcome(failure, "x"))
    gpu = view(registry.snapshot(), "gpu")
    assert gpu.status is Status.HEALTHY and gpu.model_ejected("embed-model", clock.now)


@pytest.mark.parametrize("failure", [Failure.REFUSED, Failure.AUTH])
def test_a_refused_connection_or_rejected_key_still_takes_the_backend_out(
    registry: Registry, failure: Failure
) -> None:
    fail(registry, "embed-model", 1, Outcome(failure, "x"))
    assert view(registry.snapshot(), "gpu").status is Status.UNHEALTHY
