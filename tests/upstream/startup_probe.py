"""Run in a fresh interpreter by ``test_startup.py``: start the gateway in-process over fakes on
127.0.0.1, send requests, and print what happened as one JSON line on stdout.

``python -m tests.upstream.startup_probe MODE`` with MODE:

- ``local``: only local backends; reports whether LiteLLM (or the OpenAI SDK) got imported;
- ``warm``: a translated backend, :func:`warm_up` run in a thread as the app's lifespan does,
  then the first translated request; reports which modules that request imported and its time;
- ``health``: a translated backend; :func:`warm_up` started in a thread as the lifespan does,
  and ``/health`` asked repeatedly meanwhile; reports the slowest answer and whether LiteLLM
  was still loading during the calls;
- ``guard``: a socket guard installed before anything else is imported; start-up with
  ``warm_up``, translated requests (JSON and stream), an OpenAI relay request and fresh token
  counting; reports every connection or name lookup aimed anywhere but 127.0.0.1.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

ATTEMPTS: list[str] = []
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def install_socket_guard() -> None:
    """Refuse (and record) every connect or lookup that is not for the loopback interface."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(address: Any) -> bool:
        return not isinstance(address, tuple) or str(address[0]) in LOOPBACK

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            ATTEMPTS.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"socket guard: {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            ATTEMPTS.append(f"connect_ex {address!r}")
            return 111
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOOPBACK:
            ATTEMPTS.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, "socket guard")
        return real_getaddrinfo(host, *args, **kwargs)

    setattr(socket.socket, "connect", connect)  # noqa: B010
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    setattr(socket, "getaddrinfo", getaddrinfo)  # noqa: B010


if __name__ == "__main__" and sys.argv[1:] == ["guard"]:
    install_socket_guard()  # before nexus, LiteLLM, tiktoken or httpx are imported

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402

import httpx  # noqa: E402

from nexus.app import create_app  # noqa: E402
from nexus.config import NexusConfig  # noqa: E402
from tests.fakes import FakeAnthropic, FakeModel, FakeOpenAI  # noqa: E402

CLAUDE = "claude-3-5-sonnet-20241022"
SECTIONS = {"discovery": {"enabled": False}, "health_check": {"interval_seconds": 60}}


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}


async def serve(
    backends: list[dict[str, Any]], environ: Mapping[str, str], requests: list[dict[str, Any]]
) -> list[int]:
    """Start the app (lifespan included), send ``requests`` (JSON bodies; ``input`` ones to
    embeddings), return the statuses."""
    from nexus.upstream import translated

    app = create_app(
        NexusConfig.model_validate({**SECTIONS, "backends": backends}), environ=environ
    )
    statuses = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nexus") as client:
            while "unknown" in {b.status.value for b in app.gateway.registry.snapshot().backends}:
                await asyncio.sleep(0.01)
            for body in requests:
                path = "/v1/embeddings" if "input" in body else "/v1/chat/completions"
                statuses.append((await client.post(path, json=body)).status_code)
        await translated.shutdown()
    return statuses


def local_mode() -> dict[str, Any]:
    with FakeOpenAI() as fake:
        fake.set_models(FakeModel("gpt-4o"), FakeModel("emb"))
        backends = [{"name": "gpu", "type": "vllm", "url": fake.url}]
        requests = [chat("gpt-4o"), chat("gpt-4o", stream=True), {"model": "emb", "input": "x"}]
        statuses = asyncio.run(serve(backends, {}, requests))
    return {"statuses": statuses, "litellm": "litellm" in sys.modules}


def warm_mode() -> dict[str, Any]:
    from nexus.upstream import translated

    with FakeAnthropic() as fake:
        fake.set_models(CLAUDE)
        backends = [_claude(fake)]

        async def run() -> dict[str, Any]:
            await asyncio.to_thread(translated.warm_up)  # what the lifespan starts
            before = set(sys.modules)
            started = time.perf_counter()
            statuses = await serve(backends, {"KEY": fake.api_key}, [chat(CLAUDE)])
            elapsed = time.perf_counter() - started
            new = sorted(name for name in set(sys.modules) - before if "litellm" in name)
            return {"statuses": statuses, "seconds": elapsed, "new_litellm_modules": new}

        return asyncio.run(run())


def health_mode() -> dict[str, Any]:
    from nexus.upstream import translated

    with FakeAnthropic() as fake:
        fake.set_models(CLAUDE)
        config = NexusConfig.model_validate({**SECTIONS, "backends": [_claude(fake)]})
        app = create_app(config, environ={"KEY": fake.api_key})

        async def run() -> dict[str, Any]:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app)
                async with httpx.AsyncClient(transport=transport, base_url="http://n") as client:
                    warming = asyncio.create_task(asyncio.to_thread(translated.warm_up))
                    slowest, during = 0.0, 0
                    while not warming.done():
                        started = time.perf_counter()
                        assert (await client.get("/health")).status_code == 200
                        slowest = max(slowest, time.perf_counter() - started)
                        during += 0 if warming.done() else 1
                        await asyncio.sleep(0.05)
                    await warming
            return {"slowest": slowest, "calls_while_loading": during}

        return asyncio.run(run())


def guard_mode() -> dict[str, Any]:
    from nexus import tokens
    from nexus.upstream import translated

    with FakeAnthropic() as claude, FakeOpenAI() as openai:
        claude.set_models(CLAUDE)
        openai.set_models(FakeModel("gpt-4o"))
        openai.api_key = "sk-openai"
        backends = [
            _claude(claude),
            {"name": "oai", "type": "openai", "url": openai.url, "api_key_env": "OAI"},
        ]
        environ = {"KEY": claude.api_key, "OAI": "sk-openai"}
        requests = [chat(CLAUDE), chat(CLAUDE, stream=True), chat("gpt-4o", stream=True)]

        async def run() -> list[int]:
            await asyncio.to_thread(translated.warm_up)
            return await serve(backends, environ, requests)

        statuses = asyncio.run(run())
        counted = tokens.count_texts(["offline counting"], "gpt-4o")
        counted_old = tokens.count_texts(["offline counting"], "gpt-4")
    return {
        "statuses": statuses,
        "exact": counted.exact and counted_old.exact,
        "attempts": ATTEMPTS,
    }


def _claude(fake: FakeAnthropic) -> dict[str, Any]:
    return {"name": "claude", "type": "anthropic", "url": fake.url, "api_key_env": "KEY"}


if __name__ == "__main__":
    modes = {"local": local_mode, "warm": warm_mode, "health": health_mode, "guard": guard_mode}
    print(json.dumps(modes[sys.argv[1]]()))
