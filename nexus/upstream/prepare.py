"""What Nexus settles in a request before LiteLLM translates it for a provider.

- **Remote images.** The gateway host never downloads a client-supplied ``image_url`` unless the
  operator opts in (``[security] fetch_remote_images``): a URL goes on only where the provider
  takes it by URL and LiteLLM passes it on as is (Anthropic: ``https``; Gemini: its Files API
  URIs; the OpenAI-compatible clouds in :data:`URL_AS_IS`). Any other ``http(s)`` image is refused
  with a 400 that asks for a ``data:`` URL, before anything is sent. The list is an allow-list:
  a provider LiteLLM may inline images for is refused until it is known not to. The images of
  chat messages (:func:`chat_images`) and of the bridged client APIs (:func:`bridged_images`:
  Messages ``image`` blocks with a URL source, Responses ``input_image`` parts) are checked
  alike.
- **JSON mode.** ``response_format: {"type": "json_object"}`` has no schema, and LiteLLM's
  Anthropic mapping ignores a format without one; it is sent as the open object schema, which
  LiteLLM applies to Claude (a forced JSON tool, or structured output) and answers as content.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from nexus.upstream.advice import Refusal

#: LiteLLM providers whose image URLs reach the provider unchanged (OpenAI-compatible APIs;
#: ``lm_studio`` is how Nexus reaches an OpenAI-compatible backend's chat: that server fetches).
URL_AS_IS = frozenset(
    {"mistral", "groq", "together_ai", "fireworks_ai", "openrouter", "xai", "deepinfra"}
    | {"lm_studio"}
)
GEMINI_FILES = "https://generativelanguage.googleapis.com/"
OPEN_OBJECT = {"type": "json_schema", "json_schema": {"name": "json", "schema": {"type": "object"}}}


def refuse_remote_images(
    images: Iterable[tuple[str, str]], *, backend: str, provider: str, fetch_remote_images: bool
) -> Refusal | None:
    """A 400's refusal for the first remote image ``provider`` cannot take by URL, or None;
    ``images`` are (param path, url) pairs."""
    if fetch_remote_images or provider in URL_AS_IS:
        return None
    for param, url in images:
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


def bridged_images(body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(param path, url) of every image given by URL in a Messages or Responses request."""
    for key in ("messages", "input"):
        items = body.get(key)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            content = item.get("content") if isinstance(item, Mapping) else None
            for j, part in enumerate(content if isinstance(content, list) else ()):
                if not isinstance(part, Mapping):
                    continue
                source = part.get("source")
                if part.get("type") == "image" and isinstance(source, Mapping):
                    url, where = source.get("url"), "source.url"
                elif part.get("type") == "input_image":
                    url, where = part.get("image_url"), "image_url"
                else:
                    continue
                if isinstance(url, str):
                    yield f"{key}[{i}].content[{j}].{where}", url


def chat_images(messages: Any) -> Iterator[tuple[str, str]]:
    """(param path, url) of every ``image_url`` part of chat messages, in order."""
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
