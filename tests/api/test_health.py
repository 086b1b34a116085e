"""GET /health in-process through httpx.ASGITransport."""

from __future__ import annotations

import httpx

from nexus import __version__
from nexus.api.health import BackendCounts, overall_status
from nexus.app import create_app
from nexus.config import load_config
from tests.conftest import REPO


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_health_reports_unprobed_backends_as_unhealthy_gateway() -> None:
    clock = FakeClock()
    app = create_app(load_config(REPO / "nexus.toml"), clock=clock)
    clock.now += 42.9
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "unhealthy",
        "version": __version__,
        "uptime_seconds": 42,
        "backends": {"total": 2, "healthy": 0, "unhealthy": 0},
        "models": 0,
    }


def test_overall_status() -> None:
    assert overall_status(BackendCounts(total=0, healthy=0, unhealthy=0)) == "unhealthy"
    assert overall_status(BackendCounts(total=3, healthy=0, unhealthy=3)) == "unhealthy"
    assert overall_status(BackendCounts(total=3, healthy=1, unhealthy=2)) == "degraded"
    assert overall_status(BackendCounts(total=3, healthy=3, unhealthy=0)) == "healthy"


async def test_unknown_path_is_an_openai_envelope() -> None:
    app = create_app(load_config(REPO / "nexus.toml"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
