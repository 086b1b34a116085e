"""Does a client-supplied ``image_url`` make the gateway host fetch it? For translated
providers (Anthropic, Gemini) LiteLLM downloads http(s) images and sends them inline. A fake on
127.0.0.1 records any fetch (in-process app)."""

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


@pytest.mark.xfail(
    strict=True,
    reason="nexus/upstream/translated.py hands image_url parts to LiteLLM, whose Anthropic and "
    "Gemini transformations download http(s) image URLs on the gateway host "
    "(litellm_core_utils/prompt_templates/image_handling.py, up to "
    "MAX_IMAGE_URL_DOWNLOAD_SIZE_MB, 3 attempts) and send them inline; LiteLLM's SSRF guard "
    "blocks loopback and private addresses, so only public URLs (simulated here by allowing "
    "127.0.0.1 in litellm.user_url_allowed_hosts) are fetched",
)
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
    assert response.status_code == 200, response.text
    assert image_host.requests_to("/x.png") == [], "the gateway host fetched the client's URL"
