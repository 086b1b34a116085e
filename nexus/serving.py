"""The serving process: the app under uvicorn (uvloop, httptools), draining on the first signal.

Imported only by the process that serves (the single process, or each worker): the supervising
parent of several workers never loads the app, uvicorn or the HTTP clients.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType

import uvicorn
from loguru import logger

from nexus.app import create_app
from nexus.config import NexusConfig
from nexus.gateway import Drain


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first signal drains instead of closing the listener at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_seconds: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_seconds = drain_seconds
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain.draining:  # a second signal: stop now
            self.force_exit = True
            self.should_exit = True
            return
        self._drain.draining = True
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._start_drain, loop)  # no logging in a signal handler

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        logger.info("draining: refusing new requests, waiting for {} in flight", self._drain.active)
        self._drain.started()
        self._drain_task = loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        if not await self._drain.wait_idle(self._drain_seconds):
            logger.warning("drain limit reached with {} request(s) in flight", self._drain.active)
        self.should_exit = True


def serve(config: NexusConfig, sock: socket.socket | None, drain_seconds: float) -> None:
    """Run the app under :class:`DrainingServer` until it has drained: on ``sock`` or, when
    None, on ``[server] host`` and ``port``."""
    drain = Drain()
    app = create_app(config, drain=drain)
    _exit_zero_after_drain()
    uvicorn_config = uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(drain_seconds),
    )
    DrainingServer(uvicorn_config, drain, drain_seconds).run(
        sockets=None if sock is None else [sock]
    )


def _exit_zero_after_drain() -> None:
    """uvicorn restores the previous signal handlers when it stops and re-raises a signal it
    captured, which would kill the process with -15. With no-op handlers in place a drained
    gateway exits 0 as the contract says."""

    def absorb(_signal: int, _frame: FrameType | None) -> None:
        return None

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, absorb)
