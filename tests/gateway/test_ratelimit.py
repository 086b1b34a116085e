"""Per-tenant rate limits: the in-process token buckets on a fake clock (admission, refill, the
retry wait, settling, OpenAI's headers). The buckets shared through Redis:
``test_ratelimit_redis.py``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.gateway.ratelimit import Limits, RateLimiter, Verdict, reset_duration
from tests.state.stores import FakeClock


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


def test_remaining_never_exceeds_a_huge_limit() -> None:
    limiter = RateLimiter(clock=FakeClock())
    verdict = limiter.check("ci", Limits(rpm=10**9, tpm=10**12), 100)
    assert header(verdict, "remaining-requests") == str(10**9 - 1)
    assert header(verdict, "remaining-tokens") == str(10**12 - 100)
