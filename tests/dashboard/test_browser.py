"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, against a
real ``nexus serve`` in front of fake upstreams. It sees a backend go from healthy to unhealthy and
a request appear, checks the 320 px layout and the page without JavaScript, and saves screenshots
to ``tests/artifacts/`` (``dashboard.png``, ``dashboard-320.png``).

Chromium comes from ``scripts/install-browser``; Playwright never downloads a browser here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.api.gateway import CHAT, chat_body
from tests.conftest import REPO
from tests.e2e.configs import Gateway, backend
from tests.e2e.configs import gateway as serve_gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="Debian's chromium is not installed (run scripts/install-browser)",
    ),
]

CHROMIUM = "/usr/bin/chromium"
#: The machine's network is closed: no background connections, no component updates.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tests" / "artifacts"
#: Probes every second, and one failed probe marks a backend unhealthy.
FAST_PROBES = {"interval_seconds": 1, "timeout_seconds": 1, "failure_threshold": 1}


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium with a fresh profile (Playwright's launch makes a new one each time)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(
    start_fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, FakeOpenAI]]:
    """`nexus serve` with backends ``gpu`` (the one the test stops) and ``cpu``."""
    gpu, cpu = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    gpu.set_models(FakeModel("llama3:70b"))
    cpu.set_models(FakeModel("qwen2.5:7b"), FakeModel("nomic-embed"))
    backends = [backend("gpu", gpu.url, tier=3), backend("cpu", cpu.url, priority=10)]
    with serve_gateway(tmp_path, backends, health_check=FAST_PROBES) as gw:
        yield gw, gpu


def watch(page: Page, origin: str) -> list[str]:
    """Page errors, console errors and any request that leaves the gateway."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on(
        "request",
        lambda req: None if req.url.startswith(origin) else problems.append(f"left: {req.url}"),
    )
    return problems


def test_dashboard_updates_live_and_fits_a_phone(browser: Browser, served) -> None:
    gw, gpu = served
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    problems = watch(page, gw.url)
    page.goto(f"{gw.url}/")
    page.wait_for_selector('#live[data-state="live"]', timeout=5000)
    page.wait_for_selector('[data-backend="gpu"].status-healthy', timeout=5000)
    assert "llama3:70b" in page.inner_text('[data-backend="gpu"]')

    gpu.stop()
    stopped = time.monotonic()
    page.wait_for_selector('[data-backend="gpu"].status-unhealthy', timeout=6000)
    assert time.monotonic() - stopped < 6  # next probe (1 s) + probe timeout + one push

    headers = {"x-request-id": "browser-1"}
    answer = httpx.post(f"{gw.url}{CHAT}", json=chat_body("qwen2.5:7b"), headers=headers)
    assert answer.status_code == 200
    sent = time.monotonic()
    row = page.wait_for_selector('tr[data-request-id="browser-1"]', timeout=2000)
    assert time.monotonic() - sent < 2
    assert row is not None
    assert "capability-match" in row.inner_text() and "cpu" in row.inner_text()
    assert "0 waiting in the queue" in page.inner_text("#summary")  # rendered by the script
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.set_viewport_size({"width": 320, "height": 640})
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == 320, f"horizontal overflow at 320 px: {widths}"
    page.screenshot(path=str(ARTIFACTS / "dashboard-320.png"), full_page=True)
    assert problems == []

    stopping = time.monotonic()  # an open dashboard does not hold up a graceful stop
    code, _ = gw.served.stop()
    assert code == 0 and time.monotonic() - stopping < 5


def test_the_snapshot_is_readable_without_javascript(browser: Browser, served) -> None:
    gw, _ = served
    httpx.post(f"{gw.url}{CHAT}", json=chat_body("llama3:70b"), headers={"x-request-id": "nojs"})
    context = browser.new_context(java_script_enabled=False, viewport={"width": 320, "height": 640})
    page = context.new_page()
    page.goto(f"{gw.url}/")
    assert page.locator("#live").inner_text() == "snapshot"
    gpu_card = page.inner_text('[data-backend="gpu"]')
    for text in ("healthy", "restricted", "3", "llama3:70b", "vllm (local)"):
        assert text in gpu_card
    assert "gpu" in page.inner_text('tr[data-request-id="nojs"]')
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1]
    context.close()
