"""Fake backends for the fault suite and the soak, built on :class:`~tests.fakes.openai.FakeOpenAI`.

:class:`MisbehavingFake` adds answers the stock knobs do not have, each programmed with
:meth:`MisbehavingFake.misbehave` (``times`` None = until ``reset()``), on the chat path only::

    empty-sse       200 text/event-stream whose body ends at once: no event at all
    sse-no-done     the stream's first ``events`` events, then a clean end without ``[DONE]``
    malformed-sse   a normal stream whose second event carries broken JSON, ``[DONE]`` kept
    stall-after     ``events`` events, then nothing (until the fake stops)
    short-json      200 JSON declaring a longer Content-Length than it sends, then the socket closes
    empty-json      200 application/json with an empty body

:class:`RestartableFake` keeps its port across ``stop()``/``start()`` (a backend that flaps).
:class:`RandomlyFailingFake` fails a share of chat and embeddings calls at random (the soak) and
keeps a ledger of what it did for each request marker.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.fakes.chat import last_user_text
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel, FakeUpstream

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
KINDS = ("empty-sse", "sse-no-done", "malformed-sse", "stall-after", "short-json", "empty-json")
BROKEN_EVENT = b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "x\n\n'


@dataclass
class Misbehaviour:
    kind: str
    events: int = 0
    times: int | None = None
    delay: float = 0.0


class _Raw(Response):
    """Sends ``parts`` as the body after the status line; ``then`` says how it ends: ``end``
    (a clean end), ``stall`` (wait until the fake stops) or ``drop`` (close the socket)."""

    def __init__(
        self,
        fake: FakeUpstream,
        parts: list[bytes],
        *,
        media_type: str,
        then: str,
        content_length: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.fake, self.parts, self.then, self.delay = fake, parts, then, delay
        self.status_code = 200
        self.background = None
        self.media_type = media_type
        headers = {} if content_length is None else {"content-length": str(content_length)}
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        for i, part in enumerate(self.parts):
            if i:
                await self.fake.sleep(self.delay)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        if self.then == "stall":
            await self.fake.sleep(3600)
        elif self.then == "drop":
            await self.fake.drop_connection(scope, receive)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class MisbehavingFake(FakeOpenAI):
    """FakeOpenAI plus the answers of the module docstring."""

    def __init__(self, models: Iterable[FakeModel | str] = ()) -> None:
        super().__init__(models)
        self._misbehaviour: Misbehaviour | None = None
        self.arrivals: list[tuple[str, float]] = []  # (path, time.monotonic()) of each request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.arrivals.append((scope["path"], time.monotonic()))
        await super().__call__(scope, receive, send)

    def arrived(self, path: str = CHAT_PATH) -> list[float]:
        """When each request for ``path`` arrived (time.monotonic), oldest first."""
        with self._lock:
            return [at for where, at in self.arrivals if where == path]

    def misbehave(
        self, kind: str, *, events: int = 0, times: int | None = None, delay: float = 0.0
    ) -> None:
        """Answer chat requests the ``kind`` way (see the module docstring); ``delay`` paces
        the events sent."""
        assert kind in KINDS, kind
        with self._lock:
            self._misbehaviour = Misbehaviour(kind, events, times, delay)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._misbehaviour = None

    def _take_misbehaviour(self) -> Misbehaviour | None:
        with self._lock:
            rule = self._misbehaviour
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._misbehaviour = None
            return rule

    async def chat_completions(self, request: Request) -> Response:
        rule = self._take_misbehaviour()
        if rule is None:
            return await super().chat_completions(request)
        payload = json.loads(await request.body())
        answer = self.answer(payload)
        events = self.render_stream(answer, include_usage=False)
        whole = self.render_completion(answer)
        sse, js = "text/event-stream", "application/json"
        if rule.kind == "empty-sse":
            return _Raw(self, [], media_type=sse, then="end")
        if rule.kind == "sse-no-done":
            return _Raw(self, events[: rule.events], media_type=sse, then="end")
        if rule.kind == "malformed-sse":
            return _Raw(self, [events[0], BROKEN_EVENT, *events[1:]], media_type=sse, then="end")
        if rule.kind == "stall-after":
            parts = events[: rule.events]
            return _Raw(self, parts, media_type=sse, then="stall", delay=rule.delay)
        if rule.kind == "short-json":
            half = whole[: len(whole) // 2]
            return _Raw(self, [half], media_type=js, then="drop", content_length=len(whole))
        return _Raw(self, [], media_type=js, then="end", content_length=0)


class RestartableFake(MisbehavingFake):
    """A fake that comes back on the same port after ``stop()``: a backend that flaps. Its
    sockets (the accepted ones inherit it) carry SO_REUSEADDR, so the port can be bound again
    while the old connections close."""

    port: int | None = None

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or 0))
        self.port = int(sock.getsockname()[1])
        return sock


#: How the soak's fakes fail, and the share of calls (of every chat or embeddings call) for each.
SOAK_FAILURES = {"500": 0.04, "503": 0.025, "close": 0.02, "break": 0.013, "429": 0.002}
RATE_LIMIT_EVERY = 10.0
_ANY_429_LOCK = threading.Lock()
_LAST_429 = [-RATE_LIMIT_EVERY]  # when any soak fake last answered 429


class RandomlyFailingFake(FakeOpenAI):
    """Fails ``SOAK_FAILURES`` of the calls at random (seeded), and records per marker (the last
    user text, unique per request) what it answered: ``ledger[marker]`` counts ``served`` (a
    whole answer), ``broken`` (a stream cut after its first events) and ``failed`` answers."""

    def __init__(self, seed: int, models: Iterable[FakeModel | str] = ()) -> None:
        super().__init__(models)
        self.rng = random.Random(seed)
        self.ledger: dict[str, Counter[str]] = {}
        self._last_429 = -RATE_LIMIT_EVERY

    def _note(self, marker: str, what: str) -> None:
        with self._lock:
            self.ledger.setdefault(marker, Counter())[what] += 1

    def _draw(self) -> str | None:
        """A failure kind or None. A 429 cools the backend down for its Retry-After (1 s)
        whatever the request rate, so a fake sends at most one per ``RATE_LIMIT_EVERY`` seconds
        and never within 2 s of another fake's (two of three backends cooling at once would
        turn the soak into a cooldown test); else a 500."""
        with self._lock:
            roll = self.rng.random()
        for name, share in SOAK_FAILURES.items():
            if roll < share:
                return self._rate_limit_or_500() if name == "429" else name
            roll -= share
        return None

    def _rate_limit_or_500(self) -> str:
        now = time.monotonic()
        with _ANY_429_LOCK:
            if now - self._last_429 < RATE_LIMIT_EVERY or now - _LAST_429[0] < 2.0:
                return "500"
            self._last_429 = _LAST_429[0] = now
        return "429"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in (CHAT_PATH, EMBEDDINGS_PATH):
            return await super().__call__(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = json.loads(body)
        marker = _marker(payload)
        failure = self._draw()
        if failure == "break" and not (scope["path"] == CHAT_PATH and payload.get("stream")):
            failure = "500"
        if failure in ("500", "503", "429"):
            self._note(marker, "failed")
            headers = {"retry-after": "1"} if failure == "429" else {}
            error = {"error": {"message": "forced", "type": "server_error", "param": None}}
            error["error"]["code"] = failure
            response = Response(
                json.dumps(error), int(failure), headers=headers, media_type="application/json"
            )
            return await response(scope, receive, send)
        if failure == "close":
            self._note(marker, "failed")
            return await self.drop_connection(scope, receive)
        if failure == "break":
            self._note(marker, "broken")
            events = self.render_stream(self.answer(payload), include_usage=False)
            return await _Raw(self, events[:2], media_type="text/event-stream", then="drop")(
                scope, receive, send
            )
        self._note(marker, "served")
        await self._router(scope, _replayed(body, receive), send)


def _marker(payload: dict[str, Any]) -> str:
    if "messages" in payload:
        return last_user_text(payload)
    value = payload.get("input")
    return value if isinstance(value, str) else json.dumps(value)


def _replayed(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay
