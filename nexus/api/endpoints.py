"""The inference endpoints, listed once: the hot path, the FastAPI routes (for the OpenAPI
document) and the 404/405 handlers all read this table."""

from __future__ import annotations

from dataclasses import dataclass

from nexus.api.anthropic_dialect import ANTHROPIC
from nexus.api.dialect import Dialect
from nexus.api.openai_dialect import OPENAI, RESPONSES
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
    Endpoint("/v1/messages", RequestKind.MESSAGES, "/messages", ANTHROPIC),
    Endpoint("/v1/responses", RequestKind.RESPONSES, "/responses", RESPONSES),
)
BY_PATH = {endpoint.path: endpoint for endpoint in INFERENCE}
#: Paths served outside the hot path whose errors are in a dialect's envelope.
COUNT_TOKENS = "/v1/messages/count_tokens"
_OTHER_DIALECT_PATHS: dict[str, Dialect] = {COUNT_TOKENS: ANTHROPIC}


def dialect_for(path: str) -> Dialect | None:
    """The dialect whose envelope the errors of ``path`` use (None: OpenAI's generic one)."""
    endpoint = BY_PATH.get(path)
    return endpoint.dialect if endpoint is not None else _OTHER_DIALECT_PATHS.get(path)
