"""LiteLLM's exceptions as Nexus's, for one backend: by exception type and ``status_code``,
never by message text (the table is in ``docs/providers.md``). A client error (4xx but
401/403/408/429) becomes an OpenAI-shaped answer with the provider's explanation (the key scrubbed
out, LiteLLM's advice rewritten: :mod:`.advice`); anything else an
:class:`~nexus.errors.UpstreamError` (a failover)."""

from __future__ import annotations

import socket
from typing import Any, Protocol

import httpx
from loguru import logger
from pydantic import SecretStr

from nexus.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
    error_body,
)
from nexus.upstream import convert
from nexus.upstream.advice import client_refusal
from nexus.upstream.relay import retry_after_seconds
from nexus.upstream.reply import BodyReply, Reply

JSON = "application/json"


class Envelope(Protocol):
    """An error envelope writer: :func:`~nexus.errors.error_body` (OpenAI's) or
    :func:`~nexus.errors.anthropic_error_body`."""

    def __call__(
        self, message: str, *, error_type: str, code: str | None = ..., param: str | None = ...
    ) -> bytes: ...


class LiteLLMErrors:
    """Maps LiteLLM's exceptions for one backend, by type and status code."""

    def __init__(
        self,
        backend: str,
        provider: str,
        key_env: str | None,
        api_key: SecretStr | None,
        model: str = "",
        envelope: Envelope = error_body,
    ) -> None:
        self.envelope = envelope  # how a client error is written (the client API's envelope)
        self.backend = backend
        self.provider = provider
        self.model = model
        self.key_env = key_env
        self.secret = api_key.get_secret_value() if api_key is not None else None

    def reply_or_raise(self, exc: Exception) -> Reply:
        """A client error (4xx but 401/403/408/429) as an OpenAI-shaped answer; else raise."""
        inner = _unwrap(exc)
        status = _status(inner)
        if status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429):
            return BodyReply(status, self._client_error(inner, status))
        raise self.upstream(exc) from None

    def upstream(self, exc: Exception) -> UpstreamError:
        """The UpstreamError for ``exc``, whatever it is."""
        import openai

        inner, name = _unwrap(exc), self.backend
        connect = convert.cause_of(inner, _CONNECT_CAUSES)
        if connect is not None:
            return UpstreamUnreachable(f"cannot connect ({type(connect).__name__})", backend=name)
        if isinstance(inner, openai.APITimeoutError) or convert.cause_of(
            inner, (httpx.TimeoutException,)
        ):
            return UpstreamTimeout("no answer in time", backend=name)
        status = _status(inner)
        if status == 429:
            headers = getattr(inner, "litellm_response_headers", None) or {}
            return UpstreamRateLimited(
                "rate limited (HTTP 429)",
                backend=name,
                retry_after=retry_after_seconds(_text(headers.get("retry-after"))),
                body=self._body("HTTP 429", "rate_limit_error", "rate_limit_exceeded"),
                content_type=JSON,
            )
        if status in (401, 403):
            reason = f"API key rejected ({self.key_env})" if self.key_env else "API key rejected"
            return UpstreamAuthError(reason, backend=name)
        if status is None or not isinstance(inner, openai.APIError):
            logger.opt(exception=inner).warning("LiteLLM failed for backend {}", name)
            reason = f"translation failed ({type(inner).__name__})"
            return UpstreamError(reason, backend=name, body=self._body(reason), content_type=JSON)
        reason = f"HTTP {status}"
        return UpstreamError(
            reason, backend=name, status=status, body=self._body(reason), content_type=JSON
        )

    def _body(
        self, reason: str, error_type: str = "upstream_error", code: str = "upstream_error"
    ) -> bytes:
        message = f"backend '{self.backend}' ({self.provider}) failed: {reason}"
        return error_body(message, error_type=error_type, code=code)

    def _client_error(self, exc: Exception, status: int) -> bytes:
        """The provider's own explanation (LiteLLM's message, for the client to read; never
        used for decisions), with the key scrubbed out."""
        text = str(getattr(exc, "message", None) or exc)
        if self.secret:
            text = text.replace(self.secret, "***")
        refusal = client_refusal(
            text, backend=self.backend, provider=self.provider, model=self.model
        )
        code = "model_not_found" if status == 404 else None
        error_type = (
            "not_found_error" if status == 404 and self.envelope is not error_body else None
        )
        return self.envelope(
            refusal.message[:2000],
            error_type=error_type or "invalid_request_error",
            code=code,
            param=refusal.param,
        )


_CONNECT_CAUSES: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    ConnectionRefusedError,
    socket.gaierror,
)


def _unwrap(exc: Exception) -> Exception:
    """The exception a ``MidStreamFallbackError`` wraps (LiteLLM raises it for any failure
    while iterating a stream, even before the first chunk), else ``exc``."""
    from litellm.exceptions import MidStreamFallbackError

    while isinstance(exc, MidStreamFallbackError) and isinstance(exc.original_exception, Exception):
        exc = exc.original_exception
    return exc


def _status(exc: Exception) -> int | None:
    import openai

    if not isinstance(exc, openai.APIError):
        return None
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
