"""LiteLLM's answer objects (``ModelResponse``, ``ModelResponseStream``, ``EmbeddingResponse``)
converted to Nexus's values (:mod:`nexus.upstream.openai_wire`) by attribute access only: this is
where ``Any`` stops. Nothing here imports LiteLLM; only the fields of OpenAI's format are read,
so LiteLLM's additions (``provider_specific_fields``, ``usage.cost``, ``vertex_ai_*``, ...) never
reach a client. :func:`cause_of` looks through the exception chains LiteLLM raises.
"""

from __future__ import annotations

from typing import Any

from nexus.upstream.openai_wire import (
    Choice,
    Completion,
    Embeddings,
    JsonValue,
    ToolCall,
    Usage,
    json_value,
)


def completion(response: Any) -> Completion:
    """A non-streamed chat answer."""
    return _completion(response, delta=False)


def chunk(response: Any) -> Completion:
    """One stream chunk (its choices hold deltas)."""
    return _completion(response, delta=True)


def embeddings(response: Any) -> Embeddings:
    vectors = []
    for item in response.data or ():
        values = item["embedding"] if isinstance(item, dict) else item.embedding
        vectors.append(tuple(float(value) for value in values))
    usage = getattr(response, "usage", None)
    tokens = _int(getattr(usage, "prompt_tokens", None)) or 0
    return Embeddings(str(response.model), tuple(vectors), tokens)


def _completion(response: Any, *, delta: bool) -> Completion:
    return Completion(
        id=str(response.id),
        created=int(response.created),
        model=str(response.model),
        choices=tuple(_choice(choice, delta=delta) for choice in response.choices or ()),
        usage=_usage(getattr(response, "usage", None)),
        system_fingerprint=_str(getattr(response, "system_fingerprint", None)),
    )


def _choice(choice: Any, *, delta: bool) -> Choice:
    message = choice.delta if delta else choice.message
    calls = getattr(message, "tool_calls", None) or ()
    return Choice(
        index=int(choice.index),
        role=_str(getattr(message, "role", None)),
        content=_str(getattr(message, "content", None)),
        tool_calls=tuple(_tool_call(call, position) for position, call in enumerate(calls)),
        finish_reason=_str(getattr(choice, "finish_reason", None)),
        logprobs=_logprobs(getattr(choice, "logprobs", None)),
    )


def _tool_call(call: Any, position: int) -> ToolCall:
    function = getattr(call, "function", None)
    index = _int(getattr(call, "index", None))
    return ToolCall(
        index=position if index is None else index,
        id=_str(getattr(call, "id", None)),
        name=_str(getattr(function, "name", None)),
        arguments=_str(getattr(function, "arguments", None)),
    )


def _usage(usage: Any) -> Usage | None:
    prompt = _int(getattr(usage, "prompt_tokens", None))
    completion_tokens = _int(getattr(usage, "completion_tokens", None))
    if prompt is None or completion_tokens is None:
        return None
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        prompt,
        completion_tokens,
        cached_tokens=_int(getattr(prompt_details, "cached_tokens", None)),
        reasoning_tokens=_int(getattr(completion_details, "reasoning_tokens", None)),
    )


def _logprobs(value: Any) -> JsonValue:
    if value is None:
        return None
    dump = getattr(value, "model_dump", None)
    return json_value(dump() if callable(dump) else value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cause_of(exc: BaseException, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``types`` in the chain under ``exc`` (``__cause__``,
    ``__context__``), e.g. the ``httpx.ConnectError`` under LiteLLM's 500 for a refused
    connection."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, types):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
