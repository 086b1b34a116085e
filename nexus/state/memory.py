"""The :class:`~nexus.state.store.Store` contract in this process's memory: the Lua scripts of
:mod:`nexus.state.scripts`, step for step, on an injected clock.

It shares nothing between processes, so no setting selects it (``[state] backend = "memory"``
needs no store at all; ``"redis"`` uses :class:`~nexus.state.store.RedisStore`). It lets
:class:`~nexus.state.shared.SharedState` run in tests with no server, on a clock the test moves.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nexus.state.store import STATS_TTL_SECONDS, TickReply, TickRequest


@dataclass(slots=True)
class _Expiring:
    """A Redis key's value and expiry (ms): it is gone once the time is past ``expires``."""

    members: dict[str, int] = field(default_factory=dict)
    expires: int | None = None

    def gone(self, now: int) -> bool:
        return self.expires is not None and now > self.expires


class MemoryStore:
    """One cluster's shared state, as Redis would hold it under one key prefix: health records,
    cooldown ends, lease sets (lease id -> expiry) and counters, with the times in milliseconds
    of ``clock`` (seconds, like :func:`time.monotonic`) where Redis reads its own ``TIME``.

    Each call yields to the event loop once (as a round trip would), then runs to the end without
    another ``await``, so it is atomic like a script. ``timeout`` is accepted and never reached;
    nothing here raises :class:`~nexus.errors.StoreUnavailable`.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._health: dict[str, str] = {}  # backend -> JSON record of the last status change
        self._cooldowns: dict[str, int] = {}  # backend -> end of its cooldown
        self._leases: dict[str, _Expiring] = {}  # backend -> lease id -> expiry
        self._stats: dict[str, int] = {}  # the cluster's counters
        self._replicas: dict[str, _Expiring] = {}  # replica -> its counters as last published

    async def tick(self, request: TickRequest, *, timeout: float) -> TickReply:
        """The ``TICK`` script."""
        await asyncio.sleep(0)
        now = self._now()
        self._health.update(request.health)
        for name, ms in request.cooldowns:
            self._cooldowns[name] = max(now + ms, self._cooldowns.get(name, 0))
        left = {name: end - now for name, end in self._cooldowns.items()}
        self._cooldowns = {name: now + ms for name, ms in left.items() if ms > 0}
        prefix = request.replica + ":"
        others: dict[str, int] = {}
        for ops in request.leases:
            leases = self._live_leases(ops.backend, now)
            leases.members.update(dict.fromkeys(ops.add, now + request.lease_ttl_ms))
            for lease_id in ops.remove:
                leases.members.pop(lease_id, None)
            others[ops.backend] = _not_starting_with(leases.members, prefix)
            leases.expires = now + 2 * request.lease_ttl_ms
        self._count(request.replica, request.stats, now)
        return TickReply(
            health=dict(self._health),
            cooldowns={name: ms / 1000 for name, ms in left.items() if ms > 0},
            others=others,
            stats=dict(self._stats),
        )

    async def admit(
        self, backend: str, lease_id: str, *, limit: int, ttl_ms: int, prefix: str, timeout: float
    ) -> tuple[bool, int]:
        """The ``ADMIT`` script: a lease already in is admitted again (not refreshed)."""
        await asyncio.sleep(0)
        now = self._now()
        leases = self._live_leases(backend, now)
        if lease_id in leases.members:
            return True, 0
        if len(leases.members) >= limit:
            return False, _not_starting_with(leases.members, prefix)
        leases.members[lease_id] = now + ttl_ms
        leases.expires = now + 2 * ttl_ms
        return True, 0

    async def remove_leases(self, leases: dict[str, list[str]], *, timeout: float) -> None:
        await asyncio.sleep(0)
        for backend, ids in leases.items():
            held = self._leases.get(backend)
            if held is not None:
                for lease_id in ids:
                    held.members.pop(lease_id, None)

    async def aclose(self) -> None:
        pass

    def _now(self) -> int:
        return math.floor(self._clock() * 1000)

    def _live_leases(self, backend: str, now: int) -> _Expiring:
        """``backend``'s lease set after ``ZREMRANGEBYSCORE -inf now`` (empty if its key
        expired). An empty set stands for a missing key: every write sets its expiry again."""
        leases = self._leases.get(backend)
        if leases is None or leases.gone(now):
            leases = self._leases[backend] = _Expiring()
        leases.members = {lease_id: ends for lease_id, ends in leases.members.items() if ends > now}
        return leases

    def _count(self, replica: str, totals: dict[str, int], now: int) -> None:
        """Add what grew since ``replica`` last published its totals; its own copy expires
        :data:`STATS_TTL_SECONDS` after its last sync (then its totals count again)."""
        mine = self._replicas.get(replica)
        if mine is None or mine.gone(now):
            mine = _Expiring()
        for name, total in totals.items():
            old = mine.members.get(name, 0)
            if total > old:
                self._stats[name] = self._stats.get(name, 0) + total - old
                mine.members[name] = total
        if mine.members:
            mine.expires = now + STATS_TTL_SECONDS * 1000
            self._replicas[replica] = mine
        else:
            self._replicas.pop(replica, None)


def _not_starting_with(members: dict[str, int], prefix: str) -> int:
    """How many lease ids are not ``prefix``'s: the other replicas' leases."""
    return sum(1 for lease_id in members if not lease_id.startswith(prefix))
