"""Whether the gateway is draining (shutting down gracefully) and how many requests are still in
progress. The HTTP side (refusing new ``/v1/*`` requests while draining) is
:class:`nexus.api.drain.DrainMiddleware`; the server waits here for the last request to end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Drain:
    """Counts requests in progress and knows whether the gateway is draining."""

    def __init__(self) -> None:
        self.draining = False
        self.active = 0
        self.listeners: list[Callable[[], None]] = []  # told once when draining starts (the queue)
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        """Draining has started (called on the event loop): tell the listeners."""
        self.draining = True
        for listener in self.listeners:
            listener()

    def begin(self) -> None:
        self.active += 1
        self._idle.clear()

    def end(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in progress; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
