"""Start a real `nexus serve` process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

NEXUS = str(Path(sys.executable).with_name("nexus"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    ready_after: float
    log: Path

    def stop(self, timeout: float = 15) -> tuple[int, str]:
        """SIGTERM, wait, and return (exit code, everything it wrote to stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return self.process.returncode, self.stderr()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def nexus_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None, ready_timeout: float = 10
) -> Iterator[Served]:
    """Run `nexus serve --host 127.0.0.1 --port <free> *args` until /health answers."""
    port = free_port()
    started = time.monotonic()
    log = Path(tempfile.mkstemp(prefix="nexus-serve-", suffix=".log")[1])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [NEXUS, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nexus serve exited: {log.read_text(errors='replace')}")
            try:
                httpx.get(f"{url}/health", timeout=0.5)
                break
            except httpx.TransportError:
                if time.monotonic() - started > ready_timeout:
                    raise TimeoutError(f"nexus serve not ready in {ready_timeout}s") from None
                time.sleep(0.02)
        yield Served(process, url, time.monotonic() - started, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)
