"""The governance benchmark still works: ``python -m bench.governance --quick`` runs end to end
(about 20 s) and writes every section of its JSON. Without redis-server the keyed-redis target is
skipped with its reason, except with ``CI=true``, where the bench fails. A benchmark is not a
test: no timing is checked here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import governance
from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def test_quick_governance_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "governance.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.governance", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    with_redis = shutil.which("redis-server") is not None
    keyed = ["keyed-sqlite", "keyed-redis"] if with_redis else ["keyed-sqlite"]
    names = {"direct", "plain", *keyed}
    assert {"meta", "checked", "latency_c1", "throughput_c32", "cpu_ms_per_request"} <= set(report)
    assert {"keyed_minus_plain", "ledger", "memory", "checks"} <= set(report)
    if not with_redis:
        assert "redis-server" in report["skipped"]["keyed-redis"]
    assert set(report["checked"]) == names
    for name in keyed:
        assert report["checked"][name]["headers"]["x-ratelimit-limit-requests"] == str(
            governance.RPM
        )
    assert "x-ratelimit-limit-requests" not in report["checked"]["plain"]["headers"]
    assert set(report["latency_c1"]) == names
    for name in names - {"direct"}:
        latency = report["latency_c1"][name]
        assert {"p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "rounds_p50_ms"} <= set(latency)
        assert latency["errors"] == 0
        assert report["throughput_c32"][name]["errors"] == 0
        assert {"rps", "vs_direct"} <= set(report["throughput_c32"][name])
        assert {"json_c1", "json_c32"} <= set(report["cpu_ms_per_request"][name])
    assert set(report["keyed_minus_plain"]) == set(keyed)
    for row in report["keyed_minus_plain"].values():
        assert {"added_p50_ms", "cpu_ms_c1", "cpu_ms_c32", "rps_ratio"} <= set(row)
        assert {"median", "min", "max", "se"} <= set(row["added_p50_rounds_ms"])
    for name in keyed:
        assert report["ledger"][name]["month_requests"] > 0
        assert report["ledger"][name]["stored_month_requests"] > 0
    assert [row["status"] for row in report["checks"]]
    assert "keyed - plain" in done.stdout


def test_a_missing_redis_server_is_skipped_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    binary, reason = governance.redis_binary()
    assert binary is None
    assert reason is not None and "redis-server" in reason


def test_a_missing_redis_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(SystemExit, match="CI=true"):
        governance.redis_binary()
