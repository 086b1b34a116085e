"""A real redis-server per test (skipped, with the reason, when the binary is missing; a failure
when ``CI=true``), and ``kit``: each behavioural test runs on the in-memory store and on Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.state.redis_server import redis_server
from tests.state.stores import MemoryKit, RedisKit, StoreKit


@pytest.fixture(params=["memory", "redis"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[StoreKit]:
    if request.param == "memory":
        yield MemoryKit()
        return
    with redis_server() as server:
        redis = RedisKit(server)
        yield redis
        await redis.aclose()
