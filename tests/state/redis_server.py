"""A real ``redis-server`` (Debian's package) on a free 127.0.0.1 port, for tests: started,
killed and restarted on the same port, never persisting anything. Missing, it skips the test,
except in CI (``CI=true``), where it fails it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.serving import free_port

BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 5.0


def require_redis() -> None:
    """Skip the calling test when Debian's redis-server is not installed; fail it in CI
    (``CI=true``), where a skip would hide that the Redis half of the suite never ran."""
    if shutil.which("redis-server") is not None:
        return
    reason = "redis-server is not installed (scripts/install-redis installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


class RedisServer:
    """One redis-server process on ``port``; :meth:`kill` and :meth:`start` may repeat."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None:
                stderr = self.process.stderr.read() if self.process.stderr else b""
                raise RuntimeError(f"redis-server exited: {stderr.decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server not ready in {START_TIMEOUT} s")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """SIGKILL: every key is lost (nothing is saved)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung or overloaded Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """Run one command with a bare RESP exchange (no client library) and return the raw
        reply."""
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            payload += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(payload)
            return conn.recv(65536)

    def _answers(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    require_redis()
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.kill()
