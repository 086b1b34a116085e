"""The fakes' inference endpoints over real HTTP: shapes, determinism, SSE, failures, pacing."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import FakeModel, FakeOllama, FakeOpenAI
from tests.fakes.chat import (
    CHAT_PATH,
    EMBEDDINGS_PATH,
    SSE_DONE,
    OpenAICompatibleFake,
    count_prompt_tokens,
)
from tests.fakes.fixtures import StartFake

HELLO = {"model": "m-1", "messages": [{"role": "user", "content": "hello caf\u00e9 world"}]}
STREAM = {**HELLO, "stream": True}
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
]


@pytest.fixture(params=[FakeOpenAI, FakeOllama], ids=["openai", "ollama"])
def fake(request: pytest.FixtureRequest, start_fake: StartFake) -> OpenAICompatibleFake:
    cls: type[OpenAICompatibleFake] = request.param
    return start_fake(cls)


@pytest.fixture
def client(fake: OpenAICompatibleFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5) as client:
        yield client


def events_of(raw: bytes) -> list[bytes]:
    """The SSE events of a body, each with its ``data: `` prefix and without the blank line."""
    assert raw.endswith(b"\n\n")
    return raw[:-2].split(b"\n\n")


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    events = events_of(raw)
    assert events[-1] == b"data: [DONE]"
    assert all(e.startswith(b"data: ") for e in events)
    return [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]


# -- chat, JSON ---------------------------------------------------------------------------------


def test_chat_json_shape(client: httpx.Client) -> None:
    response = client.post(CHAT_PATH, json=HELLO)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body)[:7] == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    ]
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "m-1"
    assert isinstance(body["system_fingerprint"], str)
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "echo: hello caf\u00e9 world"
    assert "x_fake_choice" in choice and "x_fake_vendor" in body
    usage = body["usage"]
    assert usage["prompt_tokens"] == count_prompt_tokens(HELLO) == 3 + 3
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_json_bytes_are_deterministic_and_not_canonical(client: httpx.Client) -> None:
    first = client.post(CHAT_PATH, json=HELLO).content
    # same request, other formatting: same bytes
    again = client.post(CHAT_PATH, content=json.dumps(HELLO, indent=3).encode()).content
    other = client.post(CHAT_PATH, json={**HELLO, "model": "m-2"}).content

    assert first == again
    assert json.loads(other)["id"] != json.loads(first)["id"]
    assert b"\\u00e9" in first and b"\\/" in first
    value = json.loads(first)
    for reserialised in (
        json.dumps(value),
        json.dumps(value, indent=2),
        json.dumps(value, separators=(",", ":")),
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, sort_keys=True),
    ):
        assert reserialised.encode() != first


def test_chat_echoes_the_last_user_message_text_parts(client: httpx.Client) -> None:
    request = {
        "model": "vision",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "this?"},
                ],
            },
        ],
    }
    body = client.post(CHAT_PATH, json=request).json()

    assert body["choices"][0]["message"]["content"] == "echo: what is this?"
    assert body["usage"]["prompt_tokens"] == 4 * 3 + 2 + 1 + 1 + 3


def test_chat_with_tools_answers_tool_calls(client: httpx.Client) -> None:
    body = client.post(CHAT_PATH, json={**HELLO, "tools": TOOLS}).json()

    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    (call,) = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"echo": "hello caf\u00e9 world"}

    chosen = {"type": "function", "function": {"name": "other"}}
    body = client.post(CHAT_PATH, json={**HELLO, "tools": TOOLS, "tool_choice": chosen}).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "other"

    body = client.post(CHAT_PATH, json={**HELLO, "tools": TOOLS, "tool_choice": "none"}).json()
    assert body["choices"][0]["finish_reason"] == "stop"


def test_chat_records_raw_bytes_and_headers(
    fake: OpenAICompatibleFake, client: httpx.Client
) -> None:
    raw = b'{"model":"m-1",  "messages":[{"role":"user","content":"hi"}], "x_unknown": [1.50]}'
    client.post(CHAT_PATH, content=raw, headers={"authorization": "Bearer sk-client"})

    (recorded,) = fake.requests_to(CHAT_PATH, "POST")
    assert recorded.body == raw
    assert recorded.headers["authorization"] == "Bearer sk-client"


def test_chat_rejects_broken_requests_the_openai_way(client: httpx.Client) -> None:
    not_json = client.post(CHAT_PATH, content=b"{nope")
    no_model = client.post(CHAT_PATH, json={"messages": HELLO["messages"]})
    no_messages = client.post(CHAT_PATH, json={"model": "m"})

    for response in (not_json, no_model, no_messages):
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert no_model.json()["error"]["param"] == "model"


def test_strict_models_answers_404(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.strict_models = True
    fake.set_models(FakeModel("m-1"))

    assert client.post(CHAT_PATH, json=HELLO).status_code == 200
    response = client.post(CHAT_PATH, json={**HELLO, "model": "gone"})
    assert response.status_code == 404
    assert "gone" in response.json()["error"]["message"]


# -- chat, SSE ----------------------------------------------------------------------------------


def test_stream_framing_and_done(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    response = client.post(CHAT_PATH, json=STREAM)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content.endswith(SSE_DONE)
    chunks = chunks_of(response.content)
    assert len(chunks) == 1 + fake.chunk_count + 1  # role, content pieces, finish
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert all("x_fake_seq" in c and "usage" not in c for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == client.post(CHAT_PATH, json=HELLO).json()["choices"][0]["message"]["content"]
    assert client.post(CHAT_PATH, json=STREAM).content == response.content


def test_stream_chunk_count(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.chunk_count = 25

    chunks = chunks_of(client.post(CHAT_PATH, json=STREAM).content)

    assert len(chunks) == 27
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        "echo: hello caf\u00e9 world"
    )


def test_stream_include_usage(client: httpx.Client) -> None:
    request = {**STREAM, "stream_options": {"include_usage": True}}

    chunks = chunks_of(client.post(CHAT_PATH, json=request).content)

    *content, last = chunks
    assert all(c["usage"] is None for c in content)
    assert last["choices"] == []
    assert last["usage"] == {
        "prompt_tokens": count_prompt_tokens(request),
        "completion_tokens": 4,
        "total_tokens": count_prompt_tokens(request) + 4,
    }


def test_stream_tool_calls(client: httpx.Client) -> None:
    chunks = chunks_of(client.post(CHAT_PATH, json={**STREAM, "tools": TOOLS}).content)

    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert calls[0]["function"]["name"] == "lookup" and calls[0]["id"].startswith("call_")
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert json.loads(arguments) == {"echo": "hello caf\u00e9 world"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# -- failures -----------------------------------------------------------------------------------


def test_break_stream_after_drops_the_connection(
    fake: OpenAICompatibleFake, client: httpx.Client
) -> None:
    complete = client.post(CHAT_PATH, json=STREAM).content
    fake.break_stream_after(2, times=1)

    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        client.stream("POST", CHAT_PATH, json=STREAM) as response,
    ):
        assert response.status_code == 200
        for data in response.iter_bytes():
            received += data

    assert events_of(received) == events_of(complete)[:2]
    assert client.post(CHAT_PATH, json=STREAM).content == complete  # times=1: used up


def test_break_stream_after_zero_and_spares_json_requests(
    fake: OpenAICompatibleFake, client: httpx.Client
) -> None:
    fake.break_stream_after(0)

    assert client.post(CHAT_PATH, json=HELLO).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CHAT_PATH, json=STREAM)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CHAT_PATH, json=STREAM)  # times=None: every streaming request
    fake.reset()
    assert client.post(CHAT_PATH, json=STREAM).content.endswith(SSE_DONE)


def test_malformed_json(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.malformed_json()

    response = client.post(CHAT_PATH, json=HELLO)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert client.get("/v1/models").status_code == 200  # the probe path is spared


def test_empty_close(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.empty_close(times=1)

    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post(CHAT_PATH, json=HELLO)

    assert len(fake.requests_to(CHAT_PATH)) == 1
    assert client.post(CHAT_PATH, json=HELLO).status_code == 200


def test_close_connection_any_path(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.close_connection(path=EMBEDDINGS_PATH, times=1)

    with pytest.raises(httpx.RemoteProtocolError):
        client.post(EMBEDDINGS_PATH, json={"model": "e", "input": "x"})
    assert client.post(EMBEDDINGS_PATH, json={"model": "e", "input": "x"}).status_code == 200


def test_rate_limit(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.rate_limit(retry_after=7, times=1)

    response = client.post(CHAT_PATH, json=HELLO)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"
    assert client.post(CHAT_PATH, json=HELLO).status_code == 200


@pytest.mark.parametrize(
    ("program", "status", "type_"),
    [
        (lambda f: f.server_error(), 500, "server_error"),
        (lambda f: f.server_error(502), 502, "server_error"),
        (lambda f: f.unauthorized(), 401, "invalid_request_error"),
    ],
)
def test_error_helpers(
    fake: OpenAICompatibleFake, client: httpx.Client, program: Any, status: int, type_: str
) -> None:
    program(fake)

    response = client.post(CHAT_PATH, json=STREAM)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == type_
    assert client.get("/v1/models").status_code == 200


def test_generic_behaviours_apply_to_chat(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.respond(503, path=CHAT_PATH, times=1)
    assert client.post(CHAT_PATH, json=HELLO).status_code == 503

    fake.hang(path=CHAT_PATH, times=1)
    with pytest.raises(httpx.ReadTimeout):
        client.post(CHAT_PATH, json=HELLO, timeout=0.2)

    fake.delay(0.2, path=CHAT_PATH, times=1)
    started = time.monotonic()
    assert client.post(CHAT_PATH, json=STREAM).status_code == 200
    assert time.monotonic() - started >= 0.2


# -- pacing -------------------------------------------------------------------------------------


def test_chunk_delay_paces_events(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.chunk_count, fake.chunk_delay = 2, 0.1  # role, 2 content, finish, [DONE]: 4 gaps

    started = time.monotonic()
    arrivals = []
    with client.stream("POST", CHAT_PATH, json=STREAM) as response:
        for _line in response.iter_lines():
            arrivals.append(time.monotonic() - started)

    assert arrivals[-1] >= 0.4
    assert arrivals[-1] - arrivals[0] >= 0.35  # the first event went out at once


def test_first_chunk_delay_separates_headers_and_first_byte(
    fake: OpenAICompatibleFake, client: httpx.Client
) -> None:
    fake.first_chunk_delay = 0.3

    started = time.monotonic()
    with client.stream("POST", CHAT_PATH, json=STREAM) as response:
        headers_at = time.monotonic() - started
        body = response.iter_bytes()
        first = next(body)
        first_byte_at = time.monotonic() - started
        assert first.startswith(b"data: ")
        assert (first + b"".join(body)).endswith(SSE_DONE)

    assert first_byte_at >= 0.3
    assert first_byte_at - headers_at >= 0.25  # headers went out at once


async def test_many_streams_held_open(fake: OpenAICompatibleFake) -> None:
    fake.chunk_count, fake.chunk_delay = 1, 0.5  # each stream stays open 1.5 s
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=fake.url, limits=limits, timeout=5) as client:

        async def one() -> bytes:
            return (await client.post(CHAT_PATH, json=STREAM)).content

        tasks = [asyncio.create_task(one()) for _ in range(30)]
        for _ in range(300):
            if fake.open_streams == 30:
                break
            await asyncio.sleep(0.01)
        assert fake.open_streams == 30
        bodies = await asyncio.gather(*tasks)

    assert len(set(bodies)) == 1 and bodies[0].endswith(SSE_DONE)
    assert fake.open_streams == 0


def test_stop_ends_slow_streams_quickly(start_fake: StartFake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.chunk_delay = 30
    with httpx.Client(base_url=fake.url, timeout=5) as client:
        with client.stream("POST", CHAT_PATH, json=STREAM) as response:
            body = response.iter_bytes()
            next(body)
            started = time.monotonic()
            fake.stop()
            rest = b"".join(body)
        assert time.monotonic() - started < 1.5
    assert rest.endswith(SSE_DONE)


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_shape_and_determinism(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    request = {"model": "embed-1", "input": ["alpha", "beta gamma", "alpha"]}

    response = client.post(EMBEDDINGS_PATH, json=request)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "list" and body["model"] == "embed-1"
    assert [d["object"] for d in body["data"]] == ["embedding"] * 3
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in body["data"]]
    assert all(len(v) == fake.embedding_dim for v in vectors)
    assert all(isinstance(x, float) and -1 <= x <= 1 for v in vectors for x in v)
    assert vectors[0] == vectors[2] != vectors[1]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert client.post(EMBEDDINGS_PATH, json=request).content == response.content
    assert b"0000," in response.content  # trailing zeros: a re-serialiser drops them
    assert json.dumps(body).encode() != response.content

    single = client.post(EMBEDDINGS_PATH, json={"model": "embed-1", "input": "alpha"}).json()
    assert single["data"][0]["embedding"] == vectors[0]
    tokens = client.post(EMBEDDINGS_PATH, json={"model": "e", "input": [[1, 2, 3], [4]]}).json()
    assert len(tokens["data"]) == 2 and tokens["usage"]["prompt_tokens"] == 4


def test_embeddings_base64(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.embedding_dim = 16
    floats = client.post(EMBEDDINGS_PATH, json={"model": "e", "input": "x"}).json()
    request = {"model": "e", "input": "x", "encoding_format": "base64"}

    packed = client.post(EMBEDDINGS_PATH, json=request).json()["data"][0]["embedding"]

    if not fake.honours_base64:  # Ollama: floats whatever was asked
        assert packed == floats["data"][0]["embedding"]
        return
    decoded = struct.unpack("<16f", base64.b64decode(packed))
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


def test_embeddings_reject_bad_input(client: httpx.Client) -> None:
    response = client.post(EMBEDDINGS_PATH, json={"model": "e", "input": [{"no": 1}]})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "payload"),
    [(CHAT_PATH, HELLO), (EMBEDDINGS_PATH, {"model": "e", "input": "x"})],
)
def test_api_key_is_enforced(
    fake: OpenAICompatibleFake, client: httpx.Client, path: str, payload: Any
) -> None:
    fake.api_key = "sk-right"

    missing = client.post(path, json=payload)
    wrong = client.post(path, json=payload, headers={"authorization": "Bearer sk-wrong"})
    right = client.post(path, json=payload, headers={"authorization": "Bearer sk-right"})

    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200
    assert client.get("/v1/models").status_code == 401


def test_no_api_key_means_authorization_is_ignored(client: httpx.Client) -> None:
    response = client.post(CHAT_PATH, json=HELLO, headers={"authorization": "Bearer anything"})

    assert response.status_code == 200


def test_extra_headers(fake: OpenAICompatibleFake, client: httpx.Client) -> None:
    fake.extra_headers = {"x-request-id": "req_upstream"}

    assert client.post(CHAT_PATH, json=HELLO).headers["x-request-id"] == "req_upstream"
    assert client.post(CHAT_PATH, json=STREAM).headers["x-request-id"] == "req_upstream"


# -- the official client parses what the fakes send ---------------------------------------------


def test_openai_client_reads_the_fakes(fake: OpenAICompatibleFake) -> None:
    fake.api_key = "sk-right"
    with openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-right", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="m-1", messages=[{"role": "user", "content": "hi there"}]
        )
        assert completion.choices[0].message.content == "echo: hi there"
        assert completion.usage is not None and completion.usage.total_tokens > 0

        stream = client.chat.completions.create(
            model="m-1",
            messages=[{"role": "user", "content": "hi there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "echo: hi there"
        )
        assert chunks[-1].usage is not None

        embedding = client.embeddings.create(model="e", input=["a", "b"])  # base64 on the wire
        assert len(embedding.data) == 2 and len(embedding.data[0].embedding) == 8

        with pytest.raises(openai.RateLimitError):
            fake.rate_limit(times=1)
            client.chat.completions.create(model="m-1", messages=[{"role": "user", "content": "x"}])
