"""Quality figures shared by replicas through a real redis-server: each sees the others' sums and
adopts the ejections they started; a replica that stops syncing drops out after three intervals;
Redis down leaves each replica with its own figures and one warning."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from loguru import logger

from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import PairStatus
from nexus.config.quality import QualityConfig
from nexus.errors import Failure
from nexus.state.quality_redis import SharedQuality
from tests.state.redis_server import RedisServer

INTERVAL = 2.0
START = 1000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(real_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(real_redis.url, socket_timeout=1.0)
    yield redis
    await redis.aclose()


def replica(
    redis: aioredis.Redis, name: str, clock: Clock, wall: Clock
) -> tuple[QualityStore, SharedQuality]:
    store = QualityStore(QualityConfig(min_requests=4, consecutive_failures=3), clock=clock)
    shared = SharedQuality(
        redis, "t:", interval=INTERVAL, timeout=1.0, clock=clock, wall=wall, replica=name
    )
    return store, shared


async def test_replicas_see_each_others_sums_and_ejections(client: aioredis.Redis) -> None:
    clock, wall = Clock(START), Clock(1_700_000_000.0)
    (a, a_sync), (b, b_sync) = replica(client, "a", clock, wall), replica(client, "b", clock, wall)
    for _ in range(3):
        a.record_success("x", "m", ttft_s=4.0, total_s=5.0)
    b.record_success("y", "m", ttft_s=0.5, total_s=1.0)
    await a_sync.sync(a)
    await b_sync.sync(b)
    await a_sync.sync(a)
    assert b.view()[("x", "m")].ttft_ms == pytest.approx(4000), "b never sent to x"
    assert a.view()[("y", "m")].ttft_ms == pytest.approx(500)
    for _ in range(3):
        a.record_failure("x", "m", Failure.SERVER_ERROR)
    assert a.state("x", "m").status is PairStatus.EJECTED
    await a_sync.sync(a)
    await b_sync.sync(b)
    adopted = b.state("x", "m")
    assert adopted.status is PairStatus.EJECTED
    assert adopted.ejected_until == pytest.approx(START + 30)
    assert adopted.reason == "3 failures in a row (last: server_error) (on another replica)"
    fields = await client.hgetall("t:quality:a")
    assert set(fields) == {b"x\tm"}
    assert await client.zrange("t:quality:replicas", 0, -1) == [b"a", b"b"]
    wall.now += 3 * INTERVAL + 1  # a stops syncing: its figures go
    await b_sync.sync(b)
    assert b.view()[("x", "m")].ttft_ms is None
    assert await client.zrange("t:quality:replicas", 0, -1) == [b"b"]


async def test_redis_down_keeps_each_replica_on_its_own_figures(real_redis: RedisServer) -> None:
    redis = aioredis.Redis.from_url(real_redis.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    clock, wall = Clock(START), Clock(1_700_000_000.0)
    store, shared = replica(redis, "a", clock, wall)
    store.record_success("x", "m", ttft_s=1.0, total_s=2.0)
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        real_redis.kill()
        for _ in range(3):
            await shared.sync(store)
        assert store.view()[("x", "m")].ttft_ms == pytest.approx(1000)
        assert len(warnings) == 1 and "quality figures not shared" in warnings[0]
        real_redis.start()
        await shared.sync(store)
        assert await redis.hgetall("t:quality:a") != {}
    finally:
        logger.remove(sink)
        await redis.aclose()
