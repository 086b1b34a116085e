"""The proxy path through a real `nexus serve`, driven by the official `openai` SDK.

One gateway for the module, in front of a fake vLLM ("gpu") and a fake Ollama ("laptop"), with
aliases. Every test compares what came through the gateway with what the fake answers when called
directly with the very bytes the SDK sent (recorded by the fake), so any change Nexus makes to a
request or a response shows up as a byte difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from nexus.upstream.vectors import floats_as_base64
from tests.e2e.configs import (
    CHAT,
    DONE,
    EMBEDDINGS,
    Gateway,
    backend,
    direct,
    event_data,
    gateway,
    sse_events,
)
from tests.e2e.serving import free_port
from tests.fakes.chat import OpenAICompatibleFake
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

MAX_BODY = 65536
ALIASES = {"fast": "m", "local": "llama3.2:3b"}
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Fleet:
    gw: Gateway
    gpu: FakeOpenAI
    laptop: FakeOllama

    def fake(self, name: str) -> OpenAICompatibleFake:
        return self.gpu if name == "gpu" else self.laptop


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with FakeOpenAI() as gpu, FakeOllama() as laptop:
        gpu.set_models(FakeModel("m", context_length=32768), FakeModel("e"))
        laptop.set_models(
            FakeModel("llama3.2:3b", context_length=8192, tools=True),
            FakeModel("nomic-embed-text:latest"),
        )
        backends = [
            backend("gpu", gpu.url, priority=10),
            backend("laptop", laptop.url, "ollama"),
            # lists "big" but nothing listens: "big" is known, and served by its fallback
            backend("dead", f"http://127.0.0.1:{free_port()}", models=["big"]),
        ]
        with gateway(
            tmp_path_factory.mktemp("fleet"),
            backends,
            routing={"aliases": ALIASES, "fallbacks": {"big": ["m"]}},
            server={"max_body_bytes": MAX_BODY},
        ) as gw:
            yield Fleet(gw, gpu, laptop)


@pytest.fixture(autouse=True)
def _fresh_fakes(fleet: Fleet) -> Iterator[None]:
    for fake in (fleet.gpu, fleet.laptop):
        fake.reset()
    yield
    for fake in (fleet.gpu, fleet.laptop):
        fake.reset()
    assert set(fleet.gw.in_flight().values()) == {0}, "every request released its backend"


#: (model the client asks for, backend that serves it, model the backend receives)
ROUTES = [
    pytest.param("m", "gpu", "m", id="vllm"),
    pytest.param("fast", "gpu", "m", id="vllm-alias"),
    pytest.param("llama3.2:3b", "laptop", "llama3.2:3b", id="ollama"),
    pytest.param("local", "laptop", "llama3.2:3b", id="ollama-alias"),
]


def forwarded(sent: bytes, asked: str, served: str) -> bytes:
    """What the backend must receive for ``sent``: the same bytes, ``model`` renamed if aliased."""
    if asked == served:
        return sent
    field = b'"model":' + json.dumps(asked).encode()
    assert sent.count(field) == 1, sent
    return sent.replace(field, b'"model":' + json.dumps(served).encode())


def assert_local_headers(
    headers: httpx.Headers | Any, backend_name: str, request_id: str | None = None
) -> None:
    """Every Nexus-Transparent header of a response served by a local backend on first try."""
    assert headers["x-nexus-backend"] == backend_name
    assert headers["x-nexus-backend-type"] == "local"
    assert headers["x-nexus-route-reason"] == "capability-match"
    assert headers["x-nexus-privacy-zone"] == "restricted"
    assert "x-nexus-cost-estimated" not in headers, "no cost for local backends"
    assert "x-nexus-fallback-model" not in headers
    if request_id is None:
        assert HEX_ID.match(headers["x-request-id"]), headers["x-request-id"]
    else:
        assert headers["x-request-id"] == request_id


def assert_error_headers(headers: httpx.Headers | Any) -> None:
    """The headers of an answer no backend was chosen for."""
    for name in ("backend", "backend-type", "route-reason", "privacy-zone"):
        assert headers[f"x-nexus-{name}"] == "none"
    assert HEX_ID.match(headers["x-request-id"])


# -- JSON chat ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "name", "served"), ROUTES)
def test_json_chat_is_the_backends_bytes_with_every_header(
    fleet: Fleet, asked: str, name: str, served: str
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": 'h\u00e9llo w\u00f6rld "quoted" </tag>'},
    ]
    with fleet.gw.sdk() as (client, sent):
        raw = client.chat.completions.with_raw_response.create(
            model=asked,
            messages=messages,  # type: ignore[arg-type]
            temperature=0.2,
            extra_headers={"X-Request-Id": f"e2e-json-{name}"},
        )
        completion = raw.parse()
    fake = fleet.fake(name)
    [received] = fake.requests_to(CHAT)
    assert received.body == forwarded(sent.last, asked, served)
    expected = direct(fake.url, CHAT, received.body)
    assert raw.http_response.status_code == 200
    assert raw.http_response.content == expected.content
    assert raw.headers["content-type"] == expected.headers["content-type"]
    assert_local_headers(raw.headers, name, request_id=f"e2e-json-{name}")
    assert completion.choices[0].message.content == 'echo: h\u00e9llo w\u00f6rld "quoted" </tag>'
    assert completion.model == served
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_a_fallback_model_is_named_in_its_header(fleet: Fleet) -> None:
    assert fleet.gw.statuses()["dead"] == "unhealthy"
    with fleet.gw.sdk() as (client, sent):
        raw = client.chat.completions.with_raw_response.create(
            model="big", messages=[{"role": "user", "content": "fall back"}]
        )
    [received] = fleet.gpu.requests_to(CHAT)
    assert received.body == forwarded(sent.last, "big", "m")
    assert raw.http_response.content == direct(fleet.gpu.url, CHAT, received.body).content
    assert raw.headers["x-nexus-backend"] == "gpu"
    assert raw.headers["x-nexus-fallback-model"] == "m"
    assert raw.headers["x-nexus-route-reason"] == "failover"
    assert raw.headers["x-nexus-backend-type"] == "local"
    assert raw.headers["x-nexus-privacy-zone"] == "restricted"


# -- streaming chat -------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "name", "served"), ROUTES)
def test_stream_events_are_the_backends_events(
    fleet: Fleet, asked: str, name: str, served: str
) -> None:
    fake = fleet.fake(name)
    fake.chunk_count = 7
    request: dict[str, Any] = {
        "model": asked,
        "messages": [{"role": "user", "content": "stream me caf\u00e9 please"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with fleet.gw.sdk() as (client, sent):
        with client.chat.completions.with_streaming_response.create(**request) as response:
            headers = response.headers
            body = b"".join(response.iter_bytes())
        [received] = fake.requests_to(CHAT)
        assert received.body == forwarded(sent.last, asked, served)

        stream = client.chat.completions.create(**request)
        with stream:
            chunks = list(stream)

    expected = direct(fake.url, CHAT, received.body).content
    assert sse_events(body) == sse_events(expected)
    assert body == expected
    assert sse_events(body)[-1] == DONE
    assert len(sse_events(body)) == 1 + 7 + 1 + 1 + 1  # role, content, finish, usage, [DONE]
    assert headers["content-type"].startswith("text/event-stream")
    assert_local_headers(headers, name)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me caf\u00e9 please"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert [c.model_dump(exclude_unset=True) for c in chunks] == [
        openai.types.chat.ChatCompletionChunk.model_validate(d).model_dump(exclude_unset=True)
        for d in event_data(expected)
    ]


# -- embeddings and models ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"), [("e", "gpu"), ("nomic-embed-text:latest", "laptop")], ids=["vllm", "ollama"]
)
def test_embeddings_are_the_backends_bytes(fleet: Fleet, model: str, name: str) -> None:
    with fleet.gw.sdk() as (client, sent):
        raw = client.embeddings.with_raw_response.create(model=model, input=["alpha", "beta"])
        result = raw.parse()
    fake = fleet.fake(name)
    [received] = fake.requests_to(EMBEDDINGS)
    assert received.body == sent.last
    assert json.loads(received.body)["encoding_format"] == "base64"  # the SDK's default
    answered = direct(fake.url, EMBEDDINGS, received.body).content
    if fake.honours_base64:
        assert raw.http_response.content == answered
    else:  # Ollama answered floats to the SDK's base64: re-encoded (issue 14, defect 5)
        assert raw.http_response.content == floats_as_base64(answered)
    assert_local_headers(raw.headers, name)
    assert [len(d.embedding) for d in result.data] == [fake.embedding_dim] * 2


def test_models_list_works_with_the_sdk_and_includes_aliases(fleet: Fleet) -> None:
    with fleet.gw.sdk() as (client, _):
        models = list(client.models.list())
    ids = [m.id for m in models]
    assert sorted(ids) == sorted(["m", "e", "llama3.2:3b", "nomic-embed-text:latest", *ALIASES])
    assert len(ids) == len(set(ids))
    assert all(m.object == "model" for m in models)
    by_id = {m.id: m.model_dump() for m in models}
    assert by_id["fast"]["alias_for"] == "m"
    assert by_id["local"]["backends"] == ["laptop"]


# -- request fidelity -----------------------------------------------------------------------------

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "calc",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {
                "type": "object",
                "properties": {"expr": {"type": "string"}},
                "required": ["expr"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
]
CONVERSATION: list[Any] = [
    {"role": "system", "content": "You are a calculator."},
    {"role": "user", "content": [{"type": "text", "text": "what is 6*7? caf\u00e9"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc123",
                "type": "function",
                "function": {"name": "calc", "arguments": '{"expr": "6*7"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_abc123", "content": "42"},
    {"role": "user", "content": 'and times two? "\u00e9" \\ </script>'},
]
RESPONSE_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"value": {"type": "number"}},
            "required": ["value"],
            "additionalProperties": False,
        },
    },
}
UNKNOWN_FIELDS = {
    "x_vendor_knob": {"nested": [1, 2.5, None, True, "\u2603"]},
    "top_k": 40,
    "repetition_penalty": 1.1,
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("asked", "name", "served"), ROUTES)
def test_every_request_field_reaches_the_backend_byte_for_byte(
    fleet: Fleet, asked: str, name: str, served: str, stream: bool
) -> None:
    fields: dict[str, Any] = {
        "model": asked,
        "messages": CONVERSATION,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "calc"}},
        "parallel_tool_calls": False,
        "response_format": RESPONSE_FORMAT,
        "seed": 7,
        "n": 2,
        "user": "user-1234",
        "metadata": {"team": "e2e", "ticket": "NX-5"},
        "temperature": 0.0,
        "top_p": 1,
        "max_tokens": 64,
        "logprobs": True,
        "top_logprobs": 2,
        "stop": ["\n\n"],
        "logit_bias": {"50256": -100},
        "extra_body": UNKNOWN_FIELDS,
    }
    if stream:
        fields |= {"stream": True, "stream_options": {"include_usage": True}}
    with fleet.gw.sdk(api_key="sk-client-secret") as (client, sent):
        result = client.chat.completions.create(**fields)
        if stream:
            with result:
                chunks = list(result)

    [received] = fleet.fake(name).requests_to(CHAT)
    assert received.body == forwarded(sent.last, asked, served)
    sent_json = json.loads(sent.last)
    for key in ("tools", "tool_choice", "response_format", "seed", "n", "user", "metadata"):
        assert key in sent_json, f"the SDK did not send {key}: the test proves nothing"
    assert sent_json["x_vendor_knob"] == UNKNOWN_FIELDS["x_vendor_knob"]
    assert "authorization" not in received.headers, "a client's key reaches no local backend"
    assert "sk-client-secret" not in str(received.headers)

    if stream:  # the tool call's argument deltas reassemble
        calls = [
            c.choices[0].delta.tool_calls[0]
            for c in chunks
            if c.choices and c.choices[0].delta.tool_calls
        ]
        assert calls[0].function is not None and calls[0].function.name == "calc"
        arguments = "".join((c.function.arguments or "") if c.function else "" for c in calls)
        assert json.loads(arguments) == {"echo": 'and times two? "\u00e9" \\ </script>'}
    else:
        message = result.choices[0].message
        assert message.tool_calls is not None
        assert message.tool_calls[0].function.name == "calc"


# -- client errors --------------------------------------------------------------------------------


def test_client_errors_raise_the_sdk_exceptions_with_the_envelope(fleet: Fleet) -> None:
    hello = [{"role": "user", "content": "hi"}]
    with fleet.gw.sdk() as (client, _):
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="m", messages=[])
        with pytest.raises(openai.NotFoundError) as unknown:
            client.chat.completions.create(model="no-such-model", messages=hello)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError) as too_large:
            big = [{"role": "user", "content": "x" * (MAX_BODY + 1)}]
            client.chat.completions.create(model="m", messages=big)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as unknown_embedding:
            client.embeddings.create(model="no-such-model", input="x")

    assert bad.value.status_code == 400
    assert bad.value.param == "messages" and bad.value.type == "invalid_request_error"
    assert unknown.value.code == "model_not_found"
    assert "no-such-model" in unknown.value.message
    assert "llama3.2:3b" in unknown.value.message, "the message lists the available models"
    assert type(too_large.value) is openai.APIStatusError
    assert too_large.value.status_code == 413
    assert str(MAX_BODY) in too_large.value.message
    assert unknown_embedding.value.code == "model_not_found"
    for error in (bad, unknown, too_large, unknown_embedding):
        envelope = error.value.response.json()
        assert set(envelope) == {"error"}
        assert set(envelope["error"]) == {"message", "type", "param", "code"}
        assert_error_headers(error.value.response.headers)
    assert fleet.gpu.requests_to(CHAT) == fleet.laptop.requests_to(CHAT) == []


@pytest.mark.parametrize(
    "content",
    [b'{"model": "m", "messages": [', b"[1, 2]", b'{"messages": [{"role": "user"}]}'],
    ids=["malformed", "not-an-object", "no-model"],
)
def test_malformed_requests_get_a_400_envelope(fleet: Fleet, content: bytes) -> None:
    response = httpx.post(
        f"{fleet.gw.url}{CHAT}",
        content=content,
        headers={"content-type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert_error_headers(response.headers)


def test_a_backends_client_error_is_passed_through_unchanged(fleet: Fleet) -> None:
    body = b'{"error": {"message": "temperature too high", "type": "invalid_request_error"}}'
    fleet.gpu.respond(400, body=body, path=CHAT, times=1)
    with fleet.gw.sdk() as (client, _):
        with pytest.raises(openai.BadRequestError) as error:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], temperature=9
            )
    assert error.value.response.content == body
    assert error.value.message.endswith("temperature too high")
    headers = error.value.response.headers
    assert headers["x-nexus-backend"] == "gpu"
    assert headers["x-nexus-route-reason"] == "capability-match"
    assert len(fleet.gpu.requests_to(CHAT)) == 1, "a 400 is the client's: no retry"


@pytest.mark.parametrize("path", [CHAT, EMBEDDINGS], ids=["chat", "embeddings"])
def test_a_wrong_method_on_an_inference_path_still_carries_the_headers(
    fleet: Fleet, path: str
) -> None:
    response = httpx.get(f"{fleet.gw.url}{path}", timeout=5)
    assert response.status_code == 405
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert_error_headers(response.headers)
