"""docker-compose.scale.yml and docker/nginx.conf, checked statically: three replicas sharing
state through the compose file's Redis, nginx in front streaming without buffering."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from nexus.config import load_config
from tests.conftest import REPO


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.scale.yml").read_text())
    return loaded


def nexus_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name.startswith("nexus-")}


def test_three_replicas_share_one_redis(compose) -> None:
    replicas = nexus_services(compose)
    assert sorted(replicas) == ["nexus-1", "nexus-2", "nexus-3"]
    for service in replicas.values():
        assert service["image"] == "nexus-gateway:latest"
        assert service["environment"]["NEXUS_REDIS_URL"] == "redis://redis:6379/0"
        assert "redis" in service["depends_on"]
        assert "ports" not in service, "only nginx is published"
        for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
            assert service["environment"][key] == "${" + key + ":-}"
    assert compose["services"]["redis"]["image"].startswith("redis:")
    assert compose["services"]["nginx"]["ports"] == ["8000:8000"]


def test_replica_config_shares_state_through_the_redis_service(compose) -> None:
    [mount] = nexus_services(compose)["nexus-1"]["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/nexus/nexus.toml", "ro")
    config = load_config(REPO / source)
    assert config.state.backend == "redis"
    assert config.state.redis_url.get_secret_value() == "redis://redis:6379/0"
    assert not config.discovery.enabled


def test_nginx_balances_the_replicas_and_streams_unbuffered(compose) -> None:
    [mount] = compose["services"]["nginx"]["volumes"]
    text = (REPO / mount.split(":")[0]).read_text()
    servers = re.findall(r"^\s*server (nexus-\d):8000\b", text, re.MULTILINE)
    assert servers == sorted(nexus_services(compose))
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "listen 8000;",
    ):
        assert directive in text, directive
    assert re.search(r"^\s*keepalive \d+;", text, re.MULTILINE)
    timeout = int(re.findall(r"proxy_read_timeout (\d+)s;", text)[0])
    assert timeout > load_config(REPO / "docker/nexus.scale.toml").server.request_timeout_seconds
