"""Chat completions and embeddings through the relay: body identity, fidelity, headers, errors."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.chat import SSE_DONE
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

ODD_REQUEST = (
    b'{ "messages": [ {"role":"user","content":"caf\\u00e9 \\"q\\""},'
    b' {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",'
    b'"function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1",'
    b'"content":"42"}],\n "model" : "fast", "seed": 7, "n": 1, "user": "u-1",'
    b' "metadata": {"k": "v"}, "x_unknown": [1, 2.50], "temperature": 0.0}'
)


@pytest.fixture
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.set_models(FakeModel("m"), FakeModel("e"))
    return fake_openai


def local(name: str, url: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "vllm", "url": url, **extra}


async def test_json_body_is_byte_identical_to_a_direct_call(fake: FakeOpenAI) -> None:
    raw = orjson.dumps(chat_body())
    direct = httpx.post(f"{fake.url}{CHAT}", content=raw)
    async with gateway([local("gpu", fake.url)]) as gw:
        response = await gw.client.post(CHAT, content=raw)
    assert response.status_code == 200
    assert response.content == direct.content
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-nexus-backend"] == "gpu"
    assert response.headers["x-nexus-backend-type"] == "local"
    assert response.headers["x-nexus-route-reason"] == "capability-match"
    assert response.headers["x-nexus-privacy-zone"] == "restricted"
    assert "x-nexus-cost-estimated" not in response.headers
    assert "x-nexus-fallback-model" not in response.headers
    assert len(response.headers["x-request-id"]) == 32


async def test_stream_events_are_byte_identical(fake: FakeOpenAI) -> None:
    raw = orjson.dumps(chat_body(stream=True, stream_options={"include_usage": True}))
    direct = httpx.post(f"{fake.url}{CHAT}", content=raw)
    async with gateway([local("gpu", fake.url)]) as gw:
        response = await gw.client.post(CHAT, content=raw)
        assert gw.in_flight() == {"gpu": 0}
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-nexus-backend"] == "gpu"
    assert response.content == direct.content
    assert response.content.endswith(SSE_DONE)


async def test_request_reaches_the_backend_byte_for_byte_but_the_alias(fake: FakeOpenAI) -> None:
    async with gateway([local("gpu", fake.url)], routing={"aliases": {"fast": "m"}}) as gw:
        response = await gw.client.post(CHAT, content=ODD_REQUEST)
    assert response.status_code == 200
    [received] = fake.requests_to(CHAT)
    assert received.body == ODD_REQUEST.replace(b'"fast"', b'"m"')


async def test_unaliased_request_is_forwarded_unchanged(fake: FakeOpenAI) -> None:
    raw = ODD_REQUEST.replace(b'"fast"', b'"m"')
    async with gateway([local("gpu", fake.url)]) as gw:
        await gw.client.post(CHAT, content=raw, headers={"authorization": "Bearer client"})
    [received] = fake.requests_to(CHAT)
    assert received.body == raw
    assert "authorization" not in received.headers, "a client's key reaches no backend"


async def test_cloud_backend_gets_its_configured_key_never_the_clients(fake: FakeOpenAI) -> None:
    fake.api_key = "sk-configured"
    openai = {"name": "openai", "type": "openai", "url": fake.url, "api_key_env": "OAI_KEY"}
    async with gateway([openai], environ={"OAI_KEY": "sk-configured"}) as gw:
        response = await gw.client.post(
            CHAT, json=chat_body(), headers={"authorization": "Bearer sk-client"}
        )
    assert response.status_code == 200
    assert response.headers["x-nexus-backend-type"] == "cloud"
    assert response.headers["x-nexus-privacy-zone"] == "open"
    [received] = fake.requests_to(CHAT)
    assert received.headers["authorization"] == "Bearer sk-configured"


async def test_embeddings_are_relayed(fake: FakeOpenAI) -> None:
    raw = b'{"model":"e","input":["a","b"]}'
    direct = httpx.post(f"{fake.url}/v1/embeddings", content=raw)
    async with gateway([local("gpu", fake.url)]) as gw:
        response = await gw.client.post("/v1/embeddings", content=raw)
    assert response.status_code == 200
    assert response.content == direct.content
    assert response.headers["x-nexus-backend"] == "gpu"


async def test_ollama_is_served_through_its_v1_endpoint(fake_ollama: FakeOllama) -> None:
    fake_ollama.set_models(FakeModel("llama3.2:3b"))
    raw = orjson.dumps(chat_body("llama3.2:3b"))
    async with gateway([{"name": "laptop", "type": "ollama", "url": fake_ollama.url}]) as gw:
        response = await gw.client.post(CHAT, content=raw)
    assert response.status_code == 200
    assert response.content == httpx.post(f"{fake_ollama.url}{CHAT}", content=raw).content
    assert [r.path for r in fake_ollama.requests if r.method == "POST"][-1] == CHAT


async def test_client_request_id_is_kept(fake: FakeOpenAI) -> None:
    async with gateway([local("gpu", fake.url)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body(), headers={"x-request-id": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"


@pytest.mark.parametrize(
    ("content", "status", "param", "fragment"),
    [
        (b'{"model": "m", "messages": [', 400, None, "not valid JSON"),
        (b"[1, 2]", 400, None, "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model", "model"),
        (b'{"model": "m"}', 400, "messages", "messages"),
        (b'{"model": "m", "messages": []}', 400, "messages", "non-empty"),
        (
            b'{"model": "m", "messages": [{"role":"user","content":"x"}], "stream": "yes"}',
            400,
            "stream",
            "stream",
        ),
    ],
)
async def test_bad_requests_get_the_openai_envelope_and_headers(
    fake: FakeOpenAI, content: bytes, status: int, param: str | None, fragment: str
) -> None:
    async with gateway([local("gpu", fake.url)]) as gw:
        response = await gw.client.post(CHAT, content=content)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]
    assert response.headers["x-nexus-backend"] == "none"
    assert response.headers["x-nexus-route-reason"] == "none"
    assert fake.requests_to(CHAT) == []


async def test_too_large_body_is_413(fake: FakeOpenAI) -> None:
    async with gateway([local("gpu", fake.url)], server={"max_body_bytes": 2048}) as gw:
        response = await gw.client.post(CHAT, json=chat_body(text="x" * 4000))
    assert response.status_code == 413
    assert "larger than 2048 bytes" in response.json()["error"]["message"]
    assert response.headers["x-nexus-backend"] == "none"


async def test_unknown_model_is_404_listing_models(fake: FakeOpenAI) -> None:
    async with gateway([local("gpu", fake.url)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body("nope"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    assert "Available models: e, m" in error["message"]
    assert response.headers["x-nexus-backend"] == "none"


async def test_upstream_client_error_is_passed_through(fake: FakeOpenAI) -> None:
    body = b'{"error":{"message":"bad temperature","type":"invalid_request_error"}}'
    fake.respond(400, body=body, path=CHAT)
    async with gateway([local("gpu", fake.url), local("cpu", fake.url, priority=90)]) as gw:
        response = await gw.client.post(CHAT, json=chat_body())
    assert response.status_code == 400
    assert response.content == body
    assert response.headers["x-nexus-backend"] == "gpu"
    assert len(fake.requests_to(CHAT)) == 1, "a 400 is the client's problem: no failover"
