"""How a translated backend is addressed and which request keys LiteLLM may receive."""

from __future__ import annotations

import pytest

from nexus.pricing import PriceTable
from nexus.upstream import translated
from nexus.upstream.providers import (
    DEFAULT_MAX_TOKENS,
    TRANSPORT_PARAMETERS,
    call_arguments,
    has_embeddings,
    target,
    with_max_tokens,
)

KNOWN = ["temperature", "tools", "stream_options", "api_base", "timeout", "max_tokens", "seed"]


GOOGLE = "https://generativelanguage.googleapis.com"
ANTHROPIC = "https://api.anthropic.com"


@pytest.mark.parametrize(
    ("kind", "url", "model", "expected_model", "expected_base"),
    [
        ("anthropic", ANTHROPIC, "claude-x", "anthropic/claude-x", ANTHROPIC),
        ("anthropic", ANTHROPIC + "/v1/", "claude-x", "anthropic/claude-x", ANTHROPIC),
        ("google", GOOGLE, "gemini-x", "gemini/gemini-x", GOOGLE + "/v1beta"),
        ("google", GOOGLE + "/v1beta", "gemini-x", "gemini/gemini-x", GOOGLE + "/v1beta"),
        ("google", GOOGLE + "/v1", "gemini/gemini-x", "gemini/gemini-x", GOOGLE + "/v1beta"),
        ("mistral", "https://x.ai/v1", "large", "mistral/large", "https://x.ai/v1"),
    ],
)
def test_model_prefix_and_api_base(kind, url, model, expected_model, expected_base) -> None:
    where = target(kind, url, model)
    assert (where.model, where.api_base) == (expected_model, expected_base)
    assert where.bare_model == expected_model.split("/", 1)[1]


def test_only_known_non_transport_keys_pass() -> None:
    body = {
        "model": "m",
        "messages": [],
        "stream": True,
        "temperature": 0.1,
        "api_base": "http://evil",
        "timeout": 1,
        "x_unknown": 1,
        "stream_options": {"include_usage": True},
    }
    kept, removed = call_arguments(body, KNOWN, stream=True)
    assert kept == {"temperature": 0.1, "stream_options": {"include_usage": True}}
    assert removed == ["api_base", "timeout", "x_unknown"]
    kept, _ = call_arguments(body, KNOWN, stream=False)
    assert "stream_options" not in kept


def test_every_transport_parameter_is_one_litellm_knows() -> None:
    litellm = translated.warm_up()
    known = set(litellm.constants.OPENAI_CHAT_COMPLETION_PARAMS)
    assert known >= TRANSPORT_PARAMETERS - {"max_retries"} | {"api_base", "api_key"}
    # what remains for clients is OpenAI's body vocabulary
    kept, _ = call_arguments({name: 1 for name in known}, known, stream=True)
    assert not set(kept) & TRANSPORT_PARAMETERS
    assert {"temperature", "tools", "tool_choice", "response_format", "seed", "user"} <= set(kept)


def test_max_tokens_is_always_explicit() -> None:
    table = PriceTable()
    claude = target("anthropic", "https://api.anthropic.com", "claude-3-5-sonnet-20241022")
    unknown = target("anthropic", "https://api.anthropic.com", "claude-next")
    assert with_max_tokens({}, table, claude) == {"max_tokens": 8192}
    assert with_max_tokens({}, table, unknown) == {"max_tokens": DEFAULT_MAX_TOKENS}
    assert with_max_tokens({"max_tokens": 5}, table, claude) == {"max_tokens": 5}
    given = {"max_completion_tokens": 9}
    assert with_max_tokens(given, table, claude) == given


def test_embeddings_support_comes_from_litellms_provider_table() -> None:
    assert has_embeddings("gemini") and has_embeddings("mistral")
    assert not has_embeddings("anthropic")
