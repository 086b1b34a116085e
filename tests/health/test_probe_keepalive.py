"""A probe that reuses a pooled connection just as the server closes it (uvicorn's, and so vLLM's,
keep-alive is 5 s, the same as a common probe interval) must not eject a healthy backend: the
probe is retried once on a fresh connection, and only a refused *new* connection counts as
refused. Real sockets on 127.0.0.1: a tiny HTTP server that answers each connection's first
request and closes the connection, without an answer, when a second request arrives on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from nexus.config.model import BackendConfig
from nexus.errors import Failure
from nexus.health.probes import probe

LISTING = b'{"object":"list","data":[{"id":"m","object":"model"}]}'


class OneRequestPerConnection:
    """Answers the first request of a connection with keep-alive; closes on the second."""

    def __init__(self) -> None:
        self.connections = 0
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if served:  # the server's keep-alive ran out just as the request came
                    self.dropped += 1
                    break
                served += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(LISTING), LISTING)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def racing_server() -> AsyncIterator[OneRequestPerConnection]:
    fake = OneRequestPerConnection()
    fake.server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    async with fake.server:
        yield fake


def vllm(port: int) -> BackendConfig:
    return BackendConfig.model_validate(
        {"name": "gpu", "type": "vllm", "url": f"http://127.0.0.1:{port}"}
    )


async def test_a_connection_closed_by_keep_alive_is_retried_not_refused(racing_server) -> None:
    config = vllm(racing_server.port)
    async with httpx.AsyncClient() as client:
        first = await probe(config, client, timeout=2)
        second = await probe(config, client, timeout=2)  # reuses the pooled connection
    assert first.ok and second.ok, second.error
    assert racing_server.dropped == 1, "the second probe did hit the closed connection"
    assert racing_server.connections == 2, "and was retried once on a fresh connection"


async def test_a_refused_new_connection_is_still_refused() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with httpx.AsyncClient() as client:
        result = await probe(vllm(port), client, timeout=2)
    assert not result.ok and result.failure is Failure.REFUSED
