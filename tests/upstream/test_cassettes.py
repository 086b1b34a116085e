"""Recorded provider interactions (``cassettes/``) replayed through Nexus's transports with
recording disabled: any request the cassette does not hold fails the test. The assertions hold
for cassettes recorded against the fakes and against the real APIs alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from nexus.errors import UpstreamAuthError, UpstreamError, UpstreamRateLimited
from nexus.pricing import PriceTable
from tests.fakes import FakeAnthropic, FakeGemini
from tests.upstream.cassette_scenarios import (
    BAD_KEY,
    REAL_URLS,
    SCENARIOS,
    Scenario,
    recorder,
    run,
)
from tests.upstream.translation import closes_litellm, events_of  # noqa: F401

pytestmark = pytest.mark.usefixtures("closes_litellm")
BY_NAME = {f"{s.provider}/{s.name}": s for s in SCENARIOS}


async def replay(name: str) -> tuple[int, bytes] | UpstreamError:
    scenario = BY_NAME[name]
    with recorder("none").use_cassette(str(scenario.cassette)) as cassette:
        result = await run(scenario, REAL_URLS[scenario.provider], "sk-replayed")
        assert cassette.all_played, f"{name}: not every recorded interaction was used"
    return result


def answer(result: tuple[int, bytes] | UpstreamError) -> dict[str, Any]:
    assert not isinstance(result, UpstreamError), result
    status, body = result
    assert status == 200
    parsed: dict[str, Any] = json.loads(body)
    return parsed


@pytest.mark.parametrize("provider", ["anthropic", "google"])
async def test_json(provider: str) -> None:
    body = answer(await replay(f"{provider}/json"))
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    (choice,) = body["choices"]
    assert choice["finish_reason"] in ("stop", "length")
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    provider_id = "gemini" if provider == "google" else provider
    cost = PriceTable().estimate(
        body["model"], usage["prompt_tokens"], usage["completion_tokens"], provider=provider_id
    )
    assert cost is None or cost > 0


@pytest.mark.parametrize("provider", ["anthropic", "google", "openai"])
async def test_stream(provider: str) -> None:
    result = await replay(f"{provider}/stream")
    assert not isinstance(result, UpstreamError), result
    status, raw = result
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
    events = events_of(raw)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text
    assert [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]] in (
        ["stop"],
        ["length"],
    )
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    if provider != "openai":  # translated: OpenAI's field set only
        for event in events:
            assert set(event) <= {"id", "object", "created", "model", "choices", "usage"}


async def test_anthropic_tool_call() -> None:
    body = answer(await replay("anthropic/tool_call"))
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"]), dict)


@pytest.mark.parametrize("provider", ["anthropic", "google"])
async def test_unauthorized(provider: str) -> None:
    result = await replay(f"{provider}/unauthorized")
    assert isinstance(result, UpstreamAuthError)
    env = "ANTHROPIC_API_KEY" if provider == "anthropic" else "GEMINI_API_KEY"
    assert result.message == f"API key rejected ({env})"


async def test_rate_limited() -> None:
    anthropic = await replay("anthropic/rate_limited")
    assert isinstance(anthropic, UpstreamRateLimited) and anthropic.retry_after == 9
    gemini = await replay("google/rate_limited")
    assert isinstance(gemini, UpstreamRateLimited) and gemini.retry_after is None


async def test_anthropic_error_event_midway() -> None:
    """An ``overloaded_error`` event in the stream: a server error (the exact class, not a
    cooldown, auth or timeout), read from the provider's answer (a crash inside the translation
    is a plain UpstreamError too, but without the backend's status)."""
    result = await replay("anthropic/midstream_error")
    assert type(result) is UpstreamError and result.upstream_status == 500


async def test_openai_json_is_relayed_byte_for_byte() -> None:
    scenario = BY_NAME["openai/json"]
    recorded = yaml.safe_load(scenario.cassette.read_text())["interactions"][0]["response"]
    result = await replay("openai/json")
    assert not isinstance(result, UpstreamError)
    assert result == (200, recorded["body"]["string"].encode())


async def test_an_unrecorded_request_fails() -> None:
    changed = Scenario("anthropic", "json", {**BY_NAME["anthropic/json"].body, "temperature": 1})
    with recorder("none").use_cassette(str(changed.cassette)) as cassette:
        result = await run(changed, REAL_URLS["anthropic"], "sk-replayed")
    # vcrpy refused the call (CannotOverwriteExistingCassetteException); LiteLLM wrapped it
    assert isinstance(result, UpstreamError) and cassette.play_count == 0


def test_cassettes_hold_no_credentials() -> None:
    keys = (BAD_KEY, "sk-replayed", FakeAnthropic.api_key, FakeGemini.api_key)
    for scenario in SCENARIOS:
        text = scenario.cassette.read_text()
        assert not [key for key in keys if key in text], scenario.cassette
        for interaction in yaml.safe_load(text)["interactions"]:
            sent = {name.lower() for name in interaction["request"]["headers"]}
            assert not sent & {"x-api-key", "x-goog-api-key", "authorization"}
