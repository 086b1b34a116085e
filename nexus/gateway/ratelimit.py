"""Per-tenant rate limits: requests per minute (``rpm``) and tokens per minute (``tpm``).

**Algorithm.** One token bucket per tenant and dimension (requests, tokens): its capacity is the
per-minute limit, it refills continuously at ``limit / 60`` per second and starts full. A request
takes one unit from the requests bucket and its estimated tokens (input + maximum output) from the
tokens bucket, both or neither; once its usage is known, :meth:`RateLimiter.settle` gives back the
difference (or takes more, which may leave the bucket below zero: the debt refills like the rest).
A bucket rather than a fixed window: a fixed window lets a client send its whole limit at the end
of one window and again at the start of the next (twice the limit within a second); a bucket never
holds more than one minute's worth, and it has no window edge at which every client retries at
once. The headers still make sense: ``remaining`` is what is in the bucket, ``reset`` the time until
it is full again (OpenAI's own meaning: "until the rate limit resets to its initial state").

**Headers.** Exactly OpenAI's names, only for the dimensions that have a limit:
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``. ``remaining`` is the whole units left
after this request (floor, never negative); ``reset`` is written as OpenAI (Go) writes durations,
rounded up to the millisecond: ``0s``, ``59ms`` under a second, ``1s``, ``8.64s`` (up to three
decimals) under a minute, ``1m30.5s``, ``6m0s`` above, ``1h0m0s`` for a deep debt. A refused
request's headers show ``remaining`` 0 for the dimension(s) it does not fit in, and nothing is
taken. Its ``retry_after_seconds`` is the time until it fits, rounded up to the millisecond and at
least 1 ms (the caller writes ``Retry-After`` as its ceiling in whole seconds, ``retry-after-ms``
in milliseconds). A request whose own estimate exceeds the ``tpm`` can never fit: it is refused
with ``retry_after_seconds`` None, and its headers show what truly remains (waiting does not help
it, and smaller requests still fit).

**Replicas.** :class:`RateLimiter` is one process's limits, on the request path (no I/O, no
awaits). :class:`~nexus.gateway.ratelimit_redis.RedisRateLimiter` shares the buckets between
replicas through Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

REQUESTS = "requests"
TOKENS = "tokens"
#: A request fits when the bucket lacks at most this fraction of its capacity: floating-point noise
#: (and a retry waited for to the millisecond, rounded down by at most 1 ns) never refuses it.
_SLACK = 1e-9
#: Each dimension's header names: limit, remaining, reset.
_NAMES = {
    dimension: tuple(
        f"x-ratelimit-{field}-{dimension}" for field in ("limit", "remaining", "reset")
    )
    for dimension in (REQUESTS, TOKENS)
}


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's limits; each, when set, is at least 1."""

    rpm: int | None = None  # requests per minute; None = unlimited
    tpm: int | None = None  # tokens per minute; None = unlimited


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go on, and what to tell the client either way."""

    allowed: bool
    headers: tuple[tuple[str, str], ...]  # OpenAI's x-ratelimit-*; empty when no limit is set
    retry_after_seconds: float | None  # refused: the wait until the request fits (None: never)
    message: str | None  # refused: why, for the client
    limit: str | None  # refused: "requests" or "tokens"


UNLIMITED = Verdict(True, (), None, None, None)


def reset_duration(seconds: float) -> str:
    """``seconds`` as OpenAI writes ``x-ratelimit-reset-*`` (Go's durations), rounded up to the
    millisecond: ``0s``, ``59ms``, ``1s``, ``8.64s``, ``1m30.5s``, ``6m0s``, ``1h0m0s``."""
    ms = _ceil_ms(seconds)
    if ms < 1000:
        return f"{ms}ms" if ms > 0 else "0s"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, fraction = divmod(ms, 1000)
    decimals = f".{fraction:03d}".rstrip("0") if fraction else ""
    if hours:
        return f"{hours}h{minutes}m{whole}{decimals}s"
    return f"{minutes}m{whole}{decimals}s" if minutes else f"{whole}{decimals}s"


def _ceil_ms(seconds: float) -> int:
    """Whole milliseconds, rounded up (a nanosecond of floating-point noise is not rounded up)."""
    return math.ceil(seconds * 1000 - 1e-6)


def fits(capacity: int | None, level: float, amount: float) -> bool:
    return capacity is None or level + capacity * _SLACK >= amount


def _wait(capacity: int | None, level: float, amount: float) -> float:
    """Seconds until ``amount`` fits in a bucket at ``level`` (0 when it fits now)."""
    if capacity is None or fits(capacity, level, amount):
        return 0.0
    return (amount - level) * 60 / capacity


def _whole(level: float) -> int:
    """The whole units in a bucket at ``level``: floored, except that a level a hair below a
    whole number (floating-point noise) counts as that number."""
    nearest = round(level)
    return nearest if abs(level - nearest) <= 1e-9 * max(1.0, abs(level)) else math.floor(level)


def _dimension(
    dimension: str, capacity: int, level: float, short: bool
) -> tuple[tuple[str, str], ...]:
    limit, remaining, reset = _NAMES[dimension]
    left = 0 if short else max(0, _whole(level))
    return (
        (limit, str(capacity)),
        (remaining, str(left)),
        (reset, reset_duration((capacity - level) * 60 / capacity)),
    )


def _headers(
    limits: Limits, requests: float, tokens: float, short: tuple[bool, bool] = (False, False)
) -> tuple[tuple[str, str], ...]:
    """The headers for buckets at ``requests`` and ``tokens`` (levels after this request)."""
    headers: tuple[tuple[str, str], ...] = ()
    if limits.rpm is not None:
        headers = _dimension(REQUESTS, limits.rpm, requests, short[0])
    if limits.tpm is not None:
        headers += _dimension(TOKENS, limits.tpm, tokens, short[1])
    return headers


def verdict(
    tenant: str, limits: Limits, tokens: int, levels: tuple[float, float], admitted: bool
) -> Verdict:
    """The verdict on a request of ``tokens`` that found the buckets at ``levels`` (requests,
    tokens; ignored for a dimension without a limit) and was ``admitted`` or not."""
    rpm, tpm = limits.rpm, limits.tpm
    requests, available = levels
    if admitted:
        return Verdict(True, _headers(limits, requests - 1, available - tokens), None, None, None)
    if tpm is not None and tokens > tpm:
        message = (
            f"client '{tenant}' asked for about {tokens} tokens (input and maximum output), more "
            f"than its limit of {tpm} tokens per minute: it can never fit; ask for fewer tokens"
        )
        return Verdict(False, _headers(limits, requests, available), None, message, TOKENS)
    request_wait, token_wait = _wait(rpm, requests, 1), _wait(tpm, available, tokens)
    short = (request_wait > 0, token_wait > 0)
    dimension, capacity = (TOKENS, tpm) if token_wait > request_wait else (REQUESTS, rpm)
    retry = max(_ceil_ms(max(request_wait, token_wait)), 1) / 1000  # 1 ms: a guard, see _SLACK
    message = (
        f"client '{tenant}' is over its limit of {capacity} {dimension} per minute; "
        f"retry in {retry:g} s"
    )
    return Verdict(False, _headers(limits, requests, available, short), retry, message, dimension)


class _Bucket:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


def _refill(buckets: dict[str, _Bucket], tenant: str, capacity: int, now: float) -> _Bucket:
    """``tenant``'s bucket in ``buckets``, refilled until ``now`` (new ones start full)."""
    bucket = buckets.get(tenant)
    if bucket is None:
        bucket = buckets[tenant] = _Bucket(capacity, now)
    else:
        refilled = bucket.level + max(0.0, now - bucket.at) * capacity / 60
        bucket.level, bucket.at = min(capacity, refilled), now
    return bucket


class RateLimiter:
    """Every tenant's buckets in this process (one entry per configured tenant that was limited).
    ``clock``: monotonic seconds, injectable."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}

    def check(self, tenant: str, limits: Limits, tokens: int) -> Verdict:
        """Admit one request estimated at ``tokens`` tokens (input + max output) or refuse it.
        When admitted, the request and its tokens are consumed. A request whose own estimate
        exceeds the ``tpm`` is refused with a message that says so (it can never fit),
        ``retry_after_seconds`` None."""
        rpm, tpm = limits.rpm, limits.tpm
        if rpm is None and tpm is None:
            return UNLIMITED
        now = self._clock()
        requests = None if rpm is None else _refill(self._requests, tenant, rpm, now)
        budget = None if tpm is None else _refill(self._tokens, tenant, tpm, now)
        levels = (requests.level if requests else 0.0, budget.level if budget else 0.0)
        admitted = fits(rpm, levels[0], 1) and fits(tpm, levels[1], tokens)
        if admitted:
            if requests is not None:
                requests.level -= 1
            if budget is not None:
                budget.level -= tokens
        return verdict(tenant, limits, tokens, levels, admitted)

    def settle(self, tenant: str, limits: Limits, estimated: int, actual: int) -> None:
        """Once the answer's usage is known: give back (or take more of) the token budget
        (``actual - estimated``)."""
        if limits.tpm is None or actual == estimated:
            return
        bucket = _refill(self._tokens, tenant, limits.tpm, self._clock())
        bucket.level = min(limits.tpm, bucket.level - (actual - estimated))
