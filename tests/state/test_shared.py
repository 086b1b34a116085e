"""Two replicas' shared state (registries, stats, sync) in-process, over each store (``kit``): the
in-memory one on a fake clock and a real redis-server on the real clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from loguru import logger

from nexus.backends.registry import Registry
from nexus.backends.state import ProbeResult, Status
from nexus.backends.transitions import Outcome, Thresholds
from nexus.config.model import BackendConfig, StateConfig
from nexus.errors import BackendAtCapacity, Failure
from nexus.observability.events import Completed
from nexus.observability.stats import Stats
from nexus.state import SharedState
from tests.backends.views import view as view_of
from tests.state.stores import StoreKit


@dataclass
class Replica:
    registry: Registry
    stats: Stats
    shared: SharedState

    def view(self, name: str = "gpu"):
        view = view_of(self.registry.snapshot(), name)
        assert view is not None
        return view


def backends() -> list[BackendConfig]:
    return [
        BackendConfig(name="gpu", url="http://127.0.0.1:1", type="vllm", max_concurrent=2),
        BackendConfig(name="cpu", url="http://127.0.0.1:2", type="vllm"),
    ]


def state_config(**extra: object) -> StateConfig:
    return StateConfig.model_validate({"backend": "redis", **extra})


@pytest.fixture
def logs() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    yield messages
    logger.remove(sink)


@pytest.fixture
async def replicas(kit: StoreKit) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    for _ in range(2):
        thresholds = Thresholds(failure=3, recovery=2)
        registry = Registry(backends(), thresholds=thresholds, clock=kit.clock)
        for name in ("gpu", "cpu"):
            registry.record_probe(name, ProbeResult(ok=True), next_probe_at=None)
        stats = Stats(lambda model: model)
        shared = kit.shared(state_config(acquire_timeout_seconds=0.2), registry, stats)
        registry.listener = shared  # as start() does, without the background loop
        assert await shared.sync_once()
        started.append(Replica(registry, stats, shared))
    yield started
    for replica in started:
        await replica.shared.stop()


async def sync(*replicas: Replica) -> None:
    for replica in replicas:
        assert await replica.shared.sync_once()


def completed(status: int, backend: str | None = "gpu") -> Completed:
    return Completed(
        "r", "chat", "m", backend, "local", "x", status, False, 0.0, 0.1, None, 0, None, None
    )


async def test_a_hard_failure_seen_by_one_replica_is_honoured_by_the_other(replicas) -> None:
    a, b = replicas
    a.registry.record_outcome("gpu", Outcome(Failure.REFUSED, "connection refused"))
    await sync(a, b)
    gpu = b.view()
    assert gpu.status is Status.UNHEALTHY
    assert gpu.last_error == f"connection refused (replica {a.shared.replica})"
    assert b.view("cpu").status is Status.HEALTHY


async def test_failures_below_the_threshold_stay_local(replicas) -> None:
    a, b = replicas
    a.registry.record_outcome("gpu", Outcome(Failure.TIMEOUT, "slow"))
    await sync(a, b)
    assert a.view().status is Status.HEALTHY and b.view().status is Status.HEALTHY


async def test_a_recovery_is_shared_too(replicas) -> None:
    a, b = replicas
    a.registry.record_outcome("gpu", Outcome(Failure.REFUSED, "connection refused"))
    await sync(a, b)
    for _ in range(2):
        b.registry.record_probe("gpu", ProbeResult(ok=True), next_probe_at=None)
    assert b.view().status is Status.HEALTHY
    await sync(b, a)
    assert a.view().status is Status.HEALTHY


async def test_a_cooldown_is_shared_for_what_is_left_of_it(replicas, kit) -> None:
    a, b = replicas
    a.registry.record_outcome("gpu", Outcome(Failure.RATE_LIMITED, "429", retry_after=7))
    await kit.advance(0.5)
    await sync(a, b)
    gpu = b.view()
    assert gpu.cooldown_until is not None
    assert 6 < gpu.cooldown_until - kit.clock() <= 6.5
    assert gpu.status is Status.HEALTHY, "a 429 is not a health failure"


async def test_in_flight_counts_add_up_across_replicas(replicas) -> None:
    a, b = replicas
    leases = [a.registry.lease("cpu") for _ in range(3)]
    await sync(a, b)
    assert b.view("cpu").in_flight == 3
    assert a.view("cpu").in_flight == 3, "its own leases are not counted twice"
    for lease in leases:
        lease.release()
    await sync(a, b)
    assert b.view("cpu").in_flight == 0


async def test_max_concurrent_holds_across_replicas(replicas) -> None:
    a, b = replicas
    first, second = a.registry.lease("gpu"), b.registry.lease("gpu")
    await a.shared.admit(a.view(), first)
    await b.shared.admit(b.view(), second)
    third = b.registry.lease("gpu")
    with pytest.raises(BackendAtCapacity, match="at capacity across replicas"):
        await b.shared.admit(b.view(), third)
    third.release()
    assert b.view().in_flight == 2, "the refusal tells the planner at once"
    first.release()
    await sync(a)
    fourth = b.registry.lease("gpu")
    await b.shared.admit(b.view(), fourth)
    second.release()
    fourth.release()


async def test_counters_are_the_cluster_totals(replicas) -> None:
    a, b = replicas
    for status in (200, 200, 500):
        a.stats.completed(completed(status))
    b.stats.completed(completed(200, backend="cpu"))
    await sync(a, b, a)
    for replica in (a, b):
        body = replica.stats.body(replica.registry.snapshot(), uptime_seconds=1)
        assert body["requests"]["total"] == 4 and body["requests"]["errors"] == 1
        rows = {row["name"]: row["requests"] for row in body["backends"]}
        assert rows == {"gpu": 3, "cpu": 1}
        assert body["process"]["shared"] is True
    await sync(a, b, a)
    assert a.stats.body(a.registry.snapshot(), uptime_seconds=1)["requests"]["total"] == 4


async def test_redis_down_falls_back_logs_once_and_recovers(replicas, kit, logs) -> None:
    a, b = replicas
    lease = b.registry.lease("cpu")
    await sync(b, a)
    assert a.view("cpu").in_flight == 1
    kit.kill()
    started = kit.clock()
    assert not await a.shared.sync_once()
    assert not await a.shared.sync_once()
    gpu_lease = a.registry.lease("gpu")
    await a.shared.admit(a.view(), gpu_lease)  # returns at once: the local count decides
    assert kit.clock() - started < 1.0
    assert a.view("cpu").in_flight == 0, "other replicas' counts are dropped"
    down = [m for m in logs if "unavailable" in m and a.shared.replica in m]
    assert len(down) == 1
    kit.start()
    await sync(a, b)
    assert await a.shared.sync_once()
    assert [m for m in logs if "available again" in m and a.shared.replica in m] != []
    assert len([m for m in logs if "available again" in m and a.shared.replica in m]) == 1
    assert a.view("cpu").in_flight == 1, "b published its lease again"
    assert b.view().in_flight == 1, "a's lease taken while Redis was down is published"
    lease.release()
    gpu_lease.release()


async def test_a_hung_redis_costs_a_request_at_most_the_acquire_timeout(
    replicas, kit, logs
) -> None:
    a, _ = replicas
    kit.freeze()
    try:
        first, second = a.registry.lease("gpu"), a.registry.lease("gpu")
        started = kit.clock()
        await a.shared.admit(a.view(), first)  # acquire_timeout_seconds = 0.2 here
        assert 0.15 < kit.clock() - started < 0.5
        started = kit.clock()
        await a.shared.admit(a.view(), second)
        assert kit.clock() - started < 0.01, "no request waits again during the pause"
        assert a.stats.scope["admission_fallbacks"] == 1
        assert not [m for m in logs if "unavailable" in m], "one slow admission is not an outage"
        started = kit.clock()
        assert not await a.shared.sync_once()
        assert kit.clock() - started < 1.5, "a sync is bounded too (1 s)"
    finally:
        kit.thaw()
    assert await a.shared.sync_once()
    assert len([m for m in logs if "unavailable" in m]) == 1
    assert len([m for m in logs if "available again" in m]) == 1
    first.release()
    second.release()


async def test_background_loops_share_a_cooldown_within_a_second(kit) -> None:
    started: list[Replica] = []
    for _ in range(2):
        registry = Registry(backends(), thresholds=Thresholds(), clock=kit.clock)
        stats = Stats(str)
        shared = kit.shared(state_config(), registry, stats)
        await shared.start()
        started.append(Replica(registry, stats, shared))
    a, b = started
    try:
        a.registry.record_outcome("gpu", Outcome(Failure.RATE_LIMITED, "429", retry_after=30))
        seen = time.monotonic()
        while b.view().cooldown_until is None:
            assert time.monotonic() - seen < 1.0, "B did not learn the cooldown in 1 s"
            await asyncio.sleep(0.01)
    finally:
        for replica in started:
            await replica.shared.stop()
