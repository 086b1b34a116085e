"""An SSE answer for the provider fakes: events paced by the fake, optionally cut off mid-body.

``break_after`` N sends the first N events and then drops the connection without finishing the
chunked body (the client sees the connection break); None sends every event and ends normally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.fakes.server import FakeUpstream


class PacedEvents(Response):
    """``events`` (already framed bytes) sent one by one, ``delay`` seconds apart."""

    media_type = "text/event-stream"

    def __init__(
        self,
        fake: FakeUpstream,
        events: Sequence[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        break_after: int | None = None,
    ) -> None:
        self.fake = fake
        self.events = list(events)
        self.delay = delay
        self.break_after = break_after
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        events = self.events if self.break_after is None else self.events[: self.break_after]
        for i, event in enumerate(events):
            if i:
                await self.fake.sleep(self.delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if self.break_after is not None:
            await self.fake.drop_connection(scope, receive)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
