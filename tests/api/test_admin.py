"""Admin endpoints in-process: /v1/backends, /health, /health/ready, /v1/models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from nexus.api.context import NexusApp
from nexus.app import create_app
from nexus.backends.state import ModelInfo, ProbeResult
from nexus.config import NexusConfig
from nexus.errors import Failure

KEY = "sk-canary-admin-0123456789"


def config() -> NexusConfig:
    return NexusConfig.model_validate(
        {
            "backends": [
                {"name": "gpu", "url": "http://127.0.0.1:1", "type": "vllm", "tier": 3},
                {"name": "laptop", "url": "http://127.0.0.1:2", "type": "ollama"},
                {
                    "name": "openai",
                    "url": "https://api.openai.com",
                    "type": "openai",
                    "api_key_env": "OPENAI_API_KEY",
                },
            ]
        }
    )


@pytest.fixture
def app() -> NexusApp:
    return create_app(config(), environ={"OPENAI_API_KEY": KEY})


@pytest.fixture
async def client(app: NexusApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
        yield client


def probe_ok(app: NexusApp, name: str, *models: ModelInfo, latency: float = 12.34) -> None:
    app.gateway.registry.record_probe(
        name, ProbeResult(ok=True, latency_ms=latency, models=models), next_probe_at=0
    )


def probe_fail(app: NexusApp, name: str, failure: Failure, error: str) -> None:
    app.gateway.registry.record_probe(name, ProbeResult.failed(failure, error), next_probe_at=0)


async def test_backends_lists_every_backend_by_name_without_keys(app, client) -> None:
    probe_ok(app, "gpu", ModelInfo("llama3", context_length=8192))
    probe_fail(app, "openai", Failure.AUTH, "API key rejected (OPENAI_API_KEY)")
    response = await client.get("/v1/backends")
    assert response.status_code == 200
    assert KEY not in response.text
    body = response.json()
    assert body["object"] == "list"
    gpu, laptop, openai = body["data"]
    assert (gpu["name"], gpu["type"], gpu["status"], gpu["tier"], gpu["zone"]) == (
        "gpu",
        "vllm",
        "healthy",
        3,
        "restricted",
    )
    assert gpu["models"] == ["llama3"]
    assert gpu["latency_ms"] == 12.3
    assert gpu["last_check"] is not None
    assert (laptop["status"], laptop["last_check"], laptop["latency_ms"]) == ("unknown", None, None)
    assert (openai["status"], openai["zone"]) == ("unhealthy", "open")
    assert openai["last_error"] == "API key rejected (OPENAI_API_KEY)"
    required = {"name", "type", "url", "zone", "tier", "priority", "status", "models"}
    assert required | {"in_flight", "latency_ms", "last_error", "last_check"} <= set(gpu)


async def test_health_counts_and_degraded(app, client) -> None:
    probe_ok(app, "gpu", ModelInfo("llama3"), ModelInfo("qwen"))
    probe_ok(app, "laptop", ModelInfo("llama3"))
    probe_fail(app, "openai", Failure.REFUSED, "connection refused")
    body = (await client.get("/health")).json()
    assert body["status"] == "degraded"
    assert body["backends"] == {"total": 3, "healthy": 2, "unhealthy": 1}
    assert body["models"] == 2


async def test_ready_is_503_until_a_backend_is_healthy(app, client) -> None:
    not_ready = await client.get("/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "unhealthy"
    probe_ok(app, "laptop", ModelInfo("llama3"))
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["backends"]["healthy"] == 1


async def test_models_only_from_healthy_backends_with_details(app, client) -> None:
    probe_ok(app, "gpu", ModelInfo("llama3", context_length=8192, tools=True))
    probe_ok(app, "laptop", ModelInfo("llama3", context_length=4096, vision=True))
    probe_ok(app, "openai", ModelInfo("gpt-4o"))
    probe_fail(app, "openai", Failure.AUTH, "API key rejected (OPENAI_API_KEY)")
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    [llama] = body["data"]
    assert llama["id"] == "llama3"
    assert llama["object"] == "model"
    assert llama["backends"] == ["gpu", "laptop"]
    assert llama["context_length"] == 8192
    assert llama["capabilities"] == ["tools", "vision"]


async def test_models_include_aliases_of_available_models() -> None:
    cfg = config().model_dump()
    cfg["routing"] = {"aliases": {"fast": "llama3", "smart": "gpt-5", "chain": "fast"}}
    app = create_app(NexusConfig.model_validate(cfg), environ={})
    probe_ok(app, "gpu", ModelInfo("llama3", context_length=8192))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
        data = (await client.get("/v1/models")).json()["data"]
    by_id = {entry["id"]: entry for entry in data}
    assert sorted(by_id) == ["chain", "fast", "llama3"]  # "smart" targets nothing available
    assert by_id["fast"]["alias_for"] == "llama3"
    assert by_id["chain"]["alias_for"] == "llama3"
    assert by_id["fast"]["backends"] == ["gpu"]
    assert by_id["fast"]["context_length"] == 8192
