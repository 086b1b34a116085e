"""``POST /v1/messages`` (issue 15), relayed natively: to Anthropic with the backend's own
``x-api-key`` and the client's ``anthropic-version``/``anthropic-beta``, and to a local server
that speaks Messages (Ollama, llama.cpp) at its ``/v1/messages``; bodies and every SSE event
unchanged, only ``model`` rewritten; errors in Anthropic's envelope; everything chat gets."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.api.gateway import gateway
from tests.api.test_known_models import closed_port
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.ollama import FakeOllama
from tests.fakes.server import FakeModel

MESSAGES = "/v1/messages"
CLAUDE = "claude-sonnet-4-5-20250929"
KEY = FakeAnthropic.api_key
ENVIRON = {"ANTHROPIC_API_KEY": KEY}
VERSION = {"anthropic-version": "2023-06-01"}


def request(model: str = CLAUDE, text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


@pytest.fixture
def claude(start_fake) -> FakeAnthropic:
    fake: FakeAnthropic = start_fake(FakeAnthropic)
    fake.set_models(FakeModel(CLAUDE))
    return fake


def anthropic_backend(fake: FakeAnthropic, **extra: Any) -> dict[str, Any]:
    return {
        "name": "claude",
        "type": "anthropic",
        "url": fake.url,
        "api_key_env": "ANTHROPIC_API_KEY",
        **extra,
    }


def direct(url: str, raw: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}{MESSAGES}", content=raw, headers={**VERSION, **headers})


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_gets_the_bytes_with_its_own_key(claude, stream) -> None:
    raw = orjson.dumps(request(stream=stream))
    expected = direct(claude.url, raw, **{"x-api-key": KEY})
    client_headers = {**VERSION, "x-api-key": "client-secret", "anthropic-beta": "tools-2024"}
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, content=raw, headers=client_headers)
    assert response.status_code == 200, response.text
    assert response.content == expected.content
    assert response.headers["x-nexus-backend"] == "claude"
    assert response.headers["x-nexus-backend-type"] == "cloud"
    sent = claude.requests_to(MESSAGES)[-1]
    assert sent.body == raw
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "tools-2024"
    assert "authorization" not in sent.headers
    assert b"client-secret" not in b"".join(v.encode() for v in sent.headers.values())


async def test_anthropic_version_defaults_when_the_client_sends_none(claude) -> None:
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, json=request())
    assert response.status_code == 200, response.text
    assert claude.requests_to(MESSAGES)[-1].headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_local_server_that_speaks_messages_gets_the_bytes(start_fake, stream) -> None:
    ollama: FakeOllama = start_fake(FakeOllama)
    ollama.set_models(FakeModel("qwen3-coder:30b"))
    raw = orjson.dumps(request("qwen3-coder:30b", stream=stream))
    expected = direct(ollama.url, raw)
    backend = {"name": "box", "type": "ollama", "url": ollama.url}
    async with gateway([backend]) as gw:
        response = await gw.client.post(MESSAGES, content=raw, headers=VERSION)
    assert response.status_code == 200, response.text
    assert response.content == expected.content
    assert ollama.requests_to("/v1/chat/completions") == []
    assert "authorization" not in ollama.requests_to(MESSAGES)[-1].headers


async def test_an_alias_rewrites_only_the_model(claude) -> None:
    routing = {"aliases": {"claude-*": CLAUDE}}
    raw = orjson.dumps(request("claude-3-5-haiku-latest"))
    async with gateway([anthropic_backend(claude)], environ=ENVIRON, routing=routing) as gw:
        response = await gw.client.post(MESSAGES, content=raw, headers=VERSION)
    assert response.status_code == 200
    assert claude.requests_to(MESSAGES)[-1].json() == request(CLAUDE)


# -- errors in Anthropic's envelope ---------------------------------------------------------


def anthropic_error(response: httpx.Response) -> Any:
    body = response.json()
    assert body["type"] == "error", body
    assert set(body["error"]) >= {"type", "message"}
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": CLAUDE, "max_tokens": 5, "messages": []}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_a_malformed_request_is_an_anthropic_400(claude, body, field) -> None:
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, json=body)
    assert response.status_code == 400
    error = anthropic_error(response)["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]
    assert response.headers["x-nexus-backend"] == "none"
    assert claude.requests_to(MESSAGES) == []


async def test_an_unknown_model_is_an_anthropic_404(claude) -> None:
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, json=request("claude-nope"))
    assert response.status_code == 404
    assert anthropic_error(response)["error"]["type"] == "not_found_error"


async def test_a_known_model_nothing_serves_is_a_503_with_context(claude) -> None:
    down = {"name": "down", "type": "ollama", "url": f"http://127.0.0.1:{closed_port()}"}
    async with gateway([{**down, "models": ["qwen3"]}]) as gw:
        response = await gw.client.post(MESSAGES, json=request("qwen3"))
    assert response.status_code == 503
    body = anthropic_error(response)
    assert body["error"]["type"] == "overloaded_error"
    assert set(body["context"]) >= {"available_backends", "eta_seconds"}
    assert int(response.headers["retry-after"]) >= 1


async def test_the_backends_own_error_is_passed_on(claude) -> None:
    claude.rate_limit(retry_after=3)
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, json=request())
    assert response.status_code == 429
    assert anthropic_error(response)["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "3"


async def test_a_stream_that_breaks_ends_with_an_anthropic_error_event(claude) -> None:
    claude.break_stream_after(3)
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, json=request(stream=True))
    assert response.status_code == 200
    last = response.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    error = orjson.loads(last.split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"


# -- client keys: Authorization: Bearer or x-api-key (as the anthropic SDK sends them) ---------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"x-api-key": "nexus-key"}, 200),
        ({"authorization": "Bearer nexus-key"}, 200),
        ({"x-api-key": "wrong"}, 401),
        ({}, 401),
    ],
)
async def test_client_keys_are_accepted_as_x_api_key(claude, headers, status) -> None:
    environ = {**ENVIRON, "NEXUS_KEYS": "nexus-key"}
    server = {"api_keys_env": "NEXUS_KEYS"}
    async with gateway([anthropic_backend(claude)], environ=environ, server=server) as gw:
        response = await gw.client.post(MESSAGES, json=request(), headers=headers)
        chat = await gw.client.post(
            "/v1/chat/completions",
            json={"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
    assert response.status_code == status, response.text
    assert (chat.status_code == 401) == (status == 401), "the same keys hold on chat"
    if status == 401:
        assert anthropic_error(response)["error"]["type"] == "authentication_error"
        assert "error" in chat.json() and "type" not in chat.json()  # OpenAI's envelope there
    sent = claude.requests_to(MESSAGES)
    assert all(r.headers["x-api-key"] == KEY for r in sent)


# -- count_tokens: counted by Nexus, as for routing ------------------------------------------


async def test_count_tokens_counts_the_request_text(claude) -> None:
    short = {"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]}
    long = {
        "model": "claude-any",
        "system": [{"type": "text", "text": "You are terse. " * 20}],
        "messages": [{"role": "user", "content": "hello " * 50}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }
    routing = {"aliases": {"claude-*": CLAUDE}}
    async with gateway([anthropic_backend(claude)], environ=ENVIRON, routing=routing) as gw:
        small = await gw.client.post(f"{MESSAGES}/count_tokens", json=short)
        big = await gw.client.post(f"{MESSAGES}/count_tokens", json=long)
        unknown = await gw.client.post(f"{MESSAGES}/count_tokens", json={**short, "model": "x"})
        invalid = await gw.client.post(f"{MESSAGES}/count_tokens", json={"model": CLAUDE})
    assert small.status_code == 200, small.text
    assert set(small.json()) == {"input_tokens"}
    assert 0 < small.json()["input_tokens"] < 20
    assert big.json()["input_tokens"] > small.json()["input_tokens"] + 100
    assert unknown.status_code == 404
    assert anthropic_error(unknown)["error"]["type"] == "not_found_error"
    assert invalid.status_code == 400
    assert anthropic_error(invalid)["error"]["type"] == "invalid_request_error"
    assert claude.requests_to(MESSAGES) == []


async def test_a_cloud_answer_carries_its_estimated_cost(claude) -> None:
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(MESSAGES, json=request(text="word " * 400))
    usage = response.json()["usage"]
    expected = usage["input_tokens"] * 3e-6 + usage["output_tokens"] * 15e-6  # Sonnet 4.5
    assert expected > 0.001
    assert response.headers["x-nexus-cost-estimated"] == f"{expected:.4f}"
