"""Shared state's timing on the in-memory store and a fake clock: lease expiry, admission pauses
and what a failed sync keeps for the next one, to the millisecond and without waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexus.backends.registry import Registry
from nexus.backends.state import ProbeResult
from nexus.backends.transitions import Outcome, Thresholds
from nexus.errors import Failure
from nexus.observability.stats import Stats
from nexus.state.memory import MemoryStore
from nexus.state.store import STATS_TTL_SECONDS, LeaseOps, TickRequest
from tests.state.stores import FakeClock, MemoryKit
from tests.state.test_shared import Replica, backends, state_config, sync


@pytest.fixture
def kit() -> MemoryKit:
    return MemoryKit()


@pytest.fixture
async def replicas(kit: MemoryKit) -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    for _ in range(2):
        registry = Registry(backends(), thresholds=Thresholds(), clock=kit.clock)
        for name in ("gpu", "cpu"):
            registry.record_probe(name, ProbeResult(ok=True), next_probe_at=None)
        stats = Stats(str)
        shared = kit.shared(state_config(acquire_timeout_seconds=0.2), registry, stats)
        registry.listener = shared
        assert await shared.sync_once()
        started.append(Replica(registry, stats, shared))
    yield started
    kit.thaw()
    for replica in started:
        await replica.shared.stop()


async def test_the_leases_of_a_replica_that_stopped_syncing_expire_after_the_ttl(
    replicas, kit
) -> None:
    a, b = replicas
    a.registry.lease("cpu")
    await sync(a)
    for _ in range(10):  # a keeps syncing: its lease is refreshed, well past one TTL (5 s)
        await kit.advance(1)
        await sync(a, b)
        assert b.view("cpu").in_flight == 1
    await kit.advance(4.99)  # then a falls silent
    await sync(b)
    assert b.view("cpu").in_flight == 1
    await kit.advance(0.02)
    await sync(b)
    assert b.view("cpu").in_flight == 0


async def test_admission_pauses_double_while_it_times_out_and_reset_when_it_answers(
    replicas, kit
) -> None:
    a, _ = replicas

    async def tried() -> bool:
        """Whether one admission asked the store (a failed one counts a fallback)."""
        before = a.stats.scope["admission_fallbacks"]
        lease = a.registry.lease("gpu")
        await a.shared.admit(a.view(), lease)
        lease.release()
        return bool(a.stats.scope["admission_fallbacks"] - before)

    kit.freeze()
    for pause in (1, 2, 4, 8, 16, 32, 60, 60):
        assert await tried()
        await kit.advance(pause - 0.05)
        assert not await tried(), f"tried within a pause of {pause} s"
        await kit.advance(0.1)
    kit.thaw()
    assert not await tried(), "admitted"
    kit.freeze()
    assert await tried()
    await kit.advance(1.05)
    assert await tried(), "the pause started again from 1 s"


async def test_a_cooldown_held_through_an_outage_is_published_for_what_is_left(
    replicas, kit
) -> None:
    a, b = replicas
    kit.kill()
    a.registry.record_outcome("gpu", Outcome(Failure.RATE_LIMITED, "429", retry_after=10))
    assert not await a.shared.sync_once()
    await kit.advance(3)
    kit.start()
    await sync(a, b)
    until = b.view().cooldown_until
    assert until is not None and until - kit.clock() == pytest.approx(7, abs=0.002)


async def test_a_lease_released_while_the_store_hung_is_removed_by_the_next_sync(
    replicas, kit
) -> None:
    a, b = replicas
    lease = a.registry.lease("cpu")
    await sync(a, b)
    assert b.view("cpu").in_flight == 1
    kit.freeze()
    lease.release()
    assert not await a.shared.sync_once()
    kit.thaw()
    await sync(a, b)  # 1 s later (the failed sync's limit), well within the lease's 5 s
    assert b.view("cpu").in_flight == 0


async def test_memory_store_boundaries_are_the_scripts() -> None:
    """A lease expires at its score and a cooldown at its end (both ``<= now`` in the scripts);
    a replica's own counters after :data:`STATS_TTL_SECONDS` without a sync (then its totals
    count again, as in Redis, where its key expired)."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    tick = TickRequest("a", 1000, [], [("gpu", 500)], [LeaseOps("gpu", add=["a:1"])], {})
    await store.tick(tick, timeout=1)
    clock.advance(0.5)
    reply = await store.tick(TickRequest("b", 1000, [], [], [LeaseOps("gpu")], {}), timeout=1)
    assert reply.cooldowns == {} and reply.others == {"gpu": 1}
    clock.advance(0.5)
    assert (await store.admit("gpu", "b:1", limit=1, ttl_ms=1000, prefix="b:", timeout=1))[0]

    counts = TickRequest("a", 1000, [], [], [], {"n": 2})
    await store.tick(counts, timeout=1)
    clock.advance(STATS_TTL_SECONDS)
    assert (await store.tick(counts, timeout=1)).stats == {"n": 2}
    clock.advance(STATS_TTL_SECONDS + 1)
    assert (await store.tick(counts, timeout=1)).stats == {"n": 4}
