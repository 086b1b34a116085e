"""A real redis-server per test (skipped, with the reason, when the binary is missing; a failure
when ``CI=true``), and ``kit``: each behavioural test runs on the in-memory store and on Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.state.redis_server import RedisServer, redis_server
from tests.state.stores import MemoryKit, RedisKit, StoreKit


@pytest.fixture
def real_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[StoreKit]:
    if request.param == "memory":
        yield MemoryKit()
        return
    with redis_server() as server:
        redis = RedisKit(server)
        yield redis
        await redis.aclose()
