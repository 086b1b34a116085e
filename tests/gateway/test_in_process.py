"""The whole request path in-process: the real app and gateway, driven by the official OpenAI
SDK over ``httpx.ASGITransport``, with the upstream attempts replaced by a fake opener, the health
probes by ``httpx.MockTransport`` and time by a fake clock. No socket is opened."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import openai
import orjson
import pytest

from nexus.app import create_app
from nexus.backends.state import BackendView
from nexus.config import NexusConfig
from nexus.errors import UpstreamUnreachable
from nexus.gateway import Call, Gateway
from nexus.observability.events import Completed
from nexus.upstream.reply import BodyReply, Reply

TIMEOUT = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def completion(text: str) -> bytes:
    return orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )


def chunk(text: str) -> bytes:
    event = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(event) + b"\n\n"


class StalledStream:
    """A stream that sends one chunk, then its second after the clock jumped past the
    whole-request limit, then would go on forever."""

    status_code = 200
    content_type: str | None = "text/event-stream"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        yield chunk("one")
        self.clock.now += TIMEOUT + 1  # the backend stalls past the deadline
        yield chunk("two")
        while True:
            yield chunk("never")

    async def read(self) -> bytes:
        raise AssertionError("a stream is not read whole")

    async def aclose(self) -> None:
        self.closed = True


Behaviour = Callable[[Call], Reply]


class FakeOpener:
    """Answers each attempt by the behaviour given for its backend, and records the attempts."""

    def __init__(self, behaviours: dict[str, Behaviour]) -> None:
        self.behaviours = behaviours
        self.attempts: list[tuple[str, str, bytes]] = []

    async def __call__(
        self, backend: BackendView, model: str, call: Call, *, timeout: float
    ) -> Reply:
        self.attempts.append((backend.name, model, call.raw))
        return self.behaviours[backend.name](call)


def unreachable(name: str) -> Behaviour:
    def fail(_: Call) -> Reply:
        raise UpstreamUnreachable("cannot connect: refused", backend=name)

    return fail


def models_listing(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/v1/models"
    return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "object": "model"}]})


class Recorder:
    def __init__(self) -> None:
        self.events: list[Completed] = []

    def completed(self, event: Completed) -> None:
        self.events.append(event)


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the in-process path opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@asynccontextmanager
async def running(
    opener: FakeOpener, clock: FakeClock, **routing: Any
) -> AsyncIterator[tuple[openai.AsyncOpenAI, Gateway, Recorder]]:
    config = NexusConfig.model_validate(
        {
            "server": {"request_timeout_seconds": TIMEOUT},
            "discovery": {"enabled": False},
            "health_check": {"interval_seconds": 60},
            "routing": {"max_retries": 2, **routing},
            "backends": [
                {"name": "a", "type": "vllm", "url": "http://a.invalid", "priority": 1},
                {"name": "b", "type": "vllm", "url": "http://b.invalid", "priority": 2},
            ],
        }
    )
    app = create_app(
        config,
        transport=httpx.MockTransport(models_listing),
        opener=opener,
        clock=clock,
        environ={},
    )
    recorder = Recorder()
    app.gateway.observer = recorder
    async with app.router.lifespan_context(app):
        assert app.gateway.checker is not None
        await app.gateway.checker.probe(app.gateway.registry.configs())
        statuses = {b.name: b.status.value for b in app.gateway.registry.snapshot().backends}
        assert statuses == {"a": "healthy", "b": "healthy"}, "probed through the mock transport"
        # openai 3.x runs on httpx2
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://nexus")
        async with http:
            client = openai.AsyncOpenAI(
                base_url="http://nexus/v1", api_key="unused", http_client=http, max_retries=0
            )
            yield client, app.gateway, recorder


MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


async def test_chat_fails_over_and_reports_from_the_outcome_values() -> None:
    clock = FakeClock()

    def answer(_: Call) -> Reply:
        clock.now += 0.25  # the backend takes 250 ms of fake time
        return BodyReply(200, completion("hello"))

    opener = FakeOpener({"a": unreachable("a"), "b": answer})
    async with running(opener, clock) as (client, gateway, recorder):
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
        reply = raw.parse()
    assert reply.choices[0].message.content == "hello"
    assert raw.headers["x-nexus-backend"] == "b"
    assert raw.headers["x-nexus-route-reason"] == "failover"
    assert [name for name, _, _ in opener.attempts] == ["a", "b"]
    (event,) = recorder.events
    assert (event.backend, event.status, event.route_reason) == ("b", 200, "failover")
    assert (event.failed_attempts, event.failovers) == (1, 1)
    assert event.ttfb_s == pytest.approx(0.25) and event.duration_s == pytest.approx(0.25)
    statuses = {b.name: b.status.value for b in gateway.registry.snapshot().backends}
    assert statuses["a"] == "unhealthy", "a refused connection takes the backend out at once"


async def test_stream_past_the_deadline_ends_with_an_error_event_on_the_gateway_clock() -> None:
    clock = FakeClock()
    stalled = StalledStream(clock)
    opener = FakeOpener({"a": lambda _: stalled})
    async with running(opener, clock) as (client, gateway, recorder):
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        texts: list[str | None] = []
        with pytest.raises(openai.APIError) as caught:
            async for part in stream:
                texts.append(part.choices[0].delta.content)
        in_flight = {b.name: b.in_flight for b in gateway.registry.snapshot().backends}
    assert texts == ["one", "two"], "every chunk before the deadline is passed on"
    assert "whole-request limit" in caught.value.message
    assert stalled.closed and in_flight == {"a": 0, "b": 0}
    (event,) = recorder.events
    assert event.stream and event.stream_broken and event.status == 200
    assert event.duration_s == pytest.approx(TIMEOUT + 1)


async def test_every_attempt_failing_is_a_503_planned_once() -> None:
    clock = FakeClock()
    opener = FakeOpener({"a": unreachable("a"), "b": unreachable("b")})
    async with running(opener, clock) as (client, gateway, recorder):
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="m", messages=MESSAGES)
        decisions = gateway.observability.metrics.exposition().decode()
    response = caught.value.response
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "backend_unreachable"
    assert body["context"]["available_backends"] == []
    eta = body["context"]["eta_seconds"]
    assert eta == 60 and response.headers["retry-after"] == "60", "the next probe of a or b"
    assert "nexus_planner_decision_seconds_count 1.0" in decisions
    (event,) = recorder.events
    assert (event.status, event.failed_attempts, event.failovers) == (503, 2, 1)


async def test_an_alias_sends_the_resolved_model_and_passes_the_answer_unchanged() -> None:
    clock = FakeClock()
    opener = FakeOpener({"a": lambda _: BodyReply(200, completion("ok"))})
    async with running(opener, clock, aliases={"fast": "m"}) as (client, _, _):
        raw = await client.chat.completions.with_raw_response.create(
            model="fast", messages=MESSAGES, seed=7
        )
    ((name, model, sent),) = opener.attempts
    assert (name, model) == ("a", "m")
    # the client's bytes reach the opener as sent; the relay rewrites only "model" (tested in
    # tests/upstream), so every other field goes out unchanged
    assert orjson.loads(sent) == {"model": "fast", "messages": MESSAGES, "seed": 7}
    assert raw.http_response.content == completion("ok"), "the body is the backend's, unchanged"
