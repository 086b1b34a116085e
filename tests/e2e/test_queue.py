"""The request queue through a real `nexus serve`, driven by the official `openai` SDK: requests
that find the backend at ``max_concurrent`` wait and are served by priority then arrival; a full
queue and a wait past ``max_wait_seconds`` are 503s with ``Retry-After``; SIGTERM answers every
waiter at once with ``shutting_down`` while the running request finishes.

The fake backend holds chat requests at a gate the test opens (:class:`GatedFake`), so which
requests run and which wait is decided by the test, never by how fast a loaded machine sends."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send

from tests.e2e.configs import CHAT, Gateway, backend, gateway, wait_until
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import Forced

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

RANK = {"high": 0, "normal": 1, "low": 2}
CONTEXT_KEYS = {"required_tier", "available_backends", "eta_seconds", "privacy_zone_required"}


class GatedFake(FakeOpenAI):
    """A FakeOpenAI serving model ``m`` whose chat requests, once recorded, wait at a gate:
    :meth:`let_through` passes that many, :meth:`open` passes every one from now on; then each
    waits the configured :meth:`delay` before its normal answer. It also counts the chat requests
    it holds at once, from arrival to the start of the answer (``most``)."""

    def __init__(self) -> None:
        super().__init__(["m"])
        self._gate = threading.Lock()
        self._opened = False
        self._permits = 0
        self.holding = 0
        self.most = 0

    def hold(self, then: float = 0.0) -> None:
        """Hold every chat request at the gate, then answer ``then`` seconds after passing it."""
        self.delay(then, path=CHAT)

    def let_through(self, count: int = 1) -> None:
        with self._gate:
            self._permits += count

    def open(self) -> None:
        with self._gate:
            self._opened = True

    def _passes(self) -> bool:
        with self._gate:
            if self._opened:
                return True
            if self._permits > 0:
                self._permits -= 1
                return True
            return False

    def _count(self, change: int) -> None:
        with self._gate:
            self.holding += change
            self.most = max(self.most, self.holding)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT:
            return await super().__call__(scope, receive, send)
        self._count(+1)
        answered = False

        async def answering(message: Message) -> None:
            nonlocal answered
            if not answered and message["type"] == "http.response.start":
                answered = True
                self._count(-1)
            await send(message)

        try:
            await super().__call__(scope, receive, answering)
        finally:
            if not answered:
                self._count(-1)

    async def _wait(self, forced: Forced) -> None:
        stopping = self._released
        while not self._passes():
            if stopping is not None and stopping.is_set():
                return
            await asyncio.sleep(0.005)
        await super()._wait(forced)


@pytest.fixture
def fake() -> Iterator[GatedFake]:
    gated = GatedFake()
    with gated:
        yield gated
        gated.open()  # nothing stays held while the fake stops


@contextmanager
def queued_gateway(directory: Path, fake: GatedFake, limit: int, **queue: Any) -> Iterator[Gateway]:
    backends = [backend("gpu", fake.url, max_concurrent=limit)]
    with gateway(directory, backends, queue=queue) as gw:
        yield gw


@dataclass
class Call:
    """One SDK chat call made on its own thread: what it got, and when (monotonic)."""

    text: str
    priority: str | None
    thread: threading.Thread | None = None
    status: int | None = None
    error: openai.APIStatusError | None = None
    failure: BaseException | None = None
    started: float = 0.0
    ended: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)  # its client is built
    go: threading.Event = field(default_factory=threading.Event)  # send now

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def join(self, timeout: float = 10) -> Call:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"call {self.text!r} still running"
        assert self.failure is None, f"call {self.text!r} failed: {self.failure!r}"
        return self

    def body(self) -> Any:
        assert self.error is not None, f"call {self.text!r} got {self.status}, not an error"
        return self.error.response.json()

    def send(self) -> Call:
        """Send the prepared request now (see :func:`chat`)."""
        assert self.ready.wait(10), f"call {self.text!r} has no client"
        self.go.set()
        return self


def chat(gw: Gateway, text: str, priority: str | None = None, *, send: bool = True) -> Call:
    """Start one SDK chat call (no retries) for ``text`` on a thread of its own; with ``send``
    False the thread builds its client and waits for :meth:`Call.send`."""
    call = Call(text, priority)
    headers = {} if priority is None else {"X-Nexus-Priority": priority}
    if send:
        call.go.set()

    def run() -> None:
        with gw.sdk(timeout=30) as (client, _):
            call.ready.set()
            call.go.wait(30)
            call.started = time.monotonic()
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="m",
                    messages=[{"role": "user", "content": text}],
                    extra_headers=headers,
                )
                call.status, call.headers = raw.status_code, dict(raw.headers)
                assert raw.parse().choices[0].message.content == f"echo: {text}"
            except openai.APIStatusError as exc:
                call.status, call.error = exc.status_code, exc
                call.headers = dict(exc.response.headers)
            except BaseException as exc:  # reported by join()
                call.failure = exc
            finally:
                call.ended = time.monotonic()

    call.thread = threading.Thread(target=run, name=f"sdk-{text}", daemon=True)
    call.thread.start()
    return call


def stats(gw: Gateway) -> dict[str, Any]:
    queue: dict[str, Any] = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()["queue"]
    return queue


def waiting(gw: Gateway) -> int:
    count: int = stats(gw)["waiting"]
    return count


def received(fake: GatedFake) -> list[str]:
    """The texts of the chat requests that reached the fake, in the order they arrived."""
    return [r.json()["messages"][0]["content"] for r in fake.requests_to(CHAT)]


def arrived(gw: Gateway, fake: GatedFake) -> int:
    """Requests at the fake plus requests in the queue. The fake is read first, so a request
    moving from the queue to the fake meanwhile is missed, never counted twice."""
    at_fake = len(fake.requests_to(CHAT))
    return at_fake + waiting(gw)


def until_arrived(gw: Gateway, fake: GatedFake, count: int) -> None:
    wait_until(lambda: arrived(gw, fake) == count, what=f"{count} requests arrived")


def until_waiting(gw: Gateway, count: int) -> None:
    wait_until(lambda: waiting(gw) == count, what=f"{count} requests waiting")


def queue_waits(gw: Gateway) -> dict[tuple[str, str], float]:
    """``nexus_queue_wait_seconds_count`` by (priority, outcome), from ``/metrics``."""
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "nexus_queue_wait_seconds_count":
                counts[sample.labels["priority"], sample.labels["outcome"]] = sample.value
    return counts


def queue_depth(gw: Gateway) -> dict[str, float]:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    return {
        sample.labels["priority"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "nexus_queue_depth"
    }


def test_twenty_sdk_requests_on_two_slots_are_served_by_priority_then_arrival(
    tmp_path: Path, fake: GatedFake
) -> None:
    fake.hold(then=0.3)
    priorities = ["low", "normal", "high", "normal", "low"] * 4
    with queued_gateway(tmp_path, fake, 2, max_wait_seconds=10) as gw:
        calls = [chat(gw, str(i), priority, send=False) for i, priority in enumerate(priorities)]
        for i, call in enumerate(calls):
            call.send()
            until_arrived(gw, fake, i + 1)
        assert len(fake.requests_to(CHAT)) == 2
        assert stats(gw)["by_priority"] == {"high": 4, "normal": 7, "low": 7}
        assert queue_depth(gw) == {"high": 4, "normal": 7, "low": 7}
        # The two running requests end 0.15 s apart, so the two slots free at different times
        # and each admission reaches the fake alone: the arrival order at the fake is the
        # order of admission.
        fake.let_through(1)
        time.sleep(0.15)
        fake.open()
        for call in calls:
            call.join(timeout=15)
        summary = stats(gw)
        waits = queue_waits(gw)
        assert gw.in_flight() == {"gpu": 0}

    assert [call.status for call in calls] == [200] * 20
    queued = sorted(range(2, 20), key=lambda i: (RANK[priorities[i]], i))
    assert received(fake) == ["0", "1", *map(str, queued)]
    assert fake.most == 2, "the fake held at most max_concurrent requests at once"
    assert max(call.elapsed for call in calls) < 10, "no request waited max_wait_seconds"
    assert all(call.headers["x-nexus-backend"] == "gpu" for call in calls)
    assert summary["waiting"] == 0
    assert summary["ended"] == {
        "served": 18,
        "rejected": 0,
        "full": 0,
        "timeout": 0,
        "shutdown": 0,
        "left": 0,
    }
    served = {p: v for (p, outcome), v in waits.items() if outcome == "served"}
    assert served == {"high": 4, "normal": 7, "low": 7}
    assert sum(served.values()) == 18
    assert all(outcome == "served" for _, outcome in waits)


def test_a_full_queue_answers_503_at_once(tmp_path: Path, fake: GatedFake) -> None:
    fake.hold()
    with queued_gateway(tmp_path, fake, 1, max_size=2) as gw:
        running = chat(gw, "running")
        wait_until(lambda: len(fake.requests_to(CHAT)) == 1, what="the first request runs")
        held = [running]
        for count, text in enumerate(["second", "third"], start=1):
            held.append(chat(gw, text))
            until_waiting(gw, count)
        with gw.sdk() as (client, _), pytest.raises(openai.APIStatusError) as caught:
            started = time.monotonic()
            try:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "fourth"}]
                )
            finally:
                refused_after = time.monotonic() - started
        assert waiting(gw) == 2, "the refused request did not take a place"
        fake.open()
        for call in held:
            call.join()
        summary = stats(gw)

    error = caught.value
    assert isinstance(error, openai.InternalServerError)
    assert error.status_code == 503
    assert refused_after < 0.5
    assert "queue is full (2 requests waiting)" in error.message
    body = error.response.json()
    assert "queue is full (2 requests waiting)" in body["error"]["message"]
    assert set(body["context"]) == CONTEXT_KEYS
    assert body["context"]["available_backends"] == ["gpu"]
    assert error.response.headers["retry-after"] == "30"  # ceil(max_wait_seconds), the default
    assert [call.status for call in held] == [200] * 3
    assert received(fake) == ["running", "second", "third"]
    assert summary["ended"]["full"] == 1
    assert summary["ended"]["served"] == 2


def test_a_wait_past_max_wait_seconds_is_a_503(tmp_path: Path, fake: GatedFake) -> None:
    fake.hold()
    with queued_gateway(tmp_path, fake, 1, max_wait_seconds=1) as gw:
        running = chat(gw, "running")
        wait_until(lambda: len(fake.requests_to(CHAT)) == 1, what="the first request runs")
        late = chat(gw, "late", "high").join(timeout=10)
        summary = stats(gw)
        waits = queue_waits(gw)
        fake.open()
        running.join()

    assert late.status == 503
    assert 1.0 <= late.elapsed < 2.5, late.elapsed
    assert isinstance(late.error, openai.InternalServerError)
    body = late.body()
    assert "still so after waiting 1 s in the queue" in body["error"]["message"]
    assert set(body["context"]) == CONTEXT_KEYS
    assert late.headers["retry-after"] == "1"
    assert late.headers["x-nexus-backend"] == "none"
    assert running.status == 200
    assert received(fake) == ["running"]
    assert summary["waiting"] == 0
    assert summary["ended"]["timeout"] == 1
    assert waits == {("high", "timeout"): 1}


def test_sigterm_answers_the_waiters_at_once_and_lets_the_running_request_finish(
    tmp_path: Path, fake: GatedFake
) -> None:
    fake.hold(then=1.5)
    with queued_gateway(tmp_path, fake, 1) as gw:
        running = chat(gw, "running")
        wait_until(lambda: len(fake.requests_to(CHAT)) == 1, what="the first request runs")
        queued: list[Call] = []
        for count, priority in enumerate(["low", "high", "normal"], start=1):
            queued.append(chat(gw, f"queued-{priority}", priority))
            until_waiting(gw, count)
        assert stats(gw)["by_priority"] == {"high": 1, "normal": 1, "low": 1}
        signalled = time.monotonic()
        gw.served.process.send_signal(signal.SIGTERM)
        for call in queued:
            call.join(timeout=5)
        assert running.thread is not None and running.thread.is_alive()
        fake.open()  # the running request is answered 1.5 s from now
        running.join(timeout=10)
        code = gw.served.process.wait(timeout=15)

    for call in queued:
        assert call.status == 503
        assert call.ended - signalled < 0.5, f"{call.text} answered {call.ended - signalled} s late"
        assert call.body()["error"]["code"] == "shutting_down"
        assert call.headers["retry-after"] == "5"
    assert running.status == 200
    assert running.ended > max(call.ended for call in queued) + 1.0
    assert received(fake) == ["running"]
    assert code == 0
