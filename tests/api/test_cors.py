"""``[server] cors_origins``: browsers on the listed origins may call ``/v1``; by default no CORS
header is sent (nothing changes). A preflight passes before the client-key check (a browser
sends no Authorization on it) and the ``X-Nexus-*`` headers are readable from the page."""

from __future__ import annotations

import httpx
import pytest

from nexus.app import create_app
from nexus.config import NexusConfig
from nexus.config.loader import load_config
from nexus.errors import ConfigError

ORIGIN = "http://app.example:3000"
PREFLIGHT = {
    "origin": ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type",
}


def app_with(**server: object) -> httpx.AsyncClient:
    config = NexusConfig.model_validate(
        {"server": server, "discovery": {"enabled": False}, "health_check": {"enabled": False}}
    )
    app = create_app(config, environ={"KEYS": "k1"})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://nexus")


async def test_a_listed_origin_gets_its_preflight_before_the_key_check() -> None:
    async with app_with(cors_origins=[ORIGIN], api_keys_env="KEYS") as client:
        preflight = await client.options("/v1/chat/completions", headers=PREFLIGHT)
        refused = await client.post(
            "/v1/chat/completions", json={"model": "m", "messages": []}, headers={"origin": ORIGIN}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert refused.status_code == 401, "the key is still required on the real request"
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    exposed = refused.headers["access-control-expose-headers"].lower()
    assert "x-nexus-backend" in exposed and "x-request-id" in exposed and "retry-after" in exposed


async def test_an_unlisted_origin_gets_no_cors_headers() -> None:
    async with app_with(cors_origins=[ORIGIN]) as client:
        other = {**PREFLIGHT, "origin": "http://evil.example"}
        preflight = await client.options("/v1/chat/completions", headers=other)
        models = await client.get("/v1/models", headers={"origin": "http://evil.example"})
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in models.headers


async def test_by_default_nothing_changes() -> None:
    async with app_with() as client:
        preflight = await client.options("/v1/chat/completions", headers=PREFLIGHT)
        models = await client.get("/v1/models", headers={"origin": ORIGIN})
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in models.headers


@pytest.mark.parametrize("origin", ["app.example", "http://app.example/path", "ftp://x", ""])
def test_an_origin_that_is_not_scheme_host_port_is_a_config_error(tmp_path, origin) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(f'[server]\ncors_origins = ["{origin}"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "server.cors_origins" in str(caught.value)
