"""The exception tree of Nexus and the one place that renders errors as the OpenAI envelope.

::

    NexusError                      base; carries an HTTP status and an OpenAI error type/code
    ├── ConfigError                 invalid configuration: one message per problem (exit code 2)
    ├── RoutingError                no backend can serve the request (404 / 503 with context)
    └── UpstreamError               a backend failed (5xx); ``retryable`` drives failover
        ├── UpstreamUnreachable     connect refused / timed out: nothing reached it
        ├── UpstreamTimeout         no answer in time: 504
        ├── UpstreamRateLimited     429, with ``retry_after``
        ├── UpstreamAuthError       401/403 from the backend: its credential was rejected
        ├── UpstreamBadResponse     the backend answered something that is not a valid response
        └── BackendAtCapacity       max_concurrent reached across replicas: not a health failure

Failover reads ``exc.retryable``, never message text. Messages never contain API keys or request
content.
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

    status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(NexusError):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class RoutingError(NexusError):
    """No backend can serve the request; ``context`` is the 503 body's actionable context."""

    status = 503
    error_type = "service_unavailable"
    code = "service_unavailable"

    def __init__(self, message: str, *, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.context = context


class UpstreamError(NexusError):
    """A backend failed. ``retryable`` says whether another candidate may be tried; ``failure``
    feeds passive health; ``body``/``content_type`` keep the backend's own error answer so it can
    be passed through when no retry is left."""

    status = 502
    error_type = "upstream_error"
    code: str | None = "upstream_error"
    failure = Failure.SERVER_ERROR
    retryable = True

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
            self.status = status
        self.body = body
        self.content_type = content_type
        self.retry_after = retry_after


class UpstreamUnreachable(UpstreamError):
    """Connect refused, DNS failure or connect timeout: nothing reached the backend."""

    code = "backend_unreachable"
    failure = Failure.REFUSED


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "gateway_timeout"
    code = "gateway_timeout"
    failure = Failure.TIMEOUT


class UpstreamRateLimited(UpstreamError):
    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"
    failure = Failure.RATE_LIMITED


class UpstreamAuthError(UpstreamError):
    """The backend rejected Nexus's credential (401/403), or the key is missing."""

    status = 503
    error_type = "service_unavailable"
    code = "backend_auth_failed"
    failure = Failure.AUTH


class UpstreamBadResponse(UpstreamError):
    code = "bad_upstream_response"
    failure = Failure.BAD_RESPONSE


class BackendAtCapacity(UpstreamError):
    """The backend's ``max_concurrent`` is reached counting every replica (shared state): the
    next candidate is tried. Nothing was sent, so it does not count against its health."""

    status = 503
    error_type = "service_unavailable"
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
