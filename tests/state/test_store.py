"""The store behind shared state, the same behaviour on both: the in-memory store on a fake clock
and the Redis scripts on a real redis-server (``kit``); then the Redis client's own bounds."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest

from nexus.errors import StoreUnavailable
from nexus.state.store import LeaseOps, RedisStore, TickRequest
from tests.state.redis_server import RedisServer
from tests.state.stores import StoreKit


def request(replica: str = "a", **changes: object) -> TickRequest:
    values: dict[str, object] = {
        "replica": replica,
        "lease_ttl_ms": 5000,
        "health": [],
        "cooldowns": [],
        "leases": [LeaseOps("gpu")],
        "stats": {},
    }
    values.update(changes)
    return TickRequest(**values)  # type: ignore[arg-type]


def record(status: str, event: str = "a:1") -> str:
    return orjson.dumps({"id": event, "status": status, "error": None, "by": "a"}).decode()


async def test_health_records_are_published_and_read_back(kit: StoreKit) -> None:
    store = kit.store()
    await store.tick(request(health=[("gpu", record("unhealthy"))]), timeout=1)
    reply = await store.tick(request("b"), timeout=1)
    assert orjson.loads(reply.health["gpu"])["status"] == "unhealthy"
    await store.tick(request("b", health=[("gpu", record("healthy", "b:1"))]), timeout=1)
    reply = await store.tick(request(), timeout=1)
    assert orjson.loads(reply.health["gpu"])["status"] == "healthy", "the last change wins"


async def test_cooldowns_keep_the_longest_and_expire(kit: StoreKit) -> None:
    store = kit.store()
    await store.tick(request(cooldowns=[("gpu", 3000)]), timeout=1)
    reply = await store.tick(request("b", cooldowns=[("gpu", 1000), ("cpu", 150)]), timeout=1)
    assert 2.5 < reply.cooldowns["gpu"] <= 3.0, "a shorter cooldown does not shorten it"
    assert 0 < reply.cooldowns["cpu"] <= 0.15
    await kit.advance(0.2)
    assert "cpu" not in (await store.tick(request("b"), timeout=1)).cooldowns


async def test_lease_counts_exclude_the_asking_replica(kit: StoreKit) -> None:
    store = kit.store()
    await store.tick(request(leases=[LeaseOps("gpu", add=["a:1", "a:2"])]), timeout=1)
    await store.tick(request("b", leases=[LeaseOps("gpu", add=["b:1"])]), timeout=1)
    assert (await store.tick(request("a"), timeout=1)).others == {"gpu": 1}
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 2}
    await store.tick(request(leases=[LeaseOps("gpu", remove=["a:1"])]), timeout=1)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 1}


async def test_leases_expire_unless_refreshed(kit: StoreKit) -> None:
    store = kit.store()
    short = request(lease_ttl_ms=300, leases=[LeaseOps("gpu", add=["a:1", "a:2"])])
    await store.tick(short, timeout=1)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 2}
    await kit.advance(0.2)
    refresh = request(lease_ttl_ms=300, leases=[LeaseOps("gpu", add=["a:2"])])
    await store.tick(refresh, timeout=1)
    await kit.advance(0.2)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 1}, "a:2 was refreshed"
    await kit.advance(0.2)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 0}


async def test_a_lease_set_lives_twice_the_ttl_of_its_last_writer(kit: StoreKit) -> None:
    """The scripts' ``PEXPIRE``: replicas with different ``lease_ttl_seconds`` cut each other's
    leases short (one TTL for the whole cluster is assumed)."""
    store = kit.store()
    long = request(lease_ttl_ms=10_000, leases=[LeaseOps("gpu", add=["a:1"])])
    await store.tick(long, timeout=1)
    assert (await store.tick(request("b", lease_ttl_ms=100), timeout=1)).others == {"gpu": 1}
    await kit.advance(0.25)
    assert (await store.tick(request("b", lease_ttl_ms=100), timeout=1)).others == {"gpu": 0}


async def test_admission_is_atomic_and_bounded_by_the_limit(kit: StoreKit) -> None:
    store = kit.store()

    async def admit(lease: str) -> bool:
        admitted, _ = await store.admit(
            "gpu", lease, limit=2, ttl_ms=5000, prefix=lease.split(":")[0] + ":", timeout=1
        )
        return admitted

    results = await asyncio.gather(*(admit(f"r{i}:1") for i in range(6)))
    assert sorted(results) == [False] * 4 + [True] * 2
    refused, others = await store.admit(
        "gpu", "r9:1", limit=2, ttl_ms=5000, prefix="r9:", timeout=1
    )
    assert (refused, others) == (False, 2)
    winner = next(f"r{i}:1" for i, admitted in enumerate(results) if admitted)
    assert await admit(winner), "admitting a lease already in is harmless"
    replica = winner.split(":")[0]
    refused, others = await store.admit(
        "gpu", f"{replica}:2", limit=2, ttl_ms=5000, prefix=f"{replica}:", timeout=1
    )
    assert (refused, others) == (False, 1), "a refusal counts the other replicas' leases only"


async def test_admitted_leases_are_counted_by_syncs_and_freed_by_removal(kit: StoreKit) -> None:
    store = kit.store()
    assert await store.admit("gpu", "a:1", limit=1, ttl_ms=5000, prefix="a:", timeout=1) == (
        True,
        0,
    )
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 1}
    assert await store.admit("gpu", "b:1", limit=1, ttl_ms=5000, prefix="b:", timeout=1) == (
        False,
        1,
    )
    await store.remove_leases({"gpu": ["a:1"], "cpu": []}, timeout=1)
    assert await store.admit("gpu", "b:1", limit=1, ttl_ms=5000, prefix="b:", timeout=1) == (
        True,
        0,
    )


async def test_expired_leases_free_their_place_for_admission(kit: StoreKit) -> None:
    store = kit.store()
    assert (await store.admit("gpu", "a:1", limit=1, ttl_ms=300, prefix="a:", timeout=1))[0]
    assert not (await store.admit("gpu", "b:1", limit=1, ttl_ms=300, prefix="b:", timeout=1))[0]
    await kit.advance(0.4)
    assert (await store.admit("gpu", "b:1", limit=1, ttl_ms=300, prefix="b:", timeout=1))[0]


async def test_counters_add_up_and_publishing_again_is_harmless(kit: StoreKit) -> None:
    store = kit.store()
    await store.tick(request(stats={"class\t2xx": 3}), timeout=1)
    await store.tick(request(stats={"class\t2xx": 3}), timeout=1)
    reply = await store.tick(request("b", stats={"class\t2xx": 2, "streams": 1}), timeout=1)
    assert reply.stats == {"class\t2xx": 5, "streams": 1}
    reply = await store.tick(request(stats={"class\t2xx": 1}), timeout=1)
    assert reply.stats == {"class\t2xx": 5, "streams": 1}, "a lower total subtracts nothing"


async def test_lost_data_is_published_again(kit: StoreKit) -> None:
    store = kit.store()
    await store.tick(request(stats={"class\t2xx": 3}), timeout=1)
    kit.kill()
    kit.start()  # a pooled Redis connection died with the old server: retried on a new one
    reply = await store.tick(request(stats={"class\t2xx": 4}), timeout=1)
    assert reply.stats == {"class\t2xx": 4}


async def test_a_dead_server_fails_at_once(real_redis: RedisServer) -> None:
    real_redis.kill()
    store = RedisStore(real_redis.url, "t:", socket_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="onnect"):
        await store.tick(request(), timeout=1)
    assert time.monotonic() - started < 0.5
    await store.aclose()


async def test_a_silent_server_fails_at_the_time_limit() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", "t:", socket_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="50 ms"):
            await store.admit("gpu", "a:1", limit=1, ttl_ms=5000, prefix="a:", timeout=0.05)
        assert time.monotonic() - started < 0.3
        await store.aclose()
