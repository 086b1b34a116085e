"""The real app with its lifespan: probes run against fake upstreams on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from nexus.api.context import NexusApp
from nexus.app import create_app
from nexus.config import NexusConfig
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel


def config(**backends: tuple[str, str]) -> NexusConfig:
    return NexusConfig.model_validate(
        {
            "discovery": {"enabled": False},
            "health_check": {"interval_seconds": 1, "timeout_seconds": 1},
            "backends": [
                {"name": name, "type": kind, "url": url} for name, (kind, url) in backends.items()
            ],
        }
    )


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def statuses(app: NexusApp) -> dict[str, str]:
    return {b.name: b.status.value for b in app.gateway.registry.snapshot().backends}


async def test_start_probes_each_backend_and_shutdown_stops(
    fake_ollama: FakeOllama, fake_openai: FakeOpenAI, refused_url: str
) -> None:
    fake_ollama.set_models(FakeModel("llama3.2:3b", context_length=131072, tools=True))
    fake_openai.set_models(FakeModel("qwen2.5-7b", context_length=32768))
    app = create_app(
        config(
            laptop=("ollama", fake_ollama.url),
            gpu=("vllm", fake_openai.url),
            dead=("generic", refused_url),
        )
    )
    async with app.router.lifespan_context(app):
        await eventually(lambda: "unknown" not in statuses(app).values())
        assert statuses(app) == {"laptop": "healthy", "gpu": "healthy", "dead": "unhealthy"}
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
            models = (await client.get("/v1/models")).json()["data"]
            backends = (await client.get("/v1/backends")).json()["data"]
    assert {m["id"]: m["context_length"] for m in models} == {
        "llama3.2:3b": 131072,
        "qwen2.5-7b": 32768,
    }
    dead = next(b for b in backends if b["name"] == "dead")
    assert "connection refused" in dead["last_error"]
    probes = len(fake_openai.requests_to("/v1/models", "GET"))
    await asyncio.sleep(1.2)
    assert len(fake_openai.requests_to("/v1/models", "GET")) == probes, "probing stopped"


async def test_backend_recovers_after_threshold(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    fake.respond(503, path="/v1/models")
    base = config(gpu=("vllm", fake.url)).model_dump()
    base["health_check"] = {"interval_seconds": 1, "timeout_seconds": 1, "recovery_threshold": 2}
    app = create_app(NexusConfig.model_validate(base))
    async with app.router.lifespan_context(app):
        await eventually(lambda: statuses(app)["gpu"] == "unhealthy")
        fake.reset()
        fake.set_models(FakeModel("m"))
        await asyncio.sleep(1.2)
        assert statuses(app)["gpu"] == "unhealthy", "one success is not enough"
        await eventually(lambda: statuses(app)["gpu"] == "healthy", timeout=2.5)


async def test_translated_backend_warms_litellm_up_in_the_background(refused_url: str) -> None:
    import nexus.upstream.translated as translated

    cfg = NexusConfig.model_validate(
        {
            "discovery": {"enabled": False},
            "backends": [
                {
                    "name": "claude",
                    "type": "anthropic",
                    "url": refused_url,
                    "api_key_env": "ANTHROPIC_KEY",
                }
            ],
        }
    )
    app = create_app(cfg, environ={"ANTHROPIC_KEY": "k"})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
            started = asyncio.get_running_loop().time()
            assert (await client.get("/health")).status_code == 200
            assert asyncio.get_running_loop().time() - started < 0.5
        await eventually(lambda: translated.loaded() is not None, timeout=30)
