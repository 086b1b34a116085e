"""The paths around the inference endpoints (issue 15): ``GET /v1/models/{id}`` in OpenAI's
retrieve shape, and every other ``/v1`` path a 404 in the OpenAI envelope that names the path and
the endpoints Nexus serves, with the Nexus headers (a bare 404 reads like a wrong base URL)."""

from __future__ import annotations

import pytest

from tests.api.gateway import gateway
from tests.api.test_known_models import closed_port
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

SERVED = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/v1/models",
)


@pytest.fixture
def fake(start_fake) -> FakeOpenAI:
    upstream: FakeOpenAI = start_fake(FakeOpenAI)
    upstream.set_models(FakeModel("m", context_length=8192), FakeModel("org/coder:7b"))
    return upstream


def backends(fake: FakeOpenAI) -> list[dict[str, object]]:
    down = {"name": "down", "type": "vllm", "url": f"http://127.0.0.1:{closed_port()}"}
    return [
        {"name": "local", "type": "vllm", "url": fake.url},
        {**down, "models": ["later"]},
    ]


async def test_retrieve_a_model_in_openais_shape(fake) -> None:
    async with gateway(backends(fake)) as gw:
        response = await gw.client.get("/v1/models/m")
        nested = await gw.client.get("/v1/models/org/coder:7b")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {key: body[key] for key in ("id", "object", "owned_by")} == {
        "id": "m",
        "object": "model",
        "owned_by": "vllm",
    }
    assert isinstance(body["created"], int)
    assert body["backends"] == ["local"] and body["context_length"] == 8192
    assert nested.status_code == 200 and nested.json()["id"] == "org/coder:7b"


async def test_retrieve_an_alias_and_a_glob_alias(fake) -> None:
    routing = {"aliases": {"fast": "m", "claude-*": "m"}}
    async with gateway(backends(fake), routing=routing) as gw:
        alias = await gw.client.get("/v1/models/fast")
        glob = await gw.client.get("/v1/models/claude-sonnet-4-5")
    assert alias.json()["id"] == "fast" and alias.json()["alias_for"] == "m"
    assert glob.status_code == 200
    assert glob.json()["id"] == "claude-sonnet-4-5" and glob.json()["alias_for"] == "m"


async def test_a_known_model_nothing_serves_now_is_found_but_unavailable(fake) -> None:
    async with gateway(backends(fake)) as gw:
        response = await gw.client.get("/v1/models/later")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "later"
    assert response.json()["backends"] == []


async def test_an_unknown_model_is_a_404_model_not_found(fake) -> None:
    async with gateway(backends(fake)) as gw:
        response = await gw.client.get("/v1/models/nope", headers={"x-request-id": "r-1"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'nope'" in error["message"]
    assert response.headers["x-request-id"] == "r-1"
    assert response.headers["x-nexus-backend"] == "none"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/assistants"), ("GET", "/v1/files/abc"), ("POST", "/v1/chat/complete")],
)
async def test_any_other_v1_path_names_itself_and_what_is_served(fake, method, path) -> None:
    async with gateway(backends(fake)) as gw:
        response = await gw.client.request(method, path, json={"model": "m"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error"
    assert path in error["message"]
    for served in SERVED:
        assert served in error["message"]
    assert response.headers["x-nexus-backend"] == "none"
    assert len(response.headers["x-request-id"]) >= 8
    assert fake.requests_to(path) == []


async def test_backends_say_which_apis_they_speak_natively(fake) -> None:
    extra = {"name": "edge", "type": "llamacpp", "url": fake.url, "apis": ["chat", "responses"]}
    async with gateway([*backends(fake), extra]) as gw:
        data = (await gw.client.get("/v1/backends")).json()["data"]
    listed = {b["name"]: b["apis"] for b in data}
    assert listed["local"] == ["chat", "completions", "embeddings", "responses"]
    assert listed["edge"] == ["chat", "responses"]
