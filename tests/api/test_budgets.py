"""Spend budgets through the real app: the gateway's monthly budget (``[routing.budget]``, the
Rust keys) and each client's daily and monthly budgets, judged against the usage ledger before a
request is sent; ``X-Nexus-Budget-Status`` once past a soft limit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

ENVIRON = {"CLOUD_KEY": "sk-cloud", "CI_KEY": "ci-key", "TEAM_KEY": "team-key"}
PRICING = {"m": {"input_per_1k": 10.0, "output_per_1k": 10.0}}
CLOUD_ONLY = "big"


@pytest.fixture
def fleet(start_fake) -> tuple[FakeOpenAI, FakeOpenAI, list[dict[str, Any]]]:
    cloud, local = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    cloud.set_models(FakeModel("m"), FakeModel(CLOUD_ONLY))
    local.set_models(FakeModel("m"))
    backends = [
        {"name": "cloud", "type": "openai", "url": cloud.url, "api_key_env": "CLOUD_KEY",
         "priority": 1},
        {"name": "box", "type": "vllm", "url": local.url, "priority": 90},
    ]  # fmt: skip
    return cloud, local, backends


@pytest.fixture(autouse=True)
def usage_file(tmp_path, monkeypatch) -> None:
    """A budget keeps its ledger in nexus-usage.db in the working directory by default."""
    monkeypatch.chdir(tmp_path)


def spend(gw, usd: float, tenant: str = "seed") -> None:
    """Spend ``usd`` as ``tenant`` (counts in the gateway's total too)."""
    gw.app.gateway.ledger.charge(tenant, usd=usd, input_tokens=0, output_tokens=0)


def budget(**values: Any) -> dict[str, Any]:
    return {"budget": {"monthly_limit_usd": 10.0, "soft_limit_percent": 50, **values}}


async def test_the_soft_limit_moves_cloud_traffic_to_local(fleet) -> None:
    cloud, local, backends = fleet
    async with gateway(backends, environ=ENVIRON, routing=budget(), pricing=PRICING) as gw:
        before = await gw.client.post(CHAT, json=chat_body())
        spend(gw, 5.0)
        after = await gw.client.post(CHAT, json=chat_body())
        cloud_only = await gw.client.post(CHAT, json=chat_body(CLOUD_ONLY))
        metrics = (await gw.client.get("/metrics")).text
    assert 'nexus_budget_status{budget="gateway/month"} 1.0' in metrics
    assert 'nexus_budget_limit_usd{budget="gateway/month"} 10.0' in metrics
    assert 'nexus_tenant_requests_total{status="2xx",tenant="default"} 3.0' in metrics
    assert before.headers["x-nexus-backend"] == "cloud"
    assert "x-nexus-budget-status" not in before.headers
    assert after.status_code == 200
    assert after.headers["x-nexus-backend"] == "box"
    assert after.headers["x-nexus-route-reason"] == "budget-limit"
    assert after.headers["x-nexus-budget-status"] == "soft_limit"
    assert cloud_only.headers["x-nexus-backend"] == "cloud", "nothing local serves it"
    assert cloud_only.headers["x-nexus-budget-status"] == "soft_limit"


async def test_block_all_refuses_with_insufficient_quota(fleet) -> None:
    cloud, local, backends = fleet
    routing = budget(hard_limit_action="block_all")
    async with gateway(backends, environ=ENVIRON, routing=routing, pricing=PRICING) as gw:
        spend(gw, 10.0)
        refused = await gw.client.post(CHAT, json=chat_body())
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert error["message"].startswith("the gateway's monthly budget of 10.00 USD is spent")
    assert refused.headers["x-nexus-budget-status"] == "hard_limit"
    assert 0 < int(refused.headers["retry-after"]) <= 31 * 86_400
    assert refused.headers["x-should-retry"] == "false", "the SDKs must not sleep weeks"
    assert cloud.requests_to(CHAT) == [] and local.requests_to(CHAT) == []


async def test_block_cloud_keeps_requests_local(fleet) -> None:
    cloud, local, backends = fleet
    routing = budget(hard_limit_action="block_cloud")
    async with gateway(backends, environ=ENVIRON, routing=routing, pricing=PRICING) as gw:
        spend(gw, 12.0)
        served = await gw.client.post(CHAT, json=chat_body())
        cloud_only = await gw.client.post(CHAT, json=chat_body(CLOUD_ONLY))
    assert served.headers["x-nexus-backend"] == "box"
    assert served.headers["x-nexus-route-reason"] == "budget-limit"
    assert served.headers["x-nexus-budget-status"] == "hard_limit"
    assert cloud_only.status_code == 503
    assert "spend budget" in cloud_only.json()["error"]["message"]
    assert cloud.requests_to(CHAT) == []


async def test_warn_at_the_hard_limit_still_serves_from_the_cloud(fleet) -> None:
    cloud, local, backends = fleet
    async with gateway(backends, environ=ENVIRON, routing=budget(), pricing=PRICING) as gw:
        spend(gw, 11.0)
        cloud_only = await gw.client.post(CHAT, json=chat_body(CLOUD_ONLY))
    assert cloud_only.status_code == 200
    assert cloud_only.headers["x-nexus-backend"] == "cloud"
    assert cloud_only.headers["x-nexus-budget-status"] == "hard_limit"


def clients(**ci: Any) -> list[dict[str, Any]]:
    return [
        {"name": "ci", "api_key_env": "CI_KEY", **ci},
        {"name": "team", "api_key_env": "TEAM_KEY"},
    ]


async def test_a_client_over_its_daily_budget_is_blocked_alone(fleet) -> None:
    cloud, local, backends = fleet
    configured = clients(daily_usd=1.0)
    async with gateway(backends, environ=ENVIRON, clients=configured, pricing=PRICING) as gw:
        spend(gw, 1.0, tenant="ci")
        ci = await gw.client.post(
            CHAT, json=chat_body(), headers={"authorization": "Bearer ci-key"}
        )
        team = await gw.client.post(
            CHAT, json=chat_body(), headers={"authorization": "Bearer team-key"}
        )
    assert ci.status_code == 429
    message = ci.json()["error"]["message"]
    assert message.startswith("the daily budget of client 'ci' of 1.00 USD is spent")
    assert "tomorrow (00:00 UTC)" in message
    assert team.status_code == 200
    assert "x-nexus-budget-status" not in team.headers


async def test_a_client_with_local_only_stays_local(fleet) -> None:
    cloud, local, backends = fleet
    configured = clients(monthly_usd=2.0, hard_limit_action="local_only")
    async with gateway(backends, environ=ENVIRON, clients=configured, pricing=PRICING) as gw:
        spend(gw, 1.7, tenant="ci")  # 85 % of 2.00: past the default soft limit of 80 %
        soft = await gw.client.post(
            CHAT, json=chat_body(), headers={"authorization": "Bearer ci-key"}
        )
        spend(gw, 0.3, tenant="ci")
        hard = await gw.client.post(
            CHAT, json=chat_body(CLOUD_ONLY), headers={"authorization": "Bearer ci-key"}
        )
    assert soft.headers["x-nexus-backend"] == "box"
    assert soft.headers["x-nexus-budget-status"] == "soft_limit"
    assert hard.status_code == 503
    assert hard.headers["x-nexus-budget-status"] == "hard_limit"


async def test_spend_is_the_sum_of_the_cost_headers_json_and_streams(fleet) -> None:
    cloud, local, backends = fleet
    cloud.set_models(FakeModel("gpt-4o-mini"))  # a model with a tokenizer: streams get a bound
    pricing = {"gpt-4o-mini": {"input_per_1k": 10.0, "output_per_1k": 10.0}}
    async with gateway(backends, environ=ENVIRON, clients=clients(), pricing=pricing) as gw:
        keyed = {"authorization": "Bearer ci-key"}
        told = []
        for i in range(6):
            body = chat_body(
                "gpt-4o-mini", text=f"question {i} " * i, max_tokens=20, stream=i % 2 == 1
            )
            answer = await gw.client.post(CHAT, json=body, headers=keyed)
            assert answer.status_code == 200 and answer.headers["x-nexus-backend"] == "cloud"
            told.append(float(answer.headers["x-nexus-cost-estimated"]))
        usage = gw.app.gateway.ledger.usage("ci", "month")
    assert usage.requests == 6
    assert usage.spend_usd == pytest.approx(sum(told), abs=6 * 0.00005)
    assert sum(told) > 0


async def test_spend_survives_a_restart(fleet, tmp_path) -> None:
    assert not (tmp_path / "nexus-usage.db").exists()
    cloud, local, backends = fleet
    state = {"usage_path": str(tmp_path / "usage.db")}
    sections = {"pricing": PRICING, "state": state, "routing": budget()}
    async with gateway(backends, environ=ENVIRON, **sections) as gw:
        costs = [
            float((await gw.client.post(CHAT, json=chat_body())).headers["x-nexus-cost-estimated"])
            for _ in range(3)
        ]
    async with gateway(backends, environ=ENVIRON, **sections) as gw:
        usage = gw.app.gateway.ledger.usage("default", "month")
    assert usage.requests == 3
    assert usage.spend_usd == pytest.approx(sum(costs), abs=3 * 0.00005)
    assert not (tmp_path / "nexus-usage.db").exists(), "usage_path was used"
