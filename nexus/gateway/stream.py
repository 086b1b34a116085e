"""The rest of a backend's stream after its first chunk, as the gateway passes it on.

Every chunk is the backend's, unchanged. A stall past the whole-request deadline (read on the
gateway's clock), a connection that breaks, or an SSE stream that stops before its API's last
event (:data:`ENDINGS`: ``data: [DONE]``, Anthropic's ``message_stop``, the Responses API's
``response.completed``) ends the iteration and leaves :attr:`RelayedStream.failure` set: the
dialect's renderer then writes its own final error event, never a silent truncation.
:meth:`RelayedStream.aclose` closes the upstream, releases the in-flight lease and reports the
request, once, on every path (end, failure, client disconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from loguru import logger

from nexus.backends.registry import Lease
from nexus.config.kinds import Api
from nexus.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout
from nexus.gateway.outcome import AnswerStream, Failed, Problem
from nexus.headers import NexusHeaders
from nexus.upstream.reply import Reply

#: How many trailing bytes of a stream are kept to see its end.
_TAIL = 64
_EVENT = b"event: "
_DATA = b"data:"
#: The last event of a complete stream, by client API: the ``data: [DONE]`` sentinel, or the
#: name of the last ``event:`` line.
_DONE = (b"[DONE]",)
ENDINGS: dict[Api, tuple[bytes, ...]] = {
    Api.CHAT: _DONE,
    Api.COMPLETIONS: _DONE,
    Api.MESSAGES: (b"message_stop",),
    Api.RESPONSES: (b"response.completed", b"response.incomplete", b"response.failed"),
}


def last_event(window: bytes) -> bytes | None:
    """The name on the last complete ``event:`` line in ``window``, or None."""
    start = window.rfind(_EVENT)
    while start != -1:
        end = window.find(b"\n", start)
        if end != -1:
            return window[start + len(_EVENT) : end].strip()
        start = window.rfind(_EVENT, 0, start)
    return None


def complete(tail: bytes, event: bytes | None, endings: tuple[bytes, ...]) -> str | None:
    """None when a stream whose last bytes are ``tail`` and last named event ``event`` ended as
    its API ends one, else what it lacks. (A stream without ``event:`` lines where names are
    expected cannot be judged by them: it counts as complete.)"""
    if endings == _DONE:
        return None if tail.rstrip().endswith(b"[DONE]") else "ended without 'data: [DONE]'"
    if event is None or event in endings:
        return None
    return f"ended before its '{endings[0].decode()}' event"


class RelayedStream:
    """One backend's stream after its first chunk; iterate once, then :meth:`aclose`."""

    def __init__(
        self,
        first: bytes,
        upstream: Reply,
        chunks: AsyncIterator[bytes],
        *,
        lease: Lease,
        headers: NexusHeaders,
        content_type: str,
        deadline: float,
        clock: Callable[[], float],
        endings: tuple[bytes, ...] = _DONE,
    ) -> None:
        self._first = first
        self._upstream = upstream
        self._chunks = chunks
        self._lease = lease
        self.headers = headers
        self.content_type = content_type
        self._deadline = deadline
        self._clock = clock
        self._sse = content_type.startswith("text/event-stream")
        self._endings = endings
        self._named = endings != _DONE  # ends with a named event: track the names
        self.failure: Failed | None = None
        #: Told once when the stream is over (set by whoever reports the request).
        self.on_end: Callable[[AnswerStream], None] | None = None
        #: Told the number of SSE ``data:`` events when the stream ended complete (quality).
        self.finished: Callable[[int], None] | None = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        tail = self._first[-_TAIL:]
        event = last_event(self._first) if self._named else None
        yield self._first
        backend = self.headers.backend or "none"
        events = self._first.count(_DATA)
        try:
            while (chunk := await self._next(backend)) is not None:
                if self._named:
                    event = last_event(tail + chunk) or event
                tail = (tail + chunk)[-_TAIL:]
                events += chunk.count(_DATA)
                yield chunk
            lacking = complete(tail, event, self._endings) if self._sse else None
            if lacking is not None:
                raise UpstreamBadResponse(lacking, backend=backend)
            if self.finished is not None:
                self.finished(events)
        except UpstreamError as exc:
            self.failure = broken(exc, self.headers)

    async def _next(self, backend: str) -> bytes | None:
        """The next chunk, or None at the end; a stall past the deadline fails."""
        remaining = self._deadline - self._clock()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                return await anext(self._chunks, None)
        except TimeoutError:
            raise UpstreamTimeout("the whole-request limit passed", backend=backend) from None

    async def aclose(self) -> None:
        """Close the upstream, release the lease and report the request (only the first call)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._upstream.aclose()
        finally:
            self._lease.release()
            if self.on_end is not None:
                self.on_end(self)


def broken(exc: UpstreamError, headers: NexusHeaders) -> Failed:
    """What a stream that broke after it started reports (and its renderer writes last)."""
    backend = headers.backend or "none"
    logger.bind(backend=backend).warning("stream from backend {} broke: {}", backend, exc.message)
    return Failed(
        Problem.STREAM_BROKEN,
        f"the stream from backend '{backend}' broke after it started: {exc.message}",
        headers,
        code="gateway_timeout" if isinstance(exc, UpstreamTimeout) else "stream_interrupted",
    )
