"""requirements_from: what a request needs, from its body and headers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from nexus.config.kinds import Zone
from nexus.errors import InvalidRequest
from nexus.routing import (
    RequestKind,
    Requirements,
    RoutingPolicy,
    TierMode,
    requirements_from,
)
from nexus.tokens import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, encoding
from tests.routing.fleet import policy

RULES = policy(
    aliases={"fast": "llama3"},
    policies=[
        {"model_pattern": "secret*", "privacy": "restricted", "min_tier": 2},
        {"model_pattern": "big", "min_tier": 4},
    ],
)


def _enc(name: str):
    found = encoding(name)
    assert found is not None
    return found


def chat(**body: Any) -> dict[str, Any]:
    return {"model": "llama3", "messages": [{"role": "user", "content": "hi"}], **body}


def req(
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    rules: RoutingPolicy = RULES,
    **kw: Any,
) -> Requirements:
    return requirements_from(body if body is not None else chat(), headers or {}, rules, **kw)


def test_a_plain_request_needs_nothing_special() -> None:
    r = req()
    assert (r.model, r.requested_model, r.kind) == ("llama3", "llama3", RequestKind.CHAT)
    assert not (r.stream or r.vision or r.tools or r.json_mode)
    assert r.privacy is Zone.OPEN and r.min_tier is None and r.tier_mode is TierMode.STRICT
    assert r.max_tokens is None


def test_alias_is_resolved_and_the_requested_name_kept() -> None:
    r = req(chat(model="fast"))
    assert (r.model, r.requested_model) == ("llama3", "fast")


@pytest.mark.parametrize("value", [True])
def test_stream(value) -> None:
    assert req(chat(stream=value)).stream
    assert not req(chat(stream="true")).stream


@pytest.mark.parametrize("part_type", ["image_url", "input_image"])
def test_vision_from_any_image_part(part_type) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": part_type, "image_url": {"url": "x"}},
    ]
    body = chat(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": content}])
    assert req(body).vision


def test_text_parts_are_not_vision() -> None:
    assert not req(
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x"}]}])
    ).vision


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, True),
        ({"functions": [{"name": "f"}]}, True),
        ({"tools": []}, False),
        ({"tools": None}, False),
        ({}, False),
    ],
)
def test_tools_or_legacy_functions(extra, expected) -> None:
    assert req(chat(**extra)).tools is expected


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, True),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, True),
        ({"type": "text"}, False),
        ("json_object", False),
    ],
)
def test_json_mode(response_format, expected) -> None:
    assert req(chat(response_format=response_format)).json_mode is expected


def test_max_tokens_and_max_completion_tokens() -> None:
    assert req(chat(max_tokens=100)).max_tokens == 100
    assert req(chat(max_completion_tokens=50)).max_tokens == 50
    assert req(chat(max_tokens=True)).max_tokens is None


def test_policy_sets_privacy_and_tier() -> None:
    r = req(chat(model="secret-model"))
    assert r.privacy is Zone.RESTRICTED and r.min_tier == 2
    assert req(chat(model="big")).min_tier == 4


@pytest.mark.parametrize(
    "name", ["X-Nexus-Privacy-Zone", "x-nexus-privacy-zone", "X-NEXUS-PRIVACY-ZONE"]
)
def test_client_can_tighten_privacy_case_insensitively(name) -> None:
    assert req(headers={name: " Restricted "}).privacy is Zone.RESTRICTED


def test_client_cannot_loosen_privacy() -> None:
    r = req(chat(model="secret-model"), headers={"X-Nexus-Privacy-Zone": "open"})
    assert r.privacy is Zone.RESTRICTED
    assert req(headers={"X-Nexus-Privacy-Zone": "internal"}).privacy is Zone.OPEN


@pytest.mark.parametrize(
    ("headers", "mode"),
    [
        ({}, TierMode.STRICT),
        ({"X-Nexus-Flexible": "true"}, TierMode.FLEXIBLE),
        ({"x-nexus-flexible": "TRUE"}, TierMode.FLEXIBLE),
        ({"X-Nexus-Flexible": "yes"}, TierMode.STRICT),
        ({"X-Nexus-Flexible": "1"}, TierMode.STRICT),
        ({"X-Nexus-Flexible": "true", "X-Nexus-Strict": "true"}, TierMode.STRICT),
        ({"X-Nexus-Flexible": "true", "X-Nexus-Strict": "false"}, TierMode.FLEXIBLE),
        ({"X-Nexus-Strict": "true"}, TierMode.STRICT),
    ],
)
def test_tier_mode_headers(headers, mode) -> None:
    assert req(headers=headers).tier_mode is mode


@pytest.mark.parametrize("body", [{}, {"model": ""}, {"model": 3}, {"messages": []}])
def test_model_is_required(body) -> None:
    with pytest.raises(InvalidRequest) as caught:
        req(body)
    assert caught.value.param == "model"


def test_exact_tokens_for_gpt_4o_follow_openais_recipe() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "name": "ann",
            "content": [{"type": "text", "text": "Hello there, world!"}],
        },
    ]
    r = req({"model": "gpt-4o-mini", "messages": messages})
    enc = _enc("o200k_base")
    texts = ["system", "You are terse.", "user", "ann", "Hello there, world!"]
    expected = (
        sum(len(enc.encode(t)) for t in texts) + 2 * TOKENS_PER_MESSAGE + 1 + REPLY_PRIMING_TOKENS
    )
    assert r.tokens_exact and r.input_tokens == expected


def test_gpt_4_uses_cl100k() -> None:
    r = req({"model": "gpt-4", "messages": [{"role": "user", "content": "tokenize me please"}]})
    enc = _enc("cl100k_base")
    assert r.tokens_exact
    assert r.input_tokens == len(enc.encode("user")) + len(enc.encode("tokenize me please")) + 6


def test_special_token_text_is_counted_not_rejected() -> None:
    r = req({"model": "gpt-4o", "messages": [{"role": "user", "content": "<|endoftext|>"}]})
    assert r.tokens_exact and r.input_tokens > 6


def test_unknown_model_tokens_are_estimated() -> None:
    text = "x" * 41
    r = req({"model": "llama3", "messages": [{"role": "user", "content": text}]})
    assert not r.tokens_exact
    assert (
        r.input_tokens
        == math.ceil(4 / 4) + math.ceil(41 / 4) + TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS
    )


def test_tools_and_tool_calls_count_towards_input() -> None:
    plain = req(chat())
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "weather"}'},
    }
    body = chat(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
        ],
    )
    assert req(body).input_tokens > plain.input_tokens + 2 * TOKENS_PER_MESSAGE


def test_malformed_messages_do_not_crash() -> None:
    r = req(
        {"model": "llama3", "messages": ["nope", {"role": "user", "content": [1, {"type": "x"}]}]}
    )
    assert r.input_tokens == math.ceil(4 / 4) + TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS
    assert req({"model": "llama3", "messages": "nope"}).input_tokens == REPLY_PRIMING_TOKENS


def test_embeddings_requests() -> None:
    r = req({"model": "text-embedding-3-small", "input": "hello world"})
    assert r.kind is RequestKind.EMBEDDINGS
    assert r.tokens_exact and r.input_tokens == len(_enc("cl100k_base").encode("hello world"))
    assert not (r.vision or r.tools or r.json_mode)
    many = req({"model": "nomic", "input": ["abcd", "abcdefgh"]})
    assert (many.input_tokens, many.tokens_exact) == (3, False)
    ids = req({"model": "nomic", "input": [1, 2, 3]})
    assert (ids.input_tokens, ids.tokens_exact) == (3, True)
    batches = req({"model": "nomic", "input": [[1, 2], [3]]})
    assert batches.input_tokens == 3


def test_explicit_kind_wins_over_detection() -> None:
    r = req({"model": "m", "input": "x", "messages": []}, kind=RequestKind.EMBEDDINGS)
    assert r.kind is RequestKind.EMBEDDINGS
    assert req({"model": "m", "messages": []}).kind is RequestKind.CHAT


def test_requirements_serialise() -> None:
    data = req(chat(model="secret-x"), headers={"X-Nexus-Flexible": "true"}).to_dict()
    assert data["privacy_zone_required"] == "restricted"
    assert data["tier_mode"] == "flexible" and data["min_tier"] == 2


def test_output_limit_is_one_rule_for_routing_and_cost() -> None:
    # max_completion_tokens is OpenAI's current name and wins when both are sent; only a positive
    # integer is a limit (routing and the stream cost bound read this same value).
    assert req(chat(max_tokens=100, max_completion_tokens=50)).max_tokens == 50
    assert req(chat(max_tokens=0)).max_tokens is None
    assert req(chat(max_completion_tokens=-5, max_tokens=7)).max_tokens == 7
