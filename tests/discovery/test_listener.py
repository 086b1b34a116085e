"""MdnsDiscovery's bookkeeping, driven through zeroconf's ServiceListener interface with real
ServiceInfo objects; resolution and the grace timer are injected, so nothing touches the network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

import pytest
from loguru import logger
from zeroconf import ServiceInfo, Zeroconf

from nexus.config.model import BackendConfig, DiscoveryConfig
from nexus.discovery import MdnsDiscovery
from nexus.discovery import mdns as mdns_module

OLLAMA = "_ollama._tcp.local."
NAME = f"Studio Mac.{OLLAMA}"
#: The listener interface passes the Zeroconf instance; MdnsDiscovery does not use it.
ZC = cast(Zeroconf, object())


def service(address: str = "192.168.1.20", port: int = 11434, name: str = NAME) -> ServiceInfo:
    return ServiceInfo(OLLAMA, name, port=port, parsed_addresses=[address])


class ManualSleeper:
    """Stands in for asyncio.sleep: each call waits until the test releases it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._waits: list[asyncio.Future[None]] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        wait: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waits.append(wait)
        await wait

    @property
    def pending(self) -> int:
        return sum(not wait.done() for wait in self._waits)

    async def release(self) -> None:
        for wait in self._waits:
            if not wait.done():
                wait.set_result(None)
        await settle()


async def settle() -> None:
    """Let background tasks (resolution, callbacks) run to completion."""
    for _ in range(10):
        await asyncio.sleep(0)


@contextmanager
def captured_logs(level: str) -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level=level)
    try:
        yield messages
    finally:
        logger.remove(sink)


@dataclass
class Harness:
    discovery: MdnsDiscovery
    sleeper: ManualSleeper
    services: dict[str, ServiceInfo]
    static: dict[str, str]
    added: list[BackendConfig] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    async def announce(self, info: ServiceInfo, *, update: bool = False) -> None:
        self.services[info.name] = info
        if update:
            self.discovery.update_service(ZC, info.type, info.name)
        else:
            self.discovery.add_service(ZC, info.type, info.name)
        await settle()

    async def vanish(self, name: str = NAME) -> None:
        self.services.pop(name, None)
        self.discovery.remove_service(ZC, OLLAMA, name)
        await settle()


def make_harness(
    grace: int = 60,
    static: dict[str, str] | None = None,
    on_added: Callable[[BackendConfig], None] | None = None,
) -> Harness:
    services: dict[str, ServiceInfo] = {}
    sleeper = ManualSleeper()
    static = static or {}
    added: list[BackendConfig] = []
    removed: list[str] = []

    async def resolve(service_type: str, name: str) -> ServiceInfo | None:
        return services.get(name)

    discovery = MdnsDiscovery(
        DiscoveryConfig(grace_period_seconds=grace),
        on_added=on_added or added.append,
        on_removed=removed.append,
        registered=lambda: static,
        resolver=resolve,
        sleep=sleeper,
    )
    return Harness(discovery, sleeper, services, static, added, removed)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = make_harness()
    yield h
    await h.discovery.stop()


async def test_a_resolved_service_is_added(harness: Harness) -> None:
    await harness.announce(service())
    assert [(b.name, b.url, b.type) for b in harness.added] == [
        ("Studio Mac", "http://192.168.1.20:11434", "ollama")
    ]


async def test_a_repeated_announcement_adds_nothing_new(harness: Harness) -> None:
    await harness.announce(service())
    await harness.announce(service(), update=True)
    assert len(harness.added) == 1
    assert harness.removed == []


async def test_static_config_wins_on_a_duplicate_url() -> None:
    h = make_harness(static={"studio": "http://192.168.1.20:11434/v1/"})
    await h.announce(service())
    assert h.added == []
    await h.vanish()
    assert h.sleeper.delays == []
    await h.discovery.stop()


async def test_a_name_clash_with_another_url_gets_a_suffix() -> None:
    h = make_harness(static={"Studio Mac": "http://10.0.0.1:11434", "Studio Mac-2": "http://x:1"})
    await h.announce(service())
    assert [b.name for b in h.added] == ["Studio Mac-3"]
    await h.discovery.stop()


async def test_two_services_with_one_label_get_distinct_names(harness: Harness) -> None:
    await harness.announce(service())
    other = ServiceInfo(
        "_llm._tcp.local.", "Studio Mac._llm._tcp.local.", port=8000, parsed_addresses=["10.0.0.9"]
    )
    await harness.announce(other)
    assert [b.name for b in harness.added] == ["Studio Mac", "Studio Mac-2"]


async def test_removal_waits_for_the_grace_period(harness: Harness) -> None:
    await harness.announce(service())
    await harness.vanish()
    assert harness.removed == []
    assert harness.sleeper.delays == [60]
    await harness.sleeper.release()
    assert harness.removed == ["Studio Mac"]


async def test_a_re_announcement_cancels_the_removal(harness: Harness) -> None:
    await harness.announce(service())
    await harness.vanish()
    await harness.announce(service())
    assert harness.sleeper.pending == 0
    await harness.sleeper.release()
    assert harness.removed == []
    assert len(harness.added) == 1


async def test_zero_grace_removes_at_once() -> None:
    h = make_harness(grace=0)
    await h.announce(service())
    await h.vanish()
    assert h.removed == ["Studio Mac"]
    assert h.sleeper.delays == []
    await h.discovery.stop()


async def test_a_new_address_replaces_the_backend(harness: Harness) -> None:
    await harness.announce(service())
    await harness.announce(service("192.168.1.99", 11500), update=True)
    assert harness.removed == ["Studio Mac"]
    assert [(b.name, b.url) for b in harness.added] == [
        ("Studio Mac", "http://192.168.1.20:11434"),
        ("Studio Mac", "http://192.168.1.99:11500"),
    ]


async def test_an_update_onto_a_static_url_removes_the_discovered_backend() -> None:
    h = make_harness(static={"static": "http://192.168.1.99:11434"})
    await h.announce(service())
    await h.announce(service("192.168.1.99"), update=True)
    assert h.removed == ["Studio Mac"]
    assert len(h.added) == 1
    await h.discovery.stop()


async def test_an_unresolvable_service_is_ignored(harness: Harness) -> None:
    harness.discovery.add_service(ZC, OLLAMA, NAME)
    await settle()
    assert harness.added == []


async def test_a_service_without_an_address_is_ignored(harness: Harness) -> None:
    await harness.announce(ServiceInfo(OLLAMA, NAME, port=11434))
    assert harness.added == []


async def test_stop_cancels_pending_removals(harness: Harness) -> None:
    await harness.announce(service())
    await harness.vanish()
    assert harness.sleeper.pending == 1
    await harness.discovery.stop()
    assert harness.sleeper.pending == 0
    await harness.sleeper.release()
    assert harness.removed == []


async def test_events_after_stop_are_ignored(harness: Harness) -> None:
    await harness.discovery.stop()
    await harness.announce(service())
    assert harness.added == []


async def test_a_failing_callback_is_logged_and_does_not_stop_discovery() -> None:
    calls: list[str] = []

    def explode(backend: BackendConfig) -> None:
        calls.append(backend.name)
        raise RuntimeError("registry bug")

    h = make_harness(on_added=explode)
    with captured_logs("ERROR") as logs:
        await h.announce(service())
        await h.announce(service("192.168.1.21", name=f"Other.{OLLAMA}"))
    assert calls == ["Studio Mac", "Other"]
    assert len(logs) == 2
    await h.discovery.stop()


async def test_disabled_discovery_does_not_touch_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(**kwargs: object) -> None:
        raise AssertionError("AsyncZeroconf must not be created")

    monkeypatch.setattr(mdns_module, "AsyncZeroconf", forbidden)
    discovery = MdnsDiscovery(
        DiscoveryConfig(enabled=False), on_added=print, on_removed=print, registered=dict
    )
    await discovery.start()
    assert not discovery.running
    await discovery.stop()


async def test_a_multicast_failure_logs_one_warning_and_leaves_discovery_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_interface(**kwargs: object) -> None:
        raise OSError(19, "No such device")

    monkeypatch.setattr(mdns_module, "AsyncZeroconf", no_interface)
    discovery = MdnsDiscovery(DiscoveryConfig(), on_added=print, on_removed=print, registered=dict)
    with captured_logs("WARNING") as logs:
        await discovery.start()
    assert not discovery.running
    assert len(logs) == 1
    assert "mDNS discovery is off" in logs[0]
    await discovery.stop()


async def test_start_does_not_wait_for_the_network() -> None:
    discovery = MdnsDiscovery(
        DiscoveryConfig(),
        on_added=print,
        on_removed=print,
        registered=dict,
        interfaces=["127.0.0.1"],
    )
    began = time.monotonic()
    try:
        await discovery.start()
        assert time.monotonic() - began < 0.5
        assert discovery.running
    finally:
        await discovery.stop()
    assert not discovery.running
    await discovery.stop()  # idempotent
