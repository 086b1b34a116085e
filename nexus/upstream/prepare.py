"""What Nexus settles in a chat request before LiteLLM translates it for a provider.

- **Remote images.** The gateway host never downloads a client-supplied ``image_url`` unless the
  operator opts in (``[security] fetch_remote_images``): a URL goes on only where the provider
  takes it by URL and LiteLLM passes it on as is (Anthropic: ``https``; Gemini: its Files API
  URIs; the OpenAI-compatible clouds in :data:`URL_AS_IS`). Any other ``http(s)`` image is refused
  with a 400 that asks for a ``data:`` URL, before anything is sent. The list is an allow-list:
  a provider LiteLLM may inline images for is refused until it is known not to.
- **JSON mode.** ``response_format: {"type": "json_object"}`` has no schema, and LiteLLM's
  Anthropic mapping ignores a format without one; it is sent as the open object schema, which
  LiteLLM applies to Claude (a forced JSON tool, or structured output) and answers as content.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from nexus.upstream.advice import Refusal

#: LiteLLM providers whose image URLs reach the provider unchanged (OpenAI-compatible APIs).
URL_AS_IS = frozenset(
    {"mistral", "groq", "together_ai", "fireworks_ai", "openrouter", "xai", "deepinfra"}
)
GEMINI_FILES = "https://generativelanguage.googleapis.com/"
OPEN_OBJECT = {"type": "json_schema", "json_schema": {"name": "json", "schema": {"type": "object"}}}


def refuse_remote_images(
    messages: Any, *, backend: str, provider: str, fetch_remote_images: bool
) -> Refusal | None:
    """A 400's refusal for the first remote image ``provider`` cannot take by URL, or None."""
    if fetch_remote_images or provider in URL_AS_IS:
        return None
    for param, url in _image_urls(messages):
        lowered = url[:12].lower()
        if not lowered.startswith(("http://", "https://")) or _by_url(provider, url):
            continue
        return Refusal(
            f"backend '{backend}' ({provider}) cannot take the image at {url[:200]!r} by URL, "
            "and Nexus does not download client-supplied URLs: send the image inline as a "
            "data: URL (data:image/png;base64,...), or have the operator set "
            "[security] fetch_remote_images = true",
            param,
        )
    return None


def json_mode(arguments: dict[str, Any], provider: str) -> dict[str, Any]:
    """``arguments`` with a schema-less JSON mode made explicit where LiteLLM would drop it."""
    response_format = arguments.get("response_format")
    if provider == "anthropic" and response_format == {"type": "json_object"}:
        return {**arguments, "response_format": OPEN_OBJECT}
    return arguments


def _by_url(provider: str, url: str) -> bool:
    if provider == "anthropic":
        return url[:8].lower() == "https://"
    if provider == "gemini":
        return url.startswith(GEMINI_FILES)
    return False


def _image_urls(messages: Any) -> Iterator[tuple[str, str]]:
    """(param path, url) of every ``image_url`` part, in order."""
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if isinstance(url, str):
                yield f"messages[{i}].content[{j}].image_url.url", url
