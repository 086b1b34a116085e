"""A running gateway in-process: the real app and lifespan over fake upstreams on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from nexus.api.context import NexusApp
from nexus.app import create_app
from nexus.config import NexusConfig

CHAT = "/v1/chat/completions"


def chat_body(model: str = "m", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@dataclass
class Gateway:
    app: NexusApp
    client: httpx.AsyncClient

    def in_flight(self) -> dict[str, int]:
        return {b.name: b.in_flight for b in self.app.gateway.registry.snapshot().backends}

    def statuses(self) -> dict[str, str]:
        return {b.name: b.status.value for b in self.app.gateway.registry.snapshot().backends}


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def gateway(
    backends: list[dict[str, Any]],
    *,
    environ: Mapping[str, str] | None = None,
    **sections: Any,
) -> AsyncIterator[Gateway]:
    """The app for ``backends`` (plus config ``sections``), started, with every backend probed."""
    data: dict[str, Any] = {
        "discovery": {"enabled": False},
        "health_check": {"interval_seconds": 60, "timeout_seconds": 2},
        **sections,
        "backends": backends,
    }
    app = create_app(NexusConfig.model_validate(data), environ=environ or {})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://nexus", timeout=30
        ) as client:
            gw = Gateway(app, client)
            await eventually(lambda: "unknown" not in gw.statuses().values())
            yield gw


def fleet(start_fake: Any, *names: str, model: str = "m") -> tuple[list[Any], list[dict[str, Any]]]:
    """One started FakeOpenAI per name, each serving ``model``, and their ``vllm`` backends with
    priorities 1, 2, ... in that order."""
    from tests.fakes.openai import FakeOpenAI
    from tests.fakes.server import FakeModel

    fakes = [start_fake(FakeOpenAI) for _ in names]
    for fake in fakes:
        fake.set_models(FakeModel(model))
    backends = [
        {"name": name, "type": "vllm", "url": fake.url, "priority": index + 1}
        for index, (name, fake) in enumerate(zip(names, fakes, strict=True))
    ]
    return fakes, backends
