"""Privacy fails closed on the failure paths too: when the only restricted backend fails (5xx,
refused, a stream dying before its first byte, a timeout), a restricted request never fails over,
falls back or is substituted onto an open backend, however the restriction came (policy or the
client's header), in JSON and streaming mode (in-process app)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

FAILURES = ["500", "refused", "closed", "timeout", "stream-dies-before-first-byte"]


def program(fake: FakeOpenAI, failure: str) -> None:
    if failure == "500":
        fake.server_error(500)
    elif failure == "refused":
        fake.stop()
    elif failure == "closed":
        fake.empty_close()
    elif failure == "timeout":
        fake.hang(path=CHAT)
    else:
        fake.break_stream_after(0)


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("how", ["policy", "header"])
async def test_a_restricted_request_never_reaches_an_open_backend(
    start_fake: Any, failure: str, how: str
) -> None:
    local, cloud = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    local.set_models(FakeModel("secret-m"))
    cloud.set_models(FakeModel("secret-m"), FakeModel("big"))
    backends = [
        {"name": "gpu", "type": "vllm", "url": local.url, "tier": 1},
        {"name": "openai", "type": "openai", "url": cloud.url, "api_key_env": "K", "tier": 5},
    ]
    routing: dict[str, Any] = {"fallbacks": {"secret-m": ["big"]}}
    headers = {"x-nexus-flexible": "true"}
    if how == "policy":
        routing["policies"] = [{"model_pattern": "secret-*", "privacy": "restricted"}]
    else:
        headers["x-nexus-privacy-zone"] = "restricted"
    async with gateway(
        backends,
        environ={"K": "sk-k"},
        routing=routing,
        server={"request_timeout_seconds": 0.5},
        health_check={"failure_threshold": 1},
    ) as gw:
        program(local, failure)
        modes = (True, True) if failure.startswith("stream") else (False, True, False)
        answers = [
            await gw.client.post(CHAT, json=chat_body("secret-m", stream=stream), headers=headers)
            for stream in modes
        ]
        plain = await gw.client.post(CHAT, json=chat_body("big"))  # unrestricted: allowed
    for answer in answers:
        assert answer.status_code >= 500, (failure, answer.status_code, answer.text[:200])
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
        assert answer.headers["x-nexus-backend"] in ("gpu", "none")
        assert answer.headers["x-nexus-privacy-zone"] in ("restricted", "none")
    assert answers[-1].status_code == 503, "the failed restricted backend is out"
    assert answers[-1].json()["context"]["privacy_zone_required"] == "restricted"
    assert [r.json()["model"] for r in cloud.requests_to(CHAT)] == ["big"]
    assert plain.status_code == 200
