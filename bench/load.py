"""Closed-loop load at a fixed concurrency: ``wrk`` (Debian's package) with a Lua script that POSTs
the chat body, or, when wrk is missing and cannot be installed, an asyncio client doing the same
(N keep-alive connections, each sending its next request when the previous answer is complete).
The asyncio client costs far more CPU than wrk, on the same 2 cores: its numbers are lower.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from bench.http1 import Connection, percentiles
from bench.targets import Target, chat_body

T = TypeVar("T")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def ensure_wrk(install: bool = True) -> str | None:
    """The wrk command, installed with apt-get when missing (as root); None if unavailable."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        try:
            subprocess.run(step, capture_output=True, timeout=300, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
    return shutil.which("wrk")


def lua_script(target: Target, folder: Path, limit: int | None = None) -> Path:
    """The wrk script for ``target``; with ``limit``, the thread stops after that many answers."""
    lines = ['wrk.method = "POST"', f"wrk.body = [[{chat_body().decode()}]]",
             'wrk.headers["Content-Type"] = "application/json"']  # fmt: skip
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in target.headers]
    if limit is not None:
        lines += ["local count = 0", "function response(status, headers, body)",
                  "  count = count + 1", f"  if count >= {limit} then wrk.thread:stop() end",
                  "end"]  # fmt: skip
    path = folder / f"wrk-{target.name}-{limit or 'timed'}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, req/s, p50/p99 (ms) and error counts from ``wrk --latency`` output."""
    requests = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (requests and rps and p50 and p99):
        raise ValueError(f"cannot parse wrk output:\n{output}")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return {
        "requests": int(requests.group(1)),
        "rps": round(float(rps.group(1)), 1),
        "p50_ms": round(_ms(p50.group(1)), 3),
        "p99_ms": round(_ms(p99.group(1)), 3),
        "errors": errors,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def wrk_load(
    wrk: str, target: Target, folder: Path, concurrency: int, seconds: float,
    limit: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    script = lua_script(target, folder, limit)
    argv = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "--latency", "-s", str(script), target.url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


async def _worker(
    target: Target, deadline: float, left: list[int], samples: list[float], errors: list[int]
) -> None:
    connection = Connection("127.0.0.1", target.port)
    request = target.json_request()
    try:
        while time.perf_counter() < deadline and left[0] > 0:
            left[0] -= 1
            try:
                reply = await connection.send(request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors[0] += 1
                continue
            if reply.status != 200:
                errors[1] += 1
            samples.append(reply.total)
    finally:
        await connection.close()


async def _asyncio_load(
    target: Target, concurrency: int, seconds: float, limit: int | None
) -> dict[str, Any]:
    samples: list[float] = []
    errors = [0, 0]
    left = [limit if limit is not None else 1 << 62]
    started = time.perf_counter()
    deadline = started + seconds
    workers = [_worker(target, deadline, left, samples, errors) for _ in range(concurrency)]
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    stats = percentiles(samples)
    return {
        "requests": len(samples),
        "rps": round(len(samples) / elapsed, 1),
        "p50_ms": stats.get("p50_ms", 0.0),
        "p99_ms": stats.get("p99_ms", 0.0),
        "errors": errors[0],
        "non_2xx": errors[1],
    }


def asyncio_load(
    target: Target, concurrency: int, seconds: float, limit: int | None = None
) -> dict[str, Any]:
    return run_async(_asyncio_load(target, concurrency, seconds, limit))


class Loader:
    """wrk when available, else the asyncio client; ``tool`` says which."""

    def __init__(self, folder: Path, use_wrk: bool = True, install: bool = True) -> None:
        self.folder = folder
        self.wrk = ensure_wrk(install) if use_wrk else None
        self.tool = "wrk" if self.wrk else "asyncio"

    def run(
        self, target: Target, concurrency: int, seconds: float, limit: int | None = None
    ) -> dict[str, Any]:
        if self.wrk:
            return wrk_load(self.wrk, target, self.folder, concurrency, seconds, limit)
        return asyncio_load(target, concurrency, seconds, limit)
