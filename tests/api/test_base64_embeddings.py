"""Embeddings with ``encoding_format: "base64"`` (the default of the openai SDKs) come back as
base64 whatever the backend did with the field (issue 14, defect 5): Ollama answers floats, which
the SDK then decodes into an empty or garbled vector; the gateway encodes them as OpenAI does
(little-endian float32). An answer already in base64, or floats asked for, pass unchanged."""

from __future__ import annotations

import base64
import struct

import httpx
import pytest

from tests.api.gateway import gateway
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

EMBEDDINGS = "/v1/embeddings"


def floats(fake: FakeOllama | FakeOpenAI, text: str) -> list[float]:
    return [float(v) for v in fake.vector(text)]


def decoded(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


async def test_floats_from_ollama_are_sent_as_base64_when_asked(start_fake) -> None:
    ollama = start_fake(FakeOllama)
    ollama.set_models(FakeModel("nomic-embed-text"))
    backend = {"name": "ollama", "type": "ollama", "url": ollama.url}
    body = {"model": "nomic-embed-text", "input": ["a", "b"], "encoding_format": "base64"}
    async with gateway([backend]) as gw:
        response = await gw.client.post(EMBEDDINGS, json=body)
    assert response.status_code == 200, response.text
    document = response.json()
    assert [entry["index"] for entry in document["data"]] == [0, 1]
    for entry, text in zip(document["data"], ["a", "b"], strict=True):
        assert isinstance(entry["embedding"], str)
        assert decoded(entry["embedding"]) == pytest.approx(floats(ollama, text), abs=1e-6)
    assert document["usage"] == {"prompt_tokens": 2, "total_tokens": 2}  # the rest unchanged
    assert document["x_fake_vendor"] == "café"
    assert response.headers["x-nexus-backend"] == "ollama"


@pytest.mark.parametrize("encoding", ["base64", "float"])
async def test_answers_in_the_asked_format_pass_byte_for_byte(start_fake, encoding: str) -> None:
    vllm = start_fake(FakeOpenAI)
    vllm.set_models(FakeModel("e5"))
    backend = {"name": "vllm", "type": "vllm", "url": vllm.url}
    body = {"model": "e5", "input": "x", "encoding_format": encoding}
    async with gateway([backend]) as gw:
        response = await gw.client.post(EMBEDDINGS, json=body)
    async with httpx.AsyncClient() as plain:
        direct = await plain.post(f"{vllm.url}/v1/embeddings", json=body)
    assert response.status_code == 200
    assert response.content == direct.content
