"""Graceful shutdown of a real `nexus serve`: SIGTERM drains, refuses new work with 503, exits 0."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.e2e.serving import nexus_serve
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


def config(tmp_path, url: str):
    path = tmp_path / "nexus.toml"
    path.write_text(
        f'[discovery]\nenabled = false\n[[backends]]\nname = "gpu"\nurl = "{url}"\ntype = "vllm"\n'
    )
    return path


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/health").json()["backends"]["healthy"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_sigterm_lets_streams_finish_and_refuses_new_requests(
    tmp_path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.set_models(FakeModel("m"))
    fake_openai.chunk_count = 10
    fake_openai.chunk_delay = 0.15  # a ~1.5 s stream
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with nexus_serve("--config", str(config(tmp_path, fake_openai.url)), cwd=tmp_path) as served:
        wait_healthy(served.url)
        streamed: list[bytes] = []

        def stream() -> None:
            with httpx.stream("POST", f"{served.url}{CHAT}", json=body, timeout=10) as response:
                streamed.extend(response.iter_raw())

        reader = threading.Thread(target=stream)
        reader.start()
        deadline = time.monotonic() + 5
        while fake_openai.open_streams == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        refused = httpx.post(f"{served.url}{CHAT}", json={**body, "stream": False}, timeout=5)
        ready = httpx.get(f"{served.url}/health/ready", timeout=5)
        reader.join(timeout=10)
        code = served.process.wait(timeout=10)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["x-nexus-backend"] == "none"
    assert ready.status_code == 503
    assert b"".join(streamed).endswith(b"data: [DONE]\n\n"), "the in-flight stream finished"
    assert code == 0


def test_idle_gateway_exits_at_once(tmp_path) -> None:
    with nexus_serve("--no-discovery", "--no-health-check", cwd=tmp_path) as served:
        started = time.monotonic()
        code, _ = served.stop()
    assert code == 0
    assert time.monotonic() - started < 2.0
