"""The Redis side of shared state against a real redis-server: the scripts and the bounds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from nexus.state.store import LeaseOps, RedisStore, StoreUnavailable, TickRequest
from tests.state.redis_server import RedisServer


@pytest.fixture
async def store(real_redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(real_redis.url, "t:", socket_timeout=1.0)
    yield store
    await store.aclose()


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


async def test_health_records_are_published_and_read_back(store: RedisStore) -> None:
    record = orjson.dumps({"id": "a:1", "status": "unhealthy", "error": "refused", "by": "a"})
    await store.tick(request(health=[("gpu", record.decode())]), timeout=1)
    reply = await store.tick(request("b"), timeout=1)
    assert orjson.loads(reply.health["gpu"])["status"] == "unhealthy"


async def test_cooldowns_keep_the_longest_and_expire(store: RedisStore) -> None:
    await store.tick(request(cooldowns=[("gpu", 3000)]), timeout=1)
    reply = await store.tick(request("b", cooldowns=[("gpu", 1000), ("cpu", 150)]), timeout=1)
    assert 2.5 < reply.cooldowns["gpu"] <= 3.0, "a shorter cooldown does not shorten it"
    assert 0 < reply.cooldowns["cpu"] <= 0.15
    await asyncio.sleep(0.2)
    assert "cpu" not in (await store.tick(request("b"), timeout=1)).cooldowns


async def test_lease_counts_exclude_the_asking_replica(store: RedisStore) -> None:
    await store.tick(request(leases=[LeaseOps("gpu", add=["a:1", "a:2"])]), timeout=1)
    await store.tick(request("b", leases=[LeaseOps("gpu", add=["b:1"])]), timeout=1)
    assert (await store.tick(request("a"), timeout=1)).others == {"gpu": 1}
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 2}
    await store.tick(request(leases=[LeaseOps("gpu", remove=["a:1"])]), timeout=1)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 1}


async def test_leases_expire_unless_refreshed(store: RedisStore) -> None:
    short = request(lease_ttl_ms=300, leases=[LeaseOps("gpu", add=["a:1"])])
    await store.tick(short, timeout=1)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 1}
    await asyncio.sleep(0.4)
    assert (await store.tick(request("b"), timeout=1)).others == {"gpu": 0}


async def test_admission_is_atomic_and_bounded_by_the_limit(store: RedisStore) -> None:
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


async def test_counters_add_up_and_publishing_again_is_harmless(store: RedisStore) -> None:
    await store.tick(request(stats={"class\t2xx": 3}), timeout=1)
    await store.tick(request(stats={"class\t2xx": 3}), timeout=1)
    reply = await store.tick(request("b", stats={"class\t2xx": 2, "streams": 1}), timeout=1)
    assert reply.stats == {"class\t2xx": 5, "streams": 1}


async def test_lost_data_is_published_again(store: RedisStore, real_redis: RedisServer) -> None:
    await store.tick(request(stats={"class\t2xx": 3}), timeout=1)
    real_redis.kill()
    real_redis.start()  # the pooled connection died with the old server: retried on a new one
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
