"""Helpers for end-to-end tests of the proxy path: write a nexus.toml, run `nexus serve` on it,
read its admin API, and drive it with the official `openai` SDK while recording the exact bytes
the SDK sent (openai 3.x runs on ``httpx2``, so its ``http_client`` is an ``httpx2.Client``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai

from tests.e2e.serving import Served, nexus_serve

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
DONE = b"data: [DONE]"

#: Defaults for every gateway started here: no mDNS, and no probe after the first cycle during a
#: test (a probe could flip a backend a test has just failed back to healthy).
BASE_SECTIONS: dict[str, dict[str, Any]] = {
    "discovery": {"enabled": False},
    "health_check": {"interval_seconds": 60, "timeout_seconds": 2},
}


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables for mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def nexus_toml(backends: Sequence[Mapping[str, Any]], **sections: Mapping[str, Any]) -> str:
    """A nexus.toml: ``BASE_SECTIONS`` updated by ``sections`` (merged key by key), then one
    ``[[backends]]`` table per backend."""
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in BASE_SECTIONS.items()}
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in merged.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    for backend in backends:
        lines.append("[[backends]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in backend.items()]
    return "\n".join(lines) + "\n"


def backend(name: str, url: str, kind: str = "vllm", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "type": kind, **extra}


def wait_until(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.02)


@dataclass
class Sent:
    """Every request body an SDK client sent, in order (recorded by an httpx event hook)."""

    bodies: list[bytes] = field(default_factory=list)

    def hook(self, request: httpx2.Request) -> None:
        self.bodies.append(request.read())

    @property
    def last(self) -> bytes:
        return self.bodies[-1]


@dataclass
class Gateway:
    """A running `nexus serve` and what a test needs to talk to it."""

    served: Served

    @property
    def url(self) -> str:
        return self.served.url

    def backends(self) -> dict[str, dict[str, Any]]:
        data = httpx.get(f"{self.url}/v1/backends", timeout=5).json()["data"]
        return {entry["name"]: entry for entry in data}

    def in_flight(self) -> dict[str, int]:
        return {name: entry["in_flight"] for name, entry in self.backends().items()}

    def statuses(self) -> dict[str, str]:
        return {name: entry["status"] for name, entry in self.backends().items()}

    @contextmanager
    def sdk(self, api_key: str = "x", timeout: float = 10) -> Iterator[tuple[openai.OpenAI, Sent]]:
        """An `openai.OpenAI` client on this gateway (no retries) and the bodies it sends."""
        sent = Sent()
        http = httpx2.Client(event_hooks={"request": [sent.hook]}, timeout=timeout)
        with (
            http,
            openai.OpenAI(
                base_url=f"{self.url}/v1",
                api_key=api_key,
                max_retries=0,
                http_client=http,
                timeout=timeout,
            ) as client,
        ):
            yield client, sent


@contextmanager
def gateway(
    directory: Path,
    backends: Sequence[Mapping[str, Any]],
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    probed: bool = True,
    **sections: Mapping[str, Any],
) -> Iterator[Gateway]:
    """Write the config into ``directory``, start `nexus serve` on it, and (with ``probed``)
    wait until the first probe cycle has set every backend's status."""
    path = directory / "nexus.toml"
    path.write_text(nexus_toml(backends, **sections), encoding="utf-8")
    with nexus_serve("--config", str(path), *args, cwd=directory, env=dict(env or {})) as served:
        gw = Gateway(served)
        if probed:
            wait_until(lambda: "unknown" not in gw.statuses().values(), what="first probe cycle")
        yield gw


def direct(base_url: str, path: str, body: bytes, timeout: float = 10) -> httpx.Response:
    """POST ``body`` to a backend directly, as Nexus would (JSON content type)."""
    headers = {"content-type": "application/json"}
    return httpx.post(f"{base_url}{path}", content=body, headers=headers, timeout=timeout)


def sse_events(raw: bytes) -> list[bytes]:
    """The SSE events of a body, each without its blank-line terminator."""
    return [event for event in raw.split(b"\n\n") if event.strip()]


def event_data(raw: bytes) -> list[Any]:
    """The JSON payload of each ``data:`` event but ``[DONE]``."""
    return [
        json.loads(event.removeprefix(b"data: "))
        for event in sse_events(raw)
        if event.startswith(b"data: ") and event != DONE
    ]
