"""Shared fixtures: a clean NEXUS_* environment, a helper that writes config files, a real
redis-server (``real_redis``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.state.redis_server import RedisServer, redis_server

REPO = Path(__file__).resolve().parent.parent

#: The fake upstreams (fake_ollama, fake_openai, fake_anthropic, fake_gemini, start_fake, ...).
pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture
def real_redis() -> Iterator[RedisServer]:
    """A fresh redis-server (skipped when not installed; with CI=true, a failure)."""
    with redis_server() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_nexus_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's NEXUS_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("NEXUS_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write ``text`` to a fresh ``nexus.toml`` and return its path."""

    def write(text: str, name: str = "nexus.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
