"""Issue 17: the dashboard shows a model that quality ejected on its backend's card, with when it
returns and why ("m ejected, back in 25 s: 2 failures in a row (last: server_error)"), counts the
seconds down in the browser and says "recovering" once the ejection is over.

The page reads a backend's ``quality`` in the dashboard data, shaped like ``/v1/backends``'s
(model -> ``status``, ``back_in_seconds``, ``reason``). The browser test ejects a model on a real
``nexus serve`` (screenshot: ``tests/artifacts/dashboard-ejected.png``). While the gateway's
dashboard feed (``nexus/api/dashboard.py``) does not carry ``quality``, the test adds the
gateway's own ``/v1/backends`` entries to the first state event it pushes (Playwright's routing);
once the feed carries it, that event goes through as it is.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from nexus.dashboard.page import render_page
from tests.api.gateway import CHAT, chat_body
from tests.dashboard import test_browser as shared
from tests.dashboard.test_page import EVIL, data
from tests.e2e.configs import Gateway, backend
from tests.e2e.configs import gateway as serve_gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

browser = shared.browser  # headless Chromium, the fixture of the other browser tests

REASON = "2 failures in a row (last: server_error)"
#: The ejection (base_ejection_seconds): long enough to read, short enough to see it end.
EJECTION_SECONDS = 5


def test_the_snapshot_shows_ejected_and_recovering_models_escaped() -> None:
    gpu = {
        **data()["backends"][0],  # type: ignore[index]
        "quality": {
            "m": {"status": "ejected", "back_in_seconds": 25, "reason": REASON},
            "a": {"status": "recovering", "back_in_seconds": None, "reason": EVIL},
            "fine": {"status": "ok", "back_in_seconds": None, "reason": None},
        },
    }
    html = render_page(data(backends=[gpu]))
    assert (
        '<ul class="quality"><li class="quality-recovering" data-model="a">a recovering: '
        "&lt;script&gt;" in html
    )
    assert (
        '<li class="quality-ejected" data-model="m">'
        "m ejected, back in 25 s: 2 failures in a row (last: server_error)</li></ul>" in html
    )
    assert "fine" not in html and "<script>alert" not in html
    plain = render_page(data())  # no quality at all: no list
    assert 'class="quality"' not in plain


@pytest.fixture
def ejecting(start_fake, tmp_path: Path) -> Iterator[Gateway]:
    """`nexus serve` with ``flaky`` (its first two answers are 500s) before ``steady``, and a
    quality ejection after two failures in a row."""
    flaky, steady = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    for fake in (flaky, steady):
        fake.set_models(FakeModel("m"))
    flaky.respond(500, path=CHAT, times=2)
    backends = [backend("flaky", flaky.url, priority=1), backend("steady", steady.url, priority=2)]
    settings = {"consecutive_failures": 2, "base_ejection_seconds": EJECTION_SECONDS}
    # priority_only: flaky is always tried first (the smart strategy also weighs latency, and
    # on a loaded machine flaky's probe could be slower than steady's: it failed so once in CI)
    routing = {"strategy": "priority_only"}
    with serve_gateway(tmp_path, backends, quality=settings, routing=routing) as gw:
        yield gw


def first_state(url: str) -> dict[str, object]:
    """The data of the first ``event: state`` the gateway's dashboard feed pushes."""
    with httpx.stream("GET", f"{url}/dashboard/events", timeout=5) as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                return json.loads(line[len("data: ") :])  # type: ignore[no-any-return]
    raise AssertionError("no state event")


@pytest.mark.e2e
@pytest.mark.skipif(not Path(shared.CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_an_ejected_model_shows_on_its_backend_until_it_returns(
    browser: Browser, ejecting: Gateway
) -> None:
    gw = ejecting
    answers = [httpx.post(f"{gw.url}{CHAT}", json=chat_body(), timeout=10) for _ in range(2)]
    assert [a.headers["x-nexus-backend"] for a in answers] == ["steady", "steady"]
    assert {a.headers["x-nexus-route-reason"] for a in answers} == {"failover"}  # flaky failed
    listed = gw.backends()["flaky"]["quality"]["m"]
    assert (listed["status"], listed["reason"]) == ("ejected", REASON)
    fed = {entry["name"]: entry for entry in first_state(gw.url)["backends"]}  # type: ignore[attr-defined]
    assert fed["flaky"]["quality"]["m"]["status"] == "ejected" and fed["steady"]["quality"] == {}

    page = browser.new_page(viewport={"width": 1100, "height": 800})
    problems = shared.watch(page, gw.url)
    page.goto(f"{gw.url}/")
    line = page.wait_for_selector('[data-backend="flaky"] .quality-ejected', timeout=5000)
    assert line is not None and line.get_attribute("data-model") == "m"
    shown = re.fullmatch(r"m ejected, back in (\d+) s: (.*)", line.inner_text())
    assert shown is not None, line.inner_text()
    assert 1 <= int(shown[1]) <= EJECTION_SECONDS and shown[2] == REASON
    assert page.query_selector('[data-backend="steady"] .quality') is None
    shared.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shared.ARTIFACTS / "dashboard-ejected.png"), full_page=True)

    page.wait_for_function(  # counted down in the browser, without a new event
        """seconds => !document.querySelector('[data-backend="flaky"] .quality li')
            .textContent.includes("back in " + seconds + " s")""",
        arg=shown[1],
        timeout=2500,
    )
    started = time.monotonic()
    back = page.wait_for_selector(
        '[data-backend="flaky"] .quality-recovering', timeout=(EJECTION_SECONDS + 2) * 1000
    )
    assert back is not None and back.inner_text() == f"m recovering: {REASON}"
    assert time.monotonic() - started <= EJECTION_SECONDS + 1
    assert problems == []
