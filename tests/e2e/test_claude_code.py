"""A Claude-Code-shaped session through a real `nexus serve` (issue 15): the Claude ids Claude Code
sends are mapped to a local coder by the glob alias ``"claude-*" = "qwen3-coder:30b"``, and with
``X-Nexus-Privacy-Zone: restricted`` (``ANTHROPIC_CUSTOM_HEADERS``) nothing reaches the cloud,
although an Anthropic backend there serves those very ids.

The local backend is Ollama, which speaks Messages natively: it must receive Claude Code's request
byte for byte but for ``model``, with its ``anthropic-beta`` header, and the client must receive
every SSE event it sent, unchanged. The session is sent as raw bytes with httpx (as Claude Code's
own HTTP client does, to ``/v1/messages?beta=true``) and with the `anthropic` SDK. With the coder
on vLLM instead, which has no Messages API, LiteLLM translates the session onto its chat
completions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from anthropic.types.beta import BetaMessage

from tests.e2e.configs import Gateway, Sent, backend, gateway, sse_events
from tests.fakes.anthropic import MESSAGES_PATH, FakeAnthropic
from tests.fakes.chat import CHAT_PATH, openai_error
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel, RecordedRequest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-5-haiku-20241022"
CODER = "qwen3-coder:30b"
BETAS = [
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "fine-grained-tool-streaming-2025-05-14",
]
BETA = ",".join(BETAS)
RESTRICTED = {"X-Nexus-Privacy-Zone": "restricted"}
#: Marks the test's own direct calls to the local fake (:func:`through_gateway` leaves them out)
DIRECT = {"x-test-direct": "1"}
SYSTEM: Any = [
    {
        "type": "text",
        "text": "You are Claude Code, Anthropic's official CLI for Claude.",
        "cache_control": {"type": "ephemeral"},
    },
    {
        "type": "text",
        "text": "You are an interactive CLI tool that helps users with software engineering "
        "tasks. Working directory: /home/d\u00e9v/project",
        "cache_control": {"type": "ephemeral"},
    },
]
TOOLS: Any = [
    {
        "name": "Read",
        "description": "Reads a file from the local filesystem.",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {"type": "string", "description": "The absolute path"},
                "offset": {"type": "number"},
                "limit": {"type": "number"},
            },
            "required": ["file_path"],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    },
    {
        "name": "Bash",
        "description": "Executes a given bash command.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
        "cache_control": {"type": "ephemeral"},
    },
]
QUESTION: Any = {
    "role": "user",
    "content": [
        {"type": "text", "text": "<system-reminder>Be careful.</system-reminder>"},
        {"type": "text", "text": "read main.py", "cache_control": {"type": "ephemeral"}},
    ],
}
#: What the fake's tool call echoes: the text blocks of the last user message, joined.
ECHO = {"echo": "<system-reminder>Be careful.</system-reminder> read main.py"}
CLAUDE_CODE_HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": BETA,
    "anthropic-dangerous-direct-browser-access": "true",
    "x-api-key": "sk-ant-client-key",
    "x-app": "cli",
    "user-agent": "claude-cli/2.0.14 (external, cli)",
    **RESTRICTED,
}


@dataclass
class Session:
    gw: Gateway
    local: FakeOllama | FakeOpenAI
    cloud: FakeAnthropic


@contextmanager
def claude_code_gateway(
    directory: Path, local: FakeOllama | FakeOpenAI, kind: str
) -> Iterator[Session]:
    """The gateway of the README's Claude Code setup: the Claude ids aliased to the local coder
    on ``local`` (of type ``kind``), and Anthropic in the cloud serving those very ids."""
    with FakeAnthropic() as cloud:
        local.set_models(FakeModel(CODER, context_length=262144, tools=True))
        cloud.set_models(SONNET, HAIKU, "claude-opus-4-1-20250805")
        backends = [
            backend("laptop", local.url, kind),
            backend("claude", cloud.url, "anthropic", api_key_env="ANTHROPIC_API_KEY"),
        ]
        env = {"ANTHROPIC_API_KEY": FakeAnthropic.api_key}
        routing = {"aliases": {"claude-*": CODER}}
        with gateway(directory, backends, env=env, routing=routing) as gw:
            assert gw.statuses() == {"laptop": "healthy", "claude": "healthy"}
            yield Session(gw, local, cloud)


@pytest.fixture(scope="module")
def _session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with (
        FakeOllama() as local,
        claude_code_gateway(tmp_path_factory.mktemp("o"), local, "ollama") as s,
    ):
        yield s


@pytest.fixture(scope="module")
def _vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """The same with the coder on vLLM, which does not speak Messages: LiteLLM translates."""
    with (
        FakeOpenAI() as local,
        claude_code_gateway(tmp_path_factory.mktemp("v"), local, "vllm") as s,
    ):
        yield s


def fresh(session: Session) -> Iterator[Session]:
    session.local.reset()
    session.cloud.reset()
    yield session
    assert set(session.gw.in_flight().values()) == {0}, "every request released its backend"
    assert session.cloud.requests_to(MESSAGES_PATH) == [], "nothing reached the cloud"


@pytest.fixture
def session(_session: Session) -> Iterator[Session]:
    yield from fresh(_session)


@pytest.fixture
def vllm(_vllm: Session) -> Iterator[Session]:
    yield from fresh(_vllm)


def request(messages: list[Any], model: str = SONNET) -> dict[str, Any]:
    return {
        "model": model,
        "messages": messages,
        "system": SYSTEM,
        "tools": TOOLS,
        "metadata": {"user_id": "user_0123abcd_account__session_4567"},
        "max_tokens": 32000,
        "stream": True,
    }


def as_local(body: bytes, asked: str = SONNET) -> bytes:
    """``body`` as the local backend must receive it: only ``model`` rewritten."""
    for spacing in (b'"model": ', b'"model":'):
        field = spacing + json.dumps(asked).encode()
        if field in body:
            assert body.count(field) == 1
            return body.replace(field, spacing + json.dumps(CODER).encode())
    raise AssertionError(f"no model {asked!r} in {body!r}")


def through_gateway(session: Session) -> list[RecordedRequest]:
    """The Messages requests the local backend got from Nexus (not the test's direct calls)."""
    return [r for r in session.local.requests_to(MESSAGES_PATH) if "x-test-direct" not in r.headers]


def direct(session: Session, body: bytes) -> bytes:
    """What the local backend answers to ``body`` when called directly (marked as such)."""
    headers = {**DIRECT, "content-type": "application/json", "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{session.local.url}{MESSAGES_PATH}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.content


def events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in sse_events(body):
        fields = dict(line.split(": ", 1) for line in event.decode().split("\n"))
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def tool_use(body: bytes) -> dict[str, Any]:
    """The one ``tool_use`` block of a streamed answer, its input put together from the deltas."""
    seen = events(body)
    (start,) = [d for name, d in seen if name == "content_block_start"]
    block = start["content_block"]
    assert block["type"] == "tool_use"
    deltas = [d["delta"] for name, d in seen if name == "content_block_delta"]
    assert {delta["type"] for delta in deltas} == {"input_json_delta"}
    partial = "".join(delta["partial_json"] for delta in deltas)
    return {**block, "input": json.loads(partial)}


def assert_local(headers: Any) -> None:
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-nexus-backend"] == "laptop"
    assert headers["x-nexus-backend-type"] == "local"
    assert headers["x-nexus-privacy-zone"] == "restricted"
    assert "x-nexus-cost-estimated" not in headers


def assert_received(session: Session, bodies: list[bytes], beta: str = BETA) -> None:
    """The local backend got exactly ``bodies`` (each with Claude Code's beta header, never the
    client's key), and the cloud nothing."""
    received = through_gateway(session)
    assert [r.body for r in received] == bodies
    for r in received:
        assert r.headers["anthropic-beta"] == beta
        assert r.json()["model"] == CODER
        assert "x-api-key" not in r.headers and "authorization" not in r.headers
    assert session.cloud.requests_to(MESSAGES_PATH) == []


def follow_up(use: dict[str, Any]) -> list[Any]:
    result = {
        "type": "tool_result",
        "tool_use_id": use["id"],
        "content": "print('h\u00e9llo')\n",
        "cache_control": {"type": "ephemeral"},
    }
    return [
        QUESTION,
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]


def test_the_transcript_as_raw_bytes(session: Session) -> None:
    url = f"{session.gw.url}{MESSAGES_PATH}?beta=true"
    sent: list[bytes] = []
    with httpx.Client(headers=CLAUDE_CODE_HEADERS, timeout=30) as client:
        first = json.dumps(request([QUESTION])).encode()
        asked = client.post(url, content=first)
        sent.append(first)
        assert asked.status_code == 200, asked.text
        assert_local(asked.headers)
        assert asked.content == direct(session, as_local(first))
        assert [name for name, _ in events(asked.content)][-1] == "message_stop"
        use = tool_use(asked.content)
        assert use["name"] == "Read" and use["input"] == ECHO

        second = json.dumps(request(follow_up(use))).encode()
        answered = client.post(url, content=second)
        sent.append(second)
    assert answered.status_code == 200, answered.text
    assert_local(answered.headers)
    assert sse_events(answered.content) == sse_events(direct(session, as_local(second)))
    assert answered.content == direct(session, as_local(second))
    assert [name for name, _ in events(answered.content)][-1] == "message_stop"
    assert_received(session, [as_local(body) for body in sent])
    tool_results = through_gateway(session)[-1].json()["messages"][-1]["content"]
    assert tool_results[0]["tool_use_id"] == use["id"]


def sdk_turn(
    client: anthropic.Anthropic, messages: list[Any]
) -> tuple[bytes, httpx2.Headers, BetaMessage]:
    """One turn with the SDK, as Claude Code makes it (beta messages, streamed): the bytes it got,
    their headers, and the message its stream helper put together (a second, identical call)."""
    with client.beta.messages.with_streaming_response.create(
        **request(messages), betas=BETAS, extra_headers=RESTRICTED
    ) as response:
        assert response.status_code == 200
        headers = response.headers
        body = b"".join(response.iter_bytes())
    options = {k: v for k, v in request(messages).items() if k != "stream"}
    with client.beta.messages.stream(**options, betas=BETAS, extra_headers=RESTRICTED) as stream:
        message = stream.get_final_message()
    return body, headers, message


def test_the_transcript_with_the_anthropic_sdk(session: Session) -> None:
    sent = Sent()
    http = httpx2.Client(event_hooks={"request": [sent.hook]}, timeout=30)
    with (
        http,
        anthropic.Anthropic(
            base_url=session.gw.url, api_key="sk-ant-client-key", max_retries=0, http_client=http
        ) as client,
    ):
        first, headers, asked = sdk_turn(client, [QUESTION])
        assert_local(headers)
        assert first == direct(session, as_local(sent.bodies[0]))
        assert asked.stop_reason == "tool_use" and asked.model == CODER
        (use,) = [block for block in asked.content if block.type == "tool_use"]
        assert use.name == "Read" and use.input == ECHO
        assert tool_use(first)["id"] == use.id

        block = {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}
        second, headers, answered = sdk_turn(client, follow_up(block))
    assert_local(headers)
    assert second == direct(session, as_local(sent.bodies[2]))
    assert answered.type == "message" and answered.content
    assert len(sent.bodies) == 4
    assert_received(session, [as_local(body) for body in sent.bodies])


def test_the_small_model_and_token_counts_stay_local(session: Session) -> None:
    """Claude Code's side requests: a title from the small model (JSON), and token counts."""
    with anthropic.Anthropic(
        base_url=session.gw.url, api_key="sk-ant-client-key", max_retries=0
    ) as client:
        raw = client.messages.with_raw_response.create(
            model=HAIKU,
            max_tokens=512,
            system=SYSTEM,
            messages=[{"role": "user", "content": "a title for: read main.py"}],
            extra_headers={**RESTRICTED, "anthropic-beta": BETA},
        )
        counted = client.messages.count_tokens(
            model=SONNET, system=SYSTEM, messages=[QUESTION], tools=TOOLS, extra_headers=RESTRICTED
        )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-nexus-backend"] == "laptop"
    title = raw.parse()
    assert title.model == CODER
    assert title.content[0].type == "text"
    assert title.content[0].text == "echo: a title for: read main.py"
    assert counted.input_tokens > 20
    (received,) = through_gateway(session)
    assert received.json()["model"] == CODER and received.headers["anthropic-beta"] == BETA


# -- Claude Code on a server without Messages (vLLM): LiteLLM translates onto its chat --------


def test_the_transcript_translated_for_a_server_without_messages(vllm: Session) -> None:
    url = f"{vllm.gw.url}{MESSAGES_PATH}?beta=true"
    with httpx.Client(headers=CLAUDE_CODE_HEADERS, timeout=60) as client:
        asked = client.post(url, content=json.dumps(request([QUESTION])).encode())
        assert asked.status_code == 200, asked.text
        assert_local(asked.headers)
        seen = events(asked.content)
        assert all(name == data["type"] for name, data in seen), asked.text
        assert seen[0][0] == "message_start" and seen[-1][0] == "message_stop", asked.text
        use = tool_use(asked.content)
        assert use["name"] == "Read" and use["input"] == ECHO
        answered = client.post(url, content=json.dumps(request(follow_up(use))).encode())
    assert answered.status_code == 200, answered.text
    assert_local(answered.headers)
    assert [name for name, _ in events(answered.content)][-1] == "message_stop"
    assert vllm.local.requests_to(MESSAGES_PATH) == []
    chats = [r.json() for r in vllm.local.requests_to(CHAT_PATH)]
    assert [(chat["model"], chat["stream"]) for chat in chats] == [(CODER, True)] * 2
    assert [tool["function"]["name"] for tool in chats[0]["tools"]] == ["Read", "Bash"]
    (result,) = [message for message in chats[1]["messages"] if message["role"] == "tool"]
    assert result["tool_call_id"] == use["id"]


def refused(vllm: Session, cause: str) -> httpx.Response:
    """Claude Code's request when the server refuses it (its context is too small) or LiteLLM
    cannot translate it (extended thinking, which Claude Code sends when it is on)."""
    body = request([QUESTION])
    if cause == "thinking":
        body["thinking"] = {"type": "enabled", "budget_tokens": 31999}
    else:
        message = "This model's maximum context length is 8192 tokens."
        error = openai_error(message, "invalid_request_error", None, "messages")
        vllm.local.respond(400, json_body=error, path=CHAT_PATH)
    url = f"{vllm.gw.url}{MESSAGES_PATH}?beta=true"
    response = httpx.post(url, content=json.dumps(body), headers=CLAUDE_CODE_HEADERS, timeout=60)
    assert response.status_code == 400, response.text
    assert response.headers["x-nexus-backend"] == "laptop"
    return response


@pytest.mark.parametrize("cause", ["context-window", "thinking"])
def test_a_refused_translation_is_an_anthropic_error(vllm: Session, cause: str) -> None:
    body = refused(vllm, cause).json()
    assert body.get("type") == "error", body
    assert body["error"]["type"] == "invalid_request_error"
    assert "8192" in body["error"]["message"] or cause == "thinking"


def test_a_refused_thinking_names_the_field_the_client_sent(vllm: Session) -> None:
    error = refused(vllm, "thinking").json()["error"]
    assert "thinking" in error["message"], error
    assert "reasoning_effort" not in error["message"]
