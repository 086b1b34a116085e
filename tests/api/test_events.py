"""Every response of the inference endpoints is reported once, when it is over."""

from __future__ import annotations

from nexus.observability.events import Completed
from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel


class Recorder:
    def __init__(self) -> None:
        self.events: list[Completed] = []

    def completed(self, event: Completed) -> None:
        self.events.append(event)


async def test_json_error_and_stream_events(start_fake) -> None:
    bad, good = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    bad.set_models(FakeModel("m"))
    good.set_models(FakeModel("m"))
    bad.server_error(500)
    good.chunk_count = 3
    backends = [
        {"name": "a", "type": "vllm", "url": bad.url, "priority": 1},
        {"name": "b", "type": "vllm", "url": good.url, "priority": 2},
    ]
    async with gateway(backends) as gw:
        recorder = Recorder()
        gw.app.gateway.observer = recorder
        await gw.client.post(CHAT, json=chat_body())
        await gw.client.post(CHAT, json=chat_body("nope"))
        await gw.client.post(CHAT, content=b"{")
        await gw.client.post(CHAT, json=chat_body(stream=True))
    failover, unknown, malformed, stream = recorder.events
    assert (failover.backend, failover.status, failover.failed_attempts) == ("b", 200, 1)
    assert failover.route_reason == "failover" and failover.location == "local"
    assert failover.ttfb_s is not None and failover.duration_s >= failover.ttfb_s
    assert (unknown.status, unknown.backend, unknown.model) == (404, None, "nope")
    assert (malformed.status, malformed.model) == (400, "-")
    assert stream.stream and stream.status == 200 and not stream.stream_broken
    assert stream.endpoint == "chat"


async def test_broken_stream_is_reported_as_broken(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    fake.break_stream_after(2)
    async with gateway([{"name": "a", "type": "vllm", "url": fake.url}]) as gw:
        recorder = Recorder()
        gw.app.gateway.observer = recorder
        await gw.client.post(CHAT, json=chat_body(stream=True))
    [event] = recorder.events
    assert event.stream_broken and event.status == 200
