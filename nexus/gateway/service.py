"""The :class:`Gateway`: one typed service that owns the request's way. ``nexus/api/`` parses a
dialect's request, asks the gateway, and renders the outcome; nothing else is shared through the
web framework.

The gateway owns the backend registry, the routing policy, the attempts (through an injectable
:class:`~nexus.gateway.opener.Opener`), the observers (metrics, stats, history, the request log),
the clock, the random source and the round-robin counters. Its background work (health probes,
discovery, shared state, the LiteLLM warm-up, the trace exporter) runs inside
:meth:`Gateway.running`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from nexus.backends.quality import QualityStore
from nexus.backends.registry import Registry
from nexus.backends.transitions import Thresholds
from nexus.config import NexusConfig
from nexus.gateway.attempts import Attempts
from nexus.gateway.budgets import Budgets
from nexus.gateway.drain import Drain
from nexus.gateway.exchange import Exchange
from nexus.gateway.lifecycle import run_gateway
from nexus.gateway.opener import Opener
from nexus.gateway.queue import RequestQueue
from nexus.gateway.ratelimit import RateLimiter, Verdict
from nexus.gateway.ratelimit_redis import RedisRateLimiter
from nexus.gateway.tenants import Tenant
from nexus.health.checker import HealthChecker
from nexus.observability.events import Observer, Observers, RequestLog
from nexus.observability.hub import Observability
from nexus.pricing import PriceTable
from nexus.routing import (
    Rejection,
    RequestKind,
    Requirements,
    RoutePlan,
    RoutingPolicy,
    plan,
    requirements_from,
)
from nexus.state.ledger import Ledger, MemoryLedger

if TYPE_CHECKING:
    from nexus.observability.tracing import Tracing
    from nexus.state import SharedState


class Gateway:
    """Everything one app needs to route and serve requests.

    ``clock`` (monotonic seconds) is the only time source of routing, health, deadlines and
    durations; ``opener`` replaces the relay and LiteLLM (tests); ``transport`` replaces the
    health probes' HTTP transport (tests); ``environ`` is where API keys are read.
    """

    def __init__(
        self,
        config: NexusConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
        opener: Opener | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        drain: Drain | None = None,
    ) -> None:
        checks = config.health_check
        self.config = config
        self.clock = clock
        self.environ = environ
        self.started_at = clock()
        self.registry = Registry(
            config.backends,
            thresholds=Thresholds(
                checks.failure_threshold, checks.recovery_threshold, checks.interval_seconds
            ),
            clock=clock,
        )
        self.policy = RoutingPolicy.from_config(config)
        self.observability = Observability.create(lambda: (self.registry, self.policy))
        self.observer: Observer = Observers([RequestLog(), *self.observability.observers()])
        self.drain = drain or Drain()
        metrics = self.observability.metrics
        self.queue = RequestQueue(config.queue, self.registry, observe=metrics.queue_wait)
        metrics.watch_queue(self.queue.depth)
        self.registry.on_freed = self.queue.slot_freed
        self.drain.listeners.append(self.queue.close)
        self.prices = PriceTable(config.pricing)
        self.opener = opener
        self.transport = transport
        self.checker: HealthChecker | None = None  # while running
        self.shared: SharedState | None = None  # while running, with [state] backend = "redis"
        self._attempts: Attempts | None = None
        self.ledger: Ledger = MemoryLedger()  # replaced by the stored one while running
        self.budgets = Budgets(config, lambda: self.ledger)
        if self.budgets.active:
            self.observability.metrics.watch_budgets(self.budgets.rows)
        self.quality = QualityStore(config.quality, clock=clock)
        self.observability.metrics.watch_quality(self.quality)
        self.limiter = RateLimiter(clock=clock)
        self.shared_limiter: RedisRateLimiter | None = None  # while running, on Redis
        self.tracing: Tracing | None = None  # while running, with [tracing] enabled
        self._rotation = Counter[str]()
        self._rng = rng or random.Random()

    @property
    def attempts(self) -> Attempts:
        if self._attempts is None:
            raise RuntimeError("the gateway is not running (use `async with gateway.running()`)")
        return self._attempts

    @property
    def uptime_seconds(self) -> float:
        return self.clock() - self.started_at

    def exchange(self, kind: RequestKind, path: str, request_id: str) -> Exchange:
        """A new request of ``kind`` for the upstream API ``path`` (e.g. ``/chat/completions``)."""
        return Exchange(self, kind, path, request_id)

    def requirements(
        self, body: Mapping[str, Any], headers: Mapping[str, str], kind: RequestKind
    ) -> Requirements:
        """What the request needs (raises InvalidRequest, or RecursionError for deep bodies)."""
        return requirements_from(body, headers, self.policy, kind=kind)

    def plan(self, requirements: Requirements, *, advance: bool = True) -> RoutePlan | Rejection:
        """Plan over the registry's current snapshot. ``advance`` moves the model's round-robin
        counter (real requests do; ``GET /v1/route`` does not)."""
        rotation = self._rotation[requirements.model]
        if advance:
            self._rotation[requirements.model] += 1
        snapshot, now = self.registry.snapshot(), self.clock()
        started = time.perf_counter()
        result = plan(
            requirements,
            snapshot,
            self.policy,
            now=now,
            rotation=rotation,
            rng=self._rng,
            quality=self.quality.view(),
        )
        self.observability.metrics.planner_decision(time.perf_counter() - started)
        return result

    async def rate_check(self, tenant: Tenant, tokens: int) -> Verdict:
        """Take one request of ``tokens`` from ``tenant``'s limits (shared with the other
        replicas on Redis), or refuse it."""
        if self.shared_limiter is not None:
            return await self.shared_limiter.check(tenant.name, tenant.limits, tokens)
        return self.limiter.check(tenant.name, tenant.limits, tokens)

    def rate_settle(self, tenant: Tenant, estimated: int, actual: int) -> None:
        """Correct the tokens a request took from ``tenant``'s tpm once its usage is known."""
        limiter = self.shared_limiter or self.limiter
        limiter.settle(tenant.name, tenant.limits, estimated, actual)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the connection pools and run the background work until the block ends."""
        async with run_gateway(self) as (attempts, checker, shared):
            self._attempts, self.checker, self.shared = attempts, checker, shared
            try:
                yield
            finally:
                self._attempts = None
