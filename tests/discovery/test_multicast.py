"""End to end over real multicast on the loopback interface: a service registered by one
Zeroconf instance is found by MdnsDiscovery, and its removal is reported after the grace period.

Whether this machine delivers multicast is detected, not assumed: an independent plain zeroconf
browser watches the same registration. If neither it nor Nexus sees the service, the test is
skipped; if the plain browser sees it and Nexus does not, the test fails.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from zeroconf import ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from nexus.config.model import BackendConfig, DiscoveryConfig
from nexus.discovery import MdnsDiscovery

LOOPBACK = ["127.0.0.1"]
GRACE = 1


async def first(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def test_a_real_registration_is_discovered_and_removed_after_the_grace_period() -> None:
    # A type of our own per run, so concurrent runs on this machine do not see each other.
    service_type = f"_nx{uuid.uuid4().hex[:8]}._tcp.local."
    info = ServiceInfo(
        service_type,
        f"Test Box.{service_type}",
        port=18123,
        parsed_addresses=["127.0.0.1"],
        properties={"type": "vllm", "api_path": "/v1"},
        server="test-box.local.",
    )
    added: list[BackendConfig] = []
    removed: list[str] = []
    was_added, was_removed, probe_saw = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def on_added(backend: BackendConfig) -> None:
        added.append(backend)
        was_added.set()

    def on_removed(name: str) -> None:
        removed.append(name)
        was_removed.set()

    def probe(zeroconf: Zeroconf, service_type: str, name: str, state_change: object) -> None:
        if state_change is ServiceStateChange.Added:
            probe_saw.set()

    discovery = MdnsDiscovery(
        DiscoveryConfig(service_types=(service_type,), grace_period_seconds=GRACE),
        on_added=on_added,
        on_removed=on_removed,
        registered=dict,
        interfaces=LOOPBACK,
    )
    try:
        publisher = AsyncZeroconf(interfaces=LOOPBACK)
    except OSError as exc:
        pytest.skip(f"cannot open an mDNS socket on 127.0.0.1: {exc}")
    watcher = AsyncZeroconf(interfaces=LOOPBACK)
    browser = AsyncServiceBrowser(watcher.zeroconf, [service_type], handlers=[probe])
    try:
        await discovery.start()
        assert discovery.running
        await publisher.async_register_service(info)
        if not await first(was_added, 6):
            if not await first(probe_saw, 0.1):
                pytest.skip("multicast on 127.0.0.1 is not delivered on this machine")
            pytest.fail("a plain zeroconf browser saw the service, MdnsDiscovery did not")
        assert [(b.name, b.url, b.type) for b in added] == [
            ("Test Box", "http://127.0.0.1:18123", "vllm")
        ]

        await publisher.async_unregister_service(info)
        gone_at = time.monotonic()
        assert await first(was_removed, GRACE + 4), "removal not reported"
        assert time.monotonic() - gone_at >= GRACE * 0.9
        assert removed == ["Test Box"]
    finally:
        await discovery.stop()
        await browser.async_cancel()
        await watcher.async_close()
        await publisher.async_close()
