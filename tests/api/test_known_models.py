"""A model the gateway knows is never "not found" (issue 14, defect 1): a model in a backend's
configured ``models`` answers 503 with the whole context and ``Retry-After`` while that backend
is down or its key is rejected (SDKs treat 404 as final); only a model nobody knows is a 404."""

from __future__ import annotations

import socket

import pytest

from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

CONTEXT_KEYS = {"required_tier", "available_backends", "eta_seconds", "privacy_zone_required"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", [{}, {"x-nexus-strict": "true"}, {"x-nexus-flexible": "true"}])
async def test_a_configured_model_of_a_backend_that_is_down_is_a_503(mode) -> None:
    down = {
        "name": "mid",
        "type": "vllm",
        "url": f"http://127.0.0.1:{closed_port()}",
        "tier": 2,
        "models": ["model-mid"],
    }
    async with gateway([down]) as gw:
        response = await gw.client.post(CHAT, json=chat_body("model-mid"), headers=mode)
        unknown = await gw.client.post(CHAT, json=chat_body("no-such-model"), headers=mode)
    assert response.status_code == 503, response.text
    assert set(response.json()["context"]) == CONTEXT_KEYS
    assert int(response.headers["retry-after"]) >= 1
    assert "mid" in response.json()["error"]["message"]
    assert unknown.status_code == 404


async def test_a_configured_model_behind_a_rejected_key_names_backend_and_variable(
    start_fake,
) -> None:
    cloud = start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("gpt-4o"))
    cloud.unauthorized(path=None)
    backend = {
        "name": "openai",
        "type": "openai",
        "url": cloud.url,
        "api_key_env": "OPENAI_KEY",
        "models": ["gpt-4o"],
    }
    async with gateway([backend], environ={"OPENAI_KEY": "sk-wrong-secret"}) as gw:
        response = await gw.client.post(CHAT, json=chat_body("gpt-4o"))
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "openai" in message and "OPENAI_KEY" in message
    assert "sk-wrong-secret" not in response.text


async def test_flexible_substitutes_an_equal_or_higher_tier_for_a_known_model_that_is_down(
    start_fake,
) -> None:
    big, small = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    big.set_models(FakeModel("model-big"))
    small.set_models(FakeModel("model-small"))
    down = {
        "name": "mid",
        "type": "vllm",
        "url": f"http://127.0.0.1:{closed_port()}",
        "tier": 2,
        "models": ["model-mid"],
    }
    backends = [
        down,
        {"name": "small", "type": "vllm", "url": small.url, "tier": 1, "priority": 1},
        {"name": "big", "type": "vllm", "url": big.url, "tier": 3, "priority": 9},
    ]
    async with gateway(backends) as gw:
        flexible = await gw.client.post(
            CHAT, json=chat_body("model-mid"), headers={"x-nexus-flexible": "true"}
        )
    assert flexible.status_code == 200, flexible.text
    assert flexible.headers["x-nexus-backend"] == "big", "never down to tier 1"
    assert flexible.headers["x-nexus-fallback-model"] == "model-big"
    assert flexible.headers["x-nexus-route-reason"] == "failover"


async def test_a_discovered_model_of_a_backend_that_went_down_is_kept_stale_and_a_503(
    start_fake,
) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("listed-only"))  # not in the configuration: known by discovery
    backend = {"name": "gpu", "type": "vllm", "url": fake.url}
    async with gateway([backend]) as gw:
        fake.stop()
        checker = gw.app.gateway.checker
        assert checker is not None
        await checker.run_cycle()
        response = await gw.client.post(CHAT, json=chat_body("listed-only"))
        listing = (await gw.client.get("/v1/backends")).json()["data"][0]
    assert listing["status"] == "unhealthy"
    assert (listing["models"], listing["models_stale"]) == (["listed-only"], True)
    assert response.status_code == 503, response.text
    assert set(response.json()["context"]) == CONTEXT_KEYS
    assert int(response.headers["retry-after"]) >= 1
