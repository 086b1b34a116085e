"""Rate limits shared through a real redis-server: replicas take allowances in advance and never
pass a limit together, most requests cost no Redis call, corrections and unused allowances go
back, and a dead or frozen Redis falls back to local limits with one warning."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from loguru import logger
from redis.asyncio import Redis

from nexus.gateway.ratelimit import Limits, Verdict
from nexus.gateway.ratelimit_redis import PAUSE_SECONDS, RedisRateLimiter
from tests.gateway.test_ratelimit import header
from tests.state.redis_server import RedisServer
from tests.state.stores import FakeClock


@pytest.fixture
async def client(real_redis: RedisServer) -> AsyncIterator[Callable[[], Redis]]:
    """Makes clients of ``real_redis`` (one per replica), closed afterwards."""
    made: list[Redis] = []

    def make() -> Redis:
        made.append(Redis.from_url(real_redis.url))
        return made[-1]

    yield make
    for redis in made:
        await redis.aclose()


@pytest.fixture
def logs() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    yield messages
    logger.remove(sink)


def script_calls(server: RedisServer) -> int:
    """EVAL and EVALSHA calls the server has run (a first EVALSHA fails: the script is loaded)."""
    stats = server.command("INFO", "commandstats").decode()
    calls = 0
    for line in stats.splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            fields = dict(item.split("=") for item in line.split(":", 1)[1].split(","))
            calls += int(fields["calls"]) - int(fields.get("failed_calls", 0))
    return calls


async def test_far_from_the_limit_requests_do_not_ask_redis(
    real_redis: RedisServer, client: Callable[[], Redis]
) -> None:
    limiter = RedisRateLimiter(client(), "t:", timeout=1)
    before = script_calls(real_redis)
    verdicts = [await limiter.check("ci", Limits(rpm=1000), 1) for _ in range(40)]
    assert all(v.allowed for v in verdicts)
    assert script_calls(real_redis) - before == 1, "one call took the request and 50 more"
    assert [header(v, "remaining-requests") for v in verdicts[:3]] == ["999", "998", "997"]


async def test_two_replicas_never_pass_the_limit_together(client: Callable[[], Redis]) -> None:
    # the replicas' own clocks disagree wildly: the buckets run on Redis's time
    a = RedisRateLimiter(client(), "t:", timeout=1, clock=FakeClock(0))
    b = RedisRateLimiter(client(), "t:", timeout=1, clock=FakeClock(10**6))
    limits = Limits(rpm=10, tpm=10_000)
    verdicts = [await (a, b)[i % 2].check("ci", limits, 100) for i in range(16)]
    assert sum(v.allowed for v in verdicts) == 10, [v.allowed for v in verdicts]
    assert not any(v.allowed for v in verdicts[11:]), "the allowances are spent too"
    refused = verdicts[-1]
    assert refused.limit == "requests" and header(refused, "remaining-requests") == "0"
    assert refused.retry_after_seconds is not None and 5 < refused.retry_after_seconds <= 6
    assert (await b.check("other", limits, 100)).allowed, "another tenant, another bucket"


async def test_a_stop_and_an_idle_sync_give_the_allowance_back(
    client: Callable[[], Redis],
) -> None:
    a = RedisRateLimiter(client(), "t:", timeout=1)
    limits = Limits(rpm=100)  # allowance: 5
    assert header(await a.check("ci", limits, 1), "remaining-requests") == "99"
    b = RedisRateLimiter(client(), "t:", timeout=1)
    assert header(await b.check("ci", limits, 1), "remaining-requests") == "93", "a holds 5"
    assert await a.sync()  # a used its allowance during this interval: it keeps it
    assert await a.sync()  # idle for a whole interval: given back
    c = RedisRateLimiter(client(), "t:", timeout=1)
    remaining = int(header(await c.check("ci", limits, 1), "remaining-requests"))
    assert remaining == 92, "100, less 3 requests, less the 5 b holds; a's 5 came back"
    await b.aclose()
    d = RedisRateLimiter(client(), "t:", timeout=1)
    assert header(await d.check("ci", limits, 1), "remaining-requests") in ("91", "92")


async def test_token_corrections_reach_every_replica(client: Callable[[], Redis]) -> None:
    a = RedisRateLimiter(client(), "t:", timeout=1)
    b = RedisRateLimiter(client(), "t:", timeout=1)
    limits = Limits(tpm=60)  # one token a second; allowance 3
    assert (await a.check("ci", limits, 50)).allowed
    assert not (await b.check("ci", limits, 20)).allowed
    a.settle("ci", limits, estimated=50, actual=10)
    assert await a.sync()
    assert (await b.check("ci", limits, 20)).allowed, "a gave 40 tokens back"


async def test_a_dead_redis_falls_back_to_local_limits_with_one_warning(
    real_redis: RedisServer, client: Callable[[], Redis], logs: list[str]
) -> None:
    clock = FakeClock()
    limiter = RedisRateLimiter(client(), "t:", timeout=0.5, clock=clock)
    limits = Limits(rpm=2, tpm=1000)
    assert header(await limiter.check("ci", limits, 10), "remaining-requests") == "1"  # Redis
    real_redis.kill()
    verdicts = [await limiter.check("ci", limits, 10) for _ in range(4)]
    allowed = [v.allowed for v in verdicts]
    assert allowed == [True, True, True, False], "its allowance of 1, then a local bucket of 2"
    clock.advance(PAUSE_SECONDS[0])  # the pause is over: Redis is asked again, still dead
    assert not (await limiter.check("ci", limits, 10)).allowed
    warnings = [m for m in logs if "rate limits in Redis unavailable" in m]
    assert len(warnings) == 1, logs
    assert "this replica limits clients on its own" in warnings[0]
    real_redis.start()
    clock.advance(PAUSE_SECONDS[1])
    assert header(await limiter.check("ci", limits, 10), "remaining-requests") == "1"
    assert real_redis.command("EXISTS", "t:ratelimit:ci:requests") == b":1\r\n", "in Redis again"
    assert sum("available again" in m for m in logs) == 1


async def test_a_frozen_redis_costs_at_most_the_timeout(
    real_redis: RedisServer, client: Callable[[], Redis], logs: list[str]
) -> None:
    limiter = RedisRateLimiter(client(), "t:", timeout=0.2)
    limits = Limits(rpm=1)
    assert (await limiter.check("ci", limits, 1)).allowed
    real_redis.freeze()
    try:
        started = time.monotonic()
        verdict = await limiter.check("ci", limits, 1)
        assert time.monotonic() - started < 1.0
        assert verdict.allowed, "the local bucket is its own, and full"
        again = time.monotonic()
        assert not (await limiter.check("ci", limits, 1)).allowed
        assert time.monotonic() - again < 0.1, "paused: Redis is not asked at all"
    finally:
        real_redis.thaw()
    assert any("no answer within 200 ms" in m for m in logs), logs


async def test_no_limits_never_ask_redis(logs: list[str]) -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    limiter = RedisRateLimiter(redis, "t:", timeout=0.2)
    assert await limiter.check("ci", Limits(), 10**6) == Verdict(True, (), None, None, None)
    limiter.settle("ci", Limits(rpm=3), 1, 10)
    assert await limiter.sync()
    await limiter.aclose()
    await redis.aclose()
    assert logs == []
