"""``[server] workers = N``: N processes on one machine serving one port.

The parent binds the listening socket and starts N worker processes (``spawn``: each is a fresh
interpreter, nothing of the parent's state is inherited but the socket and the configuration).
Each worker runs the whole app on that socket (the ``serve`` function the server passes in:
:func:`nexus.server.serve_socket`; it is pickled by reference); the kernel hands each new
connection to one of them.

Signals: the first SIGTERM/SIGINT to the parent is forwarded to every worker as SIGTERM (each
drains, see :mod:`nexus.server`), a second one too (they stop at once); the parent exits 0 when
every worker has exited 0, else 1. Workers run in their own process group, so Ctrl-C in a
terminal reaches the parent only (it forwards it once), and each worker stops by itself when
the parent disappears. A worker that dies while the gateway is not stopping is replaced.

Each worker has its own registry, health checks, metrics, history and counters unless
``[state] backend = "redis"`` shares them (see :mod:`nexus.state`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from loguru import logger

from nexus.config import NexusConfig

#: A worker that dies sooner than this after its start is replaced only after this delay.
RESTART_DELAY_SECONDS = 1.0
#: How often a worker checks that its parent is still there.
PARENT_CHECK_SECONDS = 0.5

#: Serves the app on a listening socket until it has drained (``nexus.server.serve_socket``).
Serve = Callable[[NexusConfig, socket.socket | None, float], None]


class Supervisor:
    """Starts, watches and stops the worker processes of one gateway."""

    def __init__(self, config: NexusConfig, drain_seconds: float, serve: Serve) -> None:
        self._config = config
        self._serve = serve
        self._drain_seconds = drain_seconds
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, tuple[BaseProcess, float]] = {}
        self._signals = 0
        self._told: dict[int, int] = {}  # worker pid -> signals forwarded to it
        self._wake = threading.Event()

    def run(self) -> int:
        """Serve until the workers have stopped after a signal; the exit code."""
        server = self._config.server
        try:
            sock = listen(server.host, server.port)
        except OSError as exc:
            logger.error("cannot listen on {}:{}: {}", server.host, server.port, exc)
            return 1
        with sock:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
            for index in range(server.workers):
                if not self._signals:
                    self._start(index, sock)
            return self._watch(sock)

    def _start(self, index: int, sock: socket.socket) -> None:
        process = self._context.Process(
            target=worker_main,
            args=(self._config, sock, index, self._drain_seconds, self._serve),
            name=f"nexus-worker-{index}",
        )
        process.start()
        self._workers[index] = (process, time.monotonic())
        logger.info("worker {} started (pid {})", index, process.pid)

    def _watch(self, sock: socket.socket) -> int:
        forwarded = 0
        while True:
            if self._signals > forwarded:
                forwarded = self._signals
                logger.info("stopping: {} worker(s) draining", len(self._alive()))
            self._forward()
            if self._signals and not self._alive():
                break
            if not self._signals:
                self._replace_dead(sock)
            self._wake.wait(0.1)
            self._wake.clear()
        codes = {index: process.exitcode for index, (process, _) in self._workers.items()}
        failed = {index: code for index, code in codes.items() if code != 0}
        if failed:
            logger.warning("worker(s) exited with codes {}", failed)
        return 1 if failed else 0

    def _replace_dead(self, sock: socket.socket) -> None:
        for index, (process, started) in list(self._workers.items()):
            if process.is_alive() or self._signals:
                continue
            if time.monotonic() - started < RESTART_DELAY_SECONDS:
                continue  # checked again on the next round, once the delay has passed
            logger.warning(
                "worker {} (pid {}) exited with code {}; starting another",
                index,
                process.pid,
                process.exitcode,
            )
            process.close()
            self._start(index, sock)

    def _alive(self) -> list[BaseProcess]:
        return [process for process, _ in self._workers.values() if process.is_alive()]

    def _on_signal(self, _signal: int, _frame: FrameType | None) -> None:
        """Count it and wake the watch loop, which forwards it (no work in a signal handler)."""
        self._signals += 1
        self._wake.set()

    def _forward(self) -> None:
        """Send every live worker as many SIGTERMs as the parent received signals (one drains,
        two stop at once), each once."""
        for process, _ in list(self._workers.values()):
            pid = process.pid
            if pid is None or process.exitcode is not None:
                continue
            while self._told.get(pid, 0) < self._signals:
                self._told[pid] = self._told.get(pid, 0) + 1
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    break


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` that worker processes can inherit."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def worker_main(
    config: NexusConfig, sock: socket.socket, index: int, drain_seconds: float, serve: Serve
) -> None:
    """One worker process: serve on ``sock`` until SIGTERM (from the parent) has drained."""
    from nexus.observability.logs import configure_logging

    os.setpgid(0, 0)  # Ctrl-C in a terminal reaches the parent only, which forwards it once
    configure_logging(config.logging.level, config.logging.format)
    logger.configure(extra={"worker": index})
    _stop_when_orphaned(os.getppid())
    serve(config, sock, drain_seconds)


def _stop_when_orphaned(parent: int) -> None:
    """Send this process SIGTERM (drain, exit) once its parent has gone (e.g. SIGKILLed)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
