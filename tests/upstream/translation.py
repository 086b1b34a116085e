"""Helpers for the translated-path tests: backend views for the fakes and a stream reader."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from pydantic import SecretStr

from nexus.backends.state import BackendView, Status
from nexus.config.kinds import Zone, kind_of
from nexus.upstream import translated
from nexus.upstream.reply import Reply

SYSTEM = "You are terse."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "say hello"}]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
    }
]
KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "google": "GEMINI_API_KEY", "mistral": "MISTRAL_KEY"}


def view(kind: str, url: str, name: str | None = None) -> BackendView:
    found = kind_of(kind)
    assert found is not None
    return BackendView(
        name=name or kind,
        kind=found,
        url=url,
        zone=Zone.OPEN,
        tier=1,
        priority=50,
        max_concurrent=None,
        status=Status.HEALTHY,
        api_key_env=KEY_ENV.get(kind, "SOME_KEY"),
    )


async def call(
    backend: BackendView,
    key: str | None,
    body: Mapping[str, Any],
    *,
    path: str = "/chat/completions",
    timeout: float = 5.0,
) -> Reply:
    return await translated.open_translated(
        backend=backend,
        path=path,
        body=body,
        model=str(body["model"]),
        api_key=None if key is None else SecretStr(key),
        stream=body.get("stream") is True,
        timeout=timeout,
    )


async def read_events(reply: Reply) -> tuple[list[dict[str, Any]], bytes]:
    """The JSON payloads of a stream's events and the raw body (which must end in [DONE])."""
    raw = b"".join([chunk async for chunk in reply.chunks()])
    await reply.aclose()
    return events_of(raw), raw


def events_of(raw: bytes) -> list[dict[str, Any]]:
    events = [e for e in raw.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events), raw
    return [json.loads(e[6:]) for e in events if e != b"data: [DONE]"]


@pytest.fixture
async def closes_litellm() -> AsyncIterator[None]:
    """Close LiteLLM's pooled sessions in the test's own loop, so none leak into the next."""
    yield
    await translated.shutdown()
