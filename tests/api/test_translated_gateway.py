"""Translated backends through the whole gateway (in-process): OpenAI-shaped answers, the cost
header, errors in the contract's table, and failover between translated and relayed backends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from nexus.config import NexusConfig
from nexus.observability.events import Completed
from nexus.routing import RoutingPolicy, requirements_from
from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.anthropic import MESSAGES_PATH, FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.upstream.translation import closes_litellm, events_of  # noqa: F401

pytestmark = pytest.mark.usefixtures("closes_litellm")
CLAUDE = "claude-3-5-sonnet-20241022"
GEMINI = "gemini-1.5-pro"
LONG = " ".join(f"w{i}" for i in range(900))  # enough tokens for a cost above 0.0001
PRICES = {  # USD per token, from the providers' price pages
    CLAUDE: (3e-6, 15e-6),
    GEMINI: (1.25e-6, 5e-6),
    "gpt-4o": (2.5e-6, 10e-6),
}
PRIORITY = {"strategy": "priority_only"}  # a deterministic order for the failover tests
ENVIRON = {"ANTHROPIC_API_KEY": FakeAnthropic.api_key, "GEMINI_API_KEY": FakeGemini.api_key}


def claude_backend(fake: FakeAnthropic, **extra: Any) -> dict[str, Any]:
    fake.set_models(CLAUDE)
    return {
        "name": "claude",
        "type": "anthropic",
        "url": fake.url,
        "api_key_env": "ANTHROPIC_API_KEY",
        **extra,
    }


def gemini_backend(fake: FakeGemini, **extra: Any) -> dict[str, Any]:
    fake.set_models(FakeModel(GEMINI, 2_097_152))
    return {
        "name": "gemini",
        "type": "google",
        "url": fake.url,
        "api_key_env": "GEMINI_API_KEY",
        **extra,
    }


def cost(model: str, usage: dict[str, int]) -> str:
    price_in, price_out = PRICES[model]
    return f"{usage['prompt_tokens'] * price_in + usage['completion_tokens'] * price_out:.4f}"


class Recorder:
    def __init__(self) -> None:
        self.events: list[Completed] = []

    def completed(self, event: Completed) -> None:
        self.events.append(event)


async def test_claude_json_answer_headers_and_cost(fake_anthropic: FakeAnthropic) -> None:
    async with gateway([claude_backend(fake_anthropic)], environ=ENVIRON) as gw:
        recorder = Recorder()
        gw.app.gateway.observer = recorder
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE, LONG))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["choices"][0]["message"]["content"] == f"echo: {LONG}"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert response.headers["x-nexus-backend"] == "claude"
    assert response.headers["x-nexus-backend-type"] == "cloud"
    assert response.headers["x-nexus-privacy-zone"] == "open"
    assert response.headers["x-nexus-cost-estimated"] == cost(CLAUDE, body["usage"])
    assert float(response.headers["x-nexus-cost-estimated"]) > 0.01
    (event,) = recorder.events
    assert event.output_tokens == body["usage"]["completion_tokens"]
    assert event.cost_usd == pytest.approx(float(cost(CLAUDE, body["usage"])), abs=1e-4)
    (request,) = fake_anthropic.requests_to(MESSAGES_PATH)
    assert request.headers["x-api-key"] == FakeAnthropic.api_key
    assert request.json()["max_tokens"] == 8192


async def test_gemini_json_cost_and_stream(fake_gemini: FakeGemini) -> None:
    async with gateway([gemini_backend(fake_gemini)], environ=ENVIRON) as gw:
        response = await gw.client.post(CHAT, json=chat_body(GEMINI, LONG))
        options = {"include_usage": True}
        stream = await gw.client.post(
            CHAT, json=chat_body(GEMINI, "hi there", stream=True, stream_options=options)
        )
    body = response.json()
    assert response.headers["x-nexus-cost-estimated"] == cost(GEMINI, body["usage"])
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.content.endswith(b"data: [DONE]\n\n")
    events = events_of(stream.content)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text == "echo: hi there"
    assert events[-1]["usage"]["completion_tokens"] == 3
    # input tokens of a Gemini request are an estimate: no upper bound is sent for a stream
    assert "x-nexus-cost-estimated" not in stream.headers


async def test_gpt_4o_relayed_cost_from_usage_and_stream_bound(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("gpt-4o"))
    fake.api_key = "sk-openai"
    backend = {"name": "openai", "type": "openai", "url": fake.url, "api_key_env": "OAI"}
    stream_body = chat_body("gpt-4o", LONG, stream=True, max_tokens=300)
    async with gateway([backend], environ={"OAI": "sk-openai"}) as gw:
        response = await gw.client.post(CHAT, json=chat_body("gpt-4o", LONG))
        stream = await gw.client.post(CHAT, json=stream_body)
    assert response.headers["x-nexus-cost-estimated"] == cost("gpt-4o", response.json()["usage"])
    policy = RoutingPolicy.from_config(NexusConfig())
    needs = requirements_from(stream_body, {}, policy)
    assert needs.tokens_exact
    bound = {"prompt_tokens": needs.input_tokens, "completion_tokens": 300}
    assert stream.headers["x-nexus-cost-estimated"] == cost("gpt-4o", bound)


async def test_no_cost_header_for_local_backends(fake_openai: FakeOpenAI) -> None:
    fake_openai.set_models(FakeModel("gpt-4o"))
    backend = {"name": "gpu", "type": "vllm", "url": fake_openai.url}
    async with gateway([backend]) as gw:
        plain = await gw.client.post(CHAT, json=chat_body("gpt-4o", LONG))
        streamed = await gw.client.post(CHAT, json=chat_body("gpt-4o", LONG, stream=True))
    for response in (plain, streamed):
        assert response.status_code == 200
        assert response.headers["x-nexus-backend-type"] == "local"
        assert "x-nexus-cost-estimated" not in response.headers


async def test_claude_stream_with_tool_calls(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.tool_preamble = "Checking."
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    async with gateway([claude_backend(fake_anthropic)], environ=ENVIRON) as gw:
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE, stream=True, tools=tools))
        assert gw.in_flight() == {"claude": 0}
    events = events_of(response.content)
    calls = [
        call for e in events for c in e["choices"] for call in c["delta"].get("tool_calls") or ()
    ]
    assert calls[0]["function"]["name"] == "lookup" and calls[0]["index"] == 0
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert "x-nexus-cost-estimated" not in response.headers  # Claude's tokens are estimates


async def test_rate_limit_passes_through_then_cooldown(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.rate_limit(retry_after=7)
    async with gateway([claude_backend(fake_anthropic)], environ=ENVIRON) as gw:
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE))
        after = await gw.client.post(CHAT, json=chat_body(CLAUDE))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["x-nexus-backend"] == "claude"
    assert after.status_code == 503 and after.json()["context"]["eta_seconds"] in (6, 7)
    assert len(fake_anthropic.requests_to(MESSAGES_PATH)) == 1


async def test_rejected_key_marks_unhealthy_and_503_names_the_variable(
    fake_anthropic: FakeAnthropic,
) -> None:
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid"}}
    async with gateway([claude_backend(fake_anthropic)], environ=ENVIRON) as gw:
        fake_anthropic.respond(401, json_body=error, path=MESSAGES_PATH)  # key revoked
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE))
        assert gw.statuses() == {"claude": "unhealthy"}
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert message == "backend 'claude' is unhealthy: API key rejected (ANTHROPIC_API_KEY)"
    assert FakeAnthropic.api_key not in response.text


async def test_overloaded_claude_fails_over_to_a_relayed_backend(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.overloaded()
    fake_openai.set_models(FakeModel(CLAUDE))
    backends = [
        claude_backend(fake_anthropic, priority=1),
        {"name": "relay", "type": "generic", "url": fake_openai.url, "priority": 2},
    ]
    async with gateway(backends, environ=ENVIRON, routing=PRIORITY) as gw:
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE))
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "relay"
    assert response.headers["x-nexus-route-reason"] == "failover"
    assert len(fake_anthropic.requests_to(MESSAGES_PATH)) == 1


async def test_failed_relay_fails_over_to_claude(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_openai.set_models(FakeModel(CLAUDE))
    fake_openai.server_error(500)
    backends = [
        {"name": "relay", "type": "generic", "url": fake_openai.url, "priority": 1},
        claude_backend(fake_anthropic, priority=2),
    ]
    async with gateway(backends, environ=ENVIRON, routing=PRIORITY) as gw:
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE, stream=True))
    assert response.headers["x-nexus-backend"] == "claude"
    assert response.headers["x-nexus-route-reason"] == "failover"
    assert response.content.endswith(b"data: [DONE]\n\n")


async def test_claude_stream_broken_midway_ends_with_the_error_event(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.break_stream_after(5)
    async with gateway([claude_backend(fake_anthropic)], environ=ENVIRON) as gw:
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE, "one two three", stream=True))
        assert gw.in_flight() == {"claude": 0}
    assert response.status_code == 200
    events = [e for e in response.content.split(b"\n\n") if e]
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "stream_interrupted"
    assert "backend 'claude'" in last["error"]["message"]
    assert b"[DONE]" not in response.content
    assert len(events) >= 2, "some content came before the break"


async def test_unsupported_parameter_is_400_without_failover(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_openai.set_models(FakeModel(CLAUDE))
    backends = [
        claude_backend(fake_anthropic, priority=1),
        {"name": "relay", "type": "generic", "url": fake_openai.url, "priority": 2},
    ]
    async with gateway(backends, environ=ENVIRON, routing=PRIORITY) as gw:
        response = await gw.client.post(CHAT, json=chat_body(CLAUDE, seed=3))
        assert gw.statuses()["claude"] == "healthy"
    assert response.status_code == 400
    assert response.headers["x-nexus-backend"] == "claude"
    assert "seed" in response.json()["error"]["message"]
    assert fake_openai.requests_to(CHAT) == []
