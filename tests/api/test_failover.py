"""Failover, passive health, capacity overflow, privacy and the failure answers of section 6."""

from __future__ import annotations

import asyncio
import time

import orjson

from nexus.backends.state import ModelInfo, ProbeResult
from nexus.config.model import BackendConfig
from tests.api.gateway import CHAT, chat_body, eventually, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel


def vllm(name: str, url: str, priority: int, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "vllm", "url": url, "priority": priority, **extra}


def pair(start_fake) -> tuple[FakeOpenAI, FakeOpenAI]:
    first, second = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    for fake in (first, second):
        fake.set_models(FakeModel("m"))
    return first, second


THRESHOLD_1: dict[str, object] = {
    "interval_seconds": 60,
    "timeout_seconds": 2,
    "failure_threshold": 1,
}


async def test_failover_on_500_and_the_failed_backend_is_skipped_after(start_fake) -> None:
    bad, good = pair(start_fake)
    bad.server_error(500)
    backends = [vllm("a", bad.url, 1), vllm("b", good.url, 2)]
    async with gateway(backends, health_check=THRESHOLD_1) as gw:
        first = await gw.client.post(CHAT, json=chat_body())
        second = await gw.client.post(CHAT, json=chat_body())
        listing = {b["name"]: b for b in (await gw.client.get("/v1/backends")).json()["data"]}
        assert gw.in_flight() == {"a": 0, "b": 0}
    # a 5xx is about the model on that backend: m is out on a, a itself stays in (defect 6)
    assert listing["a"]["status"] == "healthy"
    assert set(listing["a"]["failing_models"]) == {"m"}
    assert listing["a"]["failing_models"]["m"]["last_error"] == "HTTP 500"
    assert 0 < listing["a"]["failing_models"]["m"]["seconds_left"] <= 60
    assert first.status_code == 200
    assert first.headers["x-nexus-backend"] == "b"
    assert first.headers["x-nexus-route-reason"] == "failover"
    assert second.headers["x-nexus-route-reason"] == "failover"  # a is out, b is second choice
    assert len(bad.requests_to(CHAT)) == 1, "no further attempts on the failed backend"
    assert len(good.requests_to(CHAT)) == 2


async def test_failover_on_refused_connection(start_fake, refused_url: str) -> None:
    good = start_fake(FakeOpenAI)
    good.set_models(FakeModel("m"))
    dead_then_listed = vllm("a", refused_url, 1, models=["m"])
    async with gateway([vllm("b", good.url, 2)]) as gw:
        gw.app.gateway.registry.add(BackendConfig.model_validate(dead_then_listed))
        gw.app.gateway.registry.record_probe(
            "a", ProbeResult(ok=True, models=(ModelInfo("m"),)), next_probe_at=None
        )
        started = time.monotonic()
        response = await gw.client.post(CHAT, json=chat_body())
        elapsed = time.monotonic() - started
        assert gw.statuses()["a"] == "unhealthy", "a refused connection is out at once"
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-route-reason"] == "failover"
    assert elapsed < 2.0


async def test_failover_on_timeout_within_two_seconds(start_fake) -> None:
    slow, good = pair(start_fake)
    slow.hang(path=CHAT)
    backends = [vllm("a", slow.url, 1), vllm("b", good.url, 2)]
    server = {"request_timeout_seconds": 0.5}
    async with gateway(backends, server=server) as gw:
        started = time.monotonic()
        response = await gw.client.post(CHAT, json=chat_body())
        elapsed = time.monotonic() - started
        assert gw.in_flight() == {"a": 0, "b": 0}
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-route-reason"] == "failover"
    assert elapsed < 2.0


async def test_stream_that_dies_before_its_first_byte_fails_over(start_fake) -> None:
    broken, good = pair(start_fake)
    broken.break_stream_after(0)
    backends = [vllm("a", broken.url, 1), vllm("b", good.url, 2)]
    async with gateway(backends) as gw:
        response = await gw.client.post(CHAT, json=chat_body(stream=True))
        assert gw.in_flight() == {"a": 0, "b": 0}
    assert response.headers["x-nexus-backend"] == "b"
    assert response.content.endswith(b"data: [DONE]\n\n")


async def test_stream_broken_midway_ends_with_an_error_event(start_fake) -> None:
    broken, _ = pair(start_fake)
    broken.break_stream_after(2)
    async with gateway([vllm("a", broken.url, 1)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body(stream=True))
        assert gw.in_flight() == {"a": 0}
    assert response.status_code == 200
    events = [e for e in response.content.split(b"\n\n") if e]
    assert len(events) == 3
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "stream_interrupted"
    assert "backend 'a'" in last["error"]["message"]
    assert b"[DONE]" not in response.content


async def test_timeout_with_nothing_else_is_504_naming_the_backend(start_fake) -> None:
    slow, _ = pair(start_fake)
    slow.hang(path=CHAT)
    async with gateway([vllm("a", slow.url, 1)], server={"request_timeout_seconds": 0.3}) as gw:
        response = await gw.client.post(CHAT, json=chat_body())
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "gateway_timeout"
    assert "backend 'a'" in response.json()["error"]["message"]
    assert response.headers["x-nexus-backend"] == "a"


async def test_500_with_no_retry_left_passes_the_upstream_error(start_fake) -> None:
    bad, _ = pair(start_fake)
    bad.server_error(502)
    async with gateway([vllm("a", bad.url, 1)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body())
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"  # the backend's own body
    assert response.headers["x-nexus-backend"] == "a"


async def test_a_backends_own_503_passes_its_own_retry_after(start_fake) -> None:
    # an overloaded backend asking for 1 s must not become a wait of the health interval (60 s
    # here): the OpenAI SDKs obey Retry-After up to 60 s
    overloaded, _ = pair(start_fake)
    overloaded.server_error(503, retry_after=1)
    async with gateway([vllm("a", overloaded.url, 1)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "server_error", "the backend's own body"


async def test_429_with_no_retry_left_passes_status_and_retry_after(start_fake) -> None:
    limited, _ = pair(start_fake)
    limited.rate_limit(retry_after=7)
    async with gateway([vllm("a", limited.url, 1)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body())
        after = await gw.client.post(CHAT, json=chat_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert after.status_code == 503, "cooling down: a real 503 with context, not another 429"
    assert after.json()["context"]["eta_seconds"] in (6, 7)
    assert len(limited.requests_to(CHAT)) == 1


async def test_rejected_key_with_nothing_else_is_503_naming_backend_and_variable(
    start_fake,
) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    fake.api_key = "sk-right"
    backend = {"name": "openai", "type": "openai", "url": fake.url, "api_key_env": "OAI_KEY"}
    async with gateway([backend], environ={"OAI_KEY": "sk-right"}) as gw:
        fake.api_key = "sk-rotated"  # the key is revoked after start-up
        response = await gw.client.post(CHAT, json=chat_body())
        assert gw.statuses()["openai"] == "unhealthy"
        listing = (await gw.client.get("/v1/backends")).json()["data"][0]
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["message"] == "backend 'openai' is unhealthy: API key rejected (OAI_KEY)"
    assert set(body["context"]) == {
        "required_tier",
        "available_backends",
        "eta_seconds",
        "privacy_zone_required",
    }
    assert int(response.headers["retry-after"]) > 0
    assert "sk-right" not in response.text
    assert listing["last_error"] == "API key rejected (OAI_KEY)"


async def test_capacity_overflow(start_fake) -> None:
    small, big = pair(start_fake)
    small.delay(0.5, path=CHAT)
    backends = [vllm("small", small.url, 1, max_concurrent=1), vllm("big", big.url, 2)]
    async with gateway(backends) as gw:
        first = asyncio.create_task(gw.client.post(CHAT, json=chat_body()))
        await eventually(lambda: gw.in_flight()["small"] == 1)
        second = await gw.client.post(CHAT, json=chat_body())
        assert (await first).headers["x-nexus-backend"] == "small"
        assert gw.in_flight() == {"small": 0, "big": 0}
    assert second.headers["x-nexus-backend"] == "big"
    assert second.headers["x-nexus-route-reason"] == "capacity-overflow"


async def test_privacy_503_and_the_open_backend_is_never_contacted(start_fake) -> None:
    cloud = start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("secret-model"))
    backend = {"name": "openai", "type": "openai", "url": cloud.url, "api_key_env": "OAI_KEY"}
    routing = {"policies": [{"model_pattern": "secret-*", "privacy": "restricted"}]}
    async with gateway([backend], environ={"OAI_KEY": "k"}, routing=routing) as gw:
        response = await gw.client.post(CHAT, json=chat_body("secret-model"))
        header = await gw.client.post(
            CHAT,
            json=chat_body("secret-model"),
            headers={"x-nexus-privacy-zone": "restricted"},
        )
    assert response.status_code == 503
    assert response.json()["context"]["privacy_zone_required"] == "restricted"
    assert "retry-after" in response.headers
    assert response.headers["x-nexus-backend"] == "none"
    assert header.status_code == 503
    assert cloud.requests_to(CHAT) == []


async def test_client_can_tighten_privacy_by_header(start_fake) -> None:
    cloud = start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("m"))
    backend = {"name": "openai", "type": "openai", "url": cloud.url, "api_key_env": "OAI_KEY"}
    async with gateway([backend], environ={"OAI_KEY": "k"}) as gw:
        open_ok = await gw.client.post(CHAT, json=chat_body())
        tightened = await gw.client.post(
            CHAT, json=chat_body(), headers={"x-nexus-privacy-zone": "restricted"}
        )
    assert open_ok.status_code == 200
    assert tightened.status_code == 503
    assert len(cloud.requests_to(CHAT)) == 1
