"""Per-tenant rate limits: the in-process token buckets on a fake clock (admission, refill, the
retry wait, settling, OpenAI's headers), then the shared buckets on a real redis-server (two
replicas, one bucket) and their fallback to local limits when Redis is dead or frozen."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger
from redis.asyncio import Redis

from nexus.gateway.ratelimit import (
    PAUSE_SECONDS,
    Limits,
    RateLimiter,
    RedisRateLimiter,
    Verdict,
    reset_duration,
)
from tests.state.redis_server import RedisServer, redis_server


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def header(verdict: Verdict, name: str) -> str:
    return dict(verdict.headers)[f"x-ratelimit-{name}"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(clock=clock)


# -- in one process ---------------------------------------------------------------------------


def test_without_limits_everything_passes_without_headers(limiter: RateLimiter) -> None:
    for _ in range(1000):
        verdict = limiter.check("ci", Limits(), 10**9)
        assert verdict == Verdict(True, (), None, None, None)
    limiter.settle("ci", Limits(), 0, 10**9)
    assert limiter.check("ci", Limits(rpm=None, tpm=None), 1).allowed


def test_requests_run_out_at_the_rpm(limiter: RateLimiter) -> None:
    limits = Limits(rpm=3)
    remaining = [header(limiter.check("ci", limits, 100), "remaining-requests") for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = limiter.check("ci", limits, 100)
    assert not refused.allowed
    assert refused.limit == "requests"
    assert refused.retry_after_seconds == 20.0, "3 per minute: one more every 20 s"
    assert refused.message == (
        "client 'ci' is over its limit of 3 requests per minute; retry in 20 s"
    )
    assert header(refused, "remaining-requests") == "0"
    assert header(refused, "reset-requests") == "1m0s"


def test_the_bucket_refills_continuously_and_never_beyond_the_limit(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limits = Limits(rpm=60)  # one a second
    for _ in range(60):
        assert limiter.check("ci", limits, 1).allowed
    assert not limiter.check("ci", limits, 1).allowed
    clock.advance(0.5)
    assert not limiter.check("ci", limits, 1).allowed, "half a request is not a request"
    clock.advance(0.5)
    assert limiter.check("ci", limits, 1).allowed
    clock.advance(3600)
    assert header(limiter.check("ci", limits, 1), "remaining-requests") == "59", "capped at 60"


def test_retry_after_is_the_wait_until_the_request_fits(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    limits = Limits(rpm=60)
    for _ in range(60):
        limiter.check("ci", limits, 1)
    clock.advance(0.2)
    refused = limiter.check("ci", limits, 1)
    assert refused.retry_after_seconds == 0.8
    assert refused.message is not None and refused.message.endswith("retry in 0.8 s")
    clock.advance(0.7995)
    assert limiter.check("ci", limits, 1).retry_after_seconds == 0.001, "rounded up, never 0"
    clock.advance(0.0005)
    assert limiter.check("ci", limits, 1).allowed, "exactly when retry_after said"


@pytest.mark.parametrize("rpm", [7, 25, 60, 999])
def test_waiting_exactly_retry_after_is_enough_whatever_the_rate(rpm: int) -> None:
    clock = FakeClock(1000.1)  # at rpm 25 from here, floating point misses by a hair
    limiter = RateLimiter(clock=clock)
    for _ in range(rpm):
        limiter.check("ci", Limits(rpm=rpm), 1)
    clock.advance(0.013)
    refused = limiter.check("ci", Limits(rpm=rpm), 1)
    assert refused.retry_after_seconds is not None
    clock.advance(refused.retry_after_seconds)
    assert limiter.check("ci", Limits(rpm=rpm), 1).allowed


def test_a_refusal_takes_nothing(limiter: RateLimiter) -> None:
    limits = Limits(rpm=10, tpm=1000)
    assert limiter.check("ci", limits, 800).allowed
    refused = limiter.check("ci", limits, 300)
    assert (refused.allowed, refused.limit) == (False, "tokens")
    assert header(refused, "remaining-requests") == "9", "the refused request is not counted"
    assert header(refused, "remaining-tokens") == "0"
    assert header(limiter.check("ci", limits, 200), "remaining-tokens") == "0"


def test_tokens_are_taken_by_their_estimate(limiter: RateLimiter, clock: FakeClock) -> None:
    limits = Limits(tpm=6000)  # 100 a second
    admitted = limiter.check("ci", limits, 4000)
    assert header(admitted, "remaining-tokens") == "2000"
    assert header(admitted, "reset-tokens") == "40s"
    refused = limiter.check("ci", limits, 3000)
    assert (refused.allowed, refused.limit, refused.retry_after_seconds) == (False, "tokens", 10.0)
    assert refused.message == (
        "client 'ci' is over its limit of 6000 tokens per minute; retry in 10 s"
    )
    clock.advance(10)
    assert limiter.check("ci", limits, 3000).allowed


def test_the_longer_wait_of_two_short_dimensions_is_the_retry(limiter: RateLimiter) -> None:
    limits = Limits(rpm=1, tpm=600)  # a request a minute, 10 tokens a second
    assert limiter.check("ci", limits, 590).allowed
    refused = limiter.check("ci", limits, 100)
    assert (refused.limit, refused.retry_after_seconds) == ("requests", 60.0)
    assert header(refused, "remaining-requests") == header(refused, "remaining-tokens") == "0"


def test_settle_gives_back_what_was_not_used(limiter: RateLimiter) -> None:
    limits = Limits(tpm=6000)
    assert limiter.check("ci", limits, 5000).allowed
    limiter.settle("ci", limits, estimated=5000, actual=1000)
    assert header(limiter.check("ci", limits, 5000), "remaining-tokens") == "0"
    limiter.settle("ci", limits, estimated=5000, actual=0)
    limiter.settle("ci", limits, estimated=5000, actual=0)
    assert header(limiter.check("ci", limits, 0), "remaining-tokens") == "6000", "never above"


def test_settle_takes_more_when_the_answer_used_more(limiter: RateLimiter) -> None:
    limits = Limits(tpm=6000)
    assert limiter.check("ci", limits, 6000).allowed
    limiter.settle("ci", limits, estimated=6000, actual=9000)  # 3000 in debt, 100 a second
    refused = limiter.check("ci", limits, 1)
    assert refused.retry_after_seconds == 30.01
    assert header(refused, "reset-tokens") == "1m30s"
    limiter.settle("ci", Limits(rpm=5), estimated=1, actual=10**6)  # no tpm: nothing to settle
    assert limiter.check("ci", Limits(rpm=5), 10**6).allowed


def test_a_request_larger_than_the_tpm_can_never_fit(limiter: RateLimiter) -> None:
    limits = Limits(rpm=10, tpm=1000)
    refused = limiter.check("ci", limits, 1001)
    assert (refused.allowed, refused.limit, refused.retry_after_seconds) == (False, "tokens", None)
    assert refused.message == (
        "client 'ci' asked for about 1001 tokens (input and maximum output), more than its "
        "limit of 1000 tokens per minute: it can never fit; ask for fewer tokens"
    )
    assert header(refused, "remaining-tokens") == "1000", "what truly remains: smaller ones fit"
    assert header(refused, "remaining-requests") == "10"
    assert limiter.check("ci", limits, 1000).allowed


def test_headers_are_openai_s_names_values_and_order(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    both = limiter.check("ci", Limits(rpm=60, tpm=6000), 100)
    assert both.headers == (
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "59"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-limit-tokens", "6000"),
        ("x-ratelimit-remaining-tokens", "5900"),
        ("x-ratelimit-reset-tokens", "1s"),
    )
    assert [name for name, _ in limiter.check("r", Limits(rpm=5), 1).headers] == [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ]
    assert [name for name, _ in limiter.check("t", Limits(tpm=5), 1).headers] == [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ]
    limits = Limits(rpm=120)  # two a second
    for _ in range(120):
        limiter.check("f", limits, 1)
    clock.advance(0.75)
    partial = limiter.check("f", limits, 1)  # 1.5 in the bucket, 0.5 left
    assert header(partial, "remaining-requests") == "0", "whole requests, rounded down"
    assert header(partial, "reset-requests") == "59.75s"


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0001, "1ms"),
        (0.059, "59ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (2.007, "2.007s"),  # 2007.0000000000002 ms in floating point: not rounded up
        (4.03, "4.03s"),
        (8.64, "8.64s"),
        (12.3456, "12.346s"),
        (59.9991, "1m0s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3723.25, "1h2m3.25s"),
    ],
)
def test_reset_durations_are_written_as_openai_writes_them(seconds: float, written: str) -> None:
    assert reset_duration(seconds) == written


def test_tenants_have_their_own_buckets(limiter: RateLimiter) -> None:
    limits = Limits(rpm=1, tpm=100)
    assert limiter.check("a", limits, 100).allowed
    assert not limiter.check("a", limits, 1).allowed
    limiter.settle("a", limits, estimated=100, actual=200)
    verdict = limiter.check("b", limits, 100)
    assert verdict.allowed
    assert header(verdict, "remaining-tokens") == "0"
    assert header(verdict, "reset-tokens") == "1m0s"


@settings(max_examples=100, deadline=None)
@given(
    rpm=st.integers(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 5), st.integers(1, 5)), min_size=1, max_size=60),
)
def test_no_span_admits_more_than_the_limit_plus_its_refill(
    rpm: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    admitted_at: list[float] = []
    for pause, burst in steps:
        clock.advance(pause)
        for _ in range(burst):
            verdict = limiter.check("ci", Limits(rpm=rpm), 1)
            if verdict.allowed:
                admitted_at.append(clock.now)
            else:
                assert verdict.retry_after_seconds is not None
                assert verdict.retry_after_seconds >= 0.001
    for i, start in enumerate(admitted_at):
        for j in range(i, len(admitted_at)):
            span = admitted_at[j] - start
            assert j - i + 1 <= rpm + span * rpm / 60 + 1e-6


# -- shared through Redis ---------------------------------------------------------------------


@pytest.fixture
def real_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


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


def pttl(server: RedisServer, key: str) -> int:
    return int(server.command("PTTL", key)[1:-2])


async def test_two_replicas_share_one_bucket(
    real_redis: RedisServer, client: Callable[[], Redis]
) -> None:
    # the replicas' own clocks disagree wildly: the buckets run on Redis's time
    a = RedisRateLimiter(client(), "t:", timeout=1, clock=FakeClock(0))
    b = RedisRateLimiter(client(), "t:", timeout=1, clock=FakeClock(10**6))
    limits = Limits(rpm=3, tpm=600)
    verdicts = [await replica.check("ci", limits, 100) for replica in (a, b, a)]
    assert [header(v, "remaining-requests") for v in verdicts] == ["2", "1", "0"]
    assert [header(v, "remaining-tokens") for v in verdicts] == ["500", "400", "300"]
    refused = await b.check("ci", limits, 100)
    assert (refused.allowed, refused.limit) == (False, "requests")
    assert refused.retry_after_seconds is not None and 19 < refused.retry_after_seconds <= 20
    assert (await b.check("other", limits, 100)).allowed, "another tenant, another bucket"
    assert 0 < pttl(real_redis, "t:ratelimit:ci:requests") <= 61_000, "expires when full again"
    assert 0 < pttl(real_redis, "t:ratelimit:ci:tokens") <= 31_000


async def test_settling_on_one_replica_gives_back_to_all(client: Callable[[], Redis]) -> None:
    a = RedisRateLimiter(client(), "t:", timeout=1)
    b = RedisRateLimiter(client(), "t:", timeout=1)
    limits = Limits(tpm=60)  # one token a second
    assert (await a.check("ci", limits, 50)).allowed
    assert not (await b.check("ci", limits, 20)).allowed
    await b.settle("ci", limits, estimated=50, actual=10)
    assert header(await a.check("ci", limits, 20), "remaining-tokens") == "30"
    await a.settle("ci", limits, estimated=20, actual=80)  # 30 - 60: 30 in debt
    refused = await b.check("ci", limits, 1)
    assert refused.retry_after_seconds is not None and 30 < refused.retry_after_seconds <= 31
    reset = header(refused, "reset-tokens")  # 90 s to full, less the few ms this test took
    assert reset == "1m30s" or reset.startswith("1m29."), reset


async def test_redis_and_local_limits_decide_alike(
    client: Callable[[], Redis], logs: list[str]
) -> None:
    shared = RedisRateLimiter(client(), "t:", timeout=1)
    local = RateLimiter(clock=FakeClock())
    limits = Limits(rpm=4, tpm=60)
    for tokens in (20, 30, 15, 61, 5, 1, 1):
        there, here = await shared.check("ci", limits, tokens), local.check("ci", limits, tokens)
        assert (there.allowed, there.limit) == (here.allowed, here.limit), tokens
        for name in ("limit-requests", "remaining-requests", "limit-tokens", "remaining-tokens"):
            assert header(there, name) == header(here, name), (tokens, name)
        assert (there.retry_after_seconds is None) == (here.retry_after_seconds is None)
        await shared.settle("ci", limits, tokens, tokens - 1)
        local.settle("ci", limits, tokens, tokens - 1)
    assert logs == [], "every verdict came from Redis"


async def test_a_dead_redis_falls_back_to_local_limits_with_one_warning(
    real_redis: RedisServer, client: Callable[[], Redis], logs: list[str]
) -> None:
    clock = FakeClock()
    limiter = RedisRateLimiter(client(), "t:", timeout=0.5, clock=clock)
    limits = Limits(rpm=2, tpm=1000)
    assert header(await limiter.check("ci", limits, 10), "remaining-requests") == "1"  # Redis
    real_redis.kill()
    verdicts = [await limiter.check("ci", limits, 10) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False], "a full local bucket of 2"
    await limiter.settle("ci", limits, estimated=10, actual=5)
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
    await limiter.settle("ci", Limits(rpm=3), 1, 10)
    await redis.aclose()
    assert logs == []
