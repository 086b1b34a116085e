"""The dashboard page: a readable snapshot without JavaScript, everything escaped, live events."""

from __future__ import annotations

import asyncio
import re

import orjson

from nexus.api.dashboard import state_events
from nexus.dashboard.page import render_page
from tests.api.gateway import CHAT, chat_body, eventually
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.observability.observed import observed

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


def data(**overrides: object) -> dict[str, object]:
    backend = {
        "name": "gpu",
        "type": "vllm",
        "location": "local",
        "zone": "restricted",
        "tier": 2,
        "status": "unhealthy",
        "models": [EVIL],
        "in_flight": 1,
        "max_concurrent": 4,
        "latency_ms": 12.345,
        "last_error": EVIL,
    }
    request = {
        "time": "2026-01-02T03:04:05.678+00:00",
        "request_id": '"><b>id',
        "model": EVIL,
        "backend": None,
        "status": 404,
        "duration_ms": 1234.5,
        "route_reason": None,
        "endpoint": "messages",
        "tenant": "ci",
        "stream": False,
        "stream_broken": False,
    }
    values: dict[str, object] = {
        "version": "0.1.0",
        "backends": [backend],
        "requests": [request],
        "totals": {"requests": 1, "success": 0, "errors": 1},
        "queue": {"enabled": True, "waiting": 0},
    }
    values.update(overrides)
    return values


def test_everything_rendered_is_escaped() -> None:
    html = render_page(data())
    assert "<script>alert" not in html and "<img" not in html and '"><b>' not in html
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 3
    assert "&amp;amp;" in html
    assert len(re.findall(r"<script\b", html)) == 1  # only dashboard.js


def test_snapshot_is_readable_without_javascript() -> None:
    html = render_page(data())
    assert 'data-backend="gpu"' in html and "status-unhealthy" in html
    for text in ("restricted", ">2<", "vllm (local)", "1 / 4", "12.3 ms", "03:04:05", "1.23 s"):
        assert text in html
    assert "1 requests, 0 ok, 1 errors; 0 of 1 backends healthy; 0 waiting in the queue" in html
    assert '<td data-label="API">messages</td>' in html and "<th>API</th>" in html
    assert '<td data-label="Client">ci</td>' in html and "<th>Client</th>" in html
    assert '<meta http-equiv="refresh"' in html  # inside <noscript>
    assert "http://" not in html and "https://" not in html  # no CDN, no backend URL
    empty = render_page(data(backends=[], requests=[]))
    assert "No backends configured" in empty and "No requests yet." in empty


async def test_page_assets_and_live_events_through_the_gateway(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"), FakeModel(EVIL))
    async with observed([{"name": "a", "type": "vllm", "url": fake.url}]) as gw:
        await gw.client.post(CHAT, json=chat_body(EVIL), headers={"x-request-id": "req-1"})
        page = await gw.client.get("/")
        script = await gw.client.get("/dashboard/dashboard.js")
        css = await gw.client.get("/dashboard/dashboard.css")
        missing = await gw.client.get("/dashboard/nope.js")
        stream = state_events(gw.app.gateway)
        assert await anext(stream) == b"retry: 2000\n\n"
        first = await anext(stream)
        await gw.client.post(CHAT, json=chat_body(), headers={"x-request-id": "req-2"})
        second = await asyncio.wait_for(anext(stream), 2)
        gw.app.gateway.drain.draining = True
        assert [chunk async for chunk in stream] == []  # the stream ends when draining starts
        refused = await gw.client.get("/dashboard/events")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-request-id="req-1"' in page.text and "<script>alert" not in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert ".innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    assert css.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
    assert first.startswith(b"event: state\ndata: ")
    state = orjson.loads(first.split(b"data: ", 1)[1])
    assert [r["request_id"] for r in state["requests"]] == ["req-1"]
    assert state["backends"][0]["name"] == "a" and "url" not in state["backends"][0]
    assert [r["request_id"] for r in orjson.loads(second.split(b"data: ", 1)[1])["requests"]] == [
        "req-2",
        "req-1",
    ]
    assert refused.status_code == 503


async def test_events_push_a_backend_status_change(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    async with observed([{"name": "a", "type": "vllm", "url": fake.url}]) as gw:
        stream = state_events(gw.app.gateway)
        await anext(stream)
        assert b'"status":"healthy"' in await anext(stream)
        fake.stop()
        checker = gw.app.gateway.checker
        assert checker is not None
        await checker.probe(gw.app.gateway.registry.configs())
        await eventually(lambda: gw.statuses()["a"] == "unhealthy")
        pushed = await asyncio.wait_for(anext(stream), 2)
        await stream.aclose()
    assert b'"status":"unhealthy"' in pushed
