"""Shared state between replicas through Redis: one :class:`SharedState` per app.

It is three things at once:

- the registry's :class:`~nexus.backends.registry.StateListener`: local status changes,
  cooldowns and leases are only recorded (no I/O on the request path);
- the gateway's :class:`~nexus.gateway.attempts.Admission`: an attempt on a backend with
  ``max_concurrent`` is admitted by one atomic script, waiting at most ``acquire_timeout_seconds``;
- a background loop that syncs every ``sync_interval_seconds`` (at once after a local status
  change or cooldown): it publishes what this replica saw, refreshes its leases, and applies what
  the others saw (status changes, cooldowns, in-flight counts, counters).

When Redis fails or is slow, the replica goes on with its local state: admission is skipped (the
local count decides), the other replicas' in-flight counts are dropped, and one warning is logged;
when a sync succeeds again, one line says so and everything is published again. An admission
that fails lets its request go on the local count; so do the requests of a pause after it, which
doubles while admissions keep failing (1 s up to 60 s), so that a slow Redis costs a request at
most ``acquire_timeout_seconds`` now and then. A refused connection counts as Redis being down
(logged once, as above); a slow answer only as a slow admission (``admission_fallbacks`` in the
``process`` part of ``/v1/stats``; the syncs, with their longer limit, tell whether Redis is down).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import suppress
from enum import Enum
from typing import Any

import orjson
from loguru import logger

from nexus.backends.registry import Lease, Registry
from nexus.backends.state import BackendView, Status
from nexus.config.model import StateConfig
from nexus.errors import BackendAtCapacity, StoreUnavailable
from nexus.observability.stats import Stats
from nexus.state.store import (
    LeaseOps,
    RedisStore,
    Store,
    TickReply,
    TickRequest,
)

#: Shortest pause between two syncs, even when woken by many events at once.
MIN_GAP_SECONDS = 0.02
#: First and longest pause of admission after it failed.
ADMISSION_PAUSE_SECONDS = (1.0, 60.0)


class _Lease(Enum):
    ADMITTING = "admitting"  # waiting for admission: not published by syncs
    LOCAL = "local"  # to be added by the next sync
    SENT = "sent"  # (maybe) in Redis: refreshed by syncs, removed by the next one when released
    ADMITTED = "admitted"  # in Redis by admission: refreshed by syncs, removed at once
    REFUSED = "refused"  # admission refused: never in Redis


class SharedState:
    """Registry listener, admission gate and sync loop for ``[state] backend = "redis"``, over
    any :class:`~nexus.state.store.Store` (:func:`create_shared_state` gives it Redis's; tests
    give it a :class:`~nexus.state.memory.MemoryStore` and the same fake ``clock``)."""

    def __init__(
        self,
        config: StateConfig,
        registry: Registry,
        stats: Stats,
        store: Store,
        *,
        clock: Callable[[], float],
        replica: str | None = None,
    ) -> None:
        self.replica = replica or uuid.uuid4().hex[:12]
        self.available: bool | None = None  # None until the first sync
        self._config = config
        self._registry = registry
        self._stats = stats
        self._store = store
        self._clock = clock
        self._ttl_ms = int(config.lease_ttl_seconds * 1000)
        self._events = 0
        self._health: dict[str, str] = {}  # backend -> record to publish
        self._applied: dict[str, str] = {}  # backend -> id of the record applied or published
        self._cooldowns: dict[str, float] = {}  # backend -> monotonic end, to publish
        self._leases: dict[str, dict[int, _Lease]] = {}
        self._gone: dict[str, set[int]] = {}  # released leases to remove from Redis
        self._freed: dict[str, set[int]] = {}  # released admitted leases, removed at once
        self._free = asyncio.Event()
        self._others: dict[str, int] = {}  # backend -> other replicas' leases, last known
        self._admission_pause = 0.0
        self._admission_resumes = 0.0  # monotonic
        self._admission_fallbacks = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._scope(shared=False)

    # -- the registry's listener (request path: record only) --------------------------------------

    def status_changed(self, name: str, status: Status, error: str | None) -> None:
        self._events += 1
        event = f"{self.replica}:{self._events}"
        record = {"id": event, "status": status.value, "error": error, "by": self.replica}
        self._health[name] = orjson.dumps(record).decode()
        self._applied[name] = event
        self._wake.set()

    def cooled_down(self, name: str, seconds: float) -> None:
        ends = self._clock() + seconds
        self._cooldowns[name] = max(ends, self._cooldowns.get(name, ends))
        self._wake.set()

    def leased(self, name: str, lease_id: int) -> None:
        leases = self._leases.setdefault(name, {})
        leases[lease_id] = _Lease.LOCAL

    def released(self, name: str, lease_id: int) -> None:
        state = self._leases.get(name, {}).pop(lease_id, None)
        if state is _Lease.ADMITTED or state is _Lease.ADMITTING:
            self._freed.setdefault(name, set()).add(lease_id)  # capacity: give it back now
            self._free.set()
        elif state is _Lease.SENT:
            self._gone.setdefault(name, set()).add(lease_id)

    # -- the gateway's admission ---------------------------------------------------------------

    async def admit(self, backend: BackendView, lease: Lease) -> None:
        """Admit ``lease`` on ``backend`` (which has ``max_concurrent``) across replicas, or raise
        :class:`BackendAtCapacity`. Without Redis, returns at once: the planner's local count
        decided."""
        limit, name = backend.max_concurrent, backend.name
        leases = self._leases.get(name)
        if limit is None or not self.available or leases is None or lease.id not in leases:
            return
        if self._clock() < self._admission_resumes:
            return
        leases[lease.id] = _Lease.ADMITTING
        try:
            admitted, others = await self._store.admit(
                name,
                self._lease_id(lease.id),
                limit=limit,
                ttl_ms=self._ttl_ms,
                prefix=self.replica + ":",
                timeout=self._config.acquire_timeout_seconds,
            )
        except StoreUnavailable as exc:
            self._set_if_live(name, lease.id, _Lease.SENT)  # it may have been added
            self._admission_failed(name, exc)
            return
        self._admission_pause = 0.0
        if admitted:
            self._set_if_live(name, lease.id, _Lease.ADMITTED)
            return
        self._set_if_live(name, lease.id, _Lease.REFUSED)
        self._others[name] = others  # the planner skips it from now on
        self._registry.set_shared_in_flight(self._others)
        raise BackendAtCapacity(
            f"backend '{name}' is at capacity across replicas (max_concurrent {limit}, "
            f"{others} in flight through other replicas)",
            backend=name,
        )

    def _admission_failed(self, name: str, exc: StoreUnavailable) -> None:
        low, high = ADMISSION_PAUSE_SECONDS
        self._admission_pause = min(max(2 * self._admission_pause, low), high)
        self._admission_resumes = self._clock() + self._admission_pause
        self._admission_fallbacks += 1
        if exc.timed_out:
            logger.bind(backend=name).debug(
                "admission on backend {} fell back to the local count: {}; paused for {:g} s",
                name,
                exc,
                self._admission_pause,
            )
            self._scope(shared=bool(self.available))
        else:
            self._down(f"admission on backend '{name}': {exc}")

    # -- the loop --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Sync once (bounded in time; a failure is logged and the replica starts anyway), then
        keep syncing in the background."""
        self._registry.listener = self
        await self.sync_once()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="shared-state-sync"),
            loop.create_task(self._give_back(), name="shared-state-release"),
        ]

    async def stop(self) -> None:
        """Stop the loops, publish a last time (leases released, final counts), close."""
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._gone_now(self._freed)
        if self.available:
            await self.sync_once()
        self._registry.listener = None
        await self._store.aclose()

    async def _run(self) -> None:
        interval = self._config.sync_interval_seconds
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.sync_once()
            except Exception:  # a bug must not stop sharing for good; the next sync retries
                logger.exception("shared state sync failed")
            with suppress(TimeoutError):
                async with asyncio.timeout(max(interval - (loop.time() - started), 0)):
                    await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(max(MIN_GAP_SECONDS - (loop.time() - started), 0))

    async def _give_back(self) -> None:
        """Remove released admitted leases from Redis as soon as they are released (one call at
        a time, batching what was released meanwhile); on failure the next sync does it."""
        while True:
            await self._free.wait()
            self._free.clear()
            freed, self._freed = self._freed, {}
            if not self.available:
                self._gone_now(freed)
                continue
            ids = {name: [self._lease_id(i) for i in leases] for name, leases in freed.items()}
            try:
                await self._store.remove_leases(ids, timeout=self._config.sync_timeout_seconds)
            except StoreUnavailable:
                self._gone_now(freed)

    def _gone_now(self, released: dict[str, set[int]]) -> None:
        for name, leases in released.items():
            self._gone.setdefault(name, set()).update(leases)

    async def sync_once(self) -> bool:
        """Publish and apply once. Returns whether Redis answered."""
        request = self._request()
        try:
            reply = await self._store.tick(request, timeout=self._config.sync_timeout_seconds)
        except StoreUnavailable as exc:
            self._unsent(request)
            self._down(str(exc))
            return False
        self._up()
        self._apply(reply, request.stats)
        return True

    # -- building and applying -------------------------------------------------------------------

    def _request(self) -> TickRequest:
        health, self._health = self._health, {}
        now = self._clock()
        cooldowns = [(n, int((end - now) * 1000)) for n, end in self._cooldowns.items()]
        self._cooldowns = {}
        self._gone_now(self._freed)  # not given back yet: this sync does it
        self._freed = {}
        gone, self._gone = self._gone, {}
        ops: list[LeaseOps] = []
        for name in (config.name for config in self._registry.configs()):
            ops.append(LeaseOps(name, remove=[self._lease_id(i) for i in gone.get(name, ())]))
            for lease_id, state in self._leases.get(name, {}).items():
                if state is _Lease.LOCAL or state is _Lease.SENT or state is _Lease.ADMITTED:
                    ops[-1].add.append(self._lease_id(lease_id))
                    if state is _Lease.LOCAL:
                        self._leases[name][lease_id] = _Lease.SENT
        return TickRequest(
            replica=self.replica,
            lease_ttl_ms=self._ttl_ms,
            health=list(health.items()),
            cooldowns=[(name, ms) for name, ms in cooldowns if ms > 0],
            leases=ops,
            stats=self._stats.flat(),
        )

    def _unsent(self, request: TickRequest) -> None:
        """Keep what a failed sync should have published for the next one (newer events win)."""
        self._health = {**dict(request.health), **self._health}
        now = self._clock()
        for name, ms in request.cooldowns:
            self._cooldowns[name] = max(self._cooldowns.get(name, 0.0), now + ms / 1000)
        for ops in request.leases:
            ids = {int(lease.rsplit(":", 1)[1]) for lease in ops.remove}
            self._gone.setdefault(ops.backend, set()).update(ids)

    def _apply(self, reply: TickReply, sent: dict[str, int]) -> None:
        for name, raw in reply.health.items():
            record: dict[str, Any] = orjson.loads(raw)
            if self._applied.get(name) == record["id"] or name not in self._registry:
                continue
            self._applied[name] = record["id"]
            status, by = Status(record["status"]), record["by"]
            error = None if record["error"] is None else f"{record['error']} (replica {by})"
            if by != self.replica and self._registry.apply_shared_status(name, status, error):
                logger.bind(backend=name).info(
                    "backend {} is {} (seen by replica {}): {}", name, status, by, error or "ok"
                )
        for name, seconds in reply.cooldowns.items():
            self._registry.apply_shared_cooldown(name, seconds)
        self._others = dict(reply.others)
        self._registry.set_shared_in_flight(self._others)
        self._stats.remote = {
            field: total - sent.get(field, 0)
            for field, total in reply.stats.items()
            if total > sent.get(field, 0)
        }

    # -- availability ----------------------------------------------------------------------------

    def _down(self, reason: str) -> None:
        if self.available is not False:
            logger.warning(
                "shared state in Redis unavailable ({}): replica {} uses its local state "
                "until Redis answers again",
                reason,
                self.replica,
            )
        self.available = False
        self._others = {}
        self._registry.set_shared_in_flight(self._others)
        self._scope(shared=False)

    def _up(self) -> None:
        if self.available is False:
            logger.info("shared state in Redis is available again (replica {})", self.replica)
        elif self.available is None:
            logger.info("sharing backend state through Redis as replica {}", self.replica)
        self.available = True
        self._scope(shared=True)

    def _scope(self, *, shared: bool) -> None:
        self._stats.scope = {
            "state": "redis",
            "replica": self.replica,
            "shared": shared,
            "admission_fallbacks": self._admission_fallbacks,
        }

    # -- small parts -----------------------------------------------------------------------------

    def _lease_id(self, lease_id: int) -> str:
        return f"{self.replica}:{lease_id}"

    def _set_if_live(self, name: str, lease_id: int, state: _Lease) -> None:
        leases = self._leases.get(name)
        if leases is not None and lease_id in leases:
            leases[lease_id] = state


def create_shared_state(
    config: StateConfig, registry: Registry, stats: Stats, *, clock: Callable[[], float]
) -> SharedState:
    """A :class:`SharedState` on a new Redis client for ``config.redis_url`` (not connected yet:
    :meth:`SharedState.start` does the first sync)."""
    store = RedisStore(
        config.redis_url.get_secret_value(),
        config.key_prefix,
        socket_timeout=config.sync_timeout_seconds,
    )
    return SharedState(config, registry, stats, store, clock=clock)
