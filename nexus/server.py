"""Run the gateway under uvicorn (uvloop, httptools) until SIGINT/SIGTERM, then drain.

The first signal starts draining (:mod:`nexus.api.drain`): the server keeps listening, refuses
new ``/v1/*`` requests with 503, lets in-flight requests and streams finish for up to
:data:`DRAIN_SECONDS`, then shuts down and the process exits 0. A second signal stops at once.
With ``[server] workers`` above 1, :mod:`nexus.supervisor` runs one such server per worker
process on a socket they share (:func:`serve_socket`).
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
from nexus.config.tracing import missing_extra
from nexus.errors import ConfigError
from nexus.gateway import Drain
from nexus.gateway.lifecycle import usage_file
from nexus.observability.logs import configure_logging
from nexus.supervisor import Supervisor

#: How long in-flight requests may finish after SIGINT/SIGTERM.
DRAIN_SECONDS = 10.0


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


def preflight(config: NexusConfig) -> None:
    """What can be found wrong before listening: raises :class:`ConfigError`."""
    if config.tracing.enabled and (missing := missing_extra()):
        raise ConfigError([missing])
    path = usage_file(config)
    if path is not None:
        from nexus.state.ledger_sqlite import SqliteLedger

        SqliteLedger(path).check()


def run(config: NexusConfig, *, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Serve ``config`` until SIGINT/SIGTERM; in-flight requests drain, then it returns (with
    several workers, raises ``SystemExit(1)`` when one of them did not exit cleanly)."""
    preflight(config)
    configure_logging(config.logging.level, config.logging.format)
    server = config.server
    logger.info(
        "Nexus listening on http://{}:{} with {} configured backend(s){}",
        server.host,
        server.port,
        len(config.backends),
        f" in {server.workers} worker processes" if server.workers > 1 else "",
    )
    warning = exposure_warning(config)
    if warning:
        logger.warning(warning)
    if server.workers > 1:
        code = Supervisor(config, drain_seconds, serve_socket).run()
        if code:
            raise SystemExit(code)
        return
    serve_socket(config, None, drain_seconds)


def serve_socket(config: NexusConfig, sock: socket.socket | None, drain_seconds: float) -> None:
    """Run the app under :class:`DrainingServer` until it has drained: on ``sock`` (a listening
    socket shared by worker processes) or, when None, on ``[server] host`` and ``port``."""
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


def exposure_warning(config: NexusConfig) -> str | None:
    """A warning when anyone on the network could spend the cloud keys: the gateway listens
    beyond loopback, has cloud backends, and requires no client key."""
    host = config.server.host
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    cloud = [b.name for b in config.backends if b.kind.is_cloud]
    keyed = config.server.api_keys_env is not None or bool(config.clients)
    if loopback or not cloud or keyed:
        return None
    return (
        f"listening on {host} with cloud backend(s) {', '.join(cloud)} and no client keys: "
        "anyone who can reach this port can spend their API keys; set [server] api_keys_env "
        "or [[clients]], or bind to 127.0.0.1"
    )


def _exit_zero_after_drain() -> None:
    """uvicorn restores the previous signal handlers when it stops and re-raises a signal it
    captured, which would kill the process with -15. With no-op handlers in place a drained
    gateway exits 0 as the contract says."""

    def absorb(_signal: int, _frame: FrameType | None) -> None:
        return None

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, absorb)
