"""The registry: membership, probes, passive outcomes, in-flight counts and snapshots."""

from __future__ import annotations

import pytest

from nexus.backends.registry import Registry
from nexus.backends.state import ModelInfo, ProbeResult, Status
from nexus.backends.transitions import SUCCESS, Outcome, Thresholds
from nexus.config.kinds import Zone
from nexus.config.model import BackendConfig
from nexus.errors import Failure
from tests.backends.views import view


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def backend(name: str = "gpu", **extra: object) -> BackendConfig:
    return BackendConfig.model_validate(
        {"name": name, "url": f"http://127.0.0.1:1/{name}", "type": "vllm", **extra}
    )


def healthy_probe(*models: str, latency: float = 10.0) -> ProbeResult:
    return ProbeResult(ok=True, latency_ms=latency, models=tuple(ModelInfo(m) for m in models))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> Registry:
    return Registry(
        [backend("gpu", tier=3, priority=5), backend("cpu")],
        thresholds=Thresholds(failure=2, recovery=2),
        clock=clock,
        wall_clock=lambda: 1_700_000_000.0,
    )


def test_snapshot_keeps_configuration_order_and_fields(registry: Registry) -> None:
    snapshot = registry.snapshot()
    assert [b.name for b in snapshot.backends] == ["gpu", "cpu"]
    gpu = view(snapshot, "gpu")
    assert gpu is not None
    assert (gpu.tier, gpu.priority, gpu.zone, gpu.status) == (3, 5, Zone.RESTRICTED, Status.UNKNOWN)
    assert snapshot.taken_at == 100.0


def test_probe_sets_status_models_latency_and_times(registry: Registry) -> None:
    registry.record_probe("gpu", healthy_probe("llama3", "qwen"), next_probe_at=130.0)
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None
    assert gpu.status is Status.HEALTHY
    assert list(gpu.models) == ["llama3", "qwen"]
    assert gpu.latency_ms == 10.0
    assert (gpu.last_check, gpu.next_probe_at) == (1_700_000_000.0, 130.0)


def test_failed_probe_keeps_previous_models(registry: Registry) -> None:
    registry.record_probe("gpu", healthy_probe("llama3"), next_probe_at=0)
    failed = ProbeResult.failed(Failure.REFUSED, "connection refused")
    registry.record_probe("gpu", failed, next_probe_at=0)
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None
    assert gpu.status is Status.UNHEALTHY
    assert gpu.last_error == "connection refused"
    assert list(gpu.models) == ["llama3"]


def test_latency_is_a_moving_average_of_probes_and_requests(registry: Registry) -> None:
    registry.record_probe("gpu", healthy_probe("m", latency=100.0), next_probe_at=0)
    registry.record_outcome("gpu", SUCCESS, latency_ms=200.0)
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None and gpu.latency_ms == pytest.approx(120.0)


def test_passive_refusal_takes_a_backend_out_at_once(registry: Registry) -> None:
    registry.record_probe("gpu", healthy_probe("m"), next_probe_at=0)
    changed = registry.record_outcome("gpu", Outcome(Failure.REFUSED, "connection refused"))
    assert changed is Status.UNHEALTHY
    assert registry.record_outcome("gpu", Outcome(Failure.REFUSED, "again")) is None
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None and gpu.status is Status.UNHEALTHY


def test_rate_limit_cools_down(registry: Registry, clock: Clock) -> None:
    registry.record_probe("gpu", healthy_probe("m"), next_probe_at=0)
    registry.record_outcome("gpu", Outcome(Failure.RATE_LIMITED, "429", retry_after=3))
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None
    assert gpu.cooling_down(clock.now + 2.9) and not gpu.cooling_down(clock.now + 3.0)


def test_snapshot_is_cached_until_a_change(registry: Registry) -> None:
    first = registry.snapshot()
    assert registry.snapshot() is first
    registry.record_outcome("cpu", SUCCESS)
    assert registry.snapshot() is not first


def test_add_and_remove_discovered(registry: Registry) -> None:
    registry.add(backend("studio"), discovered=True)
    names = [b.name for b in registry.snapshot().backends]
    assert names == ["gpu", "cpu", "studio"]
    studio = view(registry.snapshot(), "studio")
    assert studio is not None and studio.discovered
    assert "http://127.0.0.1:1/studio" in {config.url for config in registry.configs()}
    registry.remove("studio")
    assert "studio" not in registry
    registry.record_probe("studio", healthy_probe("m"), next_probe_at=0)  # late probe: ignored
    assert "studio" not in registry


def test_snapshot_models_cannot_be_mutated(registry: Registry) -> None:
    registry.record_probe("gpu", healthy_probe("m"), next_probe_at=0)
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None
    with pytest.raises(TypeError):
        gpu.models["x"] = ModelInfo("x")  # type: ignore[index]


def test_a_lease_releases_once(registry: Registry) -> None:
    lease = registry.lease("gpu")
    other = registry.lease("gpu")
    lease.release()
    lease.release()
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None and gpu.in_flight == 1
    other.release()
    gpu = view(registry.snapshot(), "gpu")
    assert gpu is not None and gpu.in_flight == 0


def test_a_lease_on_a_removed_backend_is_harmless(registry: Registry) -> None:
    lease = registry.lease("gpu")
    registry.remove("gpu")
    lease.release()
    registry.lease("nobody").release()
    assert "gpu" not in registry


def test_a_lease_rebuilds_only_that_backends_view(registry: Registry) -> None:
    before = registry.snapshot()
    lease = registry.lease("gpu")
    during = registry.snapshot()
    assert during is not before
    assert during.backends[1] is before.backends[1], "cpu did not change: its view is reused"
    assert during.backends[0] is not before.backends[0]
    assert during.backends[0].in_flight == 1
    lease.release()
    assert registry.snapshot().backends[0].in_flight == 0
    registry.add(backend("studio"))
    assert [b.name for b in registry.snapshot().backends] == ["gpu", "cpu", "studio"]


def test_a_failed_probe_keeps_the_last_models_marked_stale_until_a_probe_succeeds(
    registry: Registry,
) -> None:
    registry.record_probe("gpu", healthy_probe("llama3"), next_probe_at=None)
    assert not view(registry.snapshot(), "gpu").models_stale
    registry.record_probe("gpu", ProbeResult.failed(Failure.REFUSED, "down"), next_probe_at=None)
    stale = view(registry.snapshot(), "gpu")
    assert (list(stale.models), stale.models_stale) == (["llama3"], True)
    registry.record_probe("gpu", healthy_probe("qwen"), next_probe_at=None)
    fresh = view(registry.snapshot(), "gpu")
    assert (list(fresh.models), fresh.models_stale) == (["qwen"], False)
