"""``POST /v1/completions`` (issue 15): legacy completions with ``suffix`` (fill-in-the-middle),
relayed byte for byte to a backend that speaks them, with everything chat gets (aliases, headers,
request id, errors in the OpenAI envelope)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.api.gateway import gateway
from tests.fakes.chat import SSE_DONE
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

COMPLETIONS = "/v1/completions"
FIM = {"model": "coder", "prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))"}


@pytest.fixture
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.set_models(FakeModel("coder"))
    return fake_openai


def local(url: str, **extra: object) -> dict[str, object]:
    return {"name": "gpu", "type": "vllm", "url": url, **extra}


async def test_json_is_byte_identical_to_a_direct_call_and_suffix_reaches_the_backend(
    fake,
) -> None:
    raw = orjson.dumps(FIM)
    direct = httpx.post(f"{fake.url}{COMPLETIONS}", content=raw)
    async with gateway([local(fake.url)]) as gw:
        response = await gw.client.post(COMPLETIONS, content=raw)
    assert response.status_code == 200, response.text
    assert response.content == direct.content
    assert response.json()["choices"][0]["text"].endswith("[suffix: \n\nprint(add(1, 2))]")
    assert response.headers["x-nexus-backend"] == "gpu"
    assert response.headers["x-nexus-route-reason"] == "capability-match"
    sent = fake.requests_to(COMPLETIONS)[-1]
    assert sent.body == raw


async def test_stream_events_are_passed_on_unchanged(fake) -> None:
    raw = orjson.dumps({**FIM, "stream": True})
    direct = httpx.post(f"{fake.url}{COMPLETIONS}", content=raw)
    async with gateway([local(fake.url)]) as gw:
        response = await gw.client.post(COMPLETIONS, content=raw)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == direct.content and response.content.endswith(SSE_DONE)


async def test_an_alias_rewrites_only_the_model(fake) -> None:
    routing = {"aliases": {"fim-*": "coder"}}
    async with gateway([local(fake.url)], routing=routing) as gw:
        response = await gw.client.post(COMPLETIONS, json={**FIM, "model": "fim-large"})
    assert response.status_code == 200
    sent = fake.requests_to(COMPLETIONS)[-1].json()
    assert sent == {**FIM, "model": "coder"}


@pytest.mark.parametrize(
    ("body", "param"),
    [({"model": "coder"}, "prompt"), ({"prompt": "x"}, "model"), ({**FIM, "stream": 1}, "stream")],
)
async def test_a_malformed_request_is_a_400_naming_the_field(fake, body, param) -> None:
    async with gateway([local(fake.url)]) as gw:
        response = await gw.client.post(COMPLETIONS, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.headers["x-nexus-backend"] == "none"
    assert fake.requests_to(COMPLETIONS) == []


async def test_an_unknown_model_is_a_404_in_the_openai_envelope(fake) -> None:
    async with gateway([local(fake.url)]) as gw:
        response = await gw.client.post(COMPLETIONS, json={**FIM, "model": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_restricted_privacy_is_kept(fake, start_fake) -> None:
    cloud = start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("coder"))
    backends = [
        {"name": "cloud", "type": "openai", "url": cloud.url, "api_key_env": "K", "priority": 1},
        local(fake.url, priority=90),
    ]
    headers = {"x-nexus-privacy-zone": "restricted"}
    async with gateway(backends, environ={"K": "sk-test"}) as gw:
        response = await gw.client.post(COMPLETIONS, json=FIM, headers=headers)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "gpu"
    assert cloud.requests_to(COMPLETIONS) == []


# -- a backend that does not speak completions: LiteLLM translates onto its chat completions --


def generic(fake: FakeOpenAI) -> dict[str, object]:
    fake.serves = {"chat", "embeddings"}
    return {"name": "plain", "type": "generic", "url": fake.url}


async def test_a_chat_only_backend_gets_the_prompt_as_chat(fake) -> None:
    body = {"model": "coder", "prompt": "def add(a, b):", "max_tokens": 30}
    async with gateway([generic(fake)]) as gw:
        response = await gw.client.post(COMPLETIONS, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "text_completion"
    assert answer["model"] == "coder"
    assert answer["choices"][0]["text"] == "echo: def add(a, b):"
    assert answer["usage"]["completion_tokens"] >= 1
    assert response.headers["x-nexus-backend"] == "plain"
    assert fake.requests_to(COMPLETIONS) == []
    (sent,) = fake.requests_to("/v1/chat/completions")
    assert sent.json()["messages"] == [{"role": "user", "content": "def add(a, b):"}]
    assert sent.json()["max_tokens"] == 30


async def test_a_translated_stream_is_openai_completion_events(fake) -> None:
    body = {"model": "coder", "prompt": "def add(a, b):", "stream": True}
    async with gateway([generic(fake)]) as gw:
        response = await gw.client.post(COMPLETIONS, json=body)
    assert response.status_code == 200, response.text
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    chunks = [orjson.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == "echo: def add(a, b):"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_suffix_on_a_backend_without_completions_is_a_400_naming_it(fake) -> None:
    async with gateway([generic(fake)]) as gw:
        response = await gw.client.post(COMPLETIONS, json=FIM)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "suffix"
    assert "plain" in error["message"]
    assert fake.requests == [r for r in fake.requests if r.method == "GET"]


async def test_an_apis_override_decides_native_or_translated(fake) -> None:
    body = {"model": "coder", "prompt": "x"}
    async with gateway([local(fake.url, apis=["chat"])]) as gw:
        response = await gw.client.post(COMPLETIONS, json=body)
    assert response.status_code == 200
    assert fake.requests_to(COMPLETIONS) == []
    assert len(fake.requests_to("/v1/chat/completions")) == 1
