"""A minimal asyncio HTTP/1.1 client with keep-alive: small and predictable, so that the client's
own cost stays far below what is measured. Handles ``content-length``, ``chunked`` and read-to-close
bodies; records the time to the first body byte and the total time of every request.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    ttfb: float  # seconds from sending the request to the first body byte
    total: float  # seconds from sending the request to the end of the body


def build_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    """A POST with ``body`` (or a GET when ``body`` is empty), keep-alive, as raw bytes."""
    method = "POST" if body else "GET"
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}", "connection: keep-alive"]
    if body:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; reopened after the server closes it or an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> Reply:
        """Send ``request`` and read the whole answer; raises on transport errors."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        started = time.perf_counter()
        try:
            writer.write(request)
            status, headers = await _read_head(reader)
            body, first = await _read_body(reader, headers)
        except BaseException:
            await self.close()
            raise
        ended = time.perf_counter()
        if headers.get("connection") == "close" or _no_length(headers):
            await self.close()
        return Reply(status, body, (first or ended) - started, ended - started)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, asyncio.CancelledError):
                pass


def _no_length(headers: dict[str, str]) -> bool:
    return "content-length" not in headers and headers.get("transfer-encoding") != "chunked"


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(CRLF + CRLF)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    return status, headers


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str]
) -> tuple[bytes, float | None]:
    """The body and the moment its first byte arrived (None for an empty body)."""
    if headers.get("transfer-encoding") == "chunked":
        return await _read_chunked(reader)
    if "content-length" in headers:
        length = int(headers["content-length"])
        body = await reader.readexactly(length) if length else b""
        return body, time.perf_counter() if body else None
    first = await reader.read(65536)
    moment = time.perf_counter() if first else None
    rest = await reader.read()
    return first + rest, moment


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, float | None]:
    parts: list[bytes] = []
    first: float | None = None
    while True:
        size = int((await reader.readuntil(CRLF)).split(b";", 1)[0], 16)
        if size == 0:
            while (await reader.readuntil(CRLF)) != CRLF:  # trailers, then the blank line
                pass
            return b"".join(parts), first
        parts.append((await reader.readexactly(size + 2))[:-2])
        if first is None:
            first = time.perf_counter()


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99 and mean of ``samples`` (seconds), in milliseconds; empty dict for no samples."""
    if not samples:
        return {}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "count": len(ordered),
    }
