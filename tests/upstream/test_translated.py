"""The translated path against fake Anthropic Messages and Gemini generateContent servers: the
exact request each provider received, the OpenAI-shaped answer, streams, errors and embeddings."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from nexus.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from nexus.upstream import translated
from tests.fakes.anthropic import MESSAGES_PATH, FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.upstream.translation import (
    MESSAGES,
    SYSTEM,
    TOOLS,
    call,
    closes_litellm,  # noqa: F401
    read_events,
    view,
)

pytestmark = pytest.mark.usefixtures("closes_litellm")
CLAUDE = "claude-3-5-sonnet-20241022"
GEMINI = "gemini-1.5-pro"
GEMINI_PATH = f"/v1beta/models/{GEMINI}:generateContent"
OPENAI_COMPLETION_KEYS = {"id", "object", "created", "model", "choices", "usage"}


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


async def json_answer(reply) -> dict[str, Any]:
    assert reply.status_code == 200 and reply.content_type == "application/json"
    parsed: dict[str, Any] = json.loads(await reply.read())
    return parsed


# -- what the providers receive ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
async def test_anthropic_request_headers_system_and_max_tokens(fake_anthropic, suffix) -> None:
    backend = view("anthropic", fake_anthropic.url + suffix)
    await json_answer(await call(backend, fake_anthropic.api_key, chat(CLAUDE)))

    (request,) = fake_anthropic.requests_to(MESSAGES_PATH, "POST")
    assert request.headers["x-api-key"] == fake_anthropic.api_key
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    sent = request.json()
    assert sent["model"] == CLAUDE
    assert sent["system"] == [{"type": "text", "text": SYSTEM}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "say hello"}]}
    ]
    assert sent["max_tokens"] == 8192  # claude-3-5-sonnet's real limit, not LiteLLM's 128000


async def test_client_max_tokens_is_sent_as_given(fake_anthropic) -> None:
    backend = view("anthropic", fake_anthropic.url)
    await call(backend, fake_anthropic.api_key, chat(CLAUDE, max_tokens=77))
    await call(backend, fake_anthropic.api_key, chat(CLAUDE, max_completion_tokens=55))
    sent = [r.json()["max_tokens"] for r in fake_anthropic.requests_to(MESSAGES_PATH)]
    assert sent == [77, 55]


async def test_max_tokens_defaults_for_models_in_and_out_of_the_maps(fake_anthropic) -> None:
    backend = view("anthropic", fake_anthropic.url)
    for model in ("claude-sonnet-4-5", "claude-3-haiku-20240307", "claude-unknown-9"):
        await call(backend, fake_anthropic.api_key, chat(model))
    sent = [r.json()["max_tokens"] for r in fake_anthropic.requests_to(MESSAGES_PATH)]
    assert sent == [64000, 4096, 4096]  # LiteLLM's map; Nexus's entry; Nexus's default


@pytest.mark.parametrize("suffix", ["", "/v1beta", "/v1"])
async def test_gemini_request_path_key_header_and_system_instruction(fake_gemini, suffix) -> None:
    backend = view("google", fake_gemini.url + suffix)
    await json_answer(await call(backend, fake_gemini.api_key, chat(GEMINI, temperature=0.2)))

    (request,) = fake_gemini.requests_to(GEMINI_PATH, "POST")
    assert request.headers["x-goog-api-key"] == fake_gemini.api_key
    assert "key" not in request.query
    sent = request.json()
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "say hello"}]}]
    # gemini-1.5-pro is registered by Nexus: the system prompt is a system_instruction
    assert sent["system_instruction"] == {"parts": [{"text": SYSTEM}]}
    assert sent["generationConfig"] == {"temperature": 0.2, "max_output_tokens": 8192}


async def test_unknown_and_transport_keys_never_reach_litellm(fake_anthropic, monkeypatch) -> None:
    seen: dict[str, Any] = {}
    litellm = translated.warm_up()
    real = litellm.acompletion

    async def spy(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", spy)
    hostile = {
        "api_base": "http://evil.example",
        "base_url": "http://evil.example",
        "api_key": "stolen",
        "extra_headers": {"x": "y"},
        "timeout": 999,
        "max_retries": 5,
        "mock_response": "canned",
        "custom_llm_provider": "openai",
        "metadata": {"k": "v"},
        "x_vendor": 1,
        "top_k": 3,
    }
    backend = view("anthropic", fake_anthropic.url)
    body = chat(CLAUDE, temperature=0.5, stop=["\n\n"], **hostile)
    await json_answer(await call(backend, fake_anthropic.api_key, body))

    assert seen["api_base"] == fake_anthropic.url and seen["api_key"] == fake_anthropic.api_key
    assert (seen["max_retries"], seen["num_retries"], seen["drop_params"]) == (0, 0, False)
    assert seen["timeout"] == 5.0
    assert not {"mock_response", "custom_llm_provider", "metadata", "x_vendor", "top_k"} & set(seen)
    assert "extra_headers" not in seen and "base_url" not in seen
    sent = fake_anthropic.requests_to(MESSAGES_PATH)[0].json()
    assert sent["temperature"] == 0.5 and sent["stop_sequences"] == ["\n\n"]
    assert not {"x_vendor", "top_k", "metadata", "mock_response"} & set(sent)


# -- answers ---------------------------------------------------------------------------------------


async def test_anthropic_json_is_openai_shaped(fake_anthropic) -> None:
    fake_anthropic.cached_tokens = 5
    reply = await call(view("anthropic", fake_anthropic.url), fake_anthropic.api_key, chat(CLAUDE))
    body = await json_answer(reply)

    assert set(body) == OPENAI_COMPLETION_KEYS
    assert body["object"] == "chat.completion" and body["model"] == CLAUDE
    assert body["id"].startswith("chatcmpl-")  # Anthropic's msg_ id is not preserved
    (choice,) = body["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "echo: say hello", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }
    sent = fake_anthropic.requests_to(MESSAGES_PATH)[0].json()
    assert body["usage"] == {
        "prompt_tokens": 3 + 2 + 3 + 5,  # input (message + system words) + cache reads
        "completion_tokens": 3,
        "total_tokens": 3 + 2 + 3 + 5 + 3,
        "prompt_tokens_details": {"cached_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert sent["max_tokens"] == 8192


async def test_finish_reasons_and_tool_calls(fake_anthropic, fake_gemini) -> None:
    fake_anthropic.tool_preamble = "Let me check."
    cases = [
        (view("anthropic", fake_anthropic.url), fake_anthropic.api_key, CLAUDE),
        (view("google", fake_gemini.url), fake_gemini.api_key, GEMINI),
    ]
    for backend, key, model in cases:
        short = await json_answer(await call(backend, key, chat(model, max_tokens=1)))
        assert short["choices"][0]["finish_reason"] == "length"
        assert short["choices"][0]["message"]["content"] == "echo:"
        tool = await json_answer(await call(backend, key, chat(model, tools=TOOLS)))
        (choice,) = tool["choices"]
        assert choice["finish_reason"] == "tool_calls"
        (tool_call,) = choice["message"]["tool_calls"]
        assert set(tool_call) == {"id", "type", "function"}  # no LiteLLM "index"
        assert tool_call["type"] == "function"
        assert tool_call["function"]["name"] == "get_weather"
        assert json.loads(tool_call["function"]["arguments"]) == {"echo": "say hello"}
    sent = fake_anthropic.requests_to(MESSAGES_PATH)[-1].json()
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]


async def test_gemini_json_keeps_response_id_and_model_version(fake_gemini) -> None:
    reply = await call(view("google", fake_gemini.url), fake_gemini.api_key, chat(GEMINI))
    body = await json_answer(reply)
    assert set(body) == OPENAI_COMPLETION_KEYS
    assert body["model"] == "gemini-1.5-pro-002"
    assert len(body["id"]) == 22  # Gemini's responseId
    assert body["choices"][0]["message"]["content"] == "echo: say hello"
    assert body["usage"]["prompt_tokens"] == 3 + 2 + 3
    assert body["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("usage", [True, False])
async def test_anthropic_stream_deltas_and_usage_chunk(fake_anthropic, usage: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if usage else {}
    body = chat(CLAUDE, stream=True, **extra)
    reply = await call(view("anthropic", fake_anthropic.url), fake_anthropic.api_key, body)
    assert reply.status_code == 200 and reply.content_type == "text/event-stream"
    events, raw = await read_events(reply)

    assert raw.endswith(b"data: [DONE]\n\n")
    assert len({e["id"] for e in events}) == 1 and len({e["created"] for e in events}) == 1
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text == "echo: say hello"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["stop"]
    for event in events:
        assert set(event) <= {"id", "object", "created", "model", "choices", "usage"}
        assert ("usage" in event) is usage
    if usage:
        assert events[-1]["choices"] == []
        assert events[-1]["usage"]["prompt_tokens"] == 8
        assert events[-1]["usage"]["completion_tokens"] == 3
        assert all(e["usage"] is None for e in events[:-1])
    assert fake_anthropic.requests_to(MESSAGES_PATH)[0].json()["stream"] is True


async def test_streamed_tool_calls_are_numbered_from_zero(fake_anthropic, fake_gemini) -> None:
    fake_anthropic.tool_preamble = "Let me check."
    for backend, key, model in (
        (view("anthropic", fake_anthropic.url), fake_anthropic.api_key, CLAUDE),
        (view("google", fake_gemini.url), fake_gemini.api_key, GEMINI),
    ):
        events, _ = await read_events(
            await call(backend, key, chat(model, tools=TOOLS, stream=True))
        )
        deltas = [c["delta"] for e in events for c in e["choices"] if c["delta"].get("tool_calls")]
        calls = [call for delta in deltas for call in delta["tool_calls"]]
        assert {c["index"] for c in calls} == {0}
        assert calls[0]["function"]["name"] == "get_weather" and calls[0]["type"] == "function"
        arguments = "".join(c["function"].get("arguments", "") for c in calls)
        assert json.loads(arguments) == {"echo": "say hello"}
        finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
        assert finishes == ["tool_calls"]


async def test_gemini_stream(fake_gemini) -> None:
    body = chat(GEMINI, stream=True, stream_options={"include_usage": True})
    reply = await call(view("google", fake_gemini.url), fake_gemini.api_key, body)
    events, _ = await read_events(reply)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text == "echo: say hello"
    assert events[-1]["usage"]["completion_tokens"] == 3
    (request,) = fake_gemini.requests_to(f"/v1beta/models/{GEMINI}:streamGenerateContent")
    assert request.query == {"alt": "sse"}


# -- errors ----------------------------------------------------------------------------------------


async def test_rate_limit_carries_retry_after(fake_anthropic) -> None:
    fake_anthropic.rate_limit(retry_after=7)
    with pytest.raises(UpstreamRateLimited) as caught:
        await call(view("anthropic", fake_anthropic.url), fake_anthropic.api_key, chat(CLAUDE))
    assert caught.value.retry_after == 7
    assert json.loads(caught.value.body or b"")["error"]["code"] == "rate_limit_exceeded"
    assert len(fake_anthropic.requests_to(MESSAGES_PATH)) == 1, "LiteLLM did not retry"


@pytest.mark.parametrize("stream", [False, True])
async def test_rejected_key_names_the_env_var(fake_anthropic, fake_gemini, stream) -> None:
    for backend, env in (
        (view("anthropic", fake_anthropic.url), "ANTHROPIC_API_KEY"),
        (view("google", fake_gemini.url), "GEMINI_API_KEY"),
    ):
        model = CLAUDE if backend.kind.name == "anthropic" else GEMINI
        with pytest.raises(UpstreamAuthError) as caught:
            await call(backend, "sk-wrong-key", chat(model, stream=stream))
        assert caught.value.message == f"API key rejected ({env})"
        assert "sk-wrong-key" not in str(caught.value)


async def test_missing_key_is_an_auth_error_without_a_call(fake_anthropic, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake_anthropic.api_key)  # LiteLLM would use it
    with pytest.raises(UpstreamAuthError, match=r"API key missing \(ANTHROPIC_API_KEY\)"):
        await call(view("anthropic", fake_anthropic.url), None, chat(CLAUDE))
    assert fake_anthropic.requests == []


@pytest.mark.parametrize("stream", [False, True])
async def test_overloaded_backends_fail_over_as_server_errors(fake_anthropic, fake_gemini, stream):
    """Raised, not answered: the proxy tries the next candidate. The exact class makes it a
    server error for health (not a cooldown, auth or timeout), and the backend's own status
    shows it came from the provider's answer, not from a crash inside the translation (also a
    plain UpstreamError, without one)."""
    fake_anthropic.overloaded(times=1)  # 529
    fake_gemini.overloaded(times=1)  # 503
    for fake, backend, model in (
        (fake_anthropic, view("anthropic", fake_anthropic.url), CLAUDE),
        (fake_gemini, view("google", fake_gemini.url), GEMINI),
    ):
        with pytest.raises(UpstreamError) as caught:
            await call(backend, fake.api_key, chat(model, stream=stream))
        assert type(caught.value) is UpstreamError
        assert caught.value.upstream_status == 500, "LiteLLM reports 529 and 503 as 500"
        error = json.loads(caught.value.body or b"")["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert len(fake.requests) == 1, "LiteLLM did not retry: failing over is Nexus's job"


@pytest.mark.parametrize("stream", [False, True])
async def test_timeout_and_refused_connection(fake_anthropic, refused_url, stream) -> None:
    fake_anthropic.delay(2, path=MESSAGES_PATH)
    backend = view("anthropic", fake_anthropic.url)
    with pytest.raises(UpstreamTimeout):
        await call(backend, fake_anthropic.api_key, chat(CLAUDE, stream=stream), timeout=0.3)
    for kind, model in (("anthropic", CLAUDE), ("google", GEMINI)):
        with pytest.raises(UpstreamUnreachable):
            await call(view(kind, refused_url), "k", chat(model, stream=stream))


@pytest.mark.parametrize("kind", ["anthropic", "google"])
async def test_stream_broken_midway_raises_from_chunks(fake_anthropic, fake_gemini, kind) -> None:
    fake = fake_anthropic if kind == "anthropic" else fake_gemini
    fake.break_stream_after(4 if kind == "anthropic" else 1)
    model = CLAUDE if kind == "anthropic" else GEMINI
    reply = await call(view(kind, fake.url), fake.api_key, chat(model, stream=True))
    received: list[bytes] = []
    with pytest.raises(UpstreamError):
        async for chunk in reply.chunks():
            received.append(chunk)
    await reply.aclose()
    assert received and b"[DONE]" not in b"".join(received)


async def test_anthropic_error_event_midway_and_before_the_first_chunk(fake_anthropic) -> None:
    backend = view("anthropic", fake_anthropic.url)
    fake_anthropic.error_event_after(4, times=1)
    reply = await call(backend, fake_anthropic.api_key, chat(CLAUDE, stream=True))
    with pytest.raises(UpstreamError):
        async for _ in reply.chunks():
            pass
    fake_anthropic.error_event_after(1, times=1)  # only message_start came: a failover
    with pytest.raises(UpstreamError):
        await call(backend, fake_anthropic.api_key, chat(CLAUDE, stream=True))


@pytest.mark.parametrize("stream", [False, True])
async def test_unsupported_parameter_is_a_400_answer_not_a_failover(fake_anthropic, stream):
    backend = view("anthropic", fake_anthropic.url)
    reply = await call(backend, fake_anthropic.api_key, chat(CLAUDE, seed=7, stream=stream))
    assert reply.status_code == 400 and reply.content_type == "application/json"
    error = json.loads(await reply.read())["error"]
    assert error["type"] == "invalid_request_error"
    assert "seed" in error["message"] and "backend 'anthropic'" in error["message"]
    assert fake_anthropic.requests_to(MESSAGES_PATH) == []


async def test_provider_400_is_relayed_with_the_key_scrubbed(fake_anthropic) -> None:
    messages = [{"role": "assistant", "content": "no user turn"}]
    body = {"model": CLAUDE, "messages": messages, "max_tokens": 0}
    reply = await call(view("anthropic", fake_anthropic.url), fake_anthropic.api_key, body)
    assert reply.status_code == 400
    text = (await reply.read()).decode()
    assert "max_tokens" in text and fake_anthropic.api_key not in text


async def test_closing_early_releases_the_provider_stream(fake_anthropic) -> None:
    fake_anthropic.chunk_count, fake_anthropic.chunk_delay = 50, 0.1  # about 5 s in all
    backend = view("anthropic", fake_anthropic.url)
    reply = await call(backend, fake_anthropic.api_key, chat(CLAUDE, stream=True))
    chunks = reply.chunks()
    assert (await anext(chunks)).startswith(b"data: ")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await reply.aclose()
    assert loop.time() - started < 1


# -- embeddings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_gemini_embeddings(fake_gemini, encoding) -> None:
    body = {"model": "text-embedding-004", "input": ["a b", "c"], "encoding_format": encoding}
    reply = await call(
        view("google", fake_gemini.url), fake_gemini.api_key, body, path="/embeddings"
    )
    answer = await json_answer(reply)
    assert set(answer) == {"object", "data", "model", "usage"}
    assert [item["index"] for item in answer["data"]] == [0, 1]
    first = answer["data"][0]["embedding"]
    assert isinstance(first, str if encoding == "base64" else list)
    (request,) = fake_gemini.requests_to("/v1beta/models/text-embedding-004:batchEmbedContents")
    assert len(request.json()["requests"]) == 2


async def test_anthropic_has_no_embeddings(fake_anthropic) -> None:
    body = {"model": CLAUDE, "input": "x"}
    reply = await call(
        view("anthropic", fake_anthropic.url), fake_anthropic.api_key, body, path="/embeddings"
    )
    assert reply.status_code == 400
    assert json.loads(await reply.read())["error"]["code"] == "unsupported_endpoint"
    assert fake_anthropic.requests == []


async def test_other_provider_ids_get_their_prefix_and_the_url_as_given(monkeypatch) -> None:
    seen: dict[str, Any] = {}
    litellm = translated.warm_up()

    async def fake_completion(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return litellm.ModelResponse(model="mistral-large-latest")

    monkeypatch.setattr(litellm, "acompletion", fake_completion)
    backend = view("mistral", "https://api.mistral.ai/v1")
    await call(backend, "k", chat("mistral-large-latest"))
    assert seen["model"] == "mistral/mistral-large-latest"
    assert seen["api_base"] == "https://api.mistral.ai/v1"
    assert isinstance(FakeAnthropic, type) and isinstance(FakeGemini, type)
