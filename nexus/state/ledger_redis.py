"""The usage ledger in Redis, shared by replicas: each adds its deltas with atomic increments, and
reads everyone's totals back after its flush, so :meth:`~nexus.state.ledger.Ledger.usage` shows
the other replicas' charges within about one flush interval (two at worst).

Keys (``<p>`` is the prefix, ``<period>`` ``d:2026-12-05`` or ``m:2026-12``):

- ``<p>usage:<period>:t:<tenant>``: hash of the integer fields ``requests``, ``input_tokens``,
  ``output_tokens`` and ``spend_micros`` (US dollars x 10^6; HINCRBY, no float drift); the tenant
  ``*`` is every tenant. (``t:`` keeps a tenant named ``tenants`` apart from the set below.)
- ``<p>usage:<period>:tenants``: set of the tenants with usage in the period (every replica adds).
- ``<p>usage:batch:<replica>``: the number of the last batch the replica applied, so that a batch
  retried after a timeout is applied once.

Day keys expire 40 days after their last write, month keys 400 days. A batch is one Lua script
(atomic: all of it or nothing); then two round trips read the totals back. Every call is bounded
by ``timeout``; any failure keeps the batch for the next flush and is logged once per outage.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from nexus.errors import StoreUnavailable
from nexus.state.ledger import FIELDS, GLOBAL, Clock, StoredLedger, Table

if TYPE_CHECKING:
    from redis.asyncio import Redis

DAY_TTL_SECONDS = 40 * 86_400
MONTH_TTL_SECONDS = 400 * 86_400
#: How long a replica's last batch number is kept after its last write.
BATCH_TTL_SECONDS = 7 * 86_400

#: Apply one batch unless already applied. KEYS[1]: the replica's last batch number; KEYS[2..]:
#: the keys the ops name. ARGV: the batch number, the TTL of KEYS[1], then the ops as JSON:
#: ``["h", key index, ttl, requests, input_tokens, output_tokens, spend_micros]`` (increments,
#: as strings: Lua numbers are doubles) or ``["s", key index, ttl, tenant, ...]`` (set members).
#: Returns 1 when applied, 0 when the batch was applied before.
APPLY = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 0 end
local fields = {'requests', 'input_tokens', 'output_tokens', 'spend_micros'}
for _, op in ipairs(cjson.decode(ARGV[3])) do
  local key = KEYS[op[2]]
  if op[1] == 'h' then
    for i, field in ipairs(fields) do
      if op[3 + i] ~= '0' then redis.call('HINCRBY', key, field, op[3 + i]) end
    end
  else
    for i = 4, #op do redis.call('SADD', key, op[i]) end
  end
  redis.call('EXPIRE', key, op[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

T = TypeVar("T")


class RedisLedger(StoredLedger):
    """A :class:`~nexus.state.ledger.Ledger` in Redis through ``redis`` (an async client the
    caller owns and closes), keys under ``prefix``. Redis down or slow at :meth:`start` is logged
    and the replica starts from zero, loading the totals at the first flush that succeeds."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        flush_interval: float = 1.0,
        timeout: float = 1.0,
        clock: Clock = time.time,
        replica: str | None = None,
    ) -> None:
        super().__init__(flush_interval=flush_interval, clock=clock)
        self.replica = replica or uuid.uuid4().hex[:12]
        self.where = "Redis"
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout
        self._apply = redis.register_script(APPLY)

    def totals_key(self, period: str, tenant: str) -> str:
        return f"{self._prefix}usage:{period}:t:{tenant}"

    def tenants_key(self, period: str) -> str:
        return f"{self._prefix}usage:{period}:tenants"

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    async def _store(self, number: int, deltas: Table) -> None:
        keys = [f"{self._prefix}usage:batch:{self.replica}"]
        ops: list[list[Any]] = []
        for period, rows in deltas.items():
            ttl = DAY_TTL_SECONDS if period.startswith("d:") else MONTH_TTL_SECONDS
            names = [tenant for tenant in rows if tenant != GLOBAL]
            if names:
                keys.append(self.tenants_key(period))
                ops.append(["s", len(keys), ttl, *names])
            for tenant, counts in rows.items():
                keys.append(self.totals_key(period, tenant))
                ops.append(["h", len(keys), ttl, *(str(value) for value in counts)])
        args: list[int | bytes] = [number, BATCH_TTL_SECONDS, orjson.dumps(ops)]
        await self._call(self._apply(keys=keys, args=args))

    async def _load(self, wanted: Sequence[str]) -> Table:
        """The totals of every tenant known here or in the periods' tenant sets, and of ``*``."""
        pipe = self._redis.pipeline(transaction=False)
        for period in wanted:
            pipe.smembers(self.tenants_key(period))
        members = await self._call(pipe.execute())
        names = {
            period: sorted({GLOBAL, *self._tally.tenants(period), *map(_text, found)})
            for period, found in zip(wanted, members, strict=True)
        }
        pipe = self._redis.pipeline(transaction=True)  # one consistent snapshot
        for period in wanted:
            for tenant in names[period]:
                pipe.hgetall(self.totals_key(period, tenant))
        replies = iter(await self._call(pipe.execute()))
        stored: Table = {period: {} for period in wanted}
        for period in wanted:
            for tenant in names[period]:
                fields = {_text(k): int(v) for k, v in next(replies).items()}
                if fields:
                    stored[period][tenant] = [fields.get(name, 0) for name in FIELDS]
        return stored

    async def _call(self, call: Awaitable[T]) -> T:
        """``call`` within ``timeout``; every failure becomes :class:`StoreUnavailable`."""
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError:
            message = f"no answer within {self._timeout * 1000:g} ms"
            raise StoreUnavailable(message, timed_out=True) from None
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None


def _text(value: bytes | str) -> str:
    """A reply decoded (clients with or without ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else value
