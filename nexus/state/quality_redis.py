"""Quality figures shared by replicas through Redis (``[state] backend = "redis"``): every
``metrics_interval_seconds`` each replica writes what :meth:`QualityStore.shared` gives and reads
the other replicas' (see :mod:`nexus.backends.quality`, "Replicas").

Keys (``<p>`` is the prefix):

- ``<p>quality:<replica>``: hash, field ``<backend>\\t<model>`` -> JSON ``[successes, errors,
  judged successes, judged errors, TTFT sum ms, TTFT count, ejected until (wall seconds) or
  null, reason or null]``; rewritten whole at each sync, expiring after three intervals;
- ``<p>quality:replicas``: sorted set of replica ids scored by their last sync (wall seconds);
  ids older than three intervals are dropped.

Each sync is two round trips bounded by ``timeout``. Redis down or slow: the replica goes on with
its own figures (the others' are dropped once they are older than three intervals), logged once
per outage.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from nexus.backends.quality import QualityStore, Shared

if TYPE_CHECKING:
    from redis.asyncio import Redis

_SEPARATOR = "\t"


class SharedQuality:
    """Syncs one :class:`QualityStore` with the other replicas' on ``redis`` (owned by the
    caller). ``clock`` is the store's monotonic clock; ``wall`` the wall clock replicas share."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        replica: str | None = None,
    ) -> None:
        self.replica = replica or uuid.uuid4().hex[:12]
        self._redis = redis
        self._prefix = prefix
        self._ttl = 3 * interval
        self._timeout = timeout
        self._clock, self._wall = clock, wall
        self._others_seen = 0.0  # wall time of the last successful read
        self._failing = False

    async def sync(self, store: QualityStore) -> None:
        """Publish this replica's figures, then take the others' (their sums)."""
        now = self._wall()
        offset = now - self._clock()
        try:
            async with asyncio.timeout(self._timeout):
                others = await self._exchange(store.shared(offset), now)
        except Exception as exc:  # Redis down, slow, or answering garbage: go on alone
            if not self._failing:
                logger.warning("quality figures not shared (Redis unavailable: {})", exc)
                self._failing = True
            if now - self._others_seen > self._ttl:
                store.merge({}, offset)
            return
        if self._failing:
            logger.info("quality figures shared again")
            self._failing = False
        self._others_seen = now
        store.merge(others, offset)

    async def _exchange(
        self, mine: dict[tuple[str, str], Shared], now: float
    ) -> dict[tuple[str, str], Shared]:
        key, replicas = self._key(self.replica), f"{self._prefix}quality:replicas"
        seconds = max(1, round(self._ttl))
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        if mine:
            pipe.hset(key, mapping={_field(pair): _encode(sums) for pair, sums in mine.items()})
            pipe.expire(key, seconds)
        pipe.zadd(replicas, {self.replica: now})
        pipe.zremrangebyscore(replicas, "-inf", now - self._ttl)
        pipe.zrange(replicas, 0, -1)
        pipe.expire(replicas, seconds)
        *_, members, _ = await pipe.execute()
        names = [_text(member) for member in members if _text(member) != self.replica]
        if not names:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._key(name))
        summed: dict[tuple[str, str], Shared] = {}
        for fields in await pipe.execute():
            for field, value in fields.items():
                pair = _pair(_text(field))
                sums = _decode(value)
                summed[pair] = summed[pair].plus(sums) if pair in summed else sums
        return summed

    def _key(self, replica: str) -> str:
        return f"{self._prefix}quality:{replica}"


def _field(pair: tuple[str, str]) -> str:
    return f"{pair[0]}{_SEPARATOR}{pair[1]}"


def _pair(field: str) -> tuple[str, str]:
    backend, _, model = field.partition(_SEPARATOR)
    return backend, model


def _encode(sums: Shared) -> bytes:
    return orjson.dumps(
        [
            sums.successes,
            sums.errors,
            sums.judged_successes,
            sums.judged_errors,
            sums.ttft_sum,
            sums.ttft_count,
            sums.ejected_until,
            sums.reason,
        ]
    )


def _decode(value: bytes | str) -> Shared:
    items: list[Any] = orjson.loads(value)
    successes, errors, judged_successes, judged_errors, ttft_sum, ttft_count = (
        float(item) for item in items[:6]
    )
    return Shared(
        successes,
        errors,
        judged_successes,
        judged_errors,
        ttft_sum,
        ttft_count,
        ejected_until=None if items[6] is None else float(items[6]),
        reason=None if items[7] is None else str(items[7]),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
