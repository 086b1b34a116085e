"""The two stores behind :class:`SharedState`, as interchangeable test kits: the in-memory store
on a fake clock (no server, no waiting), and the Redis store on a real redis-server and the real
clock. A kit makes stores on one shared place, and can kill it (every key lost), start it again,
freeze it (calls time out) and thaw it; :meth:`StoreKit.advance` lets time pass."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from pydantic import SecretStr

from nexus.backends.registry import Registry
from nexus.config.model import StateConfig
from nexus.errors import StoreUnavailable
from nexus.observability.stats import Stats
from nexus.state import SharedState, create_shared_state
from nexus.state.memory import MemoryStore
from nexus.state.store import RedisStore, Store, TickReply, TickRequest
from tests.state.redis_server import RedisServer


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StoreKit(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def clock(self) -> Callable[[], float]: ...

    def store(self) -> Store: ...
    def shared(self, config: StateConfig, registry: Registry, stats: Stats) -> SharedState: ...
    def kill(self) -> None: ...
    def start(self) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    async def advance(self, seconds: float) -> None: ...


class MemoryKit:
    """One :class:`MemoryStore` shared by every store it makes, on a :class:`FakeClock`."""

    name = "memory"

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.server = MemoryStore(clock=self.clock)
        self.down = False
        self.frozen = False

    def store(self) -> Store:
        return _Switched(self)

    def shared(self, config: StateConfig, registry: Registry, stats: Stats) -> SharedState:
        return SharedState(config, registry, stats, self.store(), clock=self.clock)

    def kill(self) -> None:
        self.down = True

    def start(self) -> None:
        self.server, self.down = MemoryStore(clock=self.clock), False

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


class _Switched:
    """A client of a :class:`MemoryKit`'s store: refused while it is killed, timing out (the
    fake clock moves by the time limit) while it is frozen."""

    def __init__(self, kit: MemoryKit) -> None:
        self._kit = kit

    async def tick(self, request: TickRequest, *, timeout: float) -> TickReply:
        return await self._reachable(timeout).tick(request, timeout=timeout)

    async def admit(
        self, backend: str, lease_id: str, *, limit: int, ttl_ms: int, prefix: str, timeout: float
    ) -> tuple[bool, int]:
        return await self._reachable(timeout).admit(
            backend, lease_id, limit=limit, ttl_ms=ttl_ms, prefix=prefix, timeout=timeout
        )

    async def remove_leases(self, leases: dict[str, list[str]], *, timeout: float) -> None:
        await self._reachable(timeout).remove_leases(leases, timeout=timeout)

    async def aclose(self) -> None:
        pass

    def _reachable(self, timeout: float) -> MemoryStore:
        if self._kit.down:
            raise StoreUnavailable("ConnectionError: connection refused (store killed)")
        if self._kit.frozen:
            self._kit.clock.advance(timeout)
            raise StoreUnavailable(f"no answer within {timeout * 1000:g} ms", timed_out=True)
        return self._kit.server


class RedisKit:
    """A real redis-server; stores are :class:`RedisStore` clients, on the real clock."""

    name = "redis"

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.clock = time.monotonic
        self._stores: list[RedisStore] = []

    def store(self) -> Store:
        store = RedisStore(self.server.url, "t:", socket_timeout=1.0)
        self._stores.append(store)
        return store

    def shared(self, config: StateConfig, registry: Registry, stats: Stats) -> SharedState:
        config = config.model_copy(update={"redis_url": SecretStr(self.server.url)})
        return create_shared_state(config, registry, stats, clock=self.clock)

    def kill(self) -> None:
        self.server.kill()

    def start(self) -> None:
        self.server.start()

    def freeze(self) -> None:
        self.server.freeze()

    def thaw(self) -> None:
        self.server.thaw()

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def aclose(self) -> None:
        for store in self._stores:
            await store.aclose()
