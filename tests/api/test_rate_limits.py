"""Per-tenant rate limits (``[[clients]] rpm`` and ``tpm``) through the real app: over a limit is
a 429 in the OpenAI envelope with ``Retry-After``, ``retry-after-ms`` and OpenAI's
``x-ratelimit-*`` headers, and nothing reaches a backend; every answer of a limited tenant
carries the headers."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.config import NexusConfig
from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

ENVIRON = {"CI_KEY": "ci-key", "FREE_KEY": "free-key", "CLOUD_KEY": "sk-cloud"}
MESSAGES = "/v1/messages"


def keyed(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def clients(**ci: Any) -> list[dict[str, Any]]:
    return [
        {"name": "ci", "api_key_env": "CI_KEY", **ci},
        {"name": "free", "api_key_env": "FREE_KEY"},
    ]


@pytest.fixture
def local(start_fake) -> dict[str, Any]:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    return {"name": "box", "type": "vllm", "url": fake.url, "fake": fake}


def configured(backend: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in backend.items() if k != "fake"}]


def ratelimit_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-ratelimit-")}


async def test_over_its_rpm_a_tenant_gets_a_429_with_openai_headers(local) -> None:
    async with gateway(configured(local), environ=ENVIRON, clients=clients(rpm=2)) as gw:
        answers = [
            await gw.client.post(CHAT, json=chat_body(), headers=keyed("ci-key")) for _ in range(3)
        ]
        other = await gw.client.post(CHAT, json=chat_body(), headers=keyed("free-key"))
    first, second, refused = answers
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert ratelimit_headers(first) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
    }
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 25_000 < int(refused.headers["retry-after-ms"]) <= 30_000
    assert refused.headers["retry-after"] == str(-(-int(refused.headers["retry-after-ms"]) // 1000))
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"].startswith("client 'ci' is over its limit of 2 requests per minute")
    assert refused.headers["x-nexus-backend"] == "none"
    assert len(local["fake"].requests_to(CHAT)) == 3, "two for ci, one for free; none refused"
    assert other.status_code == 200
    assert ratelimit_headers(other) == {}, "a tenant without limits gets no such headers"


async def test_tpm_counts_input_and_max_tokens(local) -> None:
    async with gateway(configured(local), environ=ENVIRON, clients=clients(tpm=300)) as gw:
        big = await gw.client.post(CHAT, json=chat_body(max_tokens=250), headers=keyed("ci-key"))
        over = await gw.client.post(CHAT, json=chat_body(max_tokens=250), headers=keyed("ci-key"))
        small = await gw.client.post(CHAT, json=chat_body(max_tokens=5), headers=keyed("ci-key"))
        never = await gw.client.post(CHAT, json=chat_body(max_tokens=1000), headers=keyed("ci-key"))
    assert big.status_code == 200
    assert big.headers["x-ratelimit-limit-tokens"] == "300"
    remaining = int(big.headers["x-ratelimit-remaining-tokens"])
    assert 0 < remaining < 50, "input tokens plus max_tokens were taken"
    assert over.status_code == 429
    assert "tokens per minute" in over.json()["error"]["message"]
    assert small.status_code == 200
    assert never.status_code == 429
    assert "can never fit" in never.json()["error"]["message"]
    assert "retry-after" not in never.headers
    assert never.headers["x-should-retry"] == "false"
    assert "x-should-retry" not in over.headers, "a wait helps this one"


async def test_a_request_no_backend_answered_gives_its_tokens_back(local) -> None:
    local["fake"].respond(500, path=CHAT, times=1)
    async with gateway(configured(local), environ=ENVIRON, clients=clients(tpm=300)) as gw:
        failed = await gw.client.post(CHAT, json=chat_body(max_tokens=250), headers=keyed("ci-key"))
        again = await gw.client.post(CHAT, json=chat_body(max_tokens=250), headers=keyed("ci-key"))
    assert failed.status_code == 500, "the backend's own error, passed on"
    assert again.status_code == 200


async def test_cloud_usage_corrects_the_estimate(start_fake) -> None:
    cloud = start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("gpt-4o-mini"))
    backend = {"name": "cloud", "type": "openai", "url": cloud.url, "api_key_env": "CLOUD_KEY"}
    async with gateway([backend], environ=ENVIRON, clients=clients(tpm=300)) as gw:
        body = chat_body("gpt-4o-mini", max_tokens=250)
        answers = [await gw.client.post(CHAT, json=body, headers=keyed("ci-key")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], "the fake's usage is small"


async def test_messages_refusal_is_anthropic_shaped(local) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with gateway(configured(local), environ=ENVIRON, clients=clients(rpm=1)) as gw:
        headers = {"x-api-key": "ci-key", "anthropic-version": "2023-06-01"}
        await gw.client.post(MESSAGES, json=body, headers=headers)
        refused = await gw.client.post(MESSAGES, json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize("field", ["rpm", "tpm"])
def test_a_zero_limit_is_a_config_error(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        NexusConfig.model_validate({"clients": [{"name": "ci", "api_key_env": "CI_KEY", field: 0}]})
