"""``POST /v1/messages`` to a backend that does not speak Messages (issue 15): LiteLLM translates
onto its chat completions, and the answer comes back in Anthropic's wire format (JSON and the
SSE event sequence), tool use included; what cannot be carried is a 400 naming it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.api.gateway import gateway
from tests.api.test_messages import MESSAGES, anthropic_error, request
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

CHAT = "/v1/chat/completions"
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture
def plain(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.set_models(FakeModel("qwen3"))
    fake_openai.serves = {"chat", "embeddings"}
    return fake_openai


def backend(fake: FakeOpenAI) -> dict[str, Any]:
    return {"name": "plain", "type": "generic", "url": fake.url}


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


async def test_json_comes_back_as_an_anthropic_message(plain) -> None:
    body = request("qwen3", system="Be brief.")
    async with gateway([backend(plain)]) as gw:
        response = await gw.client.post(MESSAGES, json=body)
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0] == {"type": "text", "text": "echo: hello there"}
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0
    assert response.headers["x-nexus-backend"] == "plain"
    assert plain.requests_to(MESSAGES) == []
    (sent,) = plain.requests_to(CHAT)
    chat = sent.json()
    assert chat["model"] == "qwen3" and chat["max_tokens"] == 64
    assert chat["messages"][0]["role"] == "system"
    assert chat["messages"][-1]["content"] in (
        "hello there",
        [{"type": "text", "text": "hello there"}],
    )


async def test_a_stream_is_anthropics_event_sequence(plain) -> None:
    async with gateway([backend(plain)]) as gw:
        response = await gw.client.post(MESSAGES, json=request("qwen3", stream=True))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    seen = events(response.text)
    names = [name for name, _ in seen]
    assert names[0] == "message_start" and names[-1] == "message_stop", response.text[-600:]
    assert "content_block_start" in names and "message_delta" in names
    text = "".join(
        data["delta"]["text"]
        for name, data in seen
        if name == "content_block_delta" and data["delta"]["type"] == "text_delta"
    )
    assert text == "echo: hello there"
    assert all(name == data["type"] for name, data in seen)


async def test_tool_use_and_its_result_round_trip(plain) -> None:
    first = request("qwen3", text="weather in Paris?", tools=TOOLS)
    async with gateway([backend(plain)]) as gw:
        asked = await gw.client.post(MESSAGES, json=first)
        assert asked.status_code == 200, asked.text
        message = asked.json()
        (use,) = [block for block in message["content"] if block["type"] == "tool_use"]
        assert message["stop_reason"] == "tool_use"
        assert use["name"] == "get_weather" and use["input"] == {"echo": "weather in Paris?"}
        follow_up = {
            **first,
            "messages": [
                *first["messages"],
                {"role": "assistant", "content": message["content"]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"}
                    ],
                },
            ],
        }
        answered = await gw.client.post(MESSAGES, json=follow_up)
    assert answered.status_code == 200, answered.text
    chat = plain.requests_to(CHAT)[-1].json()
    assert chat["tools"][0]["function"]["name"] == "get_weather"
    calls = [m for m in chat["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert calls[0]["tool_calls"][0]["id"] == use["id"]
    results = [m for m in chat["messages"] if m["role"] == "tool"]
    assert results[0]["tool_call_id"] == use["id"]


async def test_a_backend_rate_limit_is_anthropics_with_its_retry_after(plain) -> None:
    plain.rate_limit(retry_after=2)
    async with gateway([backend(plain)]) as gw:
        response = await gw.client.post(MESSAGES, json=request("qwen3"))
    assert response.status_code == 429
    assert anthropic_error(response)["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "2"


async def test_a_translated_stream_that_breaks_ends_with_one_error_event(plain) -> None:
    plain.break_stream_after(3)
    async with gateway([backend(plain)]) as gw:
        response = await gw.client.post(MESSAGES, json=request("qwen3", stream=True))
    assert response.status_code == 200
    seen = events(response.text)
    assert [name for name, _ in seen].count("error") == 1
    assert seen[-1][0] == "error" and seen[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in seen]


async def test_a_field_the_translation_cannot_carry_is_an_anthropic_400(plain) -> None:
    body = request("qwen3", container={"id": "c1"})
    async with gateway([backend(plain)]) as gw:
        response = await gw.client.post(MESSAGES, json=body)
    assert response.status_code == 400
    error = anthropic_error(response)["error"]
    assert error["type"] == "invalid_request_error"
    assert "'container'" in error["message"] and "plain" in error["message"]
    assert plain.requests_to(CHAT) == []


async def test_a_backend_400_is_an_anthropic_400(plain) -> None:
    plain.respond(400, json_body={"error": {"message": "bad temperature"}}, path=CHAT)
    async with gateway([backend(plain)]) as gw:
        response = await gw.client.post(MESSAGES, json=request("qwen3"))
    assert response.status_code == 400
    assert "bad temperature" in anthropic_error(response)["error"]["message"]
