"""``POST /v1/responses`` (issue 15): relayed byte for byte to a backend that speaks the
Responses API (vLLM, Ollama, OpenAI), translated by LiteLLM onto the chat completions of one that
does not (and onto Anthropic's Messages); errors in the OpenAI envelope; ``previous_response_id``
refused (the input must be sent in full)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.api.gateway import gateway
from tests.api.test_messages import ENVIRON, anthropic_backend
from tests.api.test_messages_translated import events
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

RESPONSES = "/v1/responses"
CHAT = "/v1/chat/completions"
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def request(model: str = "qwen3", text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "input": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.set_models(FakeModel("qwen3"))
    return fake_openai


def native(fake: FakeOpenAI) -> dict[str, Any]:
    return {"name": "gpu", "type": "vllm", "url": fake.url}


def plain(fake: FakeOpenAI) -> dict[str, Any]:
    fake.serves = {"chat", "embeddings"}
    return {"name": "plain", "type": "generic", "url": fake.url}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_backend_that_speaks_responses_gets_the_bytes(fake, stream) -> None:
    raw = orjson.dumps(request(stream=stream, instructions="Be brief."))
    direct = httpx.post(f"{fake.url}{RESPONSES}", content=raw)
    async with gateway([native(fake)]) as gw:
        response = await gw.client.post(RESPONSES, content=raw)
    assert response.status_code == 200, response.text
    assert response.content == direct.content
    assert response.headers["x-nexus-backend"] == "gpu"
    assert fake.requests_to(RESPONSES)[-1].body == raw
    assert fake.requests_to(CHAT) == []


async def test_json_is_translated_onto_chat_for_a_backend_without_responses(fake) -> None:
    async with gateway([plain(fake)]) as gw:
        response = await gw.client.post(RESPONSES, json=request(instructions="Be brief."))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "response" and answer["status"] == "completed"
    assert answer["model"] == "qwen3"
    (item,) = answer["output"]
    assert item["type"] == "message"
    assert item["content"][0]["text"] == "echo: hello there"
    assert answer["usage"]["output_tokens"] > 0
    assert "provider_specific_fields" not in answer
    (sent,) = fake.requests_to(CHAT)
    assert sent.json()["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fake.requests_to(RESPONSES) == []


async def test_a_translated_stream_is_responses_events(fake) -> None:
    async with gateway([plain(fake)]) as gw:
        response = await gw.client.post(RESPONSES, json=request(stream=True))
    assert response.status_code == 200, response.text
    seen = events(response.text)
    names = [name for name, _ in seen]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert all(name == data["type"] for name, data in seen)
    text = "".join(data["delta"] for name, data in seen if name == "response.output_text.delta")
    assert text == "echo: hello there"
    assert seen[-1][1]["response"]["model"] == "qwen3"


async def test_function_calls_and_their_output_round_trip(fake) -> None:
    first = request(text="weather in Paris?", tools=TOOLS)
    async with gateway([plain(fake)]) as gw:
        asked = await gw.client.post(RESPONSES, json=first)
        assert asked.status_code == 200, asked.text
        (call,) = [i for i in asked.json()["output"] if i["type"] == "function_call"]
        assert call["name"] == "get_weather"
        assert orjson.loads(call["arguments"]) == {"echo": "weather in Paris?"}
        follow_up = {
            **first,
            "input": [
                *first["input"],
                call,
                {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
            ],
        }
        answered = await gw.client.post(RESPONSES, json=follow_up)
    assert answered.status_code == 200, answered.text
    chat = fake.requests_to(CHAT)[-1].json()
    assert chat["tools"][0]["function"]["name"] == "get_weather"
    results = [m for m in chat["messages"] if m["role"] == "tool"]
    assert results[0]["tool_call_id"] == call["call_id"] and results[0]["content"] == "sunny"


async def test_responses_reach_anthropic_through_its_messages(start_fake) -> None:
    claude: FakeAnthropic = start_fake(FakeAnthropic)
    claude.set_models(FakeModel("claude-sonnet-4-5"))
    body = request("claude-sonnet-4-5", max_output_tokens=50)
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(RESPONSES, json=body)
        streamed = await gw.client.post(RESPONSES, json={**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.json()["output"][0]["content"][0]["text"] == "echo: hello there"
    assert response.headers["x-nexus-backend"] == "claude"
    assert events(streamed.text)[-1][0] == "response.completed"
    assert len(claude.requests_to("/v1/messages")) == 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "qwen3"}, "input"),
        ({"input": "x"}, "model"),
        ({**request(), "previous_response_id": "resp_1"}, "previous_response_id"),
        ({**request(), "stream": "yes"}, "stream"),
    ],
)
async def test_a_request_nexus_cannot_serve_is_a_400_naming_the_field(fake, body, param) -> None:
    async with gateway([native(fake)]) as gw:
        response = await gw.client.post(RESPONSES, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert fake.requests_to(RESPONSES) == []


async def test_previous_response_id_says_to_send_the_input_in_full(fake) -> None:
    async with gateway([native(fake)]) as gw:
        response = await gw.client.post(
            RESPONSES, json={**request(), "previous_response_id": "resp_1"}
        )
    assert "in full" in response.json()["error"]["message"]


async def test_an_unknown_model_is_a_404(fake) -> None:
    async with gateway([native(fake)]) as gw:
        response = await gw.client.post(RESPONSES, json=request("nope"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_the_gateway_does_not_download_a_responses_image_for_a_provider(start_fake) -> None:
    claude: FakeAnthropic = start_fake(FakeAnthropic)
    claude.set_models(FakeModel("claude-sonnet-4-5"))
    image = {"type": "input_image", "image_url": "http://198.51.100.7/cat.png"}
    body = {
        "model": "claude-sonnet-4-5",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "what?"}, image]}],
    }
    async with gateway([anthropic_backend(claude)], environ=ENVIRON) as gw:
        response = await gw.client.post(RESPONSES, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "input[0].content[1].image_url", error
    assert "data:" in error["message"]
    assert claude.requests_to("/v1/messages") == []
