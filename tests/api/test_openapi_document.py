"""``/openapi.json`` describes what the app answers (issue 14, defect 11), so that a client
generated from it works: the inference operations document their request bodies (what the openai
SDK sends validates against them) and every error status they can answer, in the OpenAI
envelope; no operation documents FastAPI's 422, which the app never sends (its validation errors
are 400 in the envelope)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from nexus.api.endpoints import BY_PATH
from nexus.app import create_app
from nexus.config import NexusConfig

DOCUMENT = create_app(NexusConfig()).openapi()
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
#: What the inference endpoints can answer: the gateway's own failures, plus a backend's own
#: 4xx and 429 passed on.
ANSWERED = {"200", "400", "401", "403", "404", "413", "422", "429", "502", "503", "504"}


def resolved(node: Any) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points to."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = DOCUMENT
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolved(target)
        return {key: resolved(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(item) for item in node]
    return node


def body_schema(path: str) -> dict[str, Any]:
    operation = DOCUMENT["paths"][path]["post"]
    assert operation["requestBody"]["required"] is True
    schema: dict[str, Any] = resolved(
        operation["requestBody"]["content"]["application/json"]["schema"]
    )
    return schema


SDK_CHAT = [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "m",
        "messages": [
            {"role": "system", "content": "terse"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c", "content": "{}"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 10,
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "response_format": {"type": "json_object"},
        "vendor_field": 1,
    },
]
SDK_EMBEDDINGS = [
    {"model": "e", "input": "hi", "encoding_format": "base64"},
    {"model": "e", "input": ["a", "b"], "dimensions": 8},
    {"model": "e", "input": [[1, 2, 3]]},
]


@pytest.mark.parametrize("body", SDK_CHAT)
def test_what_the_sdk_sends_for_chat_validates(body: dict[str, Any]) -> None:
    jsonschema.validate(body, body_schema(CHAT))


@pytest.mark.parametrize("body", SDK_EMBEDDINGS)
def test_what_the_sdk_sends_for_embeddings_validates(body: dict[str, Any]) -> None:
    jsonschema.validate(body, body_schema(EMBEDDINGS))


@pytest.mark.parametrize(
    ("path", "body"),
    [(CHAT, {"messages": []}), (CHAT, {"model": "m"}), (EMBEDDINGS, {"model": "e"})],
)
def test_a_body_without_its_required_fields_does_not_validate(
    path: str, body: dict[str, Any]
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, body_schema(path))


@pytest.mark.parametrize("path", [CHAT, EMBEDDINGS])
def test_inference_documents_every_status_it_answers_in_the_envelope(path: str) -> None:
    responses = DOCUMENT["paths"][path]["post"]["responses"]
    assert set(responses) == ANSWERED
    for status, response in responses.items():
        if status == "200":
            continue
        schema = resolved(response["content"]["application/json"]["schema"])
        assert schema["required"] == ["error"]
        assert set(schema["properties"]["error"]["required"]) == {
            "message",
            "type",
            "param",
            "code",
        }
    ok = responses["200"]
    assert "x-nexus-backend" in {name.lower() for name in ok["headers"]}
    if path == CHAT:
        assert set(ok["content"]) == {"application/json", "text/event-stream"}


def test_no_operation_documents_a_422_the_app_never_sends() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if path in BY_PATH:
                continue  # there a backend's own 422 is passed on
            assert "422" not in operation["responses"], f"{method} {path}"
    assert "400" in DOCUMENT["paths"]["/v1/route"]["get"]["responses"]
