"""The OpenAPI document as the app really answers, so that a generated client works.

The inference handlers read the raw body (it is relayed byte for byte), so FastAPI cannot infer
their request bodies: :func:`inference_route` describes them here, with the fields the gateway
reads and any others allowed (they go to the backend as sent), and every status the endpoint
answers: the gateway's own failures (:data:`~nexus.gateway.outcome.PROBLEMS`) and a backend's
4xx and 429 passed on. FastAPI documents a 422 ``HTTPValidationError`` for every operation with
parameters, but the app answers validation errors with a 400 in the OpenAI envelope:
:func:`openapi_document` replaces it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from nexus.api.endpoints import INFERENCE
from nexus.gateway.outcome import PROBLEMS, Problem
from nexus.headers import HEADER_NAMES
from nexus.routing import RequestKind

JSON = "application/json"
ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
ERROR_ENVELOPE: dict[str, Any] = {
    "title": "ErrorEnvelope",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        },
        "context": {
            "type": "object",
            "description": "On a 503 from routing: required_tier, available_backends, "
            "eta_seconds, privacy_zone_required.",
        },
    },
}
ANTHROPIC_ENVELOPE_REF = {"$ref": "#/components/schemas/AnthropicError"}
ANTHROPIC_ENVELOPE: dict[str, Any] = {
    "title": "AnthropicError",
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
        "context": ERROR_ENVELOPE["properties"]["context"],
    },
}
_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string"},
        "content": {"type": ["string", "array", "null"]},
    },
}
_INTEGER_OR_NULL = {"type": ["integer", "null"]}
REQUEST_SCHEMAS: dict[RequestKind, dict[str, Any]] = {
    RequestKind.CHAT: {
        "title": "ChatCompletionRequest",
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "stream": {"type": "boolean"},
            "stream_options": {"type": ["object", "null"]},
            "max_tokens": _INTEGER_OR_NULL,
            "max_completion_tokens": _INTEGER_OR_NULL,
            "temperature": {"type": ["number", "null"]},
            "tools": {"type": "array", "items": {"type": "object"}},
            "tool_choice": {"type": ["string", "object"]},
            "response_format": {"type": "object"},
        },
        "additionalProperties": True,
    },
    RequestKind.COMPLETIONS: {
        "title": "CompletionRequest",
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "prompt": {"type": ["string", "array"]},
            "suffix": {"type": ["string", "null"]},
            "stream": {"type": "boolean"},
            "max_tokens": _INTEGER_OR_NULL,
        },
        "additionalProperties": True,
    },
    RequestKind.MESSAGES: {
        "title": "MessagesRequest",
        "type": "object",
        "required": ["model", "messages", "max_tokens"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "max_tokens": {"type": "integer", "minimum": 1},
            "system": {"type": ["string", "array"]},
            "stream": {"type": "boolean"},
            "tools": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": True,
    },
    RequestKind.RESPONSES: {
        "title": "ResponsesRequest",
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {"type": ["string", "array"]},
            "instructions": {"type": ["string", "null"]},
            "stream": {"type": "boolean"},
            "max_output_tokens": _INTEGER_OR_NULL,
            "tools": {"type": "array", "items": {"type": "object"}},
            "previous_response_id": {"type": "null"},
        },
        "additionalProperties": True,
    },
    RequestKind.EMBEDDINGS: {
        "title": "EmbeddingsRequest",
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {"type": ["string", "array"]},
            "encoding_format": {"enum": ["float", "base64"]},
            "dimensions": {"type": "integer"},
        },
        "additionalProperties": True,
    },
}
#: Statuses a backend's own answer may bring (passed on with its body, which is the provider's).
_PASSED_ON = {422: "The backend's own validation error.", 429: "The backend's own rate limit."}
#: The gateway's failures that never reach an inference client as such.
_NOT_ANSWERED = {Problem.NOT_FOUND, Problem.METHOD_NOT_ALLOWED, Problem.CLIENT_GONE}


def inference_route(kind: RequestKind) -> dict[str, Any]:
    """The ``add_api_route`` arguments that document an inference endpoint of ``kind``."""
    descriptions: dict[int, list[str]] = {}
    for problem, problem_class in PROBLEMS.items():
        if problem not in _NOT_ANSWERED and problem is not Problem.INTERNAL:
            descriptions.setdefault(problem_class.status, []).append(problem.value)
    envelope = ANTHROPIC_ENVELOPE_REF if kind is RequestKind.MESSAGES else ENVELOPE_REF
    responses: dict[int | str, dict[str, Any]] = {
        status: _error(", ".join(names), envelope) for status, names in sorted(descriptions.items())
    }
    responses.update({status: _error(text, envelope) for status, text in _PASSED_ON.items()})
    content: dict[str, Any] = {JSON: {"schema": {"type": "object"}}}
    if kind is not RequestKind.EMBEDDINGS:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    responses[200] = {
        "description": "The backend's answer, byte for byte.",
        "content": content,
        "headers": {name: {"schema": {"type": "string"}} for name in HEADER_NAMES},
    }
    body = {
        "required": True,
        "content": {JSON: {"schema": REQUEST_SCHEMAS[kind]}},
    }
    return {"responses": responses, "openapi_extra": {"requestBody": body}}


def openapi_document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document, built once, with 400 in place of every 422 but the
    inference endpoints' (where a backend's own 422 is passed on)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            inference = {endpoint.path for endpoint in INFERENCE}
            for path, item in document["paths"].items():
                for operation in item.values():
                    responses = operation.get("responses", {})
                    if path not in inference and responses.pop("422", None) is not None:
                        responses["400"] = _error("The request is invalid.")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas["ErrorEnvelope"] = ERROR_ENVELOPE
            schemas["AnthropicError"] = ANTHROPIC_ENVELOPE
            app.openapi_schema = document
        return app.openapi_schema

    return build


def error_response_doc(description: str, envelope: dict[str, Any] = ENVELOPE_REF) -> dict[str, Any]:
    """An error response in the OpenAPI document (OpenAI's envelope unless ``envelope``)."""
    return {"description": description, "content": {JSON: {"schema": envelope}}}


_error = error_response_doc


def count_tokens_route() -> dict[str, Any]:
    """The route arguments documenting ``POST /v1/messages/count_tokens``."""
    schema = {
        **REQUEST_SCHEMAS[RequestKind.MESSAGES],
        "title": "CountTokensRequest",
        "required": ["model", "messages"],
    }
    answer = {"type": "object", "required": ["input_tokens"]}
    return {
        "responses": {
            200: {"description": "The input tokens.", "content": {JSON: {"schema": answer}}},
            400: _error("The request is invalid.", ANTHROPIC_ENVELOPE_REF),
            404: _error("No backend, alias or fallback knows the model.", ANTHROPIC_ENVELOPE_REF),
        },
        "openapi_extra": {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}},
    }
