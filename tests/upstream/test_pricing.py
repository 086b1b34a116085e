"""Prices offline: LiteLLM's bundled map read as data, Nexus's own entries, config overrides."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nexus import pricing
from nexus.config.model import PriceConfig
from nexus.pricing import NEXUS_MODELS, PriceTable, stream_bound, usage_tokens


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-4o", "openai", 1000 * 2.5e-6 + 500 * 10e-6),  # bundled map
        ("claude-3-5-sonnet-20241022", "anthropic", 1000 * 3e-6 + 500 * 15e-6),  # Nexus's
        ("gemini-1.5-pro", "gemini", 1000 * 1.25e-6 + 500 * 5e-6),  # Nexus's, gemini/ key
        ("claude-sonnet-4-5", "anthropic", 1000 * 3e-6 + 500 * 15e-6),  # bundled map
        ("gemini-2.5-pro", "gemini", 1000 * 1.25e-6 + 500 * 10e-6),  # bundled, gemini/ key
    ],
)
def test_estimates_from_the_published_prices(model: str, provider: str, expected: float) -> None:
    assert PriceTable().estimate(model, 1000, 500, provider=provider) == pytest.approx(expected)
    assert PriceTable().estimate(
        f"{provider}/{model}", 1000, 500, provider=provider
    ) == pytest.approx(expected)


def test_unknown_model_or_tokens_give_none_never_zero() -> None:
    assert PriceTable().estimate("my-finetune", 1000, 500, provider="openai") is None
    assert PriceTable().estimate("gpt-4o", None, 500, provider="openai") is None
    assert PriceTable().estimate("gpt-4o", 1000, None, provider="openai") is None
    # a model of another provider is not priced by accident
    assert PriceTable().estimate("gpt-4o", 1000, 500, provider="anthropic") is None


def test_config_overrides_win() -> None:
    table = PriceTable({"gpt-4o": PriceConfig(input_per_1k=1.0, output_per_1k=2.0)})
    assert table.estimate("gpt-4o", 1000, 500, provider="openai") == pytest.approx(2.0)
    assert table.output_limit("gpt-4o", "openai") == 16384  # the limit still comes from the map
    local = PriceTable({"my-finetune": PriceConfig(input_per_1k=0.5, output_per_1k=0.5)})
    assert local.estimate("my-finetune", 2000, 0, provider="openai") == pytest.approx(1.0)


def test_output_limits() -> None:
    table = PriceTable()
    assert table.output_limit("claude-3-5-sonnet-20241022", "anthropic") == 8192
    assert table.output_limit("claude-3-haiku-20240307", "anthropic") == 4096
    assert table.output_limit("gemini-1.5-pro", "gemini") == 8192
    assert table.output_limit("gpt-4o", "openai") == 16384
    assert table.output_limit("nobody-knows", "anthropic") is None


def test_nexus_entries_are_only_for_models_the_map_lacks() -> None:
    bundled = pricing.bundled_prices()
    assert len(bundled) > 1000
    present = sorted(key for key in NEXUS_MODELS if key in bundled)
    assert present == [], f"LiteLLM's map now has {present}: drop them from NEXUS_MODELS"
    for key, entry in NEXUS_MODELS.items():
        provider = "gemini" if key.startswith("gemini/") else "anthropic"
        assert entry["litellm_provider"] == provider
        if entry["mode"] == "chat":
            assert entry["max_output_tokens"] <= 64_000 and entry["supports_system_messages"]


def test_the_map_is_read_without_importing_litellm() -> None:
    code = (
        "import sys, json; from nexus import pricing;"
        "cost = pricing.PriceTable().estimate('gpt-4o', 1000, 500, provider='openai');"
        "print(json.dumps([cost, 'litellm' in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    cost, imported = json.loads(result.stdout)
    assert cost == pytest.approx(0.0075) and imported is False


def test_usage_tokens_from_bodies() -> None:
    chat = b'{"usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}}'
    embeddings = b'{"usage": {"prompt_tokens": 7, "total_tokens": 7}}'
    assert usage_tokens(chat) == (10, 4)
    assert usage_tokens(embeddings) == (7, 0)
    messages = b'{"usage": {"input_tokens": 12, "cache_read_input_tokens": 9, "output_tokens": 5}}'
    responses = b'{"usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}}'
    assert usage_tokens(messages) == (12, 5)  # cached reads are not priced
    assert usage_tokens(responses) == (9, 3)
    for bad in (b"not json", b"[]", b'{"usage": null}', b'{"usage": {"prompt_tokens": "x"}}'):
        assert usage_tokens(bad) is None


def test_stream_bound_is_input_plus_the_output_limit_at_the_output_rate() -> None:
    table = PriceTable()
    bound = stream_bound(table, "claude-3-5-sonnet-20241022", "anthropic", 100, 50)
    assert bound == pytest.approx(100 * 3e-6 + 50 * 15e-6)
    no_limit = stream_bound(table, "claude-3-5-sonnet-20241022", "anthropic", 100, None)
    assert no_limit == pytest.approx(100 * 3e-6 + 8192 * 15e-6)
    assert stream_bound(table, "claude-3-5-sonnet-20241022", "anthropic", None, 50) is None
