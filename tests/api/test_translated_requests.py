"""What a translated provider cannot honour is said in the client's terms, never dropped
(issue 14, defects 7 and 8):

- a parameter the provider cannot take is a 400 naming it and the provider, with no advice about
  LiteLLM settings the client cannot reach (``drop_params``, ``allowed_openai_params``);
- ``response_format: {"type": "json_object"}`` on Anthropic is applied (Claude is made to answer
  through a forced JSON tool), not silently ignored;
- a remote ``image_url`` is never downloaded by the gateway by default: an ``https`` URL goes to
  Anthropic as a URL source (Anthropic fetches it), anything the provider cannot take by URL is a
  400 asking for a ``data:`` URL, unless ``[security] fetch_remote_images = true``."""

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

CLAUDE = "claude-3-5-sonnet-20241022"
GEMINI = "gemini-1.5-pro"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
LITELLM_ADVICE = ("drop_params", "allowed_openai_params", "litellm")


@pytest.fixture
def image_host() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.respond(200, body=PNG, path="/x.png", headers={"content-type": "image/png"})
        yield fake


def backends(claude: FakeAnthropic, gemini: FakeGemini) -> list[dict[str, Any]]:
    claude.set_models(FakeModel(CLAUDE, vision=True, tools=True))
    gemini.set_models(FakeModel(GEMINI, 2_000_000, vision=True))
    return [
        {"name": "claude", "type": "anthropic", "url": claude.url, "api_key_env": "A"},
        {"name": "gemini", "type": "google", "url": gemini.url, "api_key_env": "G"},
    ]


def environ(claude: FakeAnthropic, gemini: FakeGemini) -> dict[str, str]:
    return {"A": claude.api_key, "G": gemini.api_key}


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def with_image(model: str, url: str) -> dict[str, Any]:
    parts = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return {"model": model, "messages": [{"role": "user", "content": parts}]}


def posted(fake: FakeAnthropic | FakeGemini) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST"]


async def test_an_unsupported_parameter_is_a_400_in_the_clients_terms(
    fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    async with gateway(
        backends(fake_anthropic, fake_gemini), environ=environ(fake_anthropic, fake_gemini)
    ) as gw:
        response = await gw.client.post(CHAT, json=ask(CLAUDE, logit_bias={"50256": -100}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "logit_bias"
    assert error["type"] == "invalid_request_error"
    assert "logit_bias" in error["message"] and "anthropic" in error["message"]
    assert "claude" in error["message"]  # the backend
    for advice in LITELLM_ADVICE:
        assert advice not in error["message"].lower(), error["message"]
    assert posted(fake_anthropic) == []


async def test_json_object_on_anthropic_is_applied_not_dropped(
    fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    async with gateway(
        backends(fake_anthropic, fake_gemini), environ=environ(fake_anthropic, fake_gemini)
    ) as gw:
        response = await gw.client.post(
            CHAT, json=ask(CLAUDE, response_format={"type": "json_object"})
        )
    assert response.status_code == 200, response.text
    (sent,) = posted(fake_anthropic)
    body = sent.json()
    forced = body.get("tool_choice", {}).get("type") == "tool" and body.get("tools")
    native = body.get("output_format", {}).get("type") == "json_schema"
    assert forced or native, f"JSON mode not applied: {body}"


async def test_an_https_image_goes_to_anthropic_as_a_url_and_is_not_fetched(
    fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    url = "https://images.invalid/cat.png"
    async with gateway(
        backends(fake_anthropic, fake_gemini), environ=environ(fake_anthropic, fake_gemini)
    ) as gw:
        response = await gw.client.post(CHAT, json=with_image(CLAUDE, url))
    assert response.status_code == 200, response.text
    (sent,) = posted(fake_anthropic)
    blocks = sent.json()["messages"][0]["content"]
    assert {"type": "image", "source": {"type": "url", "url": url}} in blocks


@pytest.mark.parametrize(
    ("model", "url"),
    [
        (CLAUDE, "http://images.invalid/cat.png"),  # Anthropic takes https URLs only
        (GEMINI, "https://images.invalid/cat.png"),  # Gemini takes its Files API URIs only
    ],
)
async def test_a_url_the_provider_cannot_take_is_a_400_asking_for_a_data_url(
    fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini, model: str, url: str
) -> None:
    async with gateway(
        backends(fake_anthropic, fake_gemini), environ=environ(fake_anthropic, fake_gemini)
    ) as gw:
        response = await gw.client.post(CHAT, json=with_image(model, url))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "data:" in error["message"] and "fetch_remote_images" in error["message"]
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert posted(fake_anthropic) == posted(fake_gemini) == []


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
async def test_the_operator_may_let_the_gateway_fetch_remote_images(
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    image_host: FakeOpenAI,
    model: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import litellm

    host = image_host.url.removeprefix("http://")  # LiteLLM's own guard blocks loopback
    monkeypatch.setattr(litellm, "user_url_allowed_hosts", [host], raising=False)
    async with gateway(
        backends(fake_anthropic, fake_gemini),
        environ=environ(fake_anthropic, fake_gemini),
        security={"fetch_remote_images": True},
    ) as gw:
        response = await gw.client.post(CHAT, json=with_image(model, f"{image_host.url}/x.png"))
    assert response.status_code == 200, response.text
    assert len(image_host.requests_to("/x.png")) == 1
