"""Raw ASGI calls into the app: any header bytes (CR, LF, NUL, non-ASCII; an HTTP client would
refuse to send them, a server in front might not) and any body bytes, with the response as the
app sent it (header names and values as bytes). The app and its lifespan run on a portal thread,
so sync hypothesis tests can drive it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


async def call(
    app: FastAPI,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    query: bytes = b"",
) -> RawResponse:
    """One request; the client stays connected until the whole response is sent."""
    finished = asyncio.Event()
    sent = False
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                finished.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"nexus"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    async with asyncio.timeout(30):
        await app(scope, receive, send)
    return RawResponse(start["status"], list(start.get("headers", [])), b"".join(chunks))


@dataclass
class Running:
    """An app whose lifespan runs on ``portal``'s thread."""

    app: FastAPI
    portal: BlockingPortal

    def call(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        query: bytes = b"",
    ) -> RawResponse:
        return self.portal.call(call, self.app, method, path, headers, body, query)


@contextmanager
def running(app: FastAPI) -> Iterator[Running]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        yield Running(app, portal)
