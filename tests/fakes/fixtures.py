"""pytest fixtures for the fake upstreams. A test package registers them in its ``conftest.py``::

from tests.fakes.fixtures import fake_ollama, fake_openai  # noqa: F401
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeUpstream

F = TypeVar("F", bound=FakeUpstream)


class StartFake(Protocol):
    """``start_fake(FakeOpenAI)`` -> a started ``FakeOpenAI``."""

    def __call__(self, cls: type[F]) -> F: ...


@pytest.fixture
def start_fake() -> Iterator[StartFake]:
    """A factory that starts a fake of the given class; every one is stopped at teardown."""
    started: list[FakeUpstream] = []

    def start(cls: type[F]) -> F:
        fake = cls()
        started.append(fake)
        return fake.start()

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def refused_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens (the port was just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
