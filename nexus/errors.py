"""The exception tree of Nexus, the failure classes that drive health, and the OpenAI error
envelope.

::

    NexusError                      base: a message safe to show (never a key or request content)
    ├── ConfigError                 invalid configuration: one message per problem (exit code 2)
    ├── InvalidRequest              the client's request cannot be served as sent; ``param``
    │   └── BodyTooLarge            the body is over ``[server] max_body_bytes``
    ├── StoreUnavailable            the shared state store (Redis) cannot be reached
    ├── ProbeFailed                 a health probe failed; ``failure`` classifies it
    └── UpstreamError               a backend failed before the answer started: a failover
        ├── UpstreamUnreachable     connect refused / timed out: nothing reached it
        ├── UpstreamTimeout         no answer in time
        ├── UpstreamRateLimited     429, with ``retry_after``
        ├── UpstreamAuthError       401/403 from the backend: its credential was rejected
        ├── UpstreamBadResponse     the backend answered something that is not a valid response
        └── BackendAtCapacity       max_concurrent reached across replicas: not a health failure

Exceptions carry facts (``backend``, ``failure``, the backend's own ``upstream_status`` and body),
not HTTP decisions: the status, type and code a client sees are decided in one table,
:data:`nexus.gateway.outcome.PROBLEMS`. Every :class:`UpstreamError` moves the request to the next
candidate; an answer that must not fail over (a 4xx the client caused) is returned, not raised.
Decisions read the type and fields, never message text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson


class Failure(StrEnum):
    """How an attempt (probe or request) failed. Drives health, cooldown and failover."""

    REFUSED = "refused"  # connect refused / DNS / reset before any answer: out at once
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"  # 5xx
    RATE_LIMITED = "rate_limited"  # 429: cooldown, not unhealthy
    AUTH = "auth"  # 401/403 or missing key: out at once, with the reason
    BAD_RESPONSE = "bad_response"  # answered, but not what the protocol promises


class NexusError(Exception):
    """Base of every error Nexus raises on purpose."""

    #: A machine-readable name for the client (OpenAI's ``error.code``), when there is one.
    code: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(NexusError):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class InvalidRequest(NexusError):
    """The client's request cannot be served as sent; ``param`` names the field, if one."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class BodyTooLarge(InvalidRequest):
    """The request body is larger than the configured limit."""


class StoreUnavailable(NexusError):
    """The shared state store did not answer in time (``timed_out``), refused, or failed
    (callers fall back to local state)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ProbeFailed(NexusError):
    """A health probe failed; ``failure`` says how, ``error`` the reason recorded on the backend."""

    def __init__(self, failure: Failure, error: str) -> None:
        super().__init__(error)
        self.failure = failure
        self.error = error


class UpstreamError(NexusError):
    """A backend failed before its answer started. ``failure`` feeds passive health;
    ``upstream_status`` and ``body``/``content_type`` keep the backend's own error answer so it
    can be passed through when no retry is left."""

    code: str | None = "upstream_error"
    failure = Failure.SERVER_ERROR
    upstream_status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        status: int | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.backend = backend
        if status is not None:
            self.upstream_status = status
        self.body = body
        self.content_type = content_type
        self.retry_after = retry_after


class UpstreamUnreachable(UpstreamError):
    """Connect refused, DNS failure or connect timeout: nothing reached the backend."""

    code = "backend_unreachable"
    failure = Failure.REFUSED


class UpstreamTimeout(UpstreamError):
    code = "gateway_timeout"
    failure = Failure.TIMEOUT


class UpstreamRateLimited(UpstreamError):
    upstream_status = 429
    code = "rate_limit_exceeded"
    failure = Failure.RATE_LIMITED


class UpstreamAuthError(UpstreamError):
    """The backend rejected Nexus's credential (401/403), or the key is missing."""

    code = "backend_auth_failed"
    failure = Failure.AUTH


class UpstreamBadResponse(UpstreamError):
    code = "bad_upstream_response"
    failure = Failure.BAD_RESPONSE


class BackendAtCapacity(UpstreamError):
    """The backend's ``max_concurrent`` is reached counting every replica (shared state): the
    next candidate is tried. Nothing was sent, so it does not count against its health."""

    code = "backend_at_capacity"


def error_body(
    message: str,
    *,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
    context: dict[str, Any] | None = None,
) -> bytes:
    """Render the OpenAI error envelope ``{"error": {message, type, param, code}}`` as bytes.

    ``context`` (the actionable 503 context) is added as a sibling of ``error`` when given.
    """
    body: dict[str, Any] = {
        "error": {"message": message, "type": error_type, "param": param, "code": code}
    }
    if context is not None:
        body["context"] = context
    return orjson.dumps(body)


def anthropic_error_body(
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    context: dict[str, Any] | None = None,
) -> bytes:
    """Render Anthropic's error envelope ``{"type": "error", "error": {type, message}}``
    (``code`` and ``param`` have no place in it); ``context`` beside ``error`` when given."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if context is not None:
        body["context"] = context
    return orjson.dumps(body)
