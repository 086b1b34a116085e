"""Without redis-server, the Redis half of tests/state skips, except in CI, where it fails."""

from __future__ import annotations

import pytest

from tests.state import redis_server


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr("shutil.which", lambda name: None)
    return monkeypatch


def test_a_missing_server_skips_outside_ci(no_redis: pytest.MonkeyPatch) -> None:
    no_redis.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/install-redis"):
        redis_server.require_redis()


def test_a_missing_server_fails_in_ci(no_redis: pytest.MonkeyPatch) -> None:
    no_redis.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        redis_server.require_redis()
