"""Anthropic's Messages dialect (``/v1/messages``): the request checks Anthropic's API makes, the
answer passed on (a native backend's bytes, or LiteLLM's translation already in Messages form),
errors in Anthropic's envelope ``{"type": "error", "error": {"type", "message"}}`` with the
routing ``context`` beside it on a 503, and a stream that breaks after it started ended by
Anthropic's own ``event: error``. The anthropic SDK (and Claude Code) parse exactly these."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from nexus.api.openai_dialect import JSON, StreamedAnswer, parse_object
from nexus.errors import InvalidRequest, anthropic_error_body
from nexus.gateway import Failed, Outcome
from nexus.routing import RequestKind

#: HTTP status -> Anthropic's ``error.type`` (their API's table; 503 is their 529's meaning).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
#: Headers of the client's request that a native Messages backend receives.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


class AnthropicDialect:
    """Parser and renderer for ``/v1/messages``."""

    def parse(self, raw: bytes, kind: RequestKind) -> dict[str, Any]:
        body = parse_count(raw)
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, float) and max_tokens.is_integer():
            max_tokens = int(max_tokens)  # JSON has one number type: 64.0 is 64
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise InvalidRequest("stream: must be true or false", param="stream")
        return body

    def render(self, outcome: Outcome) -> Response:
        if isinstance(outcome, Failed):
            return error_response(outcome)
        if outcome.stream is not None:
            return StreamedAnswer(outcome, outcome.stream, error_event)
        headers = outcome.headers.as_dict()
        return Response(outcome.body, outcome.status, headers, media_type=outcome.content_type)


ANTHROPIC = AnthropicDialect()


def parse_count(raw: bytes) -> dict[str, Any]:
    """The checks a count_tokens request needs: a model and at least one message."""
    body = parse_object(raw)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    return body


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error")


def error_response(failed: Failed) -> Response:
    """``failed`` in Anthropic's envelope; a backend's own error passes on when it already is
    one (a native Anthropic or Ollama backend), else it is re-worded into one."""
    headers = failed.headers.as_dict()
    if failed.retry_after is not None:
        headers["retry-after"] = str(failed.retry_after)
    body = failed.upstream_body
    if body is None or not _anthropic_shaped(body):
        body = anthropic_error_body(
            failed.message, error_type=error_type(failed.status), context=failed.context
        )
    return Response(body, failed.status, headers, media_type=JSON)


def error_event(failed: Failed) -> bytes:
    """The last event of a Messages stream that broke after it started."""
    error = {"type": "error", "error": {"type": "api_error", "message": failed.message}}
    return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"


def _anthropic_shaped(body: bytes) -> bool:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and value.get("type") == "error"
