"""Translated providers through a real `nexus serve`, driven by the official `openai` SDK, in
front of real local HTTP servers speaking the Anthropic Messages and Gemini generateContent wire
formats (and an OpenAI-compatible relay): content, finish reasons, usage, tool calls, streaming
deltas, the exact request each provider received, the cost header, errors and failover."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.configs import Gateway, backend, gateway
from tests.fakes.anthropic import MESSAGES_PATH, FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
CLAUDE = "claude-3-5-sonnet-20241022"
GEMINI = "gemini-1.5-pro"
GEMINI_PATH = f"/v1beta/models/{GEMINI}:generateContent"
SYSTEM = "You are terse."
PRICES = {CLAUDE: (3e-6, 15e-6), GEMINI: (1.25e-6, 5e-6), "gpt-4o": (2.5e-6, 10e-6)}
LONG = " ".join(f"w{i}" for i in range(900))
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
    }
]


@dataclass
class Fleet:
    gw: Gateway
    claude: FakeAnthropic
    gemini: FakeGemini
    openai: FakeOpenAI


def cloud_backends(claude: FakeAnthropic, gemini: FakeGemini, oai: FakeOpenAI) -> list[Any]:
    claude.set_models(CLAUDE)
    gemini.set_models(FakeModel(GEMINI, 2_097_152))
    oai.set_models(FakeModel("gpt-4o"))
    oai.api_key = "sk-openai-test"
    return [
        backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_API_KEY"),
        backend("gemini", gemini.url, "google", api_key_env="GEMINI_API_KEY"),
        backend("openai", oai.url, "openai", api_key_env="OPENAI_API_KEY"),
    ]


ENV = {
    "ANTHROPIC_API_KEY": FakeAnthropic.api_key,
    "GEMINI_API_KEY": FakeGemini.api_key,
    "OPENAI_API_KEY": "sk-openai-test",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with FakeAnthropic() as claude, FakeGemini() as gemini, FakeOpenAI() as oai:
        backends = cloud_backends(claude, gemini, oai)
        with gateway(tmp_path_factory.mktemp("cloud"), backends, env=ENV) as gw:
            # the first translated request loads LiteLLM if the lifespan has not yet
            first = {"model": CLAUDE, "messages": [{"role": "user", "content": "warm"}]}
            httpx.post(f"{gw.url}/v1/chat/completions", json=first, timeout=60)
            yield Fleet(gw, claude, gemini, oai)


@pytest.fixture(autouse=True)
def _fresh(fleet: Fleet) -> Iterator[None]:
    for fake in (fleet.claude, fleet.gemini, fleet.openai):
        fake.reset()
    yield
    assert set(fleet.gw.in_flight().values()) == {0}, "every request released its backend"


def messages(text: str = "say hello") -> Any:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def cost(model: str, prompt: int, completion: int) -> str:
    price_in, price_out = PRICES[model]
    return f"{prompt * price_in + completion * price_out:.4f}"


def test_claude_answer_usage_cost_and_the_request_anthropic_received(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        raw = client.chat.completions.with_raw_response.create(
            model=CLAUDE, messages=messages(LONG)
        )
        completion = raw.parse()
    assert completion.choices[0].message.content == f"echo: {LONG}"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-") and completion.model == CLAUDE
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == 3 + 900 + 3  # message + system words
    assert usage.completion_tokens == 901
    assert raw.headers["x-nexus-backend"] == "claude"
    assert raw.headers["x-nexus-backend-type"] == "cloud"
    expected = cost(CLAUDE, usage.prompt_tokens, usage.completion_tokens)
    assert raw.headers["x-nexus-cost-estimated"] == expected
    assert "provider_specific_fields" not in raw.http_response.text
    (request,) = fleet.claude.requests_to(MESSAGES_PATH)
    assert request.headers["x-api-key"] == FakeAnthropic.api_key
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers, "the client's key never reaches a provider"
    sent = request.json()
    assert sent["system"] == [{"type": "text", "text": SYSTEM}]
    assert sent["max_tokens"] == 8192
    assert [m["role"] for m in sent["messages"]] == ["user"]


def test_gemini_answer_and_the_request_google_received(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        raw = client.chat.completions.with_raw_response.create(
            model=GEMINI, messages=messages(LONG), max_tokens=2000, temperature=0.3
        )
        completion = raw.parse()
    assert completion.choices[0].message.content == f"echo: {LONG}"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    expected = cost(GEMINI, usage.prompt_tokens, usage.completion_tokens)
    assert raw.headers["x-nexus-cost-estimated"] == expected
    (request,) = fleet.gemini.requests_to(GEMINI_PATH)
    assert request.headers["x-goog-api-key"] == FakeGemini.api_key
    assert "authorization" not in request.headers
    sent = request.json()
    assert sent["system_instruction"] == {"parts": [{"text": SYSTEM}]}
    assert sent["generationConfig"] == {"temperature": 0.3, "max_output_tokens": 2000}


def test_gpt_4o_cost_through_the_relay(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages())
        usage = raw.parse().usage
    assert usage is not None
    expected = cost("gpt-4o", usage.prompt_tokens, usage.completion_tokens)
    assert raw.headers["x-nexus-cost-estimated"] == expected


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_length_finish_reason(fleet: Fleet, model: str) -> None:
    with fleet.gw.sdk() as (client, _):
        completion = client.chat.completions.create(model=model, messages=messages(), max_tokens=1)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "echo:"


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_tool_calls_json_and_streamed(fleet: Fleet, model: str) -> None:
    fleet.claude.tool_preamble = "Let me look."
    try:
        with fleet.gw.sdk() as (client, _):
            completion = client.chat.completions.create(
                model=model, messages=messages(), tools=TOOLS
            )
            stream = client.chat.completions.create(
                model=model, messages=messages(), tools=TOOLS, stream=True
            )
            chunks = list(stream)
    finally:
        fleet.claude.tool_preamble = None
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"echo": "say hello"}
    deltas = [d for c in chunks for ch in c.choices for d in ch.delta.tool_calls or ()]
    assert {d.index for d in deltas} == {0}
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {
        "echo": "say hello"
    }
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == [
        "tool_calls"
    ]


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_streaming_deltas_and_usage(fleet: Fleet, model: str) -> None:
    with fleet.gw.sdk() as (client, _):
        stream = client.chat.completions.create(
            model=model,
            messages=messages("one two three four"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == "echo: one two three four"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_rate_limit_reaches_the_client_with_retry_after(fleet: Fleet) -> None:
    fleet.claude.rate_limit(retry_after=1, times=1)
    with fleet.gw.sdk() as (client, _), pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=CLAUDE, messages=messages())
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.response.headers["x-nexus-backend"] == "claude"
    time.sleep(1.1)  # the cooldown ends; later tests use claude again


def test_overloaded_claude_fails_over_to_a_relayed_backend(tmp_path) -> None:
    with FakeAnthropic() as claude, FakeOpenAI() as relay:
        claude.set_models(CLAUDE)
        relay.set_models(FakeModel(CLAUDE))
        claude.overloaded()
        backends = [
            backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_API_KEY", priority=1),
            backend("relay", relay.url, "generic", priority=2),
        ]
        with (
            gateway(tmp_path, backends, env=ENV, routing={"strategy": "priority_only"}) as gw,
            gw.sdk(timeout=60) as (client, _),
        ):
            raw = client.chat.completions.with_raw_response.create(
                model=CLAUDE, messages=messages()
            )
        assert raw.headers["x-nexus-backend"] == "relay"
        assert raw.headers["x-nexus-route-reason"] == "failover"
        assert raw.parse().choices[0].message.content == "echo: say hello"
        assert len(claude.requests_to(MESSAGES_PATH)) == 1


def test_rejected_key_is_503_naming_the_variable_and_health_answers_at_once(tmp_path) -> None:
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid"}}
    with FakeAnthropic() as claude:
        claude.set_models(CLAUDE)
        backends = [backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_API_KEY")]
        with gateway(tmp_path, backends, env=ENV) as gw:
            assert gw.served.ready_after < 5
            started = time.monotonic()
            assert httpx.get(f"{gw.url}/health", timeout=5).status_code == 200
            assert time.monotonic() - started < 1
            claude.respond(401, json_body=error, path=MESSAGES_PATH)
            with gw.sdk(timeout=60) as (client, _), pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model=CLAUDE, messages=messages())
            assert gw.statuses()["claude"] == "unhealthy"
    assert caught.value.status_code == 503
    body = caught.value.response.json()
    message = "backend 'claude' is unhealthy: API key rejected (ANTHROPIC_API_KEY)"
    assert body["error"]["message"] == message
