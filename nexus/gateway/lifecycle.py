"""The gateway's running life: the two connection pools (httpx for health probes, aiohttp for the
relay), shared state, the health-check loop, mDNS discovery, with ``[tracing]`` on the trace
exporter, and, with a translated backend configured, LiteLLM's import in a thread. Everything
started here stops when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
from loguru import logger

from nexus.backends.state import ProbeResult
from nexus.config import BackendConfig, NexusConfig
from nexus.config.kinds import Transport
from nexus.discovery import MdnsDiscovery
from nexus.gateway.attempts import Attempts
from nexus.gateway.opener import UpstreamOpener
from nexus.gateway.ratelimit_redis import RedisRateLimiter
from nexus.health.checker import HealthChecker
from nexus.health.probes import ShowCache, probe_all
from nexus.state.ledger import Ledger, MemoryLedger
from nexus.state.usage_path import usage_file
from nexus.upstream.relay import relay_session

if TYPE_CHECKING:
    from nexus.gateway.service import Gateway
    from nexus.observability.tracing import Tracing
    from nexus.state import SharedState
    from nexus.state.quality_redis import SharedQuality


@asynccontextmanager
async def run_gateway(
    gateway: Gateway,
) -> AsyncIterator[tuple[Attempts, HealthChecker, SharedState | None]]:
    """Start ``gateway``'s pools and background work; yield its attempts, health checker and
    shared state (None with the memory backend)."""
    config = gateway.config
    timeout = httpx.Timeout(
        config.server.request_timeout_seconds, connect=config.server.connect_timeout_seconds
    )
    # idle probe connections are dropped after 2 s, before the 5 s keep-alive of uvicorn-based
    # backends can close one just as a probe reuses it
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=2.0)
    async with (
        httpx.AsyncClient(transport=gateway.transport, timeout=timeout, limits=limits) as client,
        relay_session(connect_timeout=config.server.connect_timeout_seconds) as session,
    ):
        shared = await _start_shared_state(gateway)
        redis = _redis(config) if shared is not None else None  # for limits and the ledger
        limiter = _shared_limiter(gateway, redis) if redis is not None else None
        if limiter is not None:
            await limiter.start()
        gateway.shared_limiter = limiter
        ledger = _ledger(gateway, redis)
        await ledger.start()
        gateway.ledger = ledger
        gateway.tracing = _tracing(config)
        attempts = Attempts(
            gateway.registry,
            gateway.opener
            or UpstreamOpener(
                session,
                gateway.environ,
                fetch_remote_images=gateway.config.security.fetch_remote_images,
            ),
            gateway.prices,
            request_timeout=config.server.request_timeout_seconds,
            clock=gateway.clock,
            admission=shared,
            quality=gateway.quality,
        )
        checker = _health_checker(gateway, client)
        checker.start()
        discovery = _discovery(gateway, checker)
        await discovery.start()
        translated = _warm_up_translation(config)
        ticking = _refresh_quality(gateway, _shared_quality(gateway, redis))
        try:
            yield attempts, checker, shared
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking  # not mid-sync when Redis closes below
            await discovery.stop()
            await checker.stop()
            if shared is not None:
                await shared.stop()
            if limiter is not None:
                gateway.shared_limiter = None
                await limiter.aclose()
            await ledger.stop()
            await _stop_tracing(gateway)
            if redis is not None:
                await redis.aclose()
            if translated is not None:
                await translated
            if _TRANSLATED in sys.modules:  # LiteLLM was used (a configured or bridged backend)
                await _translated_module().shutdown()


def _tracing(config: NexusConfig) -> Tracing | None:
    """With ``[tracing] enabled``, the tracer provider and its OTLP exporter (OpenTelemetry is
    imported only then)."""
    if not config.tracing.enabled:
        return None
    from nexus.observability.tracing import Tracing

    return Tracing.create(config.tracing)


async def _stop_tracing(gateway: Gateway) -> None:
    """Export the spans still queued, then stop the exporter's thread (off the event loop:
    an unreachable collector blocks up to the exporter's timeout)."""
    tracing, gateway.tracing = gateway.tracing, None
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)


def _shared_quality(gateway: Gateway, redis: Any) -> SharedQuality | None:
    if redis is None:
        return None
    from nexus.state.quality_redis import SharedQuality

    state = gateway.config.state
    return SharedQuality(
        redis,
        state.key_prefix,
        interval=gateway.config.quality.metrics_interval_seconds,
        timeout=state.sync_timeout_seconds,
        clock=gateway.clock,
    )


def _refresh_quality(gateway: Gateway, shared: SharedQuality | None) -> asyncio.Task[None]:
    """Every ``metrics_interval_seconds``, recompute the quality figures time alone changed (old
    buckets leaving the routing window: the request path only recomputes what it recorded), and
    exchange them with the other replicas on Redis."""
    interval = gateway.config.quality.metrics_interval_seconds

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            if shared is not None:
                await shared.sync(gateway.quality)
            gateway.quality.refresh()

    return asyncio.get_running_loop().create_task(tick(), name="quality-refresh")


def _health_checker(gateway: Gateway, client: httpx.AsyncClient) -> HealthChecker:
    config = gateway.config.health_check
    cache = ShowCache()

    async def probe(backends: Sequence[BackendConfig]) -> dict[str, ProbeResult]:
        return await probe_all(
            backends,
            client,
            timeout=config.timeout_seconds,
            environ=gateway.environ,
            show_cache=cache,
        )

    return HealthChecker(
        gateway.registry,
        probe,
        interval=config.interval_seconds,
        enabled=config.enabled,
        clock=gateway.clock,
    )


async def _start_shared_state(gateway: Gateway) -> SharedState | None:
    """With ``[state] backend = "redis"``, share backend state with the other replicas (the
    redis client is imported only then); with the default memory backend, nothing."""
    config = gateway.config.state
    if config.backend != "redis":
        return None
    from nexus.state import create_shared_state

    stats = gateway.observability.stats
    shared = create_shared_state(config, gateway.registry, stats, clock=gateway.clock)
    await shared.start()
    return shared


def _redis(config: NexusConfig) -> Any:
    """A Redis client for the shared rate limits and the usage ledger (closed at the end)."""
    from nexus.state.store import redis_client

    state = config.state
    return redis_client(
        state.redis_url.get_secret_value(), socket_timeout=state.sync_timeout_seconds
    )


def _shared_limiter(gateway: Gateway, redis: Any) -> RedisRateLimiter | None:
    """With a client with rpm or tpm, the limits shared by every replica on ``redis``."""
    config = gateway.config
    if not any(c.rpm is not None or c.tpm is not None for c in config.clients):
        return None
    state = config.state
    return RedisRateLimiter(
        redis,
        state.key_prefix,
        timeout=state.acquire_timeout_seconds,
        interval=state.sync_interval_seconds,
        clock=gateway.clock,
    )


def _ledger(gateway: Gateway, redis: Any) -> Ledger:
    """The usage ledger: on ``redis`` with the redis backend, else the SQLite file of
    ``[state] usage_path`` (by default nexus-usage.db when a budget is set), else memory."""
    state = gateway.config.state
    interval = gateway.config.routing.budget.reconciliation_interval_secs
    if redis is not None:
        from nexus.state.ledger_redis import RedisLedger

        timeout = state.sync_timeout_seconds
        return RedisLedger(redis, state.key_prefix, flush_interval=interval, timeout=timeout)
    path = usage_file(gateway.config)
    if path is None:
        return MemoryLedger()
    from nexus.state.ledger_sqlite import SqliteLedger

    logger.info("usage and spend are kept in {}", path.resolve())
    return SqliteLedger(path, flush_interval=interval)


def _warm_up_translation(config: NexusConfig) -> asyncio.Task[None] | None:
    """With a translated backend configured, import LiteLLM in a thread (about 3 s) while the
    gateway already answers; with local backends only, LiteLLM is never imported."""
    if not any(b.kind.transport is Transport.TRANSLATED for b in config.backends):
        return None

    def warm_up() -> None:
        try:
            _translated_module().warm_up()
        except Exception:  # the first translated request will try again and say why
            logger.exception("LiteLLM warm-up failed")

    return asyncio.get_running_loop().create_task(
        asyncio.to_thread(warm_up), name="litellm-warm-up"
    )


_TRANSLATED = "nexus.upstream.translated"


def _translated_module() -> ModuleType:
    import nexus.upstream.translated as translated  # the LiteLLM border: only when configured

    return translated


def _discovery(gateway: Gateway, checker: HealthChecker) -> MdnsDiscovery:
    """mDNS discovery feeding the registry; a discovered backend is probed at once."""
    registry = gateway.registry
    tasks: set[asyncio.Task[None]] = set()

    def added(backend: BackendConfig) -> None:
        registry.add(backend, discovered=True)
        task = asyncio.get_running_loop().create_task(checker.probe([backend]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return MdnsDiscovery(
        gateway.config.discovery,
        on_added=added,
        on_removed=registry.remove,
        registered=lambda: {backend.name: backend.url for backend in registry.configs()},
    )
