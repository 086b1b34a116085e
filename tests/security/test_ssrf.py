"""Does a client-supplied ``image_url`` make the gateway host fetch it? For translated
providers (Anthropic, Gemini) LiteLLM would download http(s) images and send them inline; Nexus
refuses such an image with a 400 before LiteLLM sees it, unless the operator sets
``[security] fetch_remote_images`` (tests/api/test_translated_requests.py). A fake on 127.0.0.1
records any fetch (in-process app)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.gateway import CHAT, gateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.upstream.translation import closes_litellm  # noqa: F401

pytestmark = pytest.mark.usefixtures("closes_litellm")

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CLAUDE = "claude-3-5-sonnet-20241022"
GEMINI = "gemini-1.5-pro"


@pytest.fixture
def image_host() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.respond(200, body=PNG, path="/x.png")
        yield fake


def backends(claude: FakeAnthropic, gemini: FakeGemini) -> list[dict[str, Any]]:
    claude.set_models(FakeModel(CLAUDE, vision=True))
    gemini.set_models(FakeModel(GEMINI, 2_000_000, vision=True))
    return [
        {"name": "claude", "type": "anthropic", "url": claude.url, "api_key_env": "A"},
        {"name": "gemini", "type": "google", "url": gemini.url, "api_key_env": "G"},
    ]


def with_image(model: str, url: str) -> dict[str, Any]:
    parts = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return {"model": model, "messages": [{"role": "user", "content": parts}]}


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
async def test_a_loopback_image_url_is_not_fetched(
    fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini, image_host: FakeOpenAI, model: str
) -> None:
    environ = {"A": fake_anthropic.api_key, "G": fake_gemini.api_key}
    async with gateway(backends(fake_anthropic, fake_gemini), environ=environ) as gw:
        response = await gw.client.post(CHAT, json=with_image(model, f"{image_host.url}/x.png"))
    assert image_host.requests_to("/x.png") == [], "the gateway host fetched a loopback URL"
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    provider_calls = [
        r for r in fake_anthropic.requests + fake_gemini.requests if r.method == "POST"
    ]
    assert provider_calls == [], "refused before anything was sent to the provider"


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
async def test_a_public_image_url_is_not_fetched_by_the_gateway(
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    image_host: FakeOpenAI,
    model: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import litellm

    host = image_host.url.removeprefix("http://")
    monkeypatch.setattr(litellm, "user_url_allowed_hosts", [host], raising=False)
    environ = {"A": fake_anthropic.api_key, "G": fake_gemini.api_key}
    async with gateway(backends(fake_anthropic, fake_gemini), environ=environ) as gw:
        response = await gw.client.post(CHAT, json=with_image(model, f"{image_host.url}/x.png"))
    assert image_host.requests_to("/x.png") == [], "the gateway host fetched the client's URL"
    # neither provider takes an http URL by reference: the client is asked for a data: URL
    assert response.status_code == 400, response.text
    assert "data:" in response.json()["error"]["message"]
