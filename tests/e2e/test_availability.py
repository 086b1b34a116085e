"""Truthful availability through a real `nexus serve` (issue 14), driven by the official `openai`
SDK in front of real local HTTP servers: each defect the issue names, as a client meets it.

One gateway for the module; probes run at start-up only (interval 60 s), so what a test sees after
a failure is passive health and the configuration alone."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.configs import EMBEDDINGS, Gateway, backend, gateway
from tests.e2e.serving import free_port
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

HELLO: Any = [{"role": "user", "content": "hello"}]
CONTEXT_KEYS = {"required_tier", "available_backends", "eta_seconds", "privacy_zone_required"}
CLAUDE = "claude-3-5-sonnet-20241022"
SECRET = "sk-wrong-secret-123"


@dataclass
class Fleet:
    gw: Gateway
    big: FakeOpenAI
    busy: FakeOpenAI
    shared: FakeOpenAI
    ollama: FakeOllama
    claude: FakeAnthropic


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with (
        FakeOpenAI() as big,
        FakeOpenAI() as busy,
        FakeOpenAI() as shared,
        FakeOpenAI() as rejecting,
        FakeOllama() as ollama,
        FakeAnthropic() as claude,
    ):
        big.set_models(FakeModel("model-big"))
        busy.set_models(FakeModel("busy-model"))
        shared.set_models(FakeModel("chat-m"), FakeModel("embed-m"))
        rejecting.set_models(FakeModel("gpt-4o"))
        rejecting.api_key = "sk-the-right-one"
        ollama.set_models(FakeModel("nomic-embed-text"))
        claude.set_models(FakeModel(CLAUDE, vision=True, tools=True))
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        backends = [
            backend("mid", down, tier=2, models=["model-mid"]),
            backend("top", down, tier=5, models=["model-top"]),
            backend("big", big.url, tier=3),
            backend("busy", busy.url),
            backend("shared", shared.url),
            backend("openai", rejecting.url, "openai", api_key_env="OPENAI_KEY", models=["gpt-4o"]),
            backend("ollama", ollama.url, "ollama"),
            backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_KEY"),
        ]
        env = {"OPENAI_KEY": SECRET, "ANTHROPIC_KEY": claude.api_key}
        with gateway(tmp_path_factory.mktemp("availability"), backends, env=env) as gw:
            warm = {"model": CLAUDE, "messages": HELLO}  # loads LiteLLM
            httpx.post(f"{gw.url}/v1/chat/completions", json=warm, timeout=60)
            yield Fleet(gw, big, busy, shared, ollama, claude)


def chat_error(gw: Gateway, model: str, **headers: str) -> openai.APIStatusError:
    with gw.sdk() as (client, _), pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=HELLO, extra_headers=headers)
    return caught.value


# -- defect 1: a known model is never "not found" ----------------------------------------------


@pytest.mark.parametrize(
    "mode", [{}, {"x-nexus-strict": "true"}, {"x-nexus-flexible": "true"}], ids=str
)
def test_a_configured_model_whose_backend_is_down_is_a_503_never_a_404(
    fleet: Fleet, mode: dict[str, str]
) -> None:
    model = "model-top" if mode.get("x-nexus-flexible") else "model-mid"  # nothing ≥ tier 5
    error = chat_error(fleet.gw, model, **mode)
    assert error.status_code == 503
    body = error.response.json()
    assert set(body["context"]) == CONTEXT_KEYS
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert body["context"]["available_backends"] == []  # defect 4: nobody else serves it


def test_flexible_substitutes_an_equal_or_higher_tier_for_a_model_that_is_down(
    fleet: Fleet,
) -> None:
    with fleet.gw.sdk() as (client, _):
        raw = client.chat.completions.with_raw_response.create(
            model="model-mid", messages=HELLO, extra_headers={"x-nexus-flexible": "true"}
        )
    assert raw.status_code == 200
    assert raw.headers["x-nexus-backend"] == "big"
    assert raw.headers["x-nexus-fallback-model"] == "model-big"


def test_only_a_model_nobody_knows_is_a_404(fleet: Fleet) -> None:
    error = chat_error(fleet.gw, "no-such-model")
    assert isinstance(error, openai.NotFoundError)
    assert error.code == "model_not_found"


def test_a_rejected_key_names_backend_and_variable_never_the_key(fleet: Fleet) -> None:
    error = chat_error(fleet.gw, "gpt-4o")
    assert error.status_code == 503
    message = error.response.json()["error"]["message"]
    assert "openai" in message and "OPENAI_KEY" in message
    assert SECRET not in error.response.text


# -- defect 3: the backend's own Retry-After is passed on --------------------------------------


def test_a_backends_own_retry_after_reaches_the_client(fleet: Fleet) -> None:
    fleet.busy.respond(503, body=b'{"error": "overloaded"}', headers={"retry-after": "1"}, times=1)
    error = chat_error(fleet.gw, "busy-model")
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "1"


# -- defect 5: base64 embeddings through Ollama ------------------------------------------------


def test_the_sdks_base64_embeddings_through_ollama_are_base64(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, sent):
        raw = client.embeddings.with_raw_response.create(model="nomic-embed-text", input="hi")
        result = raw.parse()
    assert json.loads(sent.last)["encoding_format"] == "base64"
    encoded = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = struct.unpack(f"<{fleet.ollama.embedding_dim}f", base64.b64decode(encoded))
    expected = [float(v) for v in fleet.ollama.vector("hi")]
    assert list(decoded) == pytest.approx(expected, abs=1e-6)
    assert result.data[0].embedding == pytest.approx(expected, abs=1e-6)


# -- defect 6: one model's failures do not take the backend out ---------------------------------


def test_a_clients_failing_embeddings_do_not_take_the_backend_out_of_chat(fleet: Fleet) -> None:
    fleet.shared.server_error(500, path=EMBEDDINGS, times=3)
    with fleet.gw.sdk() as (client, _):
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                client.embeddings.create(model="embed-m", input="bad input")
        raw = client.chat.completions.with_raw_response.create(model="chat-m", messages=HELLO)
    assert raw.status_code == 200
    assert raw.headers["x-nexus-backend"] == "shared"
    listing = fleet.gw.backends()["shared"]
    assert listing["status"] == "healthy"
    assert set(listing["failing_models"]) == {"embed-m"}


# -- defects 7 and 8: translated providers -----------------------------------------------------


def test_an_unsupported_parameter_is_named_without_litellm_advice(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _), pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=CLAUDE, messages=HELLO, logit_bias={"1": 1})
    assert caught.value.param == "logit_bias"
    message = caught.value.response.json()["error"]["message"]
    assert "anthropic" in message and "drop_params" not in message


def test_a_remote_image_is_refused_not_fetched(fleet: Fleet) -> None:
    with FakeOpenAI() as image_host:
        parts: Any = [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": f"{image_host.url}/x.png"}},
        ]
        with fleet.gw.sdk() as (client, _), pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=CLAUDE, messages=[{"role": "user", "content": parts}]
            )
        assert image_host.requests == []
    assert "data:" in caught.value.response.json()["error"]["message"]


# -- defect 11: the OpenAPI document -------------------------------------------------------------


def test_the_served_openapi_document_describes_the_inference_bodies(fleet: Fleet) -> None:
    document = httpx.get(f"{fleet.gw.url}/openapi.json", timeout=5).json()
    chat = document["paths"]["/v1/chat/completions"]["post"]
    schema = chat["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["model", "messages"]
    assert {"400", "404", "503"} <= set(chat["responses"])
    assert "422" not in document["paths"]["/v1/route"]["get"]["responses"]
