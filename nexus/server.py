"""Run the gateway under uvicorn (uvloop, httptools) until SIGINT/SIGTERM, then drain.

The first signal starts draining (:mod:`nexus.api.drain`): the server keeps listening, refuses
new ``/v1/*`` requests with 503, lets in-flight requests and streams finish for up to
:data:`DRAIN_SECONDS`, then shuts down and the process exits 0. A second signal stops at once.
With ``[server] workers`` above 1, :mod:`nexus.supervisor` runs one such server per worker
process on a socket they share (:func:`serve_socket`); the server itself is
:mod:`nexus.serving`, which only the serving process imports.
"""

from __future__ import annotations

import socket

from loguru import logger

from nexus.config import NexusConfig
from nexus.config.tracing import missing_extra
from nexus.errors import ConfigError
from nexus.observability.logs import configure_logging
from nexus.state.usage_path import usage_file
from nexus.supervisor import Supervisor

#: How long in-flight requests may finish after SIGINT/SIGTERM.
DRAIN_SECONDS = 10.0


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
    """Run the app until it has drained: on ``sock`` (a listening socket shared by worker
    processes) or, when None, on ``[server] host`` and ``port``. The app and uvicorn are
    imported here, by the process that serves: a supervising parent never holds them."""
    from nexus.serving import serve

    serve(config, sock, drain_seconds)


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
