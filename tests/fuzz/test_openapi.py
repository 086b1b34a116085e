"""Schemathesis against Nexus's own OpenAPI document, every operation, with the real app
in-process (schemathesis' ASGI transport, lifespan started once) and a fake backend.

Nexus serves the document at ``/openapi.json`` (``docs_url`` is off, ``openapi_url`` is not);
the schema is built from ``create_app(...).openapi()`` and checked to be what is served.

Two runs:

- the document as it is: no operation ever answers 5xx, every error is the OpenAI envelope, and
  the answers match the document;
- the document with narrower inference request bodies (only the fake's model): positive and
  negative bodies for ``/v1/chat/completions`` and ``/v1/embeddings``, never a 5xx, errors in
  the envelope, only the statuses the contract allows. Invalid fields Nexus does not route on are
  forwarded as sent (the backend judges them), so schemathesis' "negative data rejected" check
  does not apply there.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.python.asgi
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    status_code_conformance,
)

from nexus.app import create_app
from nexus.config import NexusConfig
from tests.fakes.openai import FakeOpenAI
from tests.fuzz.counts import COUNTS
from tests.fuzz.counts import EXAMPLES as FUZZ_EXAMPLES

Case = schemathesis.Case[APIOperation[Any, Any, Any, Any]]
DOCUMENT = create_app(NexusConfig()).openapi()
INFERENCE = ("/v1/chat/completions", "/v1/embeddings")
#: Statuses the contract allows on the inference endpoints (a backend's own 4xx passes through).
INFERENCE_STATUSES = {200, 400, 404, 413, 422, 503}
EXAMPLES = settings(
    max_examples=max(60, FUZZ_EXAMPLES // 5), deadline=None, suppress_health_check=list(HealthCheck)
)


def envelope(ctx: Any, response: schemathesis.Response, case: Case) -> bool | None:
    """Every error is ``{"error": {message, type, param, code}}`` (Anthropic's ``{"type":
    "error", "error": {type, message}}`` on ``/v1/messages``); never a 5xx."""
    COUNTS["openapi"] += 1
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        document = json.loads(response.content)
        if case.path.startswith("/v1/messages"):
            assert document.get("type") == "error", (response.status_code, document)
            assert set(document["error"]) == {"type", "message"}, document
        else:
            assert set(document["error"]) == {"message", "type", "param", "code"}, document
    return None


def with_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """The document plus request bodies and error statuses for the inference operations."""
    out = copy.deepcopy(document)
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["system", "user", "assistant"]},
            "content": {"type": "string"},
        },
    }
    model = {"enum": ["m"]}  # negative cases bring every other value
    bodies = {
        "/v1/chat/completions": {
            "type": "object",
            "required": ["model", "messages"],
            "properties": {
                "model": model,
                "messages": {"type": "array", "minItems": 1, "items": message},
                "stream": {"type": "boolean"},
                "n": {"type": "integer"},
                "max_tokens": {"type": "integer"},
                "temperature": {"type": "number"},
                "user": {"type": "string"},
            },
        },
        "/v1/embeddings": {
            "type": "object",
            "required": ["model", "input"],
            "properties": {
                "model": model,
                "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {}}]},
                "encoding_format": {"enum": ["float", "base64"]},
            },
        },
    }
    error = {"application/json": {"schema": {"type": "object", "required": ["error"]}}}
    for path, body in bodies.items():
        operation = out["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
        operation["responses"]["200"]["content"]["text/event-stream"] = {"schema": {}}
        for status in INFERENCE_STATUSES - {200}:
            operation["responses"][str(status)] = {"description": "error", "content": error}
    return out


schema = schemathesis.openapi.from_dict(DOCUMENT)
described = schemathesis.openapi.from_dict(with_bodies(DOCUMENT)).include(
    path_regex="^/v1/(chat/completions|embeddings)$"
)


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    with FakeOpenAI(["m"]) as fake:
        config = NexusConfig.model_validate(
            {
                "discovery": {"enabled": False},
                "health_check": {"interval_seconds": 60},
                "server": {"max_body_bytes": 65536},
                "backends": [{"name": "gpu", "url": fake.url, "type": "vllm"}],
            }
        )
        yield create_app(config, environ={})
        schemathesis.python.asgi.shutdown_lifespans()


async def test_the_document_is_served_as_built() -> None:
    app = create_app(NexusConfig())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
        served = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert docs.status_code == 404, "docs_url is disabled"
    assert set(DOCUMENT["paths"]) >= {*INFERENCE, "/v1/models", "/v1/route", "/health"}


@schema.parametrize()
@EXAMPLES
def test_every_operation_conforms(case: Case, app: FastAPI) -> None:
    response = case.call(app=app)
    # a valid body for a model no backend has is a 404: positive data may be refused there
    gaps: list[Any] | None = None
    if case.operation.path in INFERENCE:
        gaps = [positive_data_acceptance]
    case.validate_response(response, excluded_checks=gaps, additional_checks=[envelope])


@described.parametrize()
@EXAMPLES
def test_inference_bodies_never_break_the_gateway(case: Case, app: FastAPI) -> None:
    response = case.call(app=app)
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance],
        additional_checks=[envelope],
        excluded_checks=[negative_data_rejection],
    )


def test_the_document_describes_what_the_app_answers() -> None:
    paths = DOCUMENT["paths"]
    for path in INFERENCE:
        operation = paths[path]["post"]
        assert "requestBody" in operation, f"{path}: no request body"
        assert {"400", "404", "503"} <= set(operation["responses"]), f"{path}: no errors"
    route = paths["/v1/route"]["get"]["responses"]
    assert "400" in route and "422" not in route
