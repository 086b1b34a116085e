"""The byte relay for OpenAI-compatible backends (openai, vllm, llamacpp, lmstudio, exo, generic,
and Ollama's ``/v1``): the request bytes go out as given, the response bytes come back unchanged.

:func:`open_relay` sends one attempt and returns the open response once the backend has answered
with a status line. Failures worth trying another backend for (connect errors, timeouts, 5xx, 429,
401/403, a connection closed without an answer) are raised as :class:`~nexus.errors.UpstreamError`
subclasses carrying the backend's own error body, so the last one can be passed through. Any other
answer, 4xx included, is returned for the caller to relay as it is.

The client's ``Authorization`` header is never forwarded: Nexus sends the backend's configured key
(``api_key_env``) and nothing else, so a client's credential reaches no backend.
"""

from __future__ import annotations

import email.utils
import functools
import time
from collections.abc import AsyncIterator

import aiohttp
from pydantic import SecretStr

from nexus.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
)

JSON = "application/json"


def endpoint(base_url: str, path: str) -> str:
    """``base_url`` (with or without ``/v1``) joined with an OpenAI API ``path`` like
    ``/chat/completions``; the version segment is never doubled."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + path


#: The client's headers a native Messages backend receives, and the version sent without one.
ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")
ANTHROPIC_VERSION = "2023-06-01"


def request_headers(
    api_key: SecretStr | None,
    *,
    stream: bool,
    anthropic: bool = False,
    forwarded: tuple[tuple[str, str], ...] = (),
) -> dict[str, str]:
    """Headers for one upstream attempt. ``identity`` encoding keeps the bytes relayable as-is.
    The key goes as ``Authorization: Bearer``, or as ``x-api-key`` to Anthropic's own API
    (``anthropic``, which also gets an ``anthropic-version``); ``forwarded`` are the client's
    headers the API needs (:data:`ANTHROPIC_HEADERS`) and, with tracing on, the attempt's
    ``traceparent``/``tracestate``; never the client's credentials."""
    headers = {
        "content-type": JSON,
        "accept": "text/event-stream" if stream else JSON,
        "accept-encoding": "identity",
    }
    if forwarded:
        headers.update(forwarded)
    if anthropic:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if api_key is not None:
            headers["x-api-key"] = api_key.get_secret_value()
    elif api_key is not None:
        headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
    return headers


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class RelayReply:
    """An aiohttp response as a :class:`~nexus.upstream.reply.Reply`: the body bytes as they
    arrive, aiohttp errors translated into :class:`UpstreamError` subclasses."""

    __slots__ = ("_response", "_backend")

    def __init__(self, response: aiohttp.ClientResponse, backend: str) -> None:
        self._response = response
        self._backend = backend

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def content_type(self) -> str | None:
        return self._response.headers.get("Content-Type")

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._broken(exc) from None

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._broken(exc) from None

    def _broken(self, exc: TimeoutError | aiohttp.ClientError) -> UpstreamError:
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout("stopped sending in time", backend=self._backend)
        return UpstreamError(f"connection broke ({type(exc).__name__})", backend=self._backend)

    async def aclose(self) -> None:
        if self._response.content.is_eof():
            self._response.release()  # back to the pool
        else:
            self._response.close()  # unfinished: drop the connection, cancelling the upstream


def relay_session(*, connect_timeout: float) -> aiohttp.ClientSession:
    """The one connection pool of the relay. Bodies are never decompressed (bytes stay as the
    backend sent them); idle connections are dropped after 4 s, before the 5 s keep-alive of
    uvicorn-based backends (vLLM, most OpenAI-compatible servers) can race a reuse."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        skip_auto_headers=("User-Agent",),
    )


async def open_relay(
    session: aiohttp.ClientSession,
    *,
    backend: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    read_timeout: float,
    api_key_env: str | None = None,
) -> RelayReply:
    """POST ``body`` to ``url`` and return the open (streaming) answer, or raise."""
    try:
        timeout = _read_timeout(read_timeout)
        response = await session.post(url, data=body, headers=headers, timeout=timeout)
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnreachable(f"cannot connect: {_cause(exc)}", backend=backend) from None
    except TimeoutError:
        raise UpstreamTimeout("no answer in time", backend=backend) from None
    except aiohttp.ClientError as exc:
        reason = f"closed the connection without an answer ({_cause(exc)})"
        raise UpstreamError(reason, backend=backend) from None
    if not worth_failover(response.status):
        return RelayReply(response, backend)
    secret = headers.get("authorization", "").removeprefix("Bearer ") or headers.get("x-api-key")
    raise await _failure(response, backend, api_key_env, secret)


@functools.lru_cache(maxsize=64)
def _read_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """One (immutable) timeout object per read limit, not one per request."""
    return aiohttp.ClientTimeout(total=None, sock_read=seconds)


def worth_failover(status: int) -> bool:
    """5xx, 429 and 401/403 send the request to the next candidate; other answers are relayed."""
    return status >= 500 or status in (401, 403, 429)


async def _failure(
    response: aiohttp.ClientResponse, backend: str, api_key_env: str | None, secret: str | None
) -> UpstreamError:
    """The error for a failover-worthy answer, keeping its body (with the key scrubbed out:
    providers echo a rejected key) for the client when no retry is left."""
    try:
        body = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    finally:
        response.release()
    if secret:
        body = body.replace(secret.encode(), b"***")
    status = response.status
    content_type = response.headers.get("Content-Type")
    error: type[UpstreamError] = UpstreamError
    reason = f"HTTP {status}"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        error, reason = UpstreamRateLimited, "rate limited (HTTP 429)"
    elif status in (401, 403):
        error = UpstreamAuthError
        reason = "API key rejected" + (f" ({api_key_env})" if api_key_env else "")
    return error(
        reason,
        backend=backend,
        status=status,
        body=body or None,
        content_type=content_type,
        retry_after=retry_after,
    )


def _cause(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:120] if text else type(exc).__name__
