"""Where and how a translated backend is called: LiteLLM's model name, its ``api_base``, and the
request arguments Nexus passes. Pure functions; LiteLLM itself is called in
:mod:`nexus.upstream.translated`.

- model: ``anthropic/<model>``, ``gemini/<model>`` for type ``google``, ``<type>/<model>`` for
  any other provider id (a prefix the model already has is not doubled);
- ``api_base``: Anthropic's is the URL without ``/v1`` (LiteLLM appends ``/v1/messages``);
  Gemini's must end in ``/v1beta`` (LiteLLM appends ``/models/<m>:generateContent`` and would
  otherwise call an unversioned path); other providers get the configured URL unchanged, so it
  must include whatever version path that provider's API needs;
- arguments: the client's keys that LiteLLM knows as OpenAI parameters, minus its transport
  parameters (``api_base``, ``api_key``, ``timeout``, ``extra_headers``, ...), so that a client can
  neither redirect the call nor change its credentials, and unknown keys are not copied into
  provider bodies verbatim (Anthropic) nor dropped silently (Gemini). ``max_tokens`` is always
  sent: the client's, else the model's output limit (:data:`DEFAULT_MAX_TOKENS` when unknown),
  never LiteLLM's default (64,000, or 128,000 for models missing from its map).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from nexus.config.kinds import provider_table_path
from nexus.pricing import PriceTable, provider_id

#: ``max_tokens`` sent when neither the client nor any price map knows the model's limit.
DEFAULT_MAX_TOKENS = 4096
#: LiteLLM's OpenAI parameters that configure the call rather than the answer: never from clients.
TRANSPORT_PARAMETERS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "base_url",
        "default_headers",
        "deployment_id",
        "extra_headers",
        "max_retries",
        "organization",
        "request_timeout",
        "timeout",
    }
)
#: Set by Nexus itself on every call.
NEXUS_ARGUMENTS = frozenset({"model", "messages", "stream", "input"})


@dataclass(frozen=True, slots=True)
class Target:
    """One translated backend as LiteLLM is told about it."""

    provider: str  # LiteLLM's provider id: anthropic, gemini, mistral, ...
    model: str  # the model as LiteLLM names it: "anthropic/claude-3-5-sonnet-20241022"
    bare_model: str  # the model as the provider names it: "claude-3-5-sonnet-20241022"
    api_base: str


def target(backend_type: str, url: str, model: str) -> Target:
    """How LiteLLM reaches ``model`` on a backend of ``backend_type`` at ``url``."""
    provider = provider_id(backend_type)
    bare = model.removeprefix(f"{provider}/")
    return Target(provider, f"{provider}/{bare}", bare, api_base(provider, url))


def api_base(provider: str, url: str) -> str:
    base = url.rstrip("/")
    if provider == "anthropic":
        return base.removesuffix("/v1")
    if provider == "gemini":
        for suffix in ("/v1beta", "/v1"):
            base = base.removesuffix(suffix)
        return base + "/v1beta"
    return base


def call_arguments(
    body: Mapping[str, Any], known: Iterable[str], *, stream: bool
) -> tuple[dict[str, Any], list[str]]:
    """The client's parameters LiteLLM may receive, and the names of those removed (sorted).
    ``known`` is LiteLLM's list of OpenAI parameters for the endpoint."""
    allowed = frozenset(known) - TRANSPORT_PARAMETERS - NEXUS_ARGUMENTS
    kept = {key: value for key, value in body.items() if key in allowed}
    removed = sorted(key for key in body if key not in allowed and key not in NEXUS_ARGUMENTS)
    if not stream:
        kept.pop("stream_options", None)
    return kept, removed


def with_max_tokens(arguments: dict[str, Any], table: PriceTable, where: Target) -> dict[str, Any]:
    """``arguments`` with an explicit output limit: the client's ``max_tokens`` or
    ``max_completion_tokens`` as sent (LiteLLM maps either), else ``max_tokens`` set to the
    model's output limit, else :data:`DEFAULT_MAX_TOKENS`."""
    if "max_tokens" in arguments or "max_completion_tokens" in arguments:
        return arguments
    limit = table.output_limit(where.bare_model, where.provider) or DEFAULT_MAX_TOKENS
    return {**arguments, "max_tokens": limit}


@functools.cache
def _embedding_providers() -> frozenset[str]:
    path = provider_table_path()
    if path is None:
        return frozenset()
    providers = orjson.loads(path.read_bytes()).get("providers", {})
    return frozenset(
        str(name)
        for name, entry in providers.items()
        if isinstance(entry, dict) and (entry.get("endpoints") or {}).get("embeddings") is True
    )


def has_embeddings(provider: str) -> bool:
    """Whether LiteLLM's provider table lists an embeddings endpoint for ``provider``."""
    return provider in _embedding_providers()
