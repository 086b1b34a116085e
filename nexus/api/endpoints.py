"""The inference endpoints, listed once: the hot path, the FastAPI routes (for the OpenAPI
document) and the 404/405 handlers all read this table."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.api.dialect import Dialect
from nexus.api.openai_dialect import OPENAI
from nexus.routing import RequestKind


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One inference path: the request kind it carries, the upstream API path it is sent to on
    an OpenAI-compatible backend, and the dialect that parses and renders it."""

    path: str
    kind: RequestKind
    upstream_path: str
    dialect: Dialect


INFERENCE = (
    Endpoint("/v1/chat/completions", RequestKind.CHAT, "/chat/completions", OPENAI),
    Endpoint("/v1/completions", RequestKind.COMPLETIONS, "/completions", OPENAI),
    Endpoint("/v1/embeddings", RequestKind.EMBEDDINGS, "/embeddings", OPENAI),
)
BY_PATH = {endpoint.path: endpoint for endpoint in INFERENCE}
