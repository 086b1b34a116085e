"""Run the gateway under uvicorn (uvloop, httptools) until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from loguru import logger

from nexus.app import create_app
from nexus.config import NexusConfig
from nexus.observability.logs import configure_logging

#: How long in-flight requests may finish after SIGINT/SIGTERM.
DRAIN_SECONDS = 10


def run(config: NexusConfig) -> None:
    """Serve ``config`` until SIGINT/SIGTERM; in-flight requests drain, then it returns."""
    configure_logging(config.logging.level, config.logging.format)
    app = create_app(config)
    server = config.server
    logger.info(
        "Nexus listening on http://{}:{} with {} configured backend(s)",
        server.host,
        server.port,
        len(config.backends),
    )
    _exit_zero_after_drain()
    uvicorn.run(
        app,
        host=server.host,
        port=server.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=DRAIN_SECONDS,
        limit_max_requests=None,
    )


def _exit_zero_after_drain() -> None:
    """uvicorn drains on SIGINT/SIGTERM, restores the previous handlers and re-raises the signal,
    which would kill the process with -15. With no-op handlers in place the re-raised signal is
    absorbed, and a drained gateway exits 0 as the contract says."""

    def absorb(_signal: int, _frame: FrameType | None) -> None:
        return None

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, absorb)
