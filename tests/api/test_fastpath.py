"""The inference endpoints' own way through the app: what FastAPI's stack did still holds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import orjson
import pytest

from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel


async def test_an_unexpected_error_is_a_500_in_the_openai_envelope(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_openai.set_models(FakeModel("m"))
    async with gateway([{"name": "gpu", "type": "vllm", "url": fake_openai.url}]) as gw:

        async def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(gw.app.gateway.attempts, "run", broken)
        transport = httpx.ASGITransport(gw.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
            response = await client.post(CHAT, json=chat_body(), headers={"x-request-id": "r-1"})
            after = await client.post(CHAT, json=chat_body())
    assert response.status_code == 500
    error = orjson.loads(response.content)["error"]
    assert error["message"] == "internal error in Nexus (request r-1); see its log"
    assert response.headers["x-request-id"] == "r-1"
    assert after.status_code == 500, "the gateway keeps serving"
    assert gw.app.gateway.drain.active == 0, "the drain count was released"


def test_fastapi_s_own_telemetry_stays_off_when_a_global_tracer_provider_is_set() -> None:
    """Nexus's [tracing] is the one tracer: with an application's global OpenTelemetry provider
    configured, FastAPI does not add its own server spans to every request."""
    script = textwrap.dedent(
        """
        import asyncio, httpx
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from nexus.app import create_app
        from nexus.config import NexusConfig

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with trace.get_tracer("probe").start_as_current_span("probe"):
            pass
        config = NexusConfig.model_validate({"discovery": {"enabled": False}, "backends": []})
        app = create_app(config, environ={})

        async def main():
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://n") as client:
                await client.get("/health")
                await client.post("/v1/chat/completions", json={"model": "m", "messages": []})

        asyncio.run(main())
        print(sorted(span.name for span in exporter.get_finished_spans()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "['probe']", done.stdout + done.stderr
