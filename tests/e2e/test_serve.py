"""`nexus serve` as a user runs it: real process, real socket, real signals."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.conftest import REPO
from tests.e2e.serving import nexus_serve

pytestmark = pytest.mark.e2e


def test_bundled_config_answers_health_within_two_seconds_without_backends() -> None:
    with nexus_serve("--config", "nexus.toml", cwd=REPO) as served:
        response = httpx.get(f"{served.url}/health")
        assert served.ready_after < 2.0
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "unhealthy"
        assert body["backends"]["total"] == 2
        code, _ = served.stop()
    assert code == 0


def test_sigterm_exits_zero_and_logs_json_lines(tmp_path) -> None:
    env = {"NEXUS_LOG_FORMAT": "json"}
    with nexus_serve("--no-discovery", "--no-health-check", cwd=tmp_path, env=env) as served:
        assert httpx.get(f"{served.url}/health").json()["backends"]["total"] == 0
        started = time.monotonic()
        code, stderr = served.stop()
    assert code == 0
    assert time.monotonic() - started < 10
    records = [orjson.loads(line) for line in stderr.splitlines() if line.strip()]
    assert records, "expected log lines"
    assert {"timestamp", "level", "message"} <= set(records[0])
    assert any("Nexus listening on http://127.0.0.1:" in r["message"] for r in records)


def test_invalid_config_stops_start_up_with_exit_2(tmp_path) -> None:
    (tmp_path / "nexus.toml").write_text("[health_check]\nfailure_threshold = 0\n")
    with pytest.raises(RuntimeError, match=r"health_check.failure_threshold: 0 is not allowed"):
        with nexus_serve(cwd=tmp_path):
            pass
