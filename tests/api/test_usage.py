"""``GET /v1/usage``: a client sees its own requests, tokens and spend today and this month, its
limits and its budgets; an admin client (and everyone without client keys) sees every tenant and
the gateway's month and budget; never a key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from nexus.api.usage import USAGE_SCHEMA
from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

USAGE = "/v1/usage"
ENVIRON = {
    "CLOUD_KEY": "sk-cloud",
    "CI_KEY": "ci-key-123",
    "TEAM_KEY": "team-key-456",
    "OPS_KEY": "ops-key-789",
    "LEGACY_KEYS": "legacy-key-000",
}
PRICING = {"m": {"input_per_1k": 10.0, "output_per_1k": 10.0}}
CI_LIMITS = {"rpm": 60, "daily_usd": 1.0, "monthly_usd": 10.0, "soft_limit_percent": 50}
CLIENTS = [
    {"name": "ci", "api_key_env": "CI_KEY", **CI_LIMITS},
    {"name": "team", "api_key_env": "TEAM_KEY", "tpm": 1000, "hard_limit_action": "warn"},
    {"name": "ops", "api_key_env": "OPS_KEY", "admin": True},
]


def keyed(env: str) -> dict[str, str]:
    return {"authorization": f"Bearer {ENVIRON[env]}"}


@pytest.fixture
def backends(start_fake) -> list[dict[str, Any]]:
    cloud = start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("m"))
    return [{"name": "cloud", "type": "openai", "url": cloud.url, "api_key_env": "CLOUD_KEY"}]


@pytest.fixture
def state(tmp_path, monkeypatch) -> dict[str, str]:
    """The ledger's file in the test's directory (and nothing written in the working one)."""
    monkeypatch.chdir(tmp_path)
    return {"usage_path": str(tmp_path / "u.db")}


def configured(state: dict[str, str], **sections: Any) -> dict[str, Any]:
    return {
        "environ": ENVIRON,
        "clients": CLIENTS,
        "server": {"api_keys_env": "LEGACY_KEYS"},
        "pricing": PRICING,
        "state": state,
        **sections,
    }


def charge(gw, tenant: str, usd: float, input_tokens: int = 0, output_tokens: int = 0) -> None:
    gw.app.gateway.ledger.charge(
        tenant, usd=usd, input_tokens=input_tokens, output_tokens=output_tokens
    )


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tenant["name"]: tenant for tenant in body["tenants"]}


def totals(gw, tenant: str, period: str) -> dict[str, Any]:
    usage = gw.app.gateway.ledger.usage(tenant, period)
    return {
        "requests": usage.requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "spend_usd": pytest.approx(usage.spend_usd, abs=1e-6),
    }


async def test_a_client_sees_only_its_own_tenant(backends, state) -> None:
    async with gateway(backends, **configured(state)) as gw:
        answers = [
            await gw.client.post(CHAT, json=chat_body(text=f"hello {i}"), headers=keyed("CI_KEY"))
            for i in range(2)
        ]
        charge(gw, "team", 0.5, input_tokens=100, output_tokens=20)
        charge(gw, "ci", 0.25, input_tokens=10, output_tokens=5)
        ci = await gw.client.get(USAGE, headers=keyed("CI_KEY"))
        team = await gw.client.get(USAGE, headers=keyed("TEAM_KEY"))
        legacy = await gw.client.get(USAGE, headers=keyed("LEGACY_KEYS"))
        expected_ci = totals(gw, "ci", "month")
    assert all(answer.status_code == 200 for answer in answers)
    told = sum(float(answer.headers["x-nexus-cost-estimated"]) for answer in answers)
    output = sum(answer.json()["usage"]["completion_tokens"] for answer in answers)
    body = ci.json()
    jsonschema.validate(body, USAGE_SCHEMA)
    now = datetime.now(UTC)
    assert body["object"] == "usage"
    assert (body["day"], body["month"]) == (f"{now:%Y-%m-%d}", f"{now:%Y-%m}")
    assert "gateway" not in body
    [mine] = body["tenants"]
    assert mine["name"] == "ci"
    assert mine["day"] == mine["month"] == expected_ci
    assert mine["month"]["requests"] == 3
    assert mine["month"]["output_tokens"] == output + 5
    assert mine["month"]["input_tokens"] > 10
    assert mine["month"]["spend_usd"] == pytest.approx(told + 0.25, abs=1e-5)
    assert mine["limits"] == {
        "rpm": 60, "tpm": None, "daily_usd": 1.0, "monthly_usd": 10.0,
        "soft_limit_percent": 50.0, "hard_limit_action": "block",
    }  # fmt: skip
    assert [t["name"] for t in team.json()["tenants"]] == ["team"]
    assert team.json()["tenants"][0]["month"] == {
        "requests": 1, "input_tokens": 100, "output_tokens": 20, "spend_usd": 0.5,
    }  # fmt: skip
    assert team.json()["tenants"][0]["budgets"] == []
    assert [t["name"] for t in legacy.json()["tenants"]] == ["default"]
    for response in (ci, team, legacy):
        assert not any(key in response.text for key in ENVIRON.values())


async def test_an_admin_sees_every_tenant_and_the_gateway(backends, state) -> None:
    routing = {"budget": {"monthly_limit_usd": 100.0, "hard_limit_action": "block_all"}}
    async with gateway(backends, **configured(state, routing=routing)) as gw:
        await gw.client.post(CHAT, json=chat_body(), headers=keyed("TEAM_KEY"))
        await gw.client.post(CHAT, json=chat_body(), headers=keyed("LEGACY_KEYS"))
        charge(gw, "retired", 2.0, input_tokens=7, output_tokens=3)  # no longer configured
        response = await gw.client.get(USAGE, headers=keyed("OPS_KEY"))
        expected = {name: totals(gw, name, "month") for name in ("team", "default", "retired")}
        everything = totals(gw, "*", "month")
    body = response.json()
    jsonschema.validate(body, USAGE_SCHEMA)
    tenants = by_name(body)
    assert list(tenants) == ["default", "ci", "team", "ops", "retired"]
    for name, month in expected.items():
        assert tenants[name]["month"] == month
    assert tenants["team"]["month"]["requests"] == 1
    assert tenants["default"]["month"]["requests"] == 1
    assert tenants["ops"]["month"]["requests"] == 0, "reading usage is not a request charged"
    assert tenants["retired"]["limits"] == dict.fromkeys(tenants["retired"]["limits"])
    assert tenants["team"]["limits"]["tpm"] == 1000
    assert tenants["team"]["limits"]["hard_limit_action"] == "warn"
    assert body["gateway"]["month"] == everything
    assert body["gateway"]["month"]["requests"] == 3
    budget = body["gateway"]["budget"]
    spent = body["gateway"]["month"]["spend_usd"]
    assert budget["period"] == "month" and budget["limit_usd"] == 100.0
    assert budget["spent_usd"] == pytest.approx(spent, abs=1e-6)
    assert budget["remaining_usd"] == pytest.approx(100.0 - spent, abs=1e-6)
    assert budget["status"] == "ok" and budget["hard_limit_action"] == "block_all"
    assert 0 < budget["renews_in_seconds"] <= 31 * 86_400
    assert not any(key in response.text for key in ENVIRON.values())


async def test_without_client_keys_everyone_sees_everything(backends, state) -> None:
    async with gateway(backends, environ=ENVIRON, pricing=PRICING, state=state) as gw:
        answer = await gw.client.post(CHAT, json=chat_body())
        charge(gw, "elsewhere", 1.5)  # e.g. charged by another replica with other clients
        body = (await gw.client.get(USAGE)).json()
        expected = totals(gw, "default", "day")
    jsonschema.validate(body, USAGE_SCHEMA)
    tenants = by_name(body)
    assert list(tenants) == ["default", "elsewhere"]
    assert tenants["default"]["day"] == expected
    assert tenants["default"]["day"]["requests"] == 1
    told = float(answer.headers["x-nexus-cost-estimated"])
    assert tenants["default"]["day"]["spend_usd"] == pytest.approx(told, abs=1e-6)
    assert tenants["default"]["budgets"] == []
    assert body["gateway"]["budget"] is None
    assert body["gateway"]["month"]["requests"] == 2
    assert body["gateway"]["month"]["spend_usd"] == pytest.approx(told + 1.5, abs=1e-6)


async def test_budgets_show_what_remains_and_their_status(backends, state) -> None:
    async with gateway(backends, **configured(state)) as gw:
        charge(gw, "ci", 0.6)
        soft = by_name((await gw.client.get(USAGE, headers=keyed("CI_KEY"))).json())["ci"]
        charge(gw, "ci", 0.6)
        hard = by_name((await gw.client.get(USAGE, headers=keyed("OPS_KEY"))).json())["ci"]
    day, month = soft["budgets"]
    assert day["period"] == "day" and month["period"] == "month"
    assert day["limit_usd"] == 1.0 and month["limit_usd"] == 10.0
    assert day["spent_usd"] == pytest.approx(0.6) and day["remaining_usd"] == pytest.approx(0.4)
    assert day["status"] == "soft_limit", "50 % of the day's budget is the soft limit"
    assert month["remaining_usd"] == pytest.approx(9.4) and month["status"] == "ok"
    assert 0 < day["renews_in_seconds"] <= 86_400
    assert day["renews_in_seconds"] <= month["renews_in_seconds"] <= 31 * 86_400
    day, month = hard["budgets"]
    assert day["spent_usd"] == pytest.approx(1.2) and day["remaining_usd"] == 0.0
    assert day["status"] == "hard_limit"
    assert month["remaining_usd"] == pytest.approx(8.8) and month["status"] == "ok"


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}])
async def test_a_key_is_needed_when_keys_are_configured(backends, state, headers) -> None:
    async with gateway(backends, **configured(state)) as gw:
        response = await gw.client.get(USAGE, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_endpoint_is_documented() -> None:
    from nexus.app import create_app
    from nexus.config import NexusConfig

    operation = create_app(NexusConfig()).openapi()["paths"][USAGE]["get"]
    assert operation["tags"] == ["observability"]
    assert "admin" in operation["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["title"] == (
        "Usage"
    )
    assert "401" in operation["responses"]
