"""The dialects benchmark still works: ``python -m bench.dialects --quick`` runs end to end (about
15 s) and writes every section of its JSON. A benchmark is not a test: no timing is checked here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

APIS = {"chat", "messages", "responses"}
CASES = {"messages_json", "messages_stream", "responses_json", "responses_stream"}


def test_quick_dialects_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "dialects.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.dialects", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"meta", "native", "translated", "translated_own_work", "checks"} <= set(report)
    native = report["native"]
    assert native["relayed_byte_for_byte"] == dict.fromkeys(APIS, True)
    assert set(native["latency_c1"]) == APIS
    for api in APIS:
        latency = native["latency_c1"][api]
        assert {"p50_ms", "p99_ms", "count"} <= set(latency["direct"])
        assert {"added_p50_ms", "added_p99_ms"} <= set(latency["nexus"])
        assert latency["nexus"]["errors"] == 0
        assert {"rps", "vs_direct"} <= set(native["throughput_c32"][api]["nexus"])
        assert {"json_c1", "json_c32"} <= set(native["cpu_ms_per_request"][api]["nexus"])
    assert set(report["translated"]) == CASES
    assert set(report["translated_own_work"]) == CASES
    for stats in [*report["translated"].values(), *report["translated_own_work"].values()]:
        assert {"wall_median_ms", "cpu_median_ms", "count"} <= set(stats["direct"])
        assert {"wall_median_ms", "cpu_median_ms", "cpu_median_se_ms"} <= set(stats["added"])
    assert all({"measure", "value", "target", "status"} <= set(row) for row in report["checks"])
    assert "Translated path" in done.stdout
