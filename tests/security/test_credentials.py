"""The client's credentials never reach a backend: each backend gets its configured key and
nothing the client sent as a credential (in-process app; relayed ``openai`` and translated
``anthropic`` cloud backends whose fakes record every header)."""

from __future__ import annotations

import pytest

from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.anthropic import MESSAGES_PATH, FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel, RecordedRequest
from tests.upstream.translation import closes_litellm  # noqa: F401

pytestmark = pytest.mark.usefixtures("closes_litellm")

CLIENT_KEY = "nx-client-secret-5d1f"
OPENAI_KEY = "sk-openai-backend-key"
CLAUDE = "claude-3-5-sonnet-20241022"
CLIENT_HEADERS = {
    "authorization": f"Bearer {CLIENT_KEY}",
    "x-api-key": CLIENT_KEY,
    "api-key": CLIENT_KEY,
    "x-goog-api-key": CLIENT_KEY,
    "cookie": f"session={CLIENT_KEY}",
    "proxy-authorization": f"Basic {CLIENT_KEY}",
}


def leaked(requests: list[RecordedRequest]) -> list[tuple[str, str]]:
    return [
        (name, value)
        for request in requests
        for name, value in request.headers.items()
        if CLIENT_KEY in value
    ]


async def test_no_client_credential_reaches_a_cloud_backend(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_openai.api_key = OPENAI_KEY
    fake_openai.set_models(FakeModel("gpt-4o"))
    fake_anthropic.set_models(CLAUDE)
    backends = [
        {"name": "openai", "type": "openai", "url": fake_openai.url, "api_key_env": "OPENAI_KEY"},
        {"name": "claude", "type": "anthropic", "url": fake_anthropic.url, "api_key_env": "ANT"},
    ]
    environ = {"OPENAI_KEY": OPENAI_KEY, "ANT": fake_anthropic.api_key, "CLIENTS": CLIENT_KEY}
    async with gateway(backends, environ=environ, server={"api_keys_env": "CLIENTS"}) as gw:
        answers = []
        for model in ("gpt-4o", CLAUDE):
            for stream in (False, True):
                body = chat_body(model, stream=stream, extra_headers={"x-api-key": CLIENT_KEY})
                answers.append(await gw.client.post(CHAT, json=body, headers=CLIENT_HEADERS))
        embedded = await gw.client.post(
            "/v1/embeddings", json={"model": "gpt-4o", "input": "x"}, headers=CLIENT_HEADERS
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 200], [a.text for a in answers]
    assert embedded.status_code == 200
    relayed = fake_openai.requests_to(CHAT) + fake_openai.requests_to("/v1/embeddings")
    translated = fake_anthropic.requests_to(MESSAGES_PATH)
    assert len(relayed) == 3 and len(translated) == 2
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in relayed)
    assert all(r.headers["x-api-key"] == fake_anthropic.api_key for r in translated)
    assert leaked(fake_openai.requests) == leaked(fake_anthropic.requests) == []
    assert all(CLIENT_KEY.encode() not in r.body for r in translated), "extra_headers dropped"


async def test_a_local_backend_without_a_key_gets_no_authorization(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.set_models("m")
    backends = [{"name": "gpu", "type": "vllm", "url": fake_openai.url}]
    async with gateway(
        backends, environ={"CLIENTS": CLIENT_KEY}, server={"api_keys_env": "CLIENTS"}
    ) as gw:
        for stream in (False, True):
            response = await gw.client.post(
                CHAT, json=chat_body("m", stream=stream), headers=CLIENT_HEADERS
            )
            assert response.status_code == 200
    for request in fake_openai.requests:
        assert "authorization" not in request.headers
    assert leaked(fake_openai.requests) == []
