"""/v1/stats counts real outcomes; /v1/history keeps the last 100 requests, newest first."""

from __future__ import annotations

from nexus.backends.state import Snapshot
from nexus.observability.history import History
from nexus.observability.stats import SEP, Stats
from tests.api.gateway import CHAT, chat_body
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.observability.observed import observed
from tests.observability.test_metrics import event


async def test_stats_count_success_and_every_kind_of_error(start_fake) -> None:
    bad, good = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    bad.set_models(FakeModel("m"))
    good.set_models(FakeModel("m"), FakeModel("idle"))
    backends = [
        {"name": "a", "type": "vllm", "url": bad.url, "priority": 1},
        {"name": "b", "type": "vllm", "url": good.url, "priority": 2},
    ]
    async with observed(backends, health_check={"failure_threshold": 5}) as gw:
        await gw.client.post(CHAT, json=chat_body())  # a: 200
        await gw.client.post(CHAT, json=chat_body(stream=True))  # a: 200, stream
        bad.server_error(502)
        await gw.client.post(CHAT, json=chat_body())  # a fails, b: 200
        good.server_error(500)
        await gw.client.post(CHAT, json=chat_body())  # both fail: b's 500
        await gw.client.post(CHAT, json=chat_body("nope"))  # 404, no backend
        await gw.client.post(CHAT, content=b"[]")  # 400, no backend
        body = (await gw.client.get("/v1/stats")).json()
    assert body["uptime_seconds"] >= 0
    requests = body["requests"]
    assert (requests["total"], requests["success"], requests["errors"]) == (6, 3, 3)
    assert requests["errors_by_class"] == {"4xx": 2, "5xx": 1}
    assert (requests["streams"], requests["streams_broken"]) == (1, 0)
    by_name = {b["name"]: b for b in body["backends"]}
    assert (by_name["a"]["requests"], by_name["a"]["errors"]) == (2, 0)
    assert (by_name["b"]["requests"], by_name["b"]["errors"]) == (2, 1)
    assert by_name["a"]["in_flight"] == 0 and by_name["b"]["latency_ms"] is not None
    models = {m["name"]: (m["requests"], m["errors"]) for m in body["models"]}
    assert models == {"m": (4, 1), "idle": (0, 0), "other": (1, 1), "none": (1, 1)}


async def test_history_lists_requests_newest_first(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    async with observed([{"name": "a", "type": "vllm", "url": fake.url}]) as gw:
        await gw.client.post(CHAT, json=chat_body(), headers={"x-request-id": "first"})
        await gw.client.post(CHAT, json=chat_body("nope"), headers={"x-request-id": "second"})
        data = (await gw.client.get("/v1/history")).json()["data"]
    second, first = data
    assert (second["request_id"], second["model"], second["status"]) == ("second", "nope", 404)
    assert second["backend"] is None and second["route_reason"] is None
    assert (first["request_id"], first["backend"], first["status"]) == ("first", "a", 200)
    assert first["route_reason"] == "capability-match"
    assert first["duration_ms"] > 0 and first["time"].endswith("+00:00")
    assert set(first) >= {"time", "model", "backend", "status", "duration_ms", "route_reason"}


def test_history_keeps_the_last_100() -> None:
    history = History()
    for number in range(150):
        history.completed(event(request_id=f"r{number}", model="x" * 1000))
    entries = history.entries()
    assert len(entries) == 100
    assert entries[0]["request_id"] == "r149" and entries[-1]["request_id"] == "r50"
    assert len(entries[0]["model"]) == 256
    assert history.version == 150


def test_stats_count_requests_by_client_api() -> None:
    stats = Stats(lambda name: name)
    stats.completed(event(endpoint="messages"))
    stats.completed(event(endpoint="messages", status=400))
    stats.completed(event(endpoint="chat"))
    stats.remote = {f"api{SEP}responses{SEP}requests": 2, f"api{SEP}responses{SEP}errors": 1}
    body = stats.body(Snapshot(backends=(), taken_at=0.0), uptime_seconds=1)
    apis = {row["name"]: (row["requests"], row["errors"]) for row in body["apis"]}
    assert apis == {"chat": (1, 0), "messages": (2, 1), "responses": (2, 1)}
    assert stats.flat()[f"api{SEP}messages{SEP}errors"] == 1


def test_stats_count_requests_by_tenant() -> None:
    stats = Stats(lambda name: name)
    stats.completed(event(tenant="bot"))
    stats.completed(event(tenant="bot", status=403))
    stats.completed(event())  # no keys configured: no tenant
    body = stats.body(Snapshot(backends=(), taken_at=0.0), uptime_seconds=1)
    assert body["tenants"] == [{"name": "bot", "requests": 2, "errors": 1}]
    assert stats.flat()[f"tenant{SEP}bot{SEP}requests"] == 2
