"""What an attempt reads from any transport: one upstream answer, readable whole or as chunks.

Reading raises only :class:`~nexus.errors.UpstreamError` subclasses (transports translate their
own exceptions at this border), so the failover logic knows one vocabulary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

JSON = "application/json"


class Reply(Protocol):
    """An upstream answer whose status line has arrived; the body may still be coming."""

    @property
    def status_code(self) -> int: ...

    @property
    def content_type(self) -> str | None: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, exactly as it will be sent to the client. Call once."""
        ...

    async def read(self) -> bytes:
        """The whole body."""
        ...

    async def aclose(self) -> None:
        """Release the connection (cancels the upstream request if still running)."""
        ...


class BodyReply:
    """A whole answer already in memory (e.g. a translated JSON body or an error Nexus made)."""

    __slots__ = ("status_code", "content_type", "_body")

    def __init__(self, status_code: int, body: bytes, content_type: str = JSON) -> None:
        self.status_code = status_code
        self.content_type: str | None = content_type
        self._body = body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._body

    async def read(self) -> bytes:
        return self._body

    async def aclose(self) -> None:
        return None
