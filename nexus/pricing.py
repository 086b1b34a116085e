"""Prices and output limits of cloud models, offline, and the ``X-Nexus-Cost-Estimated`` value.

Three sources, the first that knows a model wins:

1. ``[pricing."<model>"]`` in the config (USD per 1,000 tokens);
2. LiteLLM's bundled price map (``model_prices_and_context_window_backup.json`` inside the
   installed wheel), read as JSON: found through the package's spec, LiteLLM is not imported;
3. :data:`NEXUS_MODELS`, Nexus's own entries for models users configure that the bundled map
   lacks (Claude 3.x, Gemini 1.5 and 2.0, ...), in the map's own format so that
   :mod:`nexus.upstream.translated` registers the same data with LiteLLM.

Names are looked up as the provider's map keys them: ``gemini/<model>`` for Gemini,
``<model>`` for OpenAI and Anthropic; a ``provider/`` prefix the client sent is ignored.

Cost rules (README, "HTTP API") are the pure functions at the end: a JSON answer is priced from
its ``usage``; a stream, before it starts, from the exact input token count plus the output
bound (the request's ``max_tokens``, else the model's output limit) at the output rate. Unknown
tokens or prices give None (the header is omitted, never a made-up ``0.0000``).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from nexus.config.model import PriceConfig

MAP_FILE = "model_prices_and_context_window_backup.json"
#: Backend types whose LiteLLM provider id differs from the type name.
_PROVIDER_IDS = {"google": "gemini"}


def _chat(
    provider: str,
    input_per_m: float,
    output_per_m: float,
    max_output: int,
    context: int,
    *,
    vision: bool = True,
) -> dict[str, Any]:
    """One chat entry in LiteLLM's map format (prices given per million tokens). Cached input:
    Anthropic bills cache writes at 1.25x and reads at 0.1x the input price, Gemini 1.5/2.0
    cached tokens at 0.25x."""
    read, write = (0.1, 1.25) if provider == "anthropic" else (0.25, 1.0)
    return {
        "litellm_provider": provider,
        "mode": "chat",
        "input_cost_per_token": input_per_m / 1e6,
        "output_cost_per_token": output_per_m / 1e6,
        "cache_read_input_token_cost": input_per_m * read / 1e6,
        "cache_creation_input_token_cost": input_per_m * write / 1e6,
        "max_tokens": max_output,
        "max_output_tokens": max_output,
        "max_input_tokens": context,
        "supports_system_messages": True,
        "supports_function_calling": True,
        "supports_tool_choice": True,
        "supports_vision": vision,
        "supports_response_schema": provider == "gemini",
    }


def _claude(input_per_m: float, output_per_m: float, max_output: int) -> dict[str, Any]:
    return _chat("anthropic", input_per_m, output_per_m, max_output, 200_000)


def _gemini(input_per_m: float, output_per_m: float, context: int) -> dict[str, Any]:
    return _chat("gemini", input_per_m, output_per_m, 8192, context)


_SONNET_35 = _claude(3.0, 15.0, 8192)
_HAIKU_35 = _claude(0.8, 4.0, 8192)
_OPUS_4 = _claude(15.0, 75.0, 32_000)
_GEMINI_15_PRO = _gemini(1.25, 5.0, 2_097_152)  # prompts up to 128k tokens
_GEMINI_15_FLASH = _gemini(0.075, 0.30, 1_048_576)
_GEMINI_15_FLASH_8B = _gemini(0.0375, 0.15, 1_048_576)
_GEMINI_20_FLASH = _gemini(0.10, 0.40, 1_048_576)
_GEMINI_20_FLASH_LITE = _gemini(0.075, 0.30, 1_048_576)

#: Models the bundled map lacks, keyed as LiteLLM keys them, from the providers' published price
#: and limit pages. Only used for keys the bundled map does not have (the map is maintained).
NEXUS_MODELS: Mapping[str, Mapping[str, Any]] = {
    "claude-3-haiku-20240307": _claude(0.25, 1.25, 4096),
    "claude-3-sonnet-20240229": _claude(3.0, 15.0, 4096),
    "claude-3-opus-20240229": _claude(15.0, 75.0, 4096),
    "claude-3-opus-latest": _claude(15.0, 75.0, 4096),
    "claude-3-5-sonnet-20240620": _SONNET_35,
    "claude-3-5-sonnet-20241022": _SONNET_35,
    "claude-3-5-sonnet-latest": _SONNET_35,
    "claude-3-5-haiku-20241022": _HAIKU_35,
    "claude-3-5-haiku-latest": _HAIKU_35,
    "claude-3-7-sonnet-20250219": _claude(3.0, 15.0, 64_000),
    "claude-3-7-sonnet-latest": _claude(3.0, 15.0, 64_000),
    "claude-sonnet-4-20250514": _claude(3.0, 15.0, 64_000),
    "claude-opus-4-20250514": _OPUS_4,
    "claude-opus-4-1-20250805": _OPUS_4,
    **{f"gemini/gemini-1.5-pro{v}": _GEMINI_15_PRO for v in ("", "-001", "-002", "-latest")},
    **{f"gemini/gemini-1.5-flash{v}": _GEMINI_15_FLASH for v in ("", "-001", "-002", "-latest")},
    **{f"gemini/gemini-1.5-flash-8b{v}": _GEMINI_15_FLASH_8B for v in ("", "-001", "-latest")},
    "gemini/gemini-2.0-flash": _GEMINI_20_FLASH,
    "gemini/gemini-2.0-flash-001": _GEMINI_20_FLASH,
    "gemini/gemini-2.0-flash-lite": _GEMINI_20_FLASH_LITE,
    "gemini/gemini-2.0-flash-lite-001": _GEMINI_20_FLASH_LITE,
    "gemini/text-embedding-004": {
        "litellm_provider": "gemini",
        "mode": "embedding",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "cache_read_input_token_cost": 0.0,
        "cache_creation_input_token_cost": 0.0,
        "max_input_tokens": 2048,
        "max_tokens": 2048,
        "output_vector_size": 768,
    },
}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token (None when unknown) and the model's output limit in tokens."""

    input_per_token: float | None
    output_per_token: float | None
    max_output_tokens: int | None = None


def provider_id(backend_type: str) -> str:
    """The LiteLLM provider id of a backend type: ``google`` is ``gemini``, others as named."""
    return _PROVIDER_IDS.get(backend_type, backend_type)


def bundled_map_path() -> Path | None:
    """The price map inside the installed LiteLLM wheel (LiteLLM is not imported)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / MAP_FILE
    return path if path.is_file() else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _entry(data: Mapping[str, Any]) -> tuple[str, ModelPrice]:
    limit = data.get("max_output_tokens") or data.get("max_tokens")
    price = ModelPrice(
        _number(data.get("input_cost_per_token")),
        _number(data.get("output_cost_per_token")),
        limit if isinstance(limit, int) and limit > 0 else None,
    )
    return str(data.get("litellm_provider", "")), price


@functools.cache
def bundled_prices() -> Mapping[str, tuple[str, ModelPrice]]:
    """Every entry of the bundled map as (LiteLLM provider, price); empty when it is missing."""
    path = bundled_map_path()
    if path is None:
        return {}
    raw = orjson.loads(path.read_bytes())
    return {
        key: _entry(value)
        for key, value in raw.items()
        if isinstance(value, dict) and key != "sample_spec"
    }


@functools.cache
def nexus_prices() -> Mapping[str, tuple[str, ModelPrice]]:
    """:data:`NEXUS_MODELS` as (provider, price), for the keys the bundled map lacks."""
    bundled = bundled_prices()
    return {key: _entry(value) for key, value in NEXUS_MODELS.items() if key not in bundled}


def _bare(model: str, provider: str | None) -> str:
    if provider and model.startswith(f"{provider}/"):
        return model[len(provider) + 1 :]
    return model


class PriceTable:
    """Prices for cost estimates: config overrides, then the bundled map, then Nexus's own."""

    def __init__(self, overrides: Mapping[str, PriceConfig] | None = None) -> None:
        self._overrides = dict(overrides or {})

    def lookup(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """What is known of ``model`` served by LiteLLM provider ``provider`` (e.g. ``openai``,
        ``anthropic``, ``gemini``), or None."""
        bare = _bare(model, provider)
        limit = self._map_entry(bare, provider)
        for name in (model, bare):
            override = self._overrides.get(name)
            if override is not None:
                return ModelPrice(
                    override.input_per_1k / 1000,
                    override.output_per_1k / 1000,
                    limit.max_output_tokens if limit else None,
                )
        return limit

    @staticmethod
    def _map_entry(model: str, provider: str | None) -> ModelPrice | None:
        keys = [f"{provider}/{model}", model] if provider else [model]
        for table in (bundled_prices(), nexus_prices()):
            for key in keys:
                found = table.get(key)
                if found is not None and (provider is None or found[0] == provider):
                    return found[1]
        return None

    def estimate(
        self,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        provider: str | None = None,
    ) -> float | None:
        """USD for the tokens, or None when a count or a needed price is unknown."""
        price = self.lookup(model, provider)
        if price is None or input_tokens is None or output_tokens is None:
            return None
        if price.input_per_token is None or (output_tokens and price.output_per_token is None):
            return None
        return input_tokens * price.input_per_token + output_tokens * (price.output_per_token or 0)

    def output_limit(self, model: str, provider: str | None = None) -> int | None:
        price = self.lookup(model, provider)
        return price.max_output_tokens if price is not None else None


def usage_tokens(body: bytes) -> tuple[int, int] | None:
    """(input, output) tokens from the ``usage`` of a JSON answer: OpenAI's chat or embeddings
    (``prompt_tokens``/``completion_tokens``; embeddings: output 0), or Anthropic Messages and
    the Responses API (``input_tokens``/``output_tokens``; Anthropic's cache reads and writes
    are not priced); None when the body has no usable usage."""
    try:
        usage = orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
    else:
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens", 0)
    if type(prompt) is not int or type(completion) is not int or min(prompt, completion) < 0:
        return None
    return prompt, completion


def stream_bound(
    table: PriceTable,
    model: str,
    provider: str,
    input_tokens: int | None,
    max_tokens: int | None,
) -> float | None:
    """The upper bound for a stream: exact ``input_tokens`` plus ``max_tokens`` (else the
    model's output limit) at the output rate. None without an exact count or a limit."""
    limit = max_tokens if max_tokens is not None else table.output_limit(model, provider)
    return table.estimate(model, input_tokens, limit, provider=provider)
