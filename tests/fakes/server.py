"""A real HTTP server on 127.0.0.1 that records what it receives and can be told how to misbehave.

:class:`FakeUpstream` runs a Starlette router under uvicorn on its own thread and event loop, so it
serves sync tests, async tests and subprocesses (``nexus serve``) alike. Subclasses add the routes
of one provider (:meth:`FakeUpstream.routes`); everything else lives here:

- every request is recorded as a :class:`RecordedRequest` (``fake.requests``), before any forced
  behaviour applies, so a test can assert that a request was (or was not) made;
- :meth:`FakeUpstream.respond` forces a status and/or body (optionally for one path, a limited
  number of times), :meth:`FakeUpstream.hang` makes requests never answer, :meth:`delay` slows
  them down, :meth:`FakeUpstream.close_connection` drops the connection without any answer;
- :meth:`FakeUpstream.stop` releases hanging requests and shuts down in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Router
from starlette.types import Message, Receive, Scope, Send

START_TIMEOUT = 5.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. Header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class FakeModel:
    """A model a fake serves; each fake renders it in its own wire format. ``extra`` is merged
    into the model's listing entry as is (e.g. ``{"digest": "..."}`` for Ollama)."""

    id: str
    context_length: int | None = None
    vision: bool = False
    tools: bool = False
    methods: tuple[str, ...] = ("generateContent", "countTokens")  # Gemini only
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Forced:
    """A forced behaviour: wait ``delay`` seconds (or forever when ``hang``), then answer ``status``
    with ``body`` when either is set (or close the connection without answering when ``close``),
    else let the real route answer. ``times`` None = forever. ``share`` (0..1): the rule applies
    to that share of the requests only, drawn from ``draw`` (``times`` counts the applied ones)."""

    status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    times: int | None = None
    close: bool = False
    share: float | None = None
    draw: Callable[[], float] = field(default_factory=lambda: random.Random(0).random)


class _QuickServer(uvicorn.Server):
    """uvicorn without its 0.1 s polling: stops as soon as ``stop_event`` is set."""

    stop_event: asyncio.Event

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the default headers (date, server)
        await self.stop_event.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while (self.server_state.connections or self.server_state.tasks) and (
            loop.time() < deadline
        ):
            await asyncio.sleep(0.002)
        for task in list(self.server_state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()


class FakeUpstream:
    """Base of the provider fakes. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, models: Iterable[FakeModel | str] = ()) -> None:
        self.models: list[FakeModel] = []
        self.set_models(*models)
        self.requests: list[RecordedRequest] = []
        self._forced: dict[str | None, Forced] = {}
        self._lock = threading.Lock()
        self._router = Router(routes=self.routes())
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._server: _QuickServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._released: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    # -- what subclasses provide -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The provider's routes (Starlette ``Route`` objects). Unknown paths answer 404."""
        return []

    # -- programming a test ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        assert self._socket is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def set_models(self, *models: FakeModel | str) -> None:
        """Serve exactly ``models`` (a bare string is ``FakeModel(id)``) from now on."""
        self.models = [FakeModel(m) if isinstance(m, str) else m for m in models]

    def model(self, model_id: str) -> FakeModel | None:
        return next((m for m in self.models if m.id == model_id), None)

    def respond(
        self,
        status: int | None = None,
        *,
        body: bytes | str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        path: str | None = None,
        times: int | None = None,
        share: float | None = None,
    ) -> None:
        """Force the answer to requests for ``path`` (every path when None; a path-specific rule
        wins). ``status`` alone keeps a small JSON error body; ``body``/``json_body`` alone keep
        status 200 (e.g. ``body=b"not json"``). ``times`` limits how often the rule applies;
        ``share`` applies it to that share of requests (a seeded draw), the others answer
        normally."""
        if json_body is not None:
            body = json.dumps(json_body)
        if isinstance(body, str):
            body = body.encode()
        if status is not None and body is None:
            body = json.dumps({"error": {"message": f"forced {status}", "code": status}}).encode()
        forced = Forced(status or 200, body, dict(headers or {}), delay, times=times, share=share)
        self._set(path, forced)

    def delay(self, seconds: float, *, path: str | None = None, times: int | None = None) -> None:
        """Answer normally, but only after ``seconds``."""
        self._set(path, Forced(delay=seconds, times=times))

    def hang(self, *, path: str | None = None, times: int | None = None) -> None:
        """Never answer (until the fake stops)."""
        self._set(path, Forced(hang=True, times=times))

    def close_connection(self, *, path: str | None = None, times: int | None = None) -> None:
        """Close the connection without sending anything (not even a status line): the client
        sees the server disconnect (httpx: ``RemoteProtocolError``). The request is recorded."""
        self._set(path, Forced(close=True, times=times))

    async def sleep(self, seconds: float) -> None:
        """For handlers: sleep ``seconds`` on the fake's loop, waking early when the fake stops."""
        assert self._released is not None
        if seconds > 0 and not self._released.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), seconds)

    async def drop_connection(self, scope: Scope, receive: Receive) -> None:
        """For handlers: close the connection of the request ``scope`` now, whatever was sent.
        Bytes already handed to uvicorn are flushed, then the socket closes; nothing more is sent,
        so an unfinished response (e.g. a chunked SSE body) stays unfinished on the wire. Returns
        once uvicorn has seen the disconnect; the caller then just returns."""
        assert self._server is not None
        client = tuple(scope.get("client") or ())
        transports = [
            getattr(connection, "transport", None)
            for connection in list(self._server.server_state.connections)
            if getattr(connection, "client", None) == client
        ]
        if not transports or transports[0] is None:
            raise RuntimeError(f"no connection for client {client}")
        transports[0].close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while (await receive())["type"] != "http.disconnect":
                    pass

    def reset(self) -> None:
        """Forget forced behaviours and recorded requests."""
        with self._lock:
            self._forced.clear()
            self.requests.clear()

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests for ``path`` (and ``method`` when given), oldest first."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method.upper())
            ]

    def _set(self, path: str | None, forced: Forced) -> None:
        with self._lock:
            self._forced[path] = forced

    def _take_forced(self, path: str) -> Forced | None:
        with self._lock:
            key: str | None = path if path in self._forced else None
            forced = self._forced.get(key)
            if forced is not None and forced.share is not None and forced.draw() >= forced.share:
                return None
            if forced is not None and forced.times is not None:
                forced.times -= 1
                if forced.times <= 0:
                    del self._forced[key]
            return forced

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    query=dict(request.query_params),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                )
            )
        forced = self._take_forced(request.url.path)
        if forced is not None:
            await self._wait(forced)
            if forced.close:
                await self.drop_connection(scope, receive)
                return
            if forced.status is not None:
                response = Response(
                    forced.body or b"",
                    status_code=forced.status,
                    headers=forced.headers,
                    media_type="application/json",
                )
                await response(scope, receive, send)
                return
        await self._router(scope, _replay(body, receive), send)

    async def _wait(self, forced: Forced) -> None:
        assert self._released is not None
        if forced.hang:
            await self._released.wait()
        elif forced.delay > 0:
            try:
                await asyncio.wait_for(self._released.wait(), forced.delay)
            except TimeoutError:
                pass

    # -- lifecycle -----------------------------------------------------------------------------

    def _listen(self) -> socket.socket:
        """The listening socket: a free port on 127.0.0.1. Subclasses may pick the port."""
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then; without
        # it, every keep-alive request waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        return sock

    #: Seconds an idle keep-alive connection stays open (uvicorn's own default is 5).
    keep_alive_seconds = 30

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve on a background thread; returns self."""
        self._socket = self._listen()
        config = uvicorn.Config(
            self,
            log_config=None,
            log_level="critical",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_keep_alive=self.keep_alive_seconds,
        )
        self._server = _QuickServer(config)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=f"fake-{type(self).__name__}", daemon=True
        )
        self._thread.start()
        if not started.wait(START_TIMEOUT) or self._startup_error is not None:
            self.stop()
            raise RuntimeError(f"{type(self).__name__} did not start") from self._startup_error
        return self

    def _run(self, started: threading.Event) -> None:
        async def serve() -> None:
            assert self._server is not None and self._socket is not None
            self._loop = asyncio.get_running_loop()
            self._released = asyncio.Event()
            self._server.stop_event = asyncio.Event()
            watcher = asyncio.create_task(_signal_when(self._server, started))
            try:
                await self._server.serve(sockets=[self._socket])
            finally:
                watcher.cancel()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to start(); a test must see it
            self._startup_error = exc
            started.set()

    def stop(self) -> None:
        """Release hanging requests, close every connection and join the thread. Idempotent."""
        loop, server, thread = self._loop, self._server, self._thread
        if loop is not None and server is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._begin_stop)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if thread is not None:
            thread.join(START_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._thread = None

    def _begin_stop(self) -> None:
        assert self._released is not None and self._server is not None
        self._released.set()
        self._server.stop_event.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _signal_when(server: uvicorn.Server, started: threading.Event) -> None:
    while not server.started:
        await asyncio.sleep(0.001)
    started.set()


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that hands out the already-read body once, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
