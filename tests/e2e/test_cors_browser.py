"""``[server] cors_origins`` in a real browser: a page on another origin (Debian's headless
Chromium, driven by Playwright) calls ``nexus serve``'s ``/v1/chat/completions`` with a client
key and reads the answer and its ``X-Nexus-*`` headers; a page on an origin not listed cannot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.dashboard.test_browser import CHROMIUM, browser  # noqa: F401  (the fixture)
from tests.e2e.configs import backend, wait_until
from tests.e2e.configs import gateway as serve_gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (run scripts/install-browser)",
    ),
]

CALL = """async (nexus) => {
  try {
    const response = await fetch(nexus + "/v1/chat/completions", {
      method: "POST",
      headers: {"content-type": "application/json", "authorization": "Bearer k1"},
      body: JSON.stringify({model: "m", messages: [{role: "user", content: "hi"}]}),
    });
    const body = await response.json();
    return {status: response.status, backend: response.headers.get("x-nexus-backend"),
            content: body.choices[0].message.content};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another origin</title>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return None


def page_server() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def healthy(url: str) -> bool:
    ready = httpx.get(f"{url}/health/ready", timeout=2)  # open without a key
    return ready.status_code == 200


@pytest.fixture
def origins() -> Iterator[tuple[str, str]]:
    listed, other = page_server(), page_server()
    yield (f"http://127.0.0.1:{listed.server_port}", f"http://127.0.0.1:{other.server_port}")
    for server in (listed, other):
        server.shutdown()
        server.server_close()


def test_a_page_on_a_listed_origin_calls_the_gateway(
    browser: Browser,  # noqa: F811
    origins: tuple[str, str],
    start_fake,
    tmp_path: Path,
) -> None:
    listed, other = origins
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    server = {"cors_origins": [listed], "api_keys_env": "KEYS"}
    with serve_gateway(
        tmp_path, [backend("gpu", fake.url)], env={"KEYS": "k1"}, probed=False, server=server
    ) as gw:
        wait_until(lambda: healthy(gw.url), what="the backend probed")
        page = browser.new_page()
        page.goto(listed)
        allowed = page.evaluate(CALL, gw.url)
        page.goto(other)
        refused = page.evaluate(CALL, gw.url)
    assert allowed["status"] == 200 and allowed["backend"] == "gpu", allowed
    assert allowed["content"], "the page read the answer"
    assert "error" in refused and "Failed to fetch" in refused["error"], refused
    assert len(fake.requests_to("/v1/chat/completions")) == 1, "the refused page sent nothing"
