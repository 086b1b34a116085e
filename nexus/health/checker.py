"""The probe loop: one concurrent probe cycle at start, then one every ``interval_seconds``.

It runs as a task in the app's lifespan, never blocks request handling (probes are awaited
concurrently, each bounded by its own timeout) and stops cleanly on shutdown. With background
checking disabled, one cycle still runs at start so that models are known; passive health (request
outcomes) keeps working either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from loguru import logger

from nexus.backends.registry import Registry
from nexus.backends.state import ProbeResult
from nexus.config.model import BackendConfig

ProbeAll = Callable[[Sequence[BackendConfig]], Awaitable[dict[str, ProbeResult]]]


class HealthChecker:
    """Drives ``probe_all`` over the registry's backends and records the results."""

    def __init__(
        self,
        registry: Registry,
        probe_all: ProbeAll,
        *,
        interval: float,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._probe_all = probe_all
        self._interval = interval
        self._enabled = enabled
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def probe(self, backends: Sequence[BackendConfig]) -> None:
        """Probe ``backends`` now and record each result."""
        if not backends:
            return
        started = self._clock()
        results = await self._probe_all(backends)
        next_probe_at = started + self._interval if self._enabled else None
        for name, result in results.items():
            changed = self._registry.record_probe(name, result, next_probe_at=next_probe_at)
            if changed is not None:
                reason = "" if result.ok else f": {result.error}"
                logger.bind(backend=name).info("backend {} is {}{}", name, changed, reason)

    async def run_cycle(self) -> None:
        await self.probe(self._registry.configs())

    async def _loop(self) -> None:
        while True:
            started = self._clock()
            try:
                await self.run_cycle()
            except Exception:  # a bug in one cycle must not end health checking
                logger.exception("health check cycle failed")
            if not self._enabled:
                return
            await asyncio.sleep(max(0.0, self._interval - (self._clock() - started)))

    def start(self) -> None:
        """Start the loop as a background task (the first cycle begins at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
