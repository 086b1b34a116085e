"""Many concurrent streams through one `nexus serve` process, and clients that walk away."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.configs import CHAT, DONE, Gateway, backend, event_data, gateway, sse_events
from tests.fakes.chat import OpenAICompatibleFake
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(45)]

STREAMS = 200
CHUNKS = 10
GPU_LIMIT = 25  # max_concurrent of "gpu": the rest of the load overflows to "laptop"


@dataclass
class Pool:
    gw: Gateway
    fakes: tuple[OpenAICompatibleFake, ...]

    def open_streams(self) -> int:
        return sum(fake.open_streams for fake in self.fakes)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    with FakeOpenAI() as gpu, FakeOllama() as laptop:
        for fake in (gpu, laptop):
            fake.set_models(FakeModel("m"))
        backends = [
            backend("gpu", gpu.url, priority=10, max_concurrent=GPU_LIMIT),
            backend("laptop", laptop.url, "ollama"),
        ]
        with gateway(tmp_path_factory.mktemp("pool"), backends) as gw:
            yield Pool(gw, (gpu, laptop))


@pytest.fixture(autouse=True)
def _pacing(pool: Pool) -> Iterator[None]:
    for fake in pool.fakes:
        fake.reset()
        # streams of about 1.1 s, so that 200 of them overlap even on a busy machine
        fake.chunk_count, fake.chunk_delay, fake.first_chunk_delay = CHUNKS, 0.1, 0.0
    yield
    for fake in pool.fakes:
        fake.reset()


def request(i: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": f"load {i}"}], "stream": True}


async def test_200_concurrent_streams_complete_and_in_flight_returns_to_zero(pool: Pool) -> None:
    peak = peak_gpu = 0

    async def watch() -> None:
        nonlocal peak, peak_gpu
        while True:
            peak = max(peak, pool.open_streams())
            peak_gpu = max(peak_gpu, pool.fakes[0].open_streams)
            await asyncio.sleep(0.005)

    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=pool.gw.url, limits=limits, timeout=30) as client:

        async def one(i: int) -> tuple[int, httpx.Headers, bytes]:
            async with client.stream("POST", CHAT, json=request(i)) as response:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
                return response.status_code, response.headers, body

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        try:
            results = await asyncio.gather(*(one(i) for i in range(STREAMS)))
        finally:
            watcher.cancel()
        elapsed = time.monotonic() - started

    assert peak >= STREAMS // 4, f"streams did not overlap (peak {peak} open upstream)"
    assert peak_gpu <= GPU_LIMIT, f"gpu had {peak_gpu} streams open, limit {GPU_LIMIT}"
    reasons = {(h["x-nexus-backend"], h["x-nexus-route-reason"]) for _, h, _ in results}
    assert ("laptop", "capacity-overflow") in reasons
    assert reasons <= {
        ("gpu", "capability-match"),
        ("laptop", "capability-match"),
        ("laptop", "capacity-overflow"),
    }
    for i, (status, headers, body) in enumerate(results):
        assert status == 200
        assert headers["content-type"].startswith("text/event-stream")
        events = sse_events(body)
        assert events[-1] == DONE, f"stream {i} did not end with [DONE]"
        assert len(events) == 1 + CHUNKS + 1 + 1
        chunks = event_data(body)
        assert not any("error" in chunk for chunk in chunks)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == f"echo: load {i}"
    served = sum(len(fake.requests_to(CHAT)) for fake in pool.fakes)
    assert served == STREAMS, "one upstream request per stream, no retries"
    assert pool.open_streams() == 0
    assert pool.gw.in_flight() == {"gpu": 0, "laptop": 0}
    assert elapsed < 20, f"{STREAMS} streams took {elapsed:.1f} s"


def wait_for(check: Any, timeout: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "not in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_client_disconnect_mid_stream_cancels_the_upstream(pool: Pool) -> None:
    for fake in pool.fakes:
        fake.chunk_count, fake.chunk_delay = 40, 0.25  # 10 s if nobody cancels it
    with pool.gw.sdk() as (client, _):
        stream = client.chat.completions.create(**request(1))
        with stream:
            received = [next(stream) for _ in range(2)]
            assert pool.open_streams() == 1
            assert sum(pool.gw.in_flight().values()) == 1
        assert received[1].choices[0].delta.content
    cancelled_after = wait_for(lambda: pool.open_streams() == 0, timeout=3)
    assert cancelled_after < 2, "the upstream stream was cancelled, not run to its end"
    wait_for(lambda: pool.gw.in_flight() == {"gpu": 0, "laptop": 0}, timeout=2)
    with pool.gw.sdk() as (client, _):  # and the gateway still serves
        for fake in pool.fakes:
            fake.chunk_count, fake.chunk_delay = 2, 0.0
        assert "".join(
            c.choices[0].delta.content or "" for c in client.chat.completions.create(**request(2))
        ) == ("echo: load 2")


def test_client_gone_before_the_first_byte_leaks_nothing(pool: Pool) -> None:
    """The client leaves while Nexus still waits for the backend's first byte: once the backend
    answers, its stream is cancelled and the in-flight count returns to 0."""
    for fake in pool.fakes:
        fake.first_chunk_delay, fake.chunk_count, fake.chunk_delay = 0.6, 40, 0.25
    with httpx.Client(base_url=pool.gw.url) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(CHAT, content=json.dumps(request(3)).encode(), timeout=0.2)
    wait_for(lambda: pool.open_streams() == 0 and sum(pool.gw.in_flight().values()) == 0, 3)
    assert sum(len(fake.requests_to(CHAT)) for fake in pool.fakes) == 1


def test_client_gone_during_a_json_request_leaks_nothing(pool: Pool) -> None:
    for fake in pool.fakes:
        fake.delay(0.6, path=CHAT, times=1)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "slow"}]})
    with httpx.Client(base_url=pool.gw.url) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(CHAT, content=body.encode(), timeout=0.2)
    wait_for(lambda: sum(pool.gw.in_flight().values()) == 0, timeout=3)
    assert sum(len(fake.requests_to(CHAT)) for fake in pool.fakes) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_client_gone_before_any_answer_cancels_the_upstream_at_once(
    pool: Pool, stream: bool
) -> None:
    for fake in pool.fakes:  # the backend takes 1.5 s to answer (think: a long prompt prefill)
        if stream:
            fake.first_chunk_delay = 1.5
        else:
            fake.delay(1.5, path=CHAT, times=1)
    payload = {"model": "m", "messages": [{"role": "user", "content": "slow"}], "stream": stream}
    try:
        with httpx.Client(base_url=pool.gw.url) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.post(CHAT, content=json.dumps(payload).encode(), timeout=0.2)
        released_after = wait_for(lambda: sum(pool.gw.in_flight().values()) == 0, timeout=4)
        assert released_after < 0.7, (
            f"the upstream attempt outlived its client by {released_after:.1f} s"
        )
    finally:  # leave the shared gateway idle for the next test
        wait_for(lambda: sum(pool.gw.in_flight().values()) == 0, timeout=5)


def test_events_reach_the_client_as_the_backend_sends_them(pool: Pool) -> None:
    """Nothing is buffered: each event arrives when the backend sends it, not at the end."""
    for fake in pool.fakes:
        fake.chunk_count, fake.chunk_delay = 3, 0.3  # role, 3 content, finish, [DONE]: 1.5 s
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.Client(base_url=pool.gw.url, timeout=10) as client:
        with client.stream("POST", CHAT, json=request(4)) as response:
            headers_at = time.monotonic() - started
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 6
    assert headers_at < 0.25 and arrivals[0] < 0.25, "headers and first event at once"
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap > 0.15 for gap in gaps), f"events arrived in bursts: {gaps}"
