"""The gateway's log never holds request or response content, nor a backend's key, whatever
happens to the request; and every request's log lines carry its request id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.configs import CHAT, backend, gateway
from tests.fakes.fixtures import StartFake
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

MARKER = "zq-canary-7f3a9c"  # in every prompt; the fake echoes it in every answer
CLOUD_KEY = "sk-e2e-log-canary-a1b2c3d4e5f6"
REVOKED_KEY = "sk-e2e-log-revoked-9z8y7x6w"


@pytest.mark.parametrize("log_format", ["pretty", "json"])
def test_log_holds_no_content_and_no_key(
    tmp_path: Path, start_fake: StartFake, log_format: str
) -> None:
    cloud, revoked = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    cloud.api_key = CLOUD_KEY
    revoked.api_key = "sk-something-else"  # rejects REVOKED_KEY, echoing it in its 401 body
    cloud.set_models(FakeModel("m"))
    revoked.set_models(FakeModel("m"))
    backends = [
        backend("cloud", cloud.url, "openai", api_key_env="E2E_CLOUD_KEY", priority=1),
        backend("revoked", revoked.url, "openai", api_key_env="E2E_REVOKED_KEY", priority=90),
    ]
    env = {"E2E_CLOUD_KEY": CLOUD_KEY, "E2E_REVOKED_KEY": REVOKED_KEY}
    messages: Any = [{"role": "user", "content": f"secret {MARKER} question"}]
    bodies: list[str] = []
    with gateway(
        tmp_path,
        backends,
        env=env,
        args=("--log-level", "debug"),
        logging={"format": log_format},
    ) as gw:
        assert gw.statuses() == {"cloud": "healthy", "revoked": "unhealthy"}
        with gw.sdk() as (client, _):
            answer = client.chat.completions.create(
                model="m", messages=messages, extra_headers={"X-Request-Id": "e2e-log-json"}
            )
            assert MARKER in (answer.choices[0].message.content or "")
            stream = client.chat.completions.create(
                model="m",
                messages=messages,
                stream=True,
                extra_headers={"X-Request-Id": "e2e-log-stream"},
            )
            with stream:
                assert MARKER in "".join(c.choices[0].delta.content or "" for c in stream)
            client.embeddings.create(model="m", input=f"embed {MARKER}")

            # the backend fails with the content in its error body: passed to the client only
            cloud.respond(500, body=f'{{"error": "failed on {MARKER}"}}'.encode(), times=1)
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(
                    model="m", messages=messages, extra_headers={"X-Request-Id": "e2e-log-500"}
                )
            bodies.append(failed.value.response.text)

            # the key is revoked: the backend echoes it; Nexus answers 503 naming the variable
            cloud.api_key = "sk-rotated"
            with pytest.raises(openai.InternalServerError) as rejected:
                client.chat.completions.create(
                    model="m", messages=messages, extra_headers={"X-Request-Id": "e2e-log-401"}
                )
            bodies.append(rejected.value.response.text)

        broken = f'{{"model": "m", "messages": [{{"role": "user", "content": "{MARKER}'
        bad = httpx.post(f"{gw.url}{CHAT}", content=broken.encode(), timeout=5)
        bodies.append(bad.text)
        code, log = gw.served.stop()

    assert code == 0
    assert rejected.value.status_code == 503
    assert "E2E_CLOUD_KEY" in rejected.value.message
    for body in bodies[1:]:
        assert MARKER not in body, "a Nexus error message holds request content"
    for body in bodies:
        assert CLOUD_KEY not in body and REVOKED_KEY not in body
    assert "answered" in log or "e2e-log-json" in log, "the log has request lines"
    assert MARKER not in log, "request or response content in the log"
    assert CLOUD_KEY not in log and REVOKED_KEY not in log, "a backend key in the log"
    for rid in ("e2e-log-json", "e2e-log-stream", "e2e-log-500", "e2e-log-401"):
        assert rid in log, f"no log line for request {rid}"
    attempts = [line for line in log.splitlines() if "attempt on backend cloud failed" in line]
    assert len(attempts) == 2
    assert all("e2e-log-500" in line or "e2e-log-401" in line for line in attempts), (
        "every log line of a request carries its request id"
    )
