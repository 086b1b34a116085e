"""OpenAI's response format, rendered from Nexus's own values: what a translated provider's answer
looks like to the client.

Only OpenAI's field set is written, in OpenAI's key order: nothing Nexus- or LiteLLM-specific
(no ``provider_specific_fields``, no ``usage.cost``, no ``vertex_ai_*``). JSON answers are
``chat.completion`` / embeddings ``list`` objects; streams are ``data: {chat.completion.chunk}``
events ending with ``data: [DONE]``. When the client asked for ``stream_options.include_usage``,
every chunk carries ``"usage": null`` and the usage comes in a last chunk with ``choices: []``,
as OpenAI sends it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call; in a stream delta, fields not sent in that delta are None."""

    index: int
    id: str | None
    name: str | None
    arguments: str | None

    def as_json(self, *, delta: bool) -> dict[str, JsonValue]:
        function: dict[str, JsonValue] = {}
        if self.name is not None or not delta:
            function["name"] = self.name
        if self.arguments is not None or not delta:
            function["arguments"] = self.arguments if self.arguments is not None else ""
        out: dict[str, JsonValue] = {"index": self.index} if delta else {}
        if self.id is not None or not delta:
            out["id"] = self.id
            out["type"] = "function"
        out["function"] = function
        return out


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    def as_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(frozen=True, slots=True)
class Choice:
    """A choice of a completion (its message) or of a chunk (its delta)."""

    index: int
    role: str | None = None
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    logprobs: JsonValue = None

    def message_json(self) -> dict[str, JsonValue]:
        message: dict[str, JsonValue] = {"role": self.role or "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.as_json(delta=False) for call in self.tool_calls]
        message["refusal"] = None
        return {
            "index": self.index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }

    def delta_json(self) -> dict[str, JsonValue]:
        delta: dict[str, JsonValue] = {}
        if self.role is not None:
            delta["role"] = self.role
        if self.content is not None:
            delta["content"] = self.content
        if self.tool_calls:
            delta["tool_calls"] = [call.as_json(delta=True) for call in self.tool_calls]
        return {
            "index": self.index,
            "delta": delta,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer, or one stream chunk (``choices`` then hold deltas)."""

    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    usage: Usage | None = None
    system_fingerprint: str | None = None


def completion_json(completion: Completion) -> bytes:
    """The ``chat.completion`` body."""
    body: dict[str, JsonValue] = {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [choice.message_json() for choice in completion.choices],
    }
    if completion.usage is not None:
        body["usage"] = completion.usage.as_json()
    if completion.system_fingerprint is not None:
        body["system_fingerprint"] = completion.system_fingerprint
    return orjson.dumps(body)


def chunk_event(chunk: Completion, *, include_usage: bool) -> bytes:
    """One ``data: {chat.completion.chunk}`` event. ``include_usage``: the client asked for
    usage, so every chunk has a ``usage`` key (null but on the last one)."""
    body: dict[str, JsonValue] = {
        "id": chunk.id,
        "object": "chat.completion.chunk",
        "created": chunk.created,
        "model": chunk.model,
    }
    if chunk.system_fingerprint is not None:
        body["system_fingerprint"] = chunk.system_fingerprint
    body["choices"] = [choice.delta_json() for choice in chunk.choices]
    if include_usage:
        body["usage"] = chunk.usage.as_json() if chunk.usage is not None else None
    return b"data: " + orjson.dumps(body) + b"\n\n"


@dataclass
class StreamState:
    """What a stream's later chunks take from its first one: OpenAI keeps one ``id`` and
    ``created`` for the whole stream and numbers tool calls from 0 in order of appearance."""

    include_usage: bool
    id: str | None = None
    created: int | None = None
    tool_indexes: dict[int, int] = field(default_factory=dict)

    def event(self, chunk: Completion) -> bytes | None:
        """The event for ``chunk``; None for a chunk that carries nothing for this client."""
        if self.id is None:
            self.id, self.created = chunk.id, chunk.created
        if not chunk.choices and (chunk.usage is None or not self.include_usage):
            return None
        choices = tuple(self._renumbered(choice) for choice in chunk.choices)
        steady = Completion(
            self.id,
            self.created or chunk.created,
            chunk.model,
            choices,
            chunk.usage if not choices else None,
            chunk.system_fingerprint,
        )
        return chunk_event(steady, include_usage=self.include_usage)

    def _renumbered(self, choice: Choice) -> Choice:
        if not choice.tool_calls:
            return choice
        calls = tuple(
            ToolCall(
                self.tool_indexes.setdefault(call.index, len(self.tool_indexes)),
                call.id,
                call.name,
                call.arguments,
            )
            for call in choice.tool_calls
        )
        return Choice(
            choice.index, choice.role, choice.content, calls, choice.finish_reason, choice.logprobs
        )


@dataclass(frozen=True, slots=True)
class Embeddings:
    model: str
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


def embeddings_json(embeddings: Embeddings, *, base64_floats: bool) -> bytes:
    """The embeddings ``list``; ``base64_floats`` renders each vector as OpenAI's base64 of
    little-endian float32 (``encoding_format: "base64"``, the openai SDK's default)."""
    data: list[JsonValue] = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64_vector(vector) if base64_floats else list(vector),
        }
        for index, vector in enumerate(embeddings.vectors)
    ]
    tokens = embeddings.prompt_tokens
    body: dict[str, JsonValue] = {
        "object": "list",
        "data": data,
        "model": embeddings.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(body)


def base64_vector(vector: Iterable[float]) -> str:
    """OpenAI's ``encoding_format: "base64"``: little-endian float32, base64-encoded."""
    values = list(vector)
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def json_value(value: Any) -> JsonValue:
    """``value`` (e.g. a provider's logprobs as plain data) checked to be JSON data."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    raise TypeError(f"not JSON data: {type(value).__name__}")
