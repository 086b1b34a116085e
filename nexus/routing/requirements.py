"""What a request needs from a backend, read once from its parsed JSON body and its headers.

Pure: the only outside input is tiktoken's bundled encoding files (see :mod:`nexus.tokens`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from nexus import tokens
from nexus.config.kinds import Api, Zone
from nexus.errors import InvalidRequest
from nexus.routing.policy import RoutingPolicy

PRIVACY_HEADER = "x-nexus-privacy-zone"
STRICT_HEADER = "x-nexus-strict"
FLEXIBLE_HEADER = "x-nexus-flexible"
_IMAGE_PARTS = frozenset({"image_url", "input_image"})
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


_BLOCK_IMAGES = frozenset({"image", "input_image"})
#: The kinds whose ``tools`` field asks for tool calling.
_TOOL_KINDS = frozenset({Api.CHAT, Api.MESSAGES, Api.RESPONSES})


class TierMode(StrEnum):
    """Strict: only the requested model (after aliases and fallbacks). Flexible: when nothing can
    serve it, another model on a backend of at least the required tier may be substituted."""

    STRICT = "strict"
    FLEXIBLE = "flexible"


RequestKind = Api
"""A request's kind is the client API it arrived in."""


class CloudUse(StrEnum):
    """Whether cloud backends may serve, as spend budgets decide."""

    ALLOWED = "allowed"
    UNLESS_LOCAL = "unless_local"  # soft limit: only when no local backend can serve the model
    NEVER = "never"  # hard limit: local backends only


@dataclass(frozen=True, slots=True)
class Requirements:
    """What one request needs.

    ``model`` is the resolved model (after aliases); ``requested_model`` is the name the client
    sent. ``privacy`` is RESTRICTED when only restricted backends may serve, OPEN when any zone
    may. ``min_tier`` comes from the first matching policy. ``input_tokens`` is exact when
    ``tokens_exact`` (tiktoken), otherwise the estimate of :mod:`nexus.tokens`.
    """

    model: str
    requested_model: str = ""
    kind: RequestKind = RequestKind.CHAT
    stream: bool = False
    vision: bool = False
    tools: bool = False
    json_mode: bool = False
    input_tokens: int = 0
    tokens_exact: bool = False
    max_tokens: int | None = None
    privacy: Zone = Zone.OPEN
    min_tier: int | None = None
    tier_mode: TierMode = TierMode.STRICT
    cloud: CloudUse = CloudUse.ALLOWED  # what spend budgets leave of the cloud backends

    def __post_init__(self) -> None:
        if not self.requested_model:
            object.__setattr__(self, "requested_model", self.model)

    @property
    def privacy_zone_required(self) -> str | None:
        """``"restricted"`` when only restricted backends may serve, else None (as in 503s)."""
        return self.privacy.value if self.privacy is Zone.RESTRICTED else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requested_model": self.requested_model,
            "kind": self.kind.value,
            "stream": self.stream,
            "vision": self.vision,
            "tools": self.tools,
            "json_mode": self.json_mode,
            "input_tokens": self.input_tokens,
            "tokens_exact": self.tokens_exact,
            "max_tokens": self.max_tokens,
            "privacy_zone_required": self.privacy_zone_required,
            "min_tier": self.min_tier,
            "tier_mode": self.tier_mode.value,
        }


def requirements_from(
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    policy: RoutingPolicy,
    *,
    kind: RequestKind | None = None,
) -> Requirements:
    """The requirements of a chat-completions or embeddings request.

    ``kind`` defaults to EMBEDDINGS when the body has ``input`` and no ``messages``. Headers are
    looked up case-insensitively. Privacy is RESTRICTED when the first policy matching the
    resolved model says so or the client sends ``X-Nexus-Privacy-Zone: restricted``; any other
    header value is ignored (a client may tighten, never loosen). ``X-Nexus-Strict: true`` wins over
    ``X-Nexus-Flexible: true``; only the value ``true`` (any case) counts.
    Raises :class:`InvalidRequest` when ``model`` is missing or not a non-empty string.
    """
    requested = body.get("model")
    if not isinstance(requested, str) or not requested:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    if kind is None:
        embeddings = "messages" not in body and "input" in body
        kind = RequestKind.EMBEDDINGS if embeddings else RequestKind.CHAT
    model = policy.resolve(requested)
    constraint = policy.constraint_for(model)
    privacy_header, strict, flexible = _nexus_headers(headers)
    restricted = constraint.privacy is Zone.RESTRICTED or privacy_header == "restricted"
    if kind is RequestKind.EMBEDDINGS:
        count, vision = _embedding_tokens(body.get("input"), model), False
    elif kind is RequestKind.COMPLETIONS:
        count, vision = _prompt_tokens(body, model), False
    elif kind is RequestKind.MESSAGES:
        count, vision = _messages_tokens(body, model)
    elif kind is RequestKind.RESPONSES:
        count, vision = _responses_tokens(body, model)
    else:
        count, vision = _chat_tokens(body, model)
    return Requirements(
        model=model,
        requested_model=requested,
        kind=kind,
        stream=body.get("stream") is True,
        vision=vision,
        tools=kind in _TOOL_KINDS and _wants_tools(body),
        json_mode=_wants_json(body, kind),
        input_tokens=count.tokens,
        tokens_exact=count.exact,
        max_tokens=output_limit(body),
        privacy=Zone.RESTRICTED if restricted else Zone.OPEN,
        min_tier=constraint.min_tier,
        tier_mode=TierMode.FLEXIBLE if flexible == "true" and strict != "true" else TierMode.STRICT,
    )


def _nexus_headers(headers: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(privacy zone, strict, flexible) header values, stripped and lower-cased."""
    found: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name in (PRIVACY_HEADER, STRICT_HEADER, FLEXIBLE_HEADER):
            found[name] = value.strip().lower()
    return found.get(PRIVACY_HEADER), found.get(STRICT_HEADER), found.get(FLEXIBLE_HEADER)


def _wants_tools(body: Mapping[str, Any]) -> bool:
    """A non-empty ``tools`` list, or the legacy ``functions`` list."""
    return bool(body.get("tools")) or bool(body.get("functions"))


def _wants_json(body: Mapping[str, Any], kind: RequestKind) -> bool:
    """``response_format`` (chat) or ``text.format`` (Responses) asks for JSON output."""
    if kind is RequestKind.CHAT:
        wanted = body.get("response_format")
    elif kind is RequestKind.RESPONSES:
        text = body.get("text")
        wanted = text.get("format") if isinstance(text, Mapping) else None
    else:
        return False
    return isinstance(wanted, Mapping) and wanted.get("type") in _JSON_FORMATS


def output_limit(body: Mapping[str, Any]) -> int | None:
    """The client's output-token limit: ``max_completion_tokens`` (OpenAI's current name), else
    ``max_tokens``, else the Responses API's ``max_output_tokens``; only a positive integer
    counts. The one reading of it (routing, stream cost
    bounds)."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if type(value) is int and value > 0:
            return value
    return None


def _chat_tokens(body: Mapping[str, Any], model: str) -> tuple[tokens.TokenCount, bool]:
    """Input tokens of a chat request (OpenAI's recipe) and whether it carries an image.

    Counted: each message's role, text content, name, tool call names and arguments, tool call
    id; the ``tools``/``functions`` definitions as JSON (an approximation of how providers render
    them). Images are not counted.
    """
    texts: list[str] = []
    overhead = tokens.REPLY_PRIMING_TOKENS
    vision = False
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, Mapping):
            continue
        overhead += tokens.TOKENS_PER_MESSAGE
        if isinstance(message.get("name"), str):
            overhead += tokens.TOKENS_PER_NAME
        vision = _message_texts(message, texts) or vision
    for key in ("tools", "functions"):
        if body.get(key):
            texts.append(_json_text(body[key]))
    count = tokens.count_texts(texts, model)
    return tokens.TokenCount(count.tokens + overhead, count.exact), vision


def _messages_tokens(body: Mapping[str, Any], model: str) -> tuple[tokens.TokenCount, bool]:
    """Input tokens of an Anthropic Messages request (the ``system`` prompt, each message's
    text, tool use and tool results, the ``tools``) and whether it carries an image."""
    return _conversation_tokens(body, model, "system", "messages", ("role",))


def _responses_tokens(body: Mapping[str, Any], model: str) -> tuple[tokens.TokenCount, bool]:
    """Input tokens of a Responses request (``instructions``, the ``input``: a string, or
    messages with text parts, function calls and their outputs; the ``tools``) and whether an
    input part is an image."""
    return _conversation_tokens(
        body, model, "instructions", "input", ("role", "name", "arguments", "output")
    )


def _conversation_tokens(
    body: Mapping[str, Any], model: str, preamble: str, items_key: str, item_keys: tuple[str, ...]
) -> tuple[tokens.TokenCount, bool]:
    """Tokens counted with chat's recipe: the ``preamble`` (a string or content blocks), each
    item of ``items_key`` (its ``item_keys`` strings and its content), the ``tools`` as JSON."""
    texts: list[str] = []
    overhead = tokens.REPLY_PRIMING_TOKENS
    first = body.get(preamble)
    vision = _block_texts(first, texts) if isinstance(first, list) else False
    items = body.get(items_key)
    texts.extend(text for text in (first, items) if isinstance(text, str))
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        overhead += tokens.TOKENS_PER_MESSAGE
        texts.extend(value for key in item_keys if isinstance(value := item.get(key), str))
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            vision = _block_texts(content, texts) or vision
    if body.get("tools"):
        texts.append(_json_text(body["tools"]))
    count = tokens.count_texts(texts, model)
    return tokens.TokenCount(count.tokens + overhead, count.exact), vision


def _block_texts(blocks: list[Any], texts: list[str]) -> bool:
    """Append the texts of content blocks (Anthropic's, or the Responses API's parts) to
    ``texts``; True when one is an image."""
    vision = False
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") in _BLOCK_IMAGES:
            vision = True
        for key in ("text", "thinking", "name"):
            if isinstance(block.get(key), str):
                texts.append(block[key])
        if "input" in block:
            texts.append(_json_text(block["input"]))
        inner = block.get("content")
        if isinstance(inner, str):
            texts.append(inner)
        elif isinstance(inner, list):
            vision = _block_texts(inner, texts) or vision
    return vision


def _message_texts(message: Mapping[str, Any], texts: list[str]) -> bool:
    """Append the texts of one message to ``texts``; True when it has an image part."""
    texts.extend(
        value
        for key in ("role", "name", "tool_call_id")
        if isinstance(value := message.get(key), str)
    )
    content = message.get("content")
    vision = False
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") in _IMAGE_PARTS:
                vision = True
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    texts.extend(_tool_call_texts(message.get("tool_calls")))
    return vision


def _tool_call_texts(tool_calls: Any) -> Iterator[str]:
    for call in tool_calls if isinstance(tool_calls, list) else ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            names = (function.get("name"), function.get("arguments"))
            yield from (value for value in names if isinstance(value, str))


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _embedding_tokens(data: Any, model: str) -> tokens.TokenCount:
    """Tokens of an embeddings ``input``: a string, a list of strings, or token id arrays."""
    if isinstance(data, str):
        return tokens.count_texts([data], model)
    if not isinstance(data, list):
        return tokens.TokenCount(0, exact=False)
    if all(isinstance(item, int) for item in data):
        return tokens.TokenCount(len(data), exact=True)
    if all(isinstance(item, list) for item in data):
        return tokens.TokenCount(sum(len(item) for item in data), exact=True)
    return tokens.count_texts(_strings(data), model)


def _prompt_tokens(body: Mapping[str, Any], model: str) -> tokens.TokenCount:
    """Tokens of a legacy completions request: its ``prompt`` (as embeddings input) and
    ``suffix``."""
    prompt = _embedding_tokens(body.get("prompt"), model)
    suffix = body.get("suffix")
    if not isinstance(suffix, str) or not suffix:
        return prompt
    extra = tokens.count_texts([suffix], model)
    return tokens.TokenCount(prompt.tokens + extra.tokens, prompt.exact and extra.exact)


def _strings(items: Iterable[Any]) -> list[str]:
    return [item for item in items if isinstance(item, str)]
