"""The client dialects (issue 15) through a real `nexus serve`, driven by the official SDKs: the
`anthropic` SDK on ``/v1/messages`` and ``/v1/messages/count_tokens``, the `openai` SDK on
``/v1/responses``, ``/v1/completions`` and ``/v1/models/{id}``.

Each dialect meets a backend that speaks it natively (the client gets the very bytes the fake
answers to a direct call with what the SDK sent) and one that needs LiteLLM's translation (a
chat-only server for Messages and completions, Anthropic for Responses), with the same routing
headers; a restricted request on any dialect never reaches an open cloud backend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.lib.streaming import InputJsonEvent, TextEvent
from openai.types.responses import ResponseFunctionCallArgumentsDeltaEvent as ArgumentsDelta
from openai.types.responses import ResponseFunctionToolCall, ResponseTextDeltaEvent

from tests.e2e.configs import CHAT, Gateway, Sent, backend, direct, gateway, sse_events
from tests.e2e.serving import free_port
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.dialects import COMPLETIONS_PATH, MESSAGES_PATH, RESPONSES_PATH
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

CLAUDE = "claude-sonnet-4-5-20250929"
CODER = "qwen3-coder:30b"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")
COST = re.compile(r"\d+\.\d{4}")
ENV = {"ANTHROPIC_API_KEY": FakeAnthropic.api_key, "OPENAI_API_KEY": "sk-cloud-test"}
#: Headers of the requests the tests send with httpx: through Nexus (it checks no client key
#: here), and directly to a fake (which may be Anthropic: its own key)
VERSION = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
CLIENT = {**VERSION, "x-api-key": "client-key"}
DIRECT = {**VERSION, "x-api-key": FakeAnthropic.api_key}
SYSTEM = "You are terse. " * 20
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
MESSAGE_TOOLS: Any = [{"name": "get_weather", "input_schema": WEATHER}]
RESPONSE_TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]


@dataclass
class Fleet:
    gw: Gateway
    gpu: FakeOpenAI  # vllm: completions and responses natively
    box: FakeOllama  # ollama: messages natively
    plain: FakeOpenAI  # generic, chat only: messages and completions translated
    claude: FakeAnthropic  # anthropic (cloud): messages natively, responses translated onto them

    def fake(self, name: str) -> FakeOpenAI | FakeOllama | FakeAnthropic:
        fake: FakeOpenAI | FakeOllama | FakeAnthropic = getattr(self, name)
        return fake


@pytest.fixture(scope="module")
def _fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with FakeOpenAI() as gpu, FakeOllama() as box, FakeOpenAI() as plain, FakeAnthropic() as claude:
        gpu.set_models("coder")
        box.set_models(FakeModel(CODER, tools=True))
        plain.set_models("qwen3")
        plain.serves = {"chat", "embeddings"}
        claude.set_models(CLAUDE)
        backends = [
            backend("gpu", gpu.url),
            backend("box", box.url, "ollama"),
            backend("plain", plain.url, "generic"),
            backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_API_KEY"),
            # lists "later" but nothing listens: the only backend of "later" is down
            backend("dead", f"http://127.0.0.1:{free_port()}", models=["later"]),
        ]
        routing = {"aliases": {"fast": "coder"}}
        with gateway(tmp_path_factory.mktemp("dialects"), backends, env=ENV, routing=routing) as gw:
            warm = {"model": "qwen3", "messages": [{"role": "user", "content": "warm"}]}
            httpx.post(f"{gw.url}{CHAT}", json=warm, timeout=60)
            yield Fleet(gw, gpu, box, plain, claude)


@pytest.fixture
def fleet(_fleet: Fleet) -> Iterator[Fleet]:
    for fake in (_fleet.gpu, _fleet.box, _fleet.plain, _fleet.claude):
        fake.reset()
    yield _fleet
    assert set(_fleet.gw.in_flight().values()) == {0}, "every request released its backend"


@contextmanager
def anthropic_sdk(gw: Gateway, timeout: float = 30) -> Iterator[tuple[anthropic.Anthropic, Sent]]:
    """An `anthropic.Anthropic` client on the gateway (no retries) and the bodies it sends."""
    sent = Sent()
    http = httpx2.Client(event_hooks={"request": [sent.hook]}, timeout=timeout)
    with (
        http,
        anthropic.Anthropic(
            base_url=gw.url, api_key="client-key", max_retries=0, http_client=http, timeout=timeout
        ) as client,
    ):
        yield client, sent


def assert_routed(headers: Any, name: str) -> None:
    """The routing headers of an answer ``name`` served on first try (claude is the cloud)."""
    cloud = name == "claude"
    assert headers["x-nexus-backend"] == name
    assert headers["x-nexus-backend-type"] == ("cloud" if cloud else "local")
    assert headers["x-nexus-route-reason"] == "capability-match"
    assert headers["x-nexus-privacy-zone"] == ("open" if cloud else "restricted")
    assert HEX_ID.match(headers["x-request-id"]), headers["x-request-id"]
    if not cloud:
        assert "x-nexus-cost-estimated" not in headers, "no cost for local backends"


def assert_costed(headers: Any) -> None:
    """A cloud JSON answer's cost, from its usage: USD with 4 decimals."""
    assert COST.fullmatch(headers["x-nexus-cost-estimated"]), headers["x-nexus-cost-estimated"]


def assert_unrouted(headers: Any) -> None:
    for name in ("backend", "backend-type", "route-reason", "privacy-zone"):
        assert headers[f"x-nexus-{name}"] == "none"


def relayed(fleet: Fleet, path: str, sent: bytes) -> httpx.Response:
    """The answer to the SDK's ``sent`` request posted again, with httpx: the bytes to compare."""
    through = httpx.post(f"{fleet.gw.url}{path}", content=sent, headers=CLIENT, timeout=30)
    assert through.status_code == 200, through.text
    return through


def native_answer(fleet: Fleet, name: str, sent: bytes) -> bytes:
    """Check that the native backend ``name`` got the SDK's ``sent`` bytes unchanged, with its
    own key and never the client's; return what it answers when called directly with them."""
    fake = fleet.fake(name)
    received = fake.requests_to(MESSAGES_PATH)[-1]
    assert received.body == sent
    assert "authorization" not in received.headers
    key = FakeAnthropic.api_key if name == "claude" else None
    assert received.headers.get("x-api-key") == key
    assert "anthropic-version" in received.headers  # the client's, passed on
    response = httpx.post(f"{fake.url}{MESSAGES_PATH}", content=sent, headers=DIRECT)
    assert response.status_code == 200, response.text
    return response.content


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


# -- Messages (the anthropic SDK) ------------------------------------------------------------

#: (model, backend, whether the backend speaks Messages natively)
MESSAGE_ROUTES = [
    pytest.param(CODER, "box", True, id="native-ollama"),
    pytest.param(CLAUDE, "claude", True, id="native-anthropic"),
    pytest.param("qwen3", "plain", False, id="translated-generic"),
]


@pytest.mark.parametrize(("model", "name", "native"), MESSAGE_ROUTES)
def test_messages_create(fleet: Fleet, model: str, name: str, native: bool) -> None:
    text = 'h\u00e9llo "w\u00f6rld" </tag>'
    with anthropic_sdk(fleet.gw) as (client, sent):
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=64, system="Be brief.", messages=user(text)
        )
        message = raw.parse()
    assert raw.http_response.status_code == 200
    assert_routed(raw.headers, name)
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text" and message.content[0].text == f"echo: {text}"
    assert message.stop_reason == "end_turn" and message.model == model
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    if name == "claude":
        assert_costed(raw.headers)
    if native:
        assert len(fleet.fake(name).requests_to(MESSAGES_PATH)) == 1
        assert raw.http_response.content == native_answer(fleet, name, sent.last)
        assert fleet.box.requests_to(CHAT) == []
    else:
        assert fleet.plain.requests_to(MESSAGES_PATH) == []
        (received,) = fleet.plain.requests_to(CHAT)
        chat = received.json()
        assert chat["model"] == model and chat["max_tokens"] == 64
        assert chat["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(("model", "name", "native"), MESSAGE_ROUTES)
def test_messages_stream(fleet: Fleet, model: str, name: str, native: bool) -> None:
    fake = fleet.fake(name)
    fake.chunk_count = 5
    with (
        anthropic_sdk(fleet.gw) as (client, sent),
        client.messages.stream(
            model=model, max_tokens=64, messages=user("stream me caf\u00e9 please")
        ) as stream,
    ):
        headers = stream.response.headers
        texts = [event.text for event in stream if isinstance(event, TextEvent)]
        final = stream.get_final_message()
    assert headers["content-type"].startswith("text/event-stream")
    assert_routed(headers, name)
    assert "".join(texts) == "echo: stream me caf\u00e9 please"
    assert len(texts) >= 2, "the answer came in several deltas"
    assert final.content[0].type == "text" and final.content[0].text == "".join(texts)
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    assert json.loads(sent.last)["stream"] is True
    if native:
        assert [r.body for r in fake.requests_to(MESSAGES_PATH)] == [sent.last]
        body = relayed(fleet, MESSAGES_PATH, sent.last).content
        expected = native_answer(fleet, name, sent.last)
        assert sse_events(body) == sse_events(expected)
        assert body == expected
    else:
        assert fleet.plain.requests_to(MESSAGES_PATH) == []
        assert fleet.plain.requests_to(CHAT)[-1].json()["stream"] is True


@pytest.mark.parametrize(("model", "name", "native"), MESSAGE_ROUTES)
def test_tool_use_streamed_then_its_result(
    fleet: Fleet, model: str, name: str, native: bool
) -> None:
    question = user("weather in Paris?")
    with anthropic_sdk(fleet.gw) as (client, sent):
        with client.messages.stream(
            model=model, max_tokens=64, messages=question, tools=MESSAGE_TOOLS
        ) as stream:
            partial = "".join(e.partial_json for e in stream if isinstance(e, InputJsonEvent))
            asked = stream.get_final_message()
        assert_routed(stream.response.headers, name)
        (use,) = [block for block in asked.content if block.type == "tool_use"]
        assert asked.stop_reason == "tool_use"
        assert use.name == "get_weather" and use.input == {"echo": "weather in Paris?"}
        assert json.loads(partial) == use.input
        result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
        follow_up: Any = [
            *question,
            {"role": "assistant", "content": asked.content},
            {"role": "user", "content": [result]},
        ]
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=64, messages=follow_up, tools=MESSAGE_TOOLS
        )
    assert raw.http_response.status_code == 200
    assert_routed(raw.headers, name)
    assert raw.parse().type == "message" and raw.parse().content
    if native:
        received = fleet.fake(name).requests_to(MESSAGES_PATH)[-1]
        assert received.json()["messages"][-1]["content"] == [result]
        assert raw.http_response.content == native_answer(fleet, name, sent.last)
    else:
        chat = fleet.plain.requests_to(CHAT)[-1].json()
        assert chat["tools"][0]["function"]["name"] == "get_weather"
        calls = [m for m in chat["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        assert calls[0]["tool_calls"][0]["id"] == use.id
        (tool,) = [m for m in chat["messages"] if m["role"] == "tool"]
        assert tool["tool_call_id"] == use.id and "sunny" in json.dumps(tool["content"])


def test_count_tokens_is_answered_by_nexus(fleet: Fleet) -> None:
    """Counted by Nexus (the system prompt too), whatever backend serves the model."""
    with anthropic_sdk(fleet.gw) as (client, _):
        for model in (CODER, CLAUDE, "qwen3"):  # native local, native cloud, translated
            raw = client.messages.with_raw_response.count_tokens(model=model, messages=user("hi"))
            small = raw.parse()
            assert raw.http_response.json() == {"input_tokens": small.input_tokens}
            assert 0 < small.input_tokens < 20
            assert_unrouted(raw.headers)
            long = user("hello " * 50)
            big = client.messages.count_tokens(model=model, system=SYSTEM, messages=long)
            assert big.input_tokens > small.input_tokens + 100
    fakes = (fleet.gpu, fleet.box, fleet.plain, fleet.claude)
    assert [r.path for f in fakes for r in f.requests if r.method == "POST"] == [], "none asked"


def test_messages_errors_in_anthropics_envelope(fleet: Fleet) -> None:
    """An unknown model; a known one whose only backend is down (a 503 with a Retry-After)."""
    with anthropic_sdk(fleet.gw) as (client, _):
        with pytest.raises(anthropic.NotFoundError) as unknown:
            client.messages.create(model="claude-nope", max_tokens=8, messages=user("x"))
        with pytest.raises(anthropic.APIStatusError) as down:
            client.messages.create(model="later", max_tokens=8, messages=user("x"))
    for error, kind in ((unknown.value, "not_found_error"), (down.value, "overloaded_error")):
        assert isinstance(error.body, dict) and error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == kind
        assert_unrouted(error.response.headers)
    assert unknown.value.status_code == 404 and "'claude-nope'" in unknown.value.message
    assert down.value.status_code == 503 and fleet.gw.statuses()["dead"] == "unhealthy"
    assert int(down.value.response.headers["retry-after"]) >= 1
    assert "backend 'dead' is unhealthy" in down.value.message


# -- Responses (the openai SDK) --------------------------------------------------------------

#: (model, backend, whether the backend speaks Responses natively)
RESPONSE_ROUTES = [
    pytest.param("coder", "gpu", True, id="native-vllm"),
    pytest.param(CLAUDE, "claude", False, id="translated-anthropic"),
]


@pytest.mark.parametrize(("model", "name", "native"), RESPONSE_ROUTES)
def test_responses_create(fleet: Fleet, model: str, name: str, native: bool) -> None:
    text = 'h\u00e9llo "w\u00f6rld"'
    with fleet.gw.sdk(timeout=30) as (client, sent):
        raw = client.responses.with_raw_response.create(
            model=model, instructions="Be brief.", input=text, max_output_tokens=50
        )
        response = raw.parse()
    assert raw.http_response.status_code == 200
    assert_routed(raw.headers, name)
    assert response.object == "response" and response.status == "completed"
    assert response.model == model and response.output_text == f"echo: {text}"
    assert response.usage is not None and response.usage.output_tokens > 0
    if native:
        (received,) = fleet.gpu.requests_to(RESPONSES_PATH)
        assert received.body == sent.last
        assert raw.http_response.content == direct(fleet.gpu.url, RESPONSES_PATH, sent.last).content
        assert fleet.gpu.requests_to(CHAT) == []
    else:
        assert_costed(raw.headers)
        assert "provider_specific_fields" not in raw.http_response.text
        (received,) = fleet.claude.requests_to(MESSAGES_PATH)
        assert received.headers["x-api-key"] == FakeAnthropic.api_key
        assert "authorization" not in received.headers
        assert received.json()["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
        assert received.json()["max_tokens"] == 50


@pytest.mark.parametrize(("model", "name", "native"), RESPONSE_ROUTES)
def test_responses_stream(fleet: Fleet, model: str, name: str, native: bool) -> None:
    with (
        fleet.gw.sdk(timeout=30) as (client, sent),
        client.responses.stream(model=model, input="stream me caf\u00e9 please") as stream,
    ):
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(deltas) == "echo: stream me caf\u00e9 please"
    assert len(deltas) >= 2, "the answer came in several deltas"
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.output_text == "".join(deltas) and final.status == "completed"
    # the headers and bytes, with httpx: the SDK's own request sent again
    assert json.loads(sent.last)["stream"] is True
    through = relayed(fleet, RESPONSES_PATH, sent.last)
    assert through.headers["content-type"].startswith("text/event-stream")
    assert_routed(through.headers, name)
    if native:
        received = fleet.gpu.requests_to(RESPONSES_PATH)
        assert [r.body for r in received] == [sent.last, sent.last]
        expected = direct(fleet.gpu.url, RESPONSES_PATH, sent.last).content
        assert sse_events(through.content) == sse_events(expected)
        assert through.content == expected
    else:
        assert len(fleet.claude.requests_to(MESSAGES_PATH)) == 2
        assert fleet.claude.requests_to(MESSAGES_PATH)[-1].json()["stream"] is True


def canned_function_call(fake: FakeOpenAI, stream: bool) -> None:
    """Make the native fake answer a ``get_weather`` function call (its ``/v1/responses`` echoes
    text whatever the tools), as JSON or as the Responses SSE events."""
    # fmt: off
    call = {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
            "name": "get_weather", "arguments": '{"city": "Paris"}'}
    done = {"id": "resp_1", "object": "response", "created_at": 1717171717, "status": "completed",
            "model": "coder", "output": [call],
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}
    if not stream:
        fake.respond(json_body=done, path=RESPONSES_PATH)
        return
    item = {"item_id": "fc_1", "output_index": 0}
    sequence: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**done, "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**call, "arguments": ""}},
        {"type": "response.function_call_arguments.delta", **item, "delta": '{"city": '},
        {"type": "response.function_call_arguments.delta", **item, "delta": '"Paris"}'},
        {"type": "response.function_call_arguments.done", **item, "arguments": call["arguments"]},
        {"type": "response.output_item.done", "output_index": 0, "item": call},
        {"type": "response.completed", "response": done},
    ]
    # fmt: on
    body = "".join(
        f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': number})}\n\n"
        for number, event in enumerate(sequence)
    )
    fake.respond(body=body, headers={"content-type": "text/event-stream"}, path=RESPONSES_PATH)


def called(client: openai.OpenAI, model: str, stream: bool) -> ResponseFunctionToolCall:
    """The one function call of the answer (streamed: its argument deltas add up to it)."""
    question = "weather in Paris?"
    if not stream:
        answer = client.responses.create(model=model, input=question, tools=RESPONSE_TOOLS)
    else:
        with client.responses.stream(model=model, input=question, tools=RESPONSE_TOOLS) as events:
            deltas = [e.delta for e in events if isinstance(e, ArgumentsDelta)]
            answer = events.get_final_response()
    (call,) = [item for item in answer.output if isinstance(item, ResponseFunctionToolCall)]
    assert call.name == "get_weather"
    if stream:
        assert "".join(deltas) == call.arguments
    return call


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("model", "name", "native"), RESPONSE_ROUTES)
def test_responses_function_call(
    fleet: Fleet, model: str, name: str, native: bool, stream: bool
) -> None:
    if native:
        canned_function_call(fleet.gpu, stream)
    with fleet.gw.sdk(timeout=30) as (client, sent):
        call = called(client, model, stream)
        if native:
            assert json.loads(call.arguments) == {"city": "Paris"}
            (received,) = fleet.gpu.requests_to(RESPONSES_PATH)
            assert received.body == sent.last
            assert received.json()["tools"] == RESPONSE_TOOLS
            fleet.gpu.reset()  # the answer to the function's output is the fake's own
        else:
            assert json.loads(call.arguments) == {"echo": "weather in Paris?"}
        output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        follow_up: Any = [{"role": "user", "content": "weather in Paris?"}, call, output]
        raw = client.responses.with_raw_response.create(
            model=model, input=follow_up, tools=RESPONSE_TOOLS
        )
    assert raw.http_response.status_code == 200, raw.http_response.text
    assert_routed(raw.headers, name)
    assert raw.parse().status == "completed"
    if native:
        (received,) = fleet.gpu.requests_to(RESPONSES_PATH)
        assert received.json()["input"][-1] == output
        assert raw.http_response.content == direct(fleet.gpu.url, RESPONSES_PATH, sent.last).content
    else:
        messages = fleet.claude.requests_to(MESSAGES_PATH)[-1].json()["messages"]
        blocks = [b for m in messages if isinstance(m["content"], list) for b in m["content"]]
        results = [block for block in blocks if block["type"] == "tool_result"]
        assert [r["tool_use_id"] for r in results] == [call.call_id]
        assert "sunny" in json.dumps(results[0]["content"])


def test_responses_unknown_model_is_not_found(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        with pytest.raises(openai.NotFoundError) as caught:
            client.responses.create(model="nope", input="x")
        with pytest.raises(openai.NotFoundError), client.responses.stream(model="nope", input="x"):
            pass
    error = caught.value
    assert error.status_code == 404 and error.code == "model_not_found"
    assert "'nope'" in error.message
    assert_unrouted(error.response.headers)


# -- legacy completions and model retrieval (the openai SDK) ---------------------------------

PROMPT = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))"


def completion(model: str, **extra: Any) -> Any:
    return {"model": model, "prompt": PROMPT, "max_tokens": 30, **extra}


def test_completions_with_suffix_are_the_native_backends_bytes(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, sent):
        raw = client.completions.with_raw_response.create(**completion("coder", suffix=SUFFIX))
    assert_routed(raw.headers, "gpu")
    assert raw.parse().choices[0].text == f"echo: {PROMPT} [suffix: {SUFFIX}]"
    (received,) = fleet.gpu.requests_to(COMPLETIONS_PATH)
    assert received.body == sent.last and json.loads(sent.last)["suffix"] == SUFFIX
    assert raw.http_response.content == direct(fleet.gpu.url, COMPLETIONS_PATH, sent.last).content
    assert fleet.gpu.requests_to(CHAT) == []


def test_completions_without_suffix_are_translated_for_a_chat_only_backend(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        raw = client.completions.with_raw_response.create(**completion("qwen3"))
        answer = raw.parse()
        chunks = list(client.completions.create(**completion("qwen3"), stream=True))
    assert raw.http_response.status_code == 200
    assert_routed(raw.headers, "plain")
    assert answer.object == "text_completion" and answer.model == "qwen3"
    assert answer.choices[0].text == f"echo: {PROMPT}"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens >= 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == f"echo: {PROMPT}"
    assert fleet.plain.requests_to(COMPLETIONS_PATH) == []
    sent = [r.json() for r in fleet.plain.requests_to(CHAT)]
    assert [m["messages"] for m in sent] == [[{"role": "user", "content": PROMPT}]] * 2
    assert [m.get("stream", False) for m in sent] == [False, True]


def test_models_retrieve_a_model_an_alias_and_an_unknown_id(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        model = client.models.retrieve("coder")
        alias = client.models.retrieve("fast")
        claude = client.models.retrieve(CLAUDE)
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("nope")
    assert (model.id, model.object, model.owned_by) == ("coder", "model", "vllm")
    assert isinstance(model.created, int) and model.to_dict()["backends"] == ["gpu"]
    assert alias.id == "fast" and alias.to_dict()["alias_for"] == "coder"
    assert alias.to_dict()["backends"] == ["gpu"]
    assert claude.id == CLAUDE and claude.to_dict()["backends"] == ["claude"]
    assert caught.value.status_code == 404 and caught.value.code == "model_not_found"
    assert "'nope'" in caught.value.message


# -- privacy: a restricted request never reaches an open backend, whatever its dialect -------


@dataclass
class Zones:
    gw: Gateway
    local: FakeOllama
    clouds: tuple[FakeOpenAI, FakeAnthropic]


@pytest.fixture(scope="module")
def _zones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zones]:
    with FakeOllama() as local, FakeOpenAI() as oai, FakeAnthropic() as claude:
        for fake in (local, oai, claude):
            fake.set_models("shared")
        oai.api_key = ENV["OPENAI_API_KEY"]
        backends = [  # the cloud first: without the header, it serves
            backend("oai", oai.url, "openai", api_key_env="OPENAI_API_KEY", priority=1),
            backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_API_KEY", priority=2),
            backend("local", local.url, "ollama", priority=90),
        ]
        routing = {"strategy": "priority_only"}
        with gateway(tmp_path_factory.mktemp("zones"), backends, env=ENV, routing=routing) as gw:
            yield Zones(gw, local, (oai, claude))


@pytest.fixture
def zones(_zones: Zones) -> Iterator[Zones]:
    for fake in (_zones.local, *_zones.clouds):
        fake.reset()
    yield _zones
    assert set(_zones.gw.in_flight().values()) == {0}, "every request released its backend"


def every_dialect(zones: Zones, headers: dict[str, str]) -> dict[str, Any]:
    """One request per dialect (and streamed), through the SDKs; the headers of each answer."""
    seen: dict[str, Any] = {}
    common: Any = {"model": "shared", "extra_headers": headers}
    secret = user("secret")
    with anthropic_sdk(zones.gw) as (claude, _), zones.gw.sdk(timeout=30) as (oai, _):
        messages = claude.messages.with_raw_response
        seen["messages"] = messages.create(**common, max_tokens=16, messages=secret).headers
        with claude.messages.stream(**common, max_tokens=16, messages=secret) as stream:
            assert stream.get_final_message().content
            seen["messages-stream"] = stream.response.headers
        responses = oai.responses.with_raw_response
        seen["responses"] = responses.create(**common, input="secret").headers
        streamed = responses.create(**common, input="secret", stream=True)
        with streamed.parse() as events:
            assert [event.type for event in events][-1] == "response.completed"
        seen["responses-stream"] = streamed.headers
        completions = oai.completions.with_raw_response
        seen["completions"] = completions.create(**common, prompt="secret").headers
        chat = oai.chat.completions.with_raw_response
        seen["chat"] = chat.create(**common, messages=secret).headers
        assert claude.messages.count_tokens(**common, messages=secret).input_tokens > 0
    return seen


def test_a_restricted_request_never_reaches_the_cloud_on_any_dialect(zones: Zones) -> None:
    seen = every_dialect(zones, {"X-Nexus-Privacy-Zone": "restricted"})
    for dialect, headers in seen.items():
        assert headers["x-nexus-backend"] == "local", dialect
        assert headers["x-nexus-backend-type"] == "local", dialect
        assert headers["x-nexus-privacy-zone"] == "restricted", dialect
        assert headers["x-nexus-route-reason"] == "privacy-requirement", dialect
    cloud = [f"{r.method} {r.path}" for fake in zones.clouds for r in fake.requests]
    assert [request for request in cloud if not request.startswith("GET ")] == []
    paths = [r.path for r in zones.local.requests if r.method == "POST"]
    assert paths.count(MESSAGES_PATH) == 2 and paths.count(RESPONSES_PATH) == 2
    assert paths.count(COMPLETIONS_PATH) == 1 and paths.count(CHAT) == 1
    # the control: without the header, the very same requests go to the preferred cloud
    zones.local.reset()
    preferred = ("oai", "cloud")
    for dialect, headers in every_dialect(zones, {}).items():
        assert (headers["x-nexus-backend"], headers["x-nexus-backend-type"]) == preferred, dialect
    assert [r.path for r in zones.local.requests if r.method == "POST"] == []
