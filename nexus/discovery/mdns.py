"""Browsing mDNS for local backends: :class:`MdnsDiscovery` watches the configured service types
and reports backends appearing and disappearing through callbacks the app provides. The
translation of one service into a backend is :func:`nexus.discovery.service.backend_from_service`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from loguru import logger
from zeroconf import InterfaceChoice, ServiceInfo, ServiceListener, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from nexus.config.model import BackendConfig, DiscoveryConfig
from nexus.discovery.service import backend_from_service, normalized_url, unique_name

#: How long one service resolution may wait for answers.
RESOLVE_TIMEOUT_MS = 3000

#: (service type, full service name): how zeroconf identifies one announced service.
ServiceKey = tuple[str, str]
#: Resolves one announced service; None when it cannot be resolved.
Resolver = Callable[[str, str], Awaitable[ServiceInfo | None]]
Sleeper = Callable[[float], Awaitable[object]]
_T = TypeVar("_T")


class MdnsDiscovery(ServiceListener):
    """Browses ``config.service_types`` and reports local backends to the app.

    - ``on_added(backend)`` when a service resolves to a backend, unless its URL (normalised by
      :func:`normalized_url`) is already registered: static config, or an earlier service, wins.
      A name already in use by another URL gets a suffix (``Studio Mac-2``).
    - ``on_removed(name)`` ``grace_period_seconds`` after a service disappears; a re-announcement
      within the grace period cancels the removal.
    - an update that changes the backend (address, port, type, path) is reported as
      ``on_removed(old name)`` then ``on_added(new backend)``, usually under the same name.

    ``registered()`` returns name -> URL of every backend the app has registered (discovered ones
    included or not). Callbacks run on the event loop and must not block; an exception they raise
    is logged and does not stop discovery. ``stop()`` reports no removals: pending ones are
    cancelled. ``resolver`` and ``sleep`` are seams for tests.
    """

    def __init__(
        self,
        config: DiscoveryConfig,
        *,
        on_added: Callable[[BackendConfig], None],
        on_removed: Callable[[str], None],
        registered: Callable[[], Mapping[str, str]],
        interfaces: Sequence[str] | None = None,
        resolver: Resolver | None = None,
        sleep: Sleeper = asyncio.sleep,
    ) -> None:
        self._config = config
        self._on_added = on_added
        self._on_removed = on_removed
        self._registered = registered
        self._interfaces = interfaces
        self._resolver = resolver or self._resolve
        self._sleep = sleep
        self._found: dict[ServiceKey, BackendConfig] = {}
        self._resolving: dict[ServiceKey, asyncio.Task[None]] = {}
        self._removals: dict[ServiceKey, asyncio.Task[None]] = {}
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        """True while the browser is active."""
        return self._browser is not None

    async def start(self) -> None:
        """Open the multicast sockets and start browsing; returns at once, never waits for the
        network. When discovery is disabled it does nothing; when the sockets cannot be opened
        (no interface, no permission) it logs one warning and leaves discovery off."""
        if not self._config.enabled or self._stopped or self.running:
            return
        interfaces = InterfaceChoice.All if self._interfaces is None else list(self._interfaces)
        types = list(self._config.service_types)
        zeroconf: AsyncZeroconf | None = None
        try:
            zeroconf = AsyncZeroconf(interfaces=interfaces)
            browser = AsyncServiceBrowser(zeroconf.zeroconf, types, listener=self)
        # zeroconf raises OSError, ValueError, RuntimeError or its own errors here; whichever it
        # is, the gateway must keep running without discovery.
        except Exception as exc:
            logger.warning("mDNS discovery is off: cannot start multicast ({})", exc)
            if zeroconf is not None:
                await zeroconf.async_close()
            return
        self._zeroconf, self._browser = zeroconf, browser
        logger.info("mDNS discovery browsing {}", ", ".join(types))

    async def stop(self) -> None:
        """Cancel pending resolutions and removals, stop browsing and close the sockets.
        Idempotent; a stopped instance ignores further events and cannot be restarted."""
        self._stopped = True
        tasks = [*self._resolving.values(), *self._removals.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        browser, zeroconf = self._browser, self._zeroconf
        self._browser = self._zeroconf = None
        if browser is not None:
            await browser.async_cancel()
        if zeroconf is not None:
            await zeroconf.async_close()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        """zeroconf listener: a service appeared; resolve it in the background."""
        self._announced((type_, name))

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        """zeroconf listener: a service changed; resolve it again in the background."""
        self._announced((type_, name))

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        """zeroconf listener: a service said goodbye or expired; remove it after the grace."""
        key = (type_, name)
        if self._stopped:
            return
        _cancel(self._resolving.pop(key, None))
        if key not in self._found or key in self._removals:
            return
        if self._config.grace_period_seconds == 0:
            self._forget(key)
        else:
            self._track(self._removals, key, self._expire(key))

    def _announced(self, key: ServiceKey) -> None:
        if self._stopped:
            return
        _cancel(self._removals.pop(key, None))
        _cancel(self._resolving.pop(key, None))
        self._track(self._resolving, key, self._resolve_and_apply(key))

    async def _resolve(self, service_type: str, name: str) -> ServiceInfo | None:
        if self._zeroconf is None:
            return None
        info = AsyncServiceInfo(service_type, name)
        found = await info.async_request(self._zeroconf.zeroconf, RESOLVE_TIMEOUT_MS)
        return info if found else None

    async def _resolve_and_apply(self, key: ServiceKey) -> None:
        try:
            info = await self._resolver(*key)
        except Exception as exc:  # a resolution failure must not end the browser's work
            logger.warning("mDNS service {} could not be resolved: {}", key[1], exc)
            return
        backend = None if info is None else backend_from_service(key[0], info)
        if backend is None:
            logger.debug("mDNS service {} has no usable address or port", key[1])
            return
        self._apply(key, backend)

    def _apply(self, key: ServiceKey, backend: BackendConfig) -> None:
        """Add, replace or drop the backend of ``key`` given everything else registered."""
        current = self._found.get(key)
        others = self._others(key)
        if normalized_url(backend.url) in others.values():
            logger.info("mDNS service {} skipped: {} is already registered", key[1], backend.url)
            self._forget(key)
            return
        backend = backend.model_copy(update={"name": unique_name(backend.name, others)})
        if backend == current:
            return
        if current is not None:
            self._notify(self._on_removed, current.name)
        self._found[key] = backend
        logger.info("mDNS discovered backend {} at {} ({})", backend.name, backend.url, key[1])
        self._notify(self._on_added, backend)

    def _others(self, key: ServiceKey) -> dict[str, str]:
        """Name -> normalised URL of every registered backend except the one of ``key``."""
        entries = dict(self._registered())
        entries.update((found.name, found.url) for found in self._found.values())
        current = self._found.get(key)
        if current is not None:
            entries.pop(current.name, None)
        return {name: normalized_url(url) for name, url in entries.items()}

    async def _expire(self, key: ServiceKey) -> None:
        await self._sleep(self._config.grace_period_seconds)
        self._forget(key)

    def _forget(self, key: ServiceKey) -> None:
        backend = self._found.pop(key, None)
        if backend is not None:
            logger.info("mDNS backend {} removed (service {})", backend.name, key[1])
            self._notify(self._on_removed, backend.name)

    def _track(
        self,
        tasks: dict[ServiceKey, asyncio.Task[None]],
        key: ServiceKey,
        work: Coroutine[Any, Any, None],
    ) -> None:
        """Run ``work`` as the task of ``key`` in ``tasks``; it leaves ``tasks`` when done."""
        task = asyncio.get_running_loop().create_task(work)
        tasks[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if tasks.get(key) is finished:
                del tasks[key]

        task.add_done_callback(done)

    @staticmethod
    def _notify(callback: Callable[[_T], None], argument: _T) -> None:
        try:
            callback(argument)
        except Exception:  # the app's bug; discovery of other services goes on
            logger.exception("mDNS discovery callback failed for {!r}", argument)


def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
