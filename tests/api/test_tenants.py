"""Client keys as tenants (issue 16, first step): ``[[clients]]`` with a name, a key from an
environment variable, allowed model patterns and a privacy ceiling; the ``api_keys_env`` keys stay
valid as a tenant without limits; a tenant's name, never its key, is what the log and history
show."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.config import load_config
from nexus.errors import ConfigError
from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

ENVIRON = {
    "OPENAI_KEY": "sk-cloud",
    "BOT_KEY": "bot-secret-123",
    "TEAM_KEY": "team-secret-456",
    "LEGACY_KEYS": "legacy-secret-789",
}
CLIENTS = [
    {"name": "bot", "api_key_env": "BOT_KEY", "privacy": "restricted", "models": ["m*"]},
    {"name": "team", "api_key_env": "TEAM_KEY"},
]


@pytest.fixture
def fleet(start_fake) -> tuple[FakeOpenAI, FakeOpenAI]:
    cloud, local = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("m"), FakeModel("x"))
    local.set_models(FakeModel("m"), FakeModel("x"))
    return cloud, local


def backends(cloud: FakeOpenAI, local: FakeOpenAI) -> list[dict[str, Any]]:
    return [
        {"name": "cloud", "type": "openai", "url": cloud.url, "api_key_env": "OPENAI_KEY",
         "priority": 1},
        {"name": "box", "type": "vllm", "url": local.url, "priority": 90},
    ]  # fmt: skip


def keyed(key: str, **more: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **more}


def sections() -> dict[str, Any]:
    return {"clients": CLIENTS, "server": {"api_keys_env": "LEGACY_KEYS"}}


async def test_a_restricted_tenant_never_reaches_an_open_backend(fleet) -> None:
    cloud, local = fleet
    async with gateway(backends(cloud, local), environ=ENVIRON, **sections()) as gw:
        bot = await gw.client.post(CHAT, json=chat_body(), headers=keyed("bot-secret-123"))
        asks_open = await gw.client.post(
            CHAT,
            json=chat_body(),
            headers=keyed("bot-secret-123", **{"x-nexus-privacy-zone": "open"}),
        )
        team = await gw.client.post(CHAT, json=chat_body(), headers=keyed("team-secret-456"))
        legacy = await gw.client.post(CHAT, json=chat_body(), headers=keyed("legacy-secret-789"))
    assert bot.status_code == asks_open.status_code == 200
    assert bot.headers["x-nexus-backend"] == asks_open.headers["x-nexus-backend"] == "box"
    assert team.headers["x-nexus-backend"] == legacy.headers["x-nexus-backend"] == "cloud"
    assert len(cloud.requests_to("/v1/chat/completions")) == 2


async def test_a_model_outside_the_tenants_patterns_is_a_403(fleet) -> None:
    cloud, local = fleet
    routing = {"aliases": {"fast": "m", "other": "x"}}
    async with gateway(
        backends(cloud, local), environ=ENVIRON, routing=routing, **sections()
    ) as gw:
        refused = await gw.client.post(CHAT, json=chat_body("x"), headers=keyed("bot-secret-123"))
        aliased = await gw.client.post(
            CHAT, json=chat_body("fast"), headers=keyed("bot-secret-123")
        )
        sneaky = await gw.client.post(
            CHAT, json=chat_body("other"), headers=keyed("bot-secret-123")
        )
        messages = await gw.client.post(
            "/v1/messages",
            json={"model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "y"}]},
            headers={"x-api-key": "bot-secret-123"},
        )
        team = await gw.client.post(CHAT, json=chat_body("x"), headers=keyed("team-secret-456"))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "model_not_allowed" and error["param"] == "model"
    assert "'bot'" in error["message"] and "bot-secret" not in refused.text
    assert refused.headers["x-nexus-backend"] == "none"
    assert aliased.status_code == 200
    assert sneaky.status_code == 403  # an alias of an unallowed model is not a way around
    assert messages.status_code == 403
    assert messages.json()["error"]["type"] == "permission_error"
    assert team.status_code == 200


async def test_unknown_keys_are_refused_and_names_not_keys_are_shown(fleet) -> None:
    cloud, local = fleet
    async with gateway(backends(cloud, local), environ=ENVIRON, **sections()) as gw:
        wrong = await gw.client.post(CHAT, json=chat_body(), headers=keyed("nope"))
        await gw.client.post(CHAT, json=chat_body(), headers=keyed("bot-secret-123"))
        await gw.client.post(CHAT, json=chat_body(), headers=keyed("legacy-secret-789"))
        history = (await gw.client.get("/v1/history", headers=keyed("team-secret-456"))).json()
    assert wrong.status_code == 401
    tenants = [entry["tenant"] for entry in history["data"]]
    assert tenants[:2] == ["default", "bot"]
    assert "secret" not in str(history)


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[[clients]]\nname = "a"\napi_key_env = "K"\n[[clients]]\nname = "a"\n'
         'api_key_env = "L"\n', "clients[1].name: 'a' is already used by clients[0]"),
        ('[[clients]]\nname = "a"\napi_key_env = "K"\nmodels = ["m["]\n',
         "clients[0].models: 'm[' is not a valid glob"),
        ('[[clients]]\nname = "a"\n', "clients[0].api_key_env"),
    ],
)  # fmt: skip
def test_client_config_problems_are_named(write_config, toml: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(toml))
    assert any(problem in line for line in caught.value.problems), caught.value.problems
