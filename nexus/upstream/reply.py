"""What the proxy reads from any transport: one upstream answer, readable whole or as chunks.

Reading raises only :class:`~nexus.errors.UpstreamError` subclasses (transports translate their
own exceptions at this border), so the proxy's failover logic knows one vocabulary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


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
