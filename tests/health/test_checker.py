"""The probe loop over a registry, with a probe function that computes real results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nexus.backends.registry import Registry
from nexus.backends.state import ModelInfo, ProbeResult, Status
from nexus.backends.transitions import Thresholds
from nexus.config.model import BackendConfig
from nexus.errors import Failure
from nexus.health.checker import HealthChecker
from tests.backends.views import view


def backend(name: str) -> BackendConfig:
    return BackendConfig(name=name, url=f"http://127.0.0.1:9/{name}", type="generic")


class Fleet:
    """Answers probes from a table of which backends are up; counts calls."""

    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.probed: list[list[str]] = []

    async def probe_all(self, backends: Sequence[BackendConfig]) -> dict[str, ProbeResult]:
        self.probed.append([b.name for b in backends])
        await asyncio.sleep(0)
        return {
            b.name: ProbeResult(ok=True, latency_ms=1.0, models=(ModelInfo(f"{b.name}-model"),))
            if b.name in self.up
            else ProbeResult.failed(Failure.REFUSED, "connection refused")
            for b in backends
        }


def make(fleet: Fleet, **kwargs: object) -> tuple[Registry, HealthChecker]:
    registry = Registry([backend("a"), backend("b")], thresholds=Thresholds(failure=1, recovery=1))
    checker = HealthChecker(registry, fleet.probe_all, interval=0.05, **kwargs)  # type: ignore[arg-type]
    return registry, checker


def statuses(registry: Registry) -> dict[str, Status]:
    return {b.name: b.status for b in registry.snapshot().backends}


async def test_one_cycle_records_every_backend() -> None:
    fleet = Fleet(up={"a"})
    registry, checker = make(fleet)
    await checker.run_cycle()
    assert statuses(registry) == {"a": Status.HEALTHY, "b": Status.UNHEALTHY}
    a = view(registry.snapshot(), "a")
    assert a is not None and list(a.models) == ["a-model"]
    assert a.next_probe_at is not None


async def test_loop_probes_periodically_and_sees_recovery() -> None:
    fleet = Fleet(up={"a"})
    registry, checker = make(fleet)
    checker.start()
    try:
        await asyncio.sleep(0.02)
        assert statuses(registry)["b"] is Status.UNHEALTHY
        fleet.up.add("b")
        for _ in range(100):
            if statuses(registry)["b"] is Status.HEALTHY:
                break
            await asyncio.sleep(0.01)
        assert statuses(registry)["b"] is Status.HEALTHY
        assert len(fleet.probed) >= 2
    finally:
        await checker.stop()
    cycles = len(fleet.probed)
    await asyncio.sleep(0.12)
    assert len(fleet.probed) == cycles, "no probes after stop()"


async def test_disabled_checking_still_probes_once_at_start() -> None:
    fleet = Fleet(up={"a", "b"})
    registry, checker = make(fleet, enabled=False)
    checker.start()
    await asyncio.sleep(0.15)
    await checker.stop()
    assert len(fleet.probed) == 1
    assert statuses(registry) == {"a": Status.HEALTHY, "b": Status.HEALTHY}
    a = view(registry.snapshot(), "a")
    assert a is not None and a.next_probe_at is None


async def test_a_failing_cycle_does_not_end_the_loop() -> None:
    calls = 0

    async def flaky(backends: Sequence[BackendConfig]) -> dict[str, ProbeResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return {b.name: ProbeResult(ok=True, models=()) for b in backends}

    registry = Registry([backend("a")], thresholds=Thresholds())
    checker = HealthChecker(registry, flaky, interval=0.01)
    checker.start()
    for _ in range(100):
        if calls >= 2:
            break
        await asyncio.sleep(0.01)
    await checker.stop()
    assert statuses(registry) == {"a": Status.HEALTHY}
