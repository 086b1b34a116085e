"""A real redis-server per test (skipped, with the reason, when the binary is missing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.state.redis_server import RedisServer, redis_server


@pytest.fixture
def real_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server
