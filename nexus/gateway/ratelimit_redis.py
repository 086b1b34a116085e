"""Rate limits shared by every replica through Redis, without a Redis call for most requests.

Each tenant's buckets live in Redis (hashes ``<prefix>ratelimit:<tenant>:requests|tokens``, time
from Redis ``TIME`` so that replicas with skewed clocks agree; a key expires once its bucket would
be full again). A replica takes from a bucket in advance: when it needs to, it takes the request's
amount plus an *allowance* of :data:`ALLOWANCE_SHARE` of the capacity, in one atomic script, and
admits the next requests from its allowance without asking Redis. Near the limit the allowance
shrinks to what is left, so a limit is never passed across replicas; a replica may hold at most
one allowance that the others cannot use until it gives it back (each sync returns an allowance
left unused for a whole interval, and so does a stop). A limit of 60 rpm asks Redis every fourth
request; a limit of 60,000 every 3,000th.

Token corrections (:meth:`RedisRateLimiter.settle`) are summed and sent every ``interval``
(``[state] sync_interval_seconds``) by a background sync.

When Redis fails or answers later than ``timeout``, requests are decided by a local
:class:`~nexus.gateway.ratelimit.RateLimiter` (each replica then limits on its own), corrections
are kept for the next sync, one warning is logged, and Redis is left alone for a pause that
doubles while it keeps failing (1 s up to 60 s); when it answers again, one line says so.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from nexus.gateway.ratelimit import (
    REQUESTS,
    TOKENS,
    UNLIMITED,
    Limits,
    RateLimiter,
    Verdict,
    verdict,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: After Redis failed: the first and the longest pause before it is asked again.
PAUSE_SECONDS = (1.0, 60.0)
#: The share of a bucket's capacity a replica takes in advance (at least 1 unit).
ALLOWANCE_SHARE = 0.05

#: Refill the buckets ``KEYS`` (hashes: ``level``, ``at`` in Redis seconds) and apply, per key,
#: ARGV ``capacity, correction, amount, allowance``: the correction (tokens used beyond or below
#: their estimate; an allowance given back is a negative one) whatever the level; then, when
#: ARGV[1] is "1" and every amount fits, each amount plus as much of its allowance as is there.
#: Returns ``[1 when taken else 0, then per key: level before the amounts, allowance taken]``
#: (strings: Lua numbers return as integers). 1e-9 is ``ratelimit._SLACK``.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels, fits = {}, true
for i, key in ipairs(KEYS) do
  local capacity, correction = tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i - 1])
  local level, at = unpack(redis.call('HMGET', key, 'level', 'at'))
  if level then
    level = math.min(capacity, tonumber(level) + math.max(0, now - tonumber(at)) * capacity / 60)
  else
    level = capacity
  end
  levels[i] = math.min(capacity, level - correction)
  if levels[i] + capacity * 1e-9 < tonumber(ARGV[4 * i]) then fits = false end
end
local taken = ARGV[1] == '1' and fits
local reply = {taken and 1 or 0}
for i, key in ipairs(KEYS) do
  local capacity, amount = tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i])
  local level, extra = levels[i], 0
  if taken then
    extra = math.max(0, math.min(tonumber(ARGV[4 * i + 1]), math.floor(level - amount)))
    level = level - amount - extra
  end
  redis.call('HSET', key, 'level', string.format('%.17g', level), 'at', string.format('%.17g', now))
  redis.call('PEXPIRE', key, math.ceil((capacity - level) * 60000 / capacity) + 1000)
  reply[2 * i] = string.format('%.17g', levels[i])
  reply[2 * i + 1] = string.format('%.17g', extra)
end
return reply
"""


@dataclass(slots=True)
class _Share:
    """What this replica holds of one shared bucket."""

    capacity: int
    allowance: float = 0.0  # taken from Redis in advance, not used yet
    correction: float = 0.0  # tokens to give back (negative) or take, sent with the next call
    level: float = 0.0  # the shared level Redis last reported (after what was taken)
    used: bool = False  # the allowance served a request since the last sync

    @property
    def chunk(self) -> int:
        return max(1, math.floor(self.capacity * ALLOWANCE_SHARE))


Wanted = list[tuple[str, _Share, int]]  # (key, share, amount) per limited dimension


class RedisRateLimiter:
    """The tenants' buckets shared through Redis (see the module docstring). ``redis_client``:
    a ``redis.asyncio`` client; every call is bounded by ``timeout`` seconds. ``interval``: the
    background sync's period. ``clock``: monotonic seconds (the pauses, the local fallback)."""

    def __init__(
        self,
        redis_client: Redis,
        prefix: str,
        *,
        timeout: float,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix = prefix
        self._timeout = timeout
        self._interval = interval
        self._clock = clock
        self._script = redis_client.register_script(_SCRIPT)
        self._shares: dict[str, _Share] = {}
        self._local = RateLimiter(clock=clock)
        self._failing = False
        self._pause = 0.0
        self._resumes = 0.0  # Redis is not asked before (monotonic)
        self._task: asyncio.Task[None] | None = None

    async def check(self, tenant: str, limits: Limits, tokens: int) -> Verdict:
        """Admit one request estimated at ``tokens`` tokens or refuse it (as
        :meth:`nexus.gateway.ratelimit.RateLimiter.check`): from this replica's allowance when
        it covers the request, else in Redis."""
        if limits.rpm is None and limits.tpm is None:
            return UNLIMITED
        wanted = self._wanted(tenant, limits, tokens)
        if all(share.allowance >= amount for _, share, amount in wanted):
            for _, share, amount in wanted:
                share.allowance -= amount
                share.used = True
            levels = [share.level + share.allowance + amount for _, share, amount in wanted]
            return self._verdict(tenant, limits, tokens, levels, True)
        reply = await self._call(wanted, take=True)
        if reply is None:
            return self._local.check(tenant, limits, tokens)
        taken, levels = reply
        return self._verdict(tenant, limits, tokens, levels, taken)

    def settle(self, tenant: str, limits: Limits, estimated: int, actual: int) -> None:
        """Correct the tokens a request took (sent with the next call to Redis)."""
        if limits.tpm is None or actual == estimated:
            return
        self._share(tenant, TOKENS, limits.tpm).correction += actual - estimated
        self._local.settle(tenant, limits, estimated, actual)

    async def start(self) -> None:
        """Start the background sync."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ratelimit-sync")

    async def aclose(self) -> None:
        """Give back every allowance, send the corrections, stop (the client is the caller's)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.sync(give_back=True)

    async def sync(self, *, give_back: bool = False) -> bool:
        """Send the corrections, and give back each allowance unused since the last sync (every
        allowance with ``give_back``); False when Redis failed."""
        wanted: Wanted = []
        for key, share in self._shares.items():
            if give_back or not share.used:
                share.correction -= share.allowance
                share.allowance = 0.0
            share.used = False
            if share.correction:
                wanted.append((key, share, 0))
        return not wanted or await self._call(wanted, take=False) is not None

    # -- inside -------------------------------------------------------------------------------

    def _wanted(self, tenant: str, limits: Limits, tokens: int) -> Wanted:
        wanted: Wanted = []
        if limits.rpm is not None:
            wanted.append((*self._keyed(tenant, REQUESTS, limits.rpm), 1))
        if limits.tpm is not None:
            wanted.append((*self._keyed(tenant, TOKENS, limits.tpm), tokens))
        return wanted

    def _keyed(self, tenant: str, dimension: str, capacity: int) -> tuple[str, _Share]:
        return self._key(tenant, dimension), self._share(tenant, dimension, capacity)

    def _key(self, tenant: str, dimension: str) -> str:
        return f"{self._prefix}ratelimit:{tenant}:{dimension}"

    def _share(self, tenant: str, dimension: str, capacity: int) -> _Share:
        key = self._key(tenant, dimension)
        share = self._shares.get(key)
        if share is None or share.capacity != capacity:
            share = self._shares[key] = _Share(capacity)
        return share

    @staticmethod
    def _verdict(
        tenant: str, limits: Limits, tokens: int, levels: list[float], taken: bool
    ) -> Verdict:
        requests = levels[0] if limits.rpm is not None else 0.0
        available = levels[-1] if limits.tpm is not None else 0.0
        return verdict(tenant, limits, tokens, (requests, available), taken)

    async def _call(self, wanted: Wanted, *, take: bool) -> tuple[bool, list[float]] | None:
        """One script call: the corrections, and (``take``) the amounts with an allowance each.
        (taken, each level before the amounts), or None when Redis failed, was slow or paused."""
        if self._clock() < self._resumes:
            return None
        sent = [share.correction for _, share, _ in wanted]
        args: list[str | int | float] = ["1" if take else "0"]
        for (_, share, amount), correction in zip(wanted, sent, strict=True):
            args += [share.capacity, correction, amount, share.chunk]
        try:
            async with asyncio.timeout(self._timeout):
                raw: Any = await self._script(keys=[key for key, _, _ in wanted], args=args)
            reply = [float(value) for value in raw]
            if len(reply) != 2 * len(wanted) + 1:
                raise ValueError(f"unexpected reply {raw!r}")
        except Exception as exc:  # whatever Redis does, the request goes on (limited locally)
            self._failed(exc)
            return None
        self._recovered()
        taken = reply[0] == 1
        for index, ((_, share, amount), correction) in enumerate(zip(wanted, sent, strict=True)):
            before, extra = reply[2 * index + 1], reply[2 * index + 2]
            share.correction -= correction
            share.allowance += extra
            share.level = before - (amount + extra if taken else 0)
        return taken, reply[1::2]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sync()

    def _recovered(self) -> None:
        if self._failing:
            self._failing, self._pause = False, 0.0
            logger.info("rate limits in Redis are available again: shared between replicas")

    def _failed(self, exc: Exception) -> None:
        first, longest = PAUSE_SECONDS
        self._pause = min(longest, max(first, self._pause * 2))
        self._resumes = self._clock() + self._pause
        if self._failing:
            return
        self._failing = True
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {self._timeout * 1000:g} ms"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "rate limits in Redis unavailable ({}): this replica limits clients on its own "
            "until Redis answers again",
            reason,
        )
