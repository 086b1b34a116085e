"""The store behind shared state: what :class:`~nexus.state.shared.SharedState` asks of it
(:class:`Store`, the messages it exchanges) and the real one, :class:`RedisStore`, the only
module that imports ``redis`` (lazily, when ``[state] backend = "redis"``). Every call is bounded
in time and every failure, whatever its kind, becomes :class:`StoreUnavailable`; callers fall back
to local state. :class:`~nexus.state.memory.MemoryStore` is the same contract in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from nexus.errors import StoreUnavailable
from nexus.state.scripts import ADMIT, TICK

#: How long a replica's own counters outlive its last sync (then they are only in the total).
STATS_TTL_SECONDS = 86_400


@dataclass(slots=True)
class LeaseOps:
    """One backend's lease set: ids to add or refresh, ids to remove."""

    backend: str
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TickRequest:
    """What one replica publishes in one sync."""

    replica: str
    lease_ttl_ms: int
    health: list[tuple[str, str]]  # backend, JSON record
    cooldowns: list[tuple[str, int]]  # backend, milliseconds from now
    leases: list[LeaseOps]  # one per backend, whose counts come back
    stats: dict[str, int]  # this replica's counters (totals)


@dataclass(frozen=True, slots=True)
class TickReply:
    """What the cluster knows after one sync."""

    health: dict[str, str]  # backend -> JSON record of the last status change anywhere
    cooldowns: dict[str, float]  # backend -> seconds left
    others: dict[str, int]  # backend -> live leases of the other replicas
    stats: dict[str, int]  # the cluster's counters


class Store(Protocol):
    """Where replicas share state, with the semantics of :mod:`nexus.state.scripts` (each call
    atomic, time read from the store's own clock). Every method answers within ``timeout`` or
    raises :class:`StoreUnavailable`, and raises nothing else."""

    async def tick(self, request: TickRequest, *, timeout: float) -> TickReply:
        """Publish ``request`` and read the cluster's state, atomically (the ``TICK`` script)."""
        ...

    async def admit(
        self, backend: str, lease_id: str, *, limit: int, ttl_ms: int, prefix: str, timeout: float
    ) -> tuple[bool, int]:
        """Add ``lease_id`` (expiring in ``ttl_ms``) to ``backend``'s leases unless ``limit``
        live ones are there (the ``ADMIT`` script). Returns ``(True, 0)`` when admitted or
        already in, ``(False, live leases not starting with prefix)`` when refused."""
        ...

    async def remove_leases(self, leases: dict[str, list[str]], *, timeout: float) -> None:
        """Remove released leases (ids by backend)."""
        ...

    async def aclose(self) -> None:
        """Let go of connections; never raises."""
        ...


def redis_client(url: str, *, socket_timeout: float) -> Any:
    """A ``redis.asyncio`` client for ``url`` (not connected yet), retrying a call once at once."""
    try:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # a dependency of nexus; missing only in odd installs
        raise StoreUnavailable(f"the redis package is not installed ({exc})") from None
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
    )


class RedisStore:
    """An async Redis client with the two scripts registered. A call is retried once at once
    (a pooled connection may have died with a restarted server), within the same time limit;
    beyond that the next sync tries again."""

    def __init__(self, url: str, prefix: str, *, socket_timeout: float) -> None:
        self._redis = redis_client(url, socket_timeout=socket_timeout)
        self._prefix = prefix
        self._tick = self._redis.register_script(TICK)
        self._admit = self._redis.register_script(ADMIT)

    def lease_key(self, backend: str) -> str:
        return f"{self._prefix}leases:{backend}"

    async def tick(self, request: TickRequest, *, timeout: float) -> TickReply:
        """Publish ``request`` and read the cluster's state, in one atomic script."""
        p = self._prefix
        keys = [f"{p}health", f"{p}cooldowns", f"{p}stats", f"{p}stats:{request.replica}"]
        keys += [self.lease_key(ops.backend) for ops in request.leases]
        payload = {
            "replica": request.replica,
            "ttl_ms": request.lease_ttl_ms,
            "stats_ttl": STATS_TTL_SECONDS,
            "health": [list(item) for item in request.health],
            "cooldowns": [list(item) for item in request.cooldowns],
            "leases": [[ops.add, ops.remove] for ops in request.leases],
            "stats": [[name, total] for name, total in request.stats.items()],
        }
        raw = await self._call(self._tick(keys=keys, args=[orjson.dumps(payload)]), timeout)
        health, cooldowns, others, stats = raw
        return TickReply(
            health={k: v.decode() for k, v in _pairs(health)},
            cooldowns={k: int(v) / 1000 for k, v in _pairs(cooldowns)},
            others={ops.backend: int(n) for ops, n in zip(request.leases, others, strict=True)},
            stats={k: int(v) for k, v in _pairs(stats)},
        )

    async def admit(
        self, backend: str, lease_id: str, *, limit: int, ttl_ms: int, prefix: str, timeout: float
    ) -> tuple[bool, int]:
        """Add ``lease_id`` to ``backend``'s lease set unless ``limit`` live leases are there.
        Returns (admitted, other replicas' live leases when refused)."""
        args: list[str | int] = [lease_id, limit, ttl_ms, prefix]
        admitted, others = await self._call(
            self._admit(keys=[self.lease_key(backend)], args=args), timeout
        )
        return bool(admitted), int(others)

    async def remove_leases(self, leases: dict[str, list[str]], *, timeout: float) -> None:
        """Remove released leases (ids by backend) in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for backend, ids in leases.items():
            if ids:
                pipe.zrem(self.lease_key(backend), *ids)
        await self._call(pipe.execute(), timeout)

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        except Exception:  # closing a broken connection must not fail shutdown
            pass

    async def _call(self, call: Any, timeout: float) -> Any:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            message = f"no answer within {timeout * 1000:g} ms"
            raise StoreUnavailable(message, timed_out=True) from None
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None


def _pairs(flat: Sequence[Any]) -> list[tuple[str, Any]]:
    """A flat ``[key, value, key, value, ...]`` reply as pairs, keys decoded."""
    return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
