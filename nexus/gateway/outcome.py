"""What the gateway answers for one request: an :class:`Answer` to pass on, or a :class:`Failed`
value carrying everything an error response needs. Immutable values; each dialect's renderer in
``nexus/api/`` turns them into HTTP, and the request's observers are fed from the same values.

:data:`PROBLEMS` is the one place that maps a failure class to its HTTP status, OpenAI error type
and code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from nexus.headers import NexusHeaders

JSON = "application/json"


class Problem(StrEnum):
    """Why a request was not answered by a backend."""

    INVALID_REQUEST = "invalid_request"  # the body cannot be served as sent
    BODY_TOO_LARGE = "body_too_large"
    UNAUTHORIZED = "unauthorized"  # no or a wrong client key
    FORBIDDEN = "forbidden"  # the client's tenant may not use the model
    NOT_FOUND = "not_found"  # no such path
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNKNOWN_MODEL = "unknown_model"  # no backend, alias or fallback knows the model
    UNAVAILABLE = "unavailable"  # the model is known; nothing can serve it now
    SHUTTING_DOWN = "shutting_down"  # draining: go elsewhere
    RATE_LIMITED = "rate_limited"  # the client's tenant is over its rpm or tpm
    BUDGET_SPENT = "budget_spent"  # a spend budget with the action block is spent
    UPSTREAM_TIMEOUT = "upstream_timeout"  # the last attempt ran out of time
    UPSTREAM_ERROR = "upstream_error"  # the last backend's own error, passed on
    STREAM_BROKEN = "stream_broken"  # the backend failed after the stream started
    CLIENT_GONE = "client_gone"  # the client left before the answer (logged, never sent)
    INTERNAL = "internal"  # a defect in Nexus: the log has the traceback


class ProblemClass(NamedTuple):
    status: int
    error_type: str  # OpenAI's ``error.type``
    code: str | None  # OpenAI's ``error.code`` unless the failure names a finer one


#: Failure class -> HTTP status, OpenAI error type, default code. The only such table.
PROBLEMS: dict[Problem, ProblemClass] = {
    Problem.INVALID_REQUEST: ProblemClass(400, "invalid_request_error", None),
    Problem.BODY_TOO_LARGE: ProblemClass(413, "invalid_request_error", "request_too_large"),
    Problem.UNAUTHORIZED: ProblemClass(401, "invalid_request_error", "invalid_api_key"),
    Problem.FORBIDDEN: ProblemClass(403, "permission_error", "model_not_allowed"),
    Problem.NOT_FOUND: ProblemClass(404, "not_found_error", "404"),
    Problem.METHOD_NOT_ALLOWED: ProblemClass(405, "invalid_request_error", "405"),
    Problem.UNKNOWN_MODEL: ProblemClass(404, "invalid_request_error", "model_not_found"),
    Problem.UNAVAILABLE: ProblemClass(503, "service_unavailable", "service_unavailable"),
    Problem.SHUTTING_DOWN: ProblemClass(503, "service_unavailable", "shutting_down"),
    Problem.RATE_LIMITED: ProblemClass(429, "rate_limit_error", "rate_limit_exceeded"),
    Problem.BUDGET_SPENT: ProblemClass(429, "insufficient_quota", "insufficient_quota"),
    Problem.UPSTREAM_TIMEOUT: ProblemClass(504, "gateway_timeout", "gateway_timeout"),
    Problem.UPSTREAM_ERROR: ProblemClass(502, "upstream_error", "upstream_error"),
    Problem.STREAM_BROKEN: ProblemClass(502, "upstream_error", "stream_interrupted"),
    Problem.CLIENT_GONE: ProblemClass(499, "client_closed_request", None),
    Problem.INTERNAL: ProblemClass(500, "server_error", None),
}


@dataclass(frozen=True, slots=True)
class Failed:
    """A request that no backend answered successfully, and what its error response says.

    ``status`` is the class's status unless a backend's own error is passed on (then
    ``upstream_body`` holds that body, to be sent as it is). ``context`` is the 503's actionable
    context; ``retry_after`` whole seconds, when the client should retry.
    """

    problem: Problem
    message: str
    headers: NexusHeaders
    code: str | None = None
    param: str | None = None
    context: dict[str, Any] | None = None
    retry_after: int | None = None
    status: int = 0  # 0: the problem class's status
    upstream_body: bytes | None = None
    upstream_content_type: str | None = None
    failed_attempts: int = 0

    def __post_init__(self) -> None:
        if self.status == 0:
            object.__setattr__(self, "status", PROBLEMS[self.problem].status)
        if self.code is None:
            object.__setattr__(self, "code", PROBLEMS[self.problem].code)

    @property
    def error_type(self) -> str:
        return PROBLEMS[self.problem].error_type


class AnswerStream(Protocol):
    """The rest of a streamed answer after its first chunk (see :mod:`nexus.gateway.stream`)."""

    failure: Failed | None
    #: Told once when the stream is over (the request's report sets it).
    on_end: Callable[[AnswerStream], None] | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A backend's answer, to be passed on unchanged: ``body`` whole, or ``stream`` (the first
    chunk already read, so a failure before it was a failover)."""

    status: int
    content_type: str
    headers: NexusHeaders
    body: bytes = b""
    stream: AnswerStream | None = None
    failed_attempts: int = 0
    ttfb_s: float | None = None  # until the body (or a stream's first chunk) was ready
    output_tokens: int | None = None  # from a cloud JSON answer's usage


Outcome = Answer | Failed
