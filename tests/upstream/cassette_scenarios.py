"""The provider interactions kept as cassettes in ``cassettes/``, shared by the replay tests
(``test_cassettes.py``) and the recorder (``record_cassettes.py``, run by
``scripts/record-cassettes``).

Each scenario is one call through Nexus's own transport code: ``open_translated`` for Anthropic
and Gemini (LiteLLM on its aiohttp transport), ``open_relay`` for OpenAI (httpx). vcrpy matches
requests on method, path, query and JSON body, not on host or port, so cassettes recorded against
the local fakes and against the real APIs replay the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import vcr  # type: ignore[import-untyped]  # vcrpy ships no type information
from pydantic import SecretStr

from nexus.backends.state import BackendView, Status
from nexus.config.kinds import Zone, kind_of
from nexus.errors import UpstreamError
from nexus.upstream import translated
from nexus.upstream.relay import endpoint, open_relay, relay_session, request_headers
from nexus.upstream.reply import Reply
from tests.conftest import REPO

CASSETTES = REPO / "cassettes"
REAL_URLS = {
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
    "openai": "https://api.openai.com",
}
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "google": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY"}
BAD_KEY = "nexus-cassette-invalid-key"
#: Response headers kept in cassettes; everything else (cookies, org ids, trace ids) is dropped.
KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "request-id", "x-request-id")
MESSAGES = [
    {"role": "system", "content": "Answer in at most five words."},
    {"role": "user", "content": "Say hello to Nexus."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@dataclass(frozen=True)
class Scenario:
    provider: str  # backend type: anthropic, google, openai
    name: str
    body: dict[str, Any]
    bad_key: bool = False
    real: bool = True  # False: cannot be provoked on the real API; recorded from the fakes only
    arrange: Callable[[Any], None] = field(default=lambda fake: None)  # programs the fake

    @property
    def cassette(self) -> Path:
        folder = "gemini" if self.provider == "google" else self.provider
        return CASSETTES / folder / f"{self.name}.yaml"


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, "max_tokens": 200, **extra}


CLAUDE, GEMINI, GPT = "claude-haiku-4-5", "gemini-2.5-flash", "gpt-4o-mini"
USAGE = {"stream_options": {"include_usage": True}}
SCENARIOS = [
    Scenario("anthropic", "json", _chat(CLAUDE)),
    Scenario("anthropic", "stream", _chat(CLAUDE, stream=True, **USAGE)),
    Scenario("anthropic", "tool_call", _chat(CLAUDE, tools=TOOLS, tool_choice="required")),
    Scenario("anthropic", "unauthorized", _chat(CLAUDE), bad_key=True),
    Scenario(
        "anthropic",
        "rate_limited",
        _chat(CLAUDE),
        real=False,
        arrange=lambda fake: fake.rate_limit(retry_after=9, times=1),
    ),
    Scenario(
        "anthropic",
        "midstream_error",
        _chat(CLAUDE, stream=True),
        real=False,
        arrange=lambda fake: fake.error_event_after(5, times=1),
    ),
    Scenario("google", "json", _chat(GEMINI)),
    Scenario("google", "stream", _chat(GEMINI, stream=True, **USAGE)),
    Scenario("google", "unauthorized", _chat(GEMINI), bad_key=True),
    Scenario(
        "google",
        "rate_limited",
        _chat(GEMINI),
        real=False,
        arrange=lambda fake: fake.rate_limit(times=1),
    ),
    Scenario("openai", "json", _chat(GPT)),
    Scenario("openai", "stream", _chat(GPT, stream=True, **USAGE)),
]


def recorder(record_mode: str) -> vcr.VCR:
    """vcrpy as the cassettes need it: keys never written, host and port not matched."""
    return vcr.VCR(
        record_mode=record_mode,
        match_on=("method", "path", "query", "body"),
        filter_headers=("x-api-key", "x-goog-api-key", "authorization", "host", "cookie"),
        before_record_response=_kept_headers,
        decode_compressed_response=True,
    )


def _kept_headers(response: dict[str, Any]) -> dict[str, Any]:
    headers = response["headers"]
    response["headers"] = {
        name: value for name, value in headers.items() if name.lower() in KEPT_RESPONSE_HEADERS
    }
    return response


def backend(provider: str, url: str) -> BackendView:
    kind = kind_of(provider)
    assert kind is not None
    return BackendView(
        name=provider,
        kind=kind,
        url=url,
        zone=Zone.OPEN,
        tier=1,
        priority=1,
        max_concurrent=None,
        status=Status.HEALTHY,
        api_key_env=KEY_ENV[provider],
    )


async def run(scenario: Scenario, url: str, key: str) -> tuple[int, bytes] | UpstreamError:
    """One scenario against ``url``: the status and whole body, or the UpstreamError raised."""
    secret = SecretStr(BAD_KEY if scenario.bad_key else key)
    stream = scenario.body.get("stream") is True
    try:
        if scenario.provider == "openai":
            async with relay_session(connect_timeout=10) as session:
                reply: Reply = await open_relay(
                    session,
                    backend="openai",
                    url=endpoint(url, "/chat/completions"),
                    body=httpx.Request("POST", url, json=scenario.body).content,
                    headers=request_headers(secret, stream=stream),
                    read_timeout=60,
                    api_key_env=KEY_ENV["openai"],
                )
                return await _drain(reply)
        reply = await translated.open_translated(
            backend=backend(scenario.provider, url),
            path="/chat/completions",
            body=scenario.body,
            model=scenario.body["model"],
            api_key=secret,
            stream=stream,
            timeout=60,
        )
        return await _drain(reply)
    except UpstreamError as exc:
        return exc


async def _drain(reply: Reply) -> tuple[int, bytes]:
    try:
        return reply.status_code, b"".join([chunk async for chunk in reply.chunks()])
    finally:
        await reply.aclose()
