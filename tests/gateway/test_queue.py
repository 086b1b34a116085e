"""The request queue through the real app in-process: a request that finds every capable backend
at ``max_concurrent`` waits for a slot, ordered by priority then arrival, instead of a 503."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from tests.api.gateway import CHAT, chat_body, eventually, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel


def one_slot_backend(
    start_fake, *models: str, limit: int = 1, name: str = "gpu"
) -> tuple[FakeOpenAI, dict[str, Any]]:
    fake = start_fake(FakeOpenAI)
    fake.set_models(*(FakeModel(m) for m in models or ("m",)))
    return fake, {"name": name, "type": "vllm", "url": fake.url, "max_concurrent": limit}


def texts(fake: FakeOpenAI) -> list[str]:
    return [orjson.loads(r.body)["messages"][0]["content"] for r in fake.requests_to(CHAT)]


def depth(gw) -> int:
    return sum(gw.app.gateway.queue.depth().values())


async def arrived(gw, fake: FakeOpenAI, count: int) -> None:
    """Wait until ``count`` requests reached the backend or wait in the queue."""
    await eventually(lambda: len(fake.requests_to(CHAT)) + depth(gw) == count)


async def test_twenty_requests_on_two_slots_are_served_by_priority_then_arrival(start_fake):
    fake, backend = one_slot_backend(start_fake, limit=2)
    fake.delay(0.15, path=CHAT)
    priorities = ["low", "normal", "high", "normal", "low"] * 4
    async with gateway([backend]) as gw:
        tasks = []
        for i, priority in enumerate(priorities):
            body = chat_body(text=str(i))
            headers = {"x-nexus-priority": priority}
            tasks.append(asyncio.create_task(gw.client.post(CHAT, json=body, headers=headers)))
            await arrived(gw, fake, i + 1)
        answers = await asyncio.gather(*tasks)
        assert gw.in_flight() == {"gpu": 0}
    assert [a.status_code for a in answers] == [200] * 20
    summary = gw.app.gateway.queue.summary()
    assert summary["ended"]["served"] == 18 and summary["waiting"] == 0
    assert 0.1 < summary["mean_wait_seconds"] < 5
    rank = {"high": 0, "normal": 1, "low": 2}
    queued = sorted(range(2, 20), key=lambda i: (rank[priorities[i]], i))
    assert texts(fake) == ["0", "1", *map(str, queued)]


async def test_a_full_queue_answers_503_at_once(start_fake):
    fake, backend = one_slot_backend(start_fake)
    fake.hang(path=CHAT)
    async with gateway([backend], queue={"max_size": 2}) as gw:
        held = [asyncio.create_task(gw.client.post(CHAT, json=chat_body())) for _ in range(3)]
        await eventually(lambda: depth(gw) == 2)
        started = time.monotonic()
        refused = await gw.client.post(CHAT, json=chat_body())
        assert time.monotonic() - started < 0.5
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        await eventually(lambda: depth(gw) == 0 and gw.in_flight() == {"gpu": 0})
    assert refused.status_code == 503
    body = refused.json()
    assert "queue is full (2 requests waiting)" in body["error"]["message"]
    assert body["context"]["available_backends"] == ["gpu"]
    assert refused.headers["retry-after"] == "30"


async def test_a_wait_ends_at_max_wait_seconds_with_a_503(start_fake):
    fake, backend = one_slot_backend(start_fake)
    fake.hang(path=CHAT)
    async with gateway([backend], queue={"max_wait_seconds": 0.3}) as gw:
        holder = asyncio.create_task(gw.client.post(CHAT, json=chat_body()))
        await eventually(lambda: gw.in_flight() == {"gpu": 1})
        started = time.monotonic()
        refused = await gw.client.post(CHAT, json=chat_body())
        waited = time.monotonic() - started
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    assert 0.3 <= waited < 1.0
    assert refused.status_code == 503
    assert "still so after waiting 0.3 s in the queue" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-nexus-backend"] == "none"


async def test_only_capacity_makes_a_request_wait(start_fake):
    fake, backend = one_slot_backend(start_fake)
    backend["zone"] = "open"
    fake.hang(path=CHAT)
    async with gateway([backend]) as gw:
        holder = asyncio.create_task(gw.client.post(CHAT, json=chat_body()))
        await eventually(lambda: gw.in_flight() == {"gpu": 1})
        started = time.monotonic()
        unknown = await gw.client.post(CHAT, json=chat_body("nope"))
        restricted = await gw.client.post(
            CHAT, json=chat_body(), headers={"x-nexus-privacy-zone": "restricted"}
        )
        assert time.monotonic() - started < 0.5
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    assert unknown.status_code == 404
    assert restricted.status_code == 503
    assert restricted.json()["context"]["privacy_zone_required"] == "restricted"


@pytest.mark.parametrize("queue", [{"enabled": False}, {"max_size": 0}])
async def test_without_the_queue_capacity_is_an_immediate_503(start_fake, queue):
    fake, backend = one_slot_backend(start_fake)
    fake.hang(path=CHAT)
    async with gateway([backend], queue=queue) as gw:
        holder = asyncio.create_task(gw.client.post(CHAT, json=chat_body()))
        await eventually(lambda: gw.in_flight() == {"gpu": 1})
        refused = await gw.client.post(CHAT, json=chat_body())
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "capacity" in refused.json()["error"]["message"]


async def test_a_waiter_that_leaves_is_removed_and_its_turn_passes_on(start_fake):
    fake, backend = one_slot_backend(start_fake)
    fake.delay(0.3, path=CHAT)
    async with gateway([backend]) as gw:
        first = asyncio.create_task(gw.client.post(CHAT, json=chat_body(text="first")))
        await eventually(lambda: gw.in_flight() == {"gpu": 1})
        leaving = asyncio.create_task(gw.client.post(CHAT, json=chat_body(text="leaving")))
        await eventually(lambda: depth(gw) == 1)
        staying = asyncio.create_task(gw.client.post(CHAT, json=chat_body(text="staying")))
        await eventually(lambda: depth(gw) == 2)
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        assert depth(gw) == 1
        assert (await first).status_code == 200
        assert (await staying).status_code == 200
        assert gw.in_flight() == {"gpu": 0}
    assert texts(fake) == ["first", "staying"]


async def test_a_free_slot_on_another_backend_is_not_blocked_by_the_head_of_the_queue(start_fake):
    busy, busy_backend = one_slot_backend(start_fake, "a", name="busy")
    other, other_backend = one_slot_backend(start_fake, "b", name="other")
    busy.hang(path=CHAT)
    other.delay(0.2, path=CHAT)
    async with gateway([busy_backend, other_backend]) as gw:
        held = asyncio.create_task(gw.client.post(CHAT, json=chat_body("a")))
        await eventually(lambda: gw.in_flight()["busy"] == 1)
        waiting_a = asyncio.create_task(gw.client.post(CHAT, json=chat_body("a")))
        await eventually(lambda: depth(gw) == 1)
        b_answers = await asyncio.gather(
            *(gw.client.post(CHAT, json=chat_body("b", text=str(i))) for i in range(3))
        )
        assert depth(gw) == 1, "the request for 'a' still waits"
        for task in (held, waiting_a):
            task.cancel()
        await asyncio.gather(held, waiting_a, return_exceptions=True)
    assert [a.status_code for a in b_answers] == [200] * 3


async def test_draining_answers_every_waiter_and_lets_the_running_one_finish(start_fake):
    fake, backend = one_slot_backend(start_fake)
    fake.delay(0.4, path=CHAT)
    async with gateway([backend]) as gw:
        running = asyncio.create_task(gw.client.post(CHAT, json=chat_body()))
        await eventually(lambda: gw.in_flight() == {"gpu": 1})
        waiting = [asyncio.create_task(gw.client.post(CHAT, json=chat_body())) for _ in range(3)]
        await eventually(lambda: depth(gw) == 3)
        started = time.monotonic()
        gw.app.gateway.drain.started()
        answers = await asyncio.gather(*waiting)
        assert time.monotonic() - started < 0.2, "queued requests are answered at once"
        assert (await running).status_code == 200
    assert [a.status_code for a in answers] == [503] * 3
    assert {a.json()["error"]["code"] for a in answers} == {"shutting_down"}
    assert {a.headers["retry-after"] for a in answers} == {"5"}
    assert len(fake.requests_to(CHAT)) == 1


async def test_an_unknown_priority_is_a_400_naming_the_header(start_fake):
    fake, backend = one_slot_backend(start_fake)
    async with gateway([backend]) as gw:
        bad = await gw.client.post(CHAT, json=chat_body(), headers={"x-nexus-priority": "urgent"})
        fine = await gw.client.post(CHAT, json=chat_body(), headers={"x-nexus-priority": " HIGH "})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "X-Nexus-Priority must be one of high, normal, low (got 'urgent')"
    )
    assert fine.status_code == 200


async def test_a_tenant_sets_the_default_priority_and_caps_the_header(start_fake):
    fake, backend = one_slot_backend(start_fake)
    fake.delay(0.2, path=CHAT)
    clients = [
        {"name": "batch", "api_key_env": "BATCH_KEY", "priority": "low"},
        {"name": "capped", "api_key_env": "CAPPED_KEY", "max_priority": "normal"},
        {"name": "ops", "api_key_env": "OPS_KEY"},
    ]
    environ = {"BATCH_KEY": "b-key", "CAPPED_KEY": "c-key", "OPS_KEY": "o-key"}
    sends = [  # (text, key, priority header), in arrival order
        ("first", "o-key", None),
        ("batch", "b-key", None),
        ("capped-high", "c-key", "high"),
        ("ops-normal", "o-key", "normal"),
        ("ops-high", "o-key", "high"),
    ]
    async with gateway([backend], environ=environ, clients=clients) as gw:
        tasks = []
        for count, (text, key, priority) in enumerate(sends, start=1):
            headers = {"authorization": f"Bearer {key}"}
            if priority is not None:
                headers["x-nexus-priority"] = priority
            body = chat_body(text=text)
            tasks.append(asyncio.create_task(gw.client.post(CHAT, json=body, headers=headers)))
            await arrived(gw, fake, count)
        answers = await asyncio.gather(*tasks)
    assert {a.status_code for a in answers} == {200}
    assert texts(fake) == ["first", "ops-high", "capped-high", "ops-normal", "batch"]
