"""The benchmark still works: ``python -m bench.run --quick`` runs end to end and writes every
section of its JSON. A benchmark is not a test: no timing is checked here, ever. The rival
gateways are never installed here: their pins and how a missing one is reported are checked
offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench import portkey
from bench.load import parse_wrk
from bench.report import gateways_table
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SECTIONS = {
    "meta", "upstream", "latency_c1", "throughput", "streaming", "streams_held",
    "cpu_ms_per_request", "memory", "startup", "memory_growth", "planner", "checks",
    "rivals", "upstream_bytes",
}  # fmt: skip


def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--skip-litellm", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert SECTIONS <= set(report)
    assert report["meta"]["targets"] == ["direct", "nexus"]
    for name in ("direct", "nexus"):
        assert {"p50_ms", "p99_ms", "count"} <= set(report["latency_c1"][name])
        assert {"rps", "p99_ms"} <= set(report["throughput"]["c32"][name])
        assert {"ttfb", "total"} <= set(report["streaming"]["c16"][name])
        assert "max_ok" in report["streams_held"][name]
    assert "added_p50_ms" in report["latency_c1"]["nexus"]
    assert "added_p50_ms" in report["streaming"]["c1"]["nexus"]["ttfb"]
    assert {"json_c1", "json_c32"} <= set(report["cpu_ms_per_request"]["nexus"])
    assert {"rss_mb", "peak_rss_mb", "ready_rss_mb"} <= set(report["memory"]["nexus"])
    assert {"health_s", "routable_s", "rss_mb"} <= set(report["startup"]["local"])
    assert {"health_s", "rss_mb"} <= set(report["startup"]["translated"])
    assert {"rss_after_first_mb", "rss_after_total_mb", "growth_pct"} <= set(
        report["memory_growth"]
    )
    strategies = {"smart", "round_robin", "priority_only", "random"}
    assert set(report["planner"]["results"]) == strategies | {f"{s}+quality" for s in strategies}
    assert all({"measure", "target", "status"} <= set(row) for row in report["checks"])
    assert "Targets" in done.stdout
    assert set(report["rivals"]) == {"vllm-router", "portkey", "litellm"}
    assert all(not e["measured"] and "--quick" in e["why_not"] for e in report["rivals"].values())
    assert not report["nexus_auto"]["measured"] and "--quick" in report["nexus_auto"]["why_not"]
    assert report["upstream_bytes"]["nexus"]["json"]["unchanged"] is True
    assert "Gateways side by side" in done.stdout


def test_portkey_package_pins_the_gateway_and_its_node_server() -> None:
    package = json.loads(portkey.PACKAGE_JSON.read_text())
    assert package["dependencies"] == {"@portkey-ai/gateway": "1.15.2"}
    # Newer @hono/node-server releases break Portkey's streaming (Portkey-AI/gateway#1389).
    assert package["overrides"] == {"@hono/node-server": "1.14.1"}
    assert portkey.PRELOAD.exists()


def test_a_missing_rival_is_an_explained_gap() -> None:
    report = {
        "meta": {"targets": ["direct", "nexus"]},
        "throughput": {"c32": {"direct": {"rps": 1000.0}, "nexus": {"rps": 800.0}}},
        "upstream_bytes": {"nexus": {"json": {"unchanged": True}, "stream": {"unchanged": True}}},
        "rivals": {
            "vllm-router": {"label": "vllm-router", "measured": False, "why_not": "pip failed"},
            "portkey": {"label": "Portkey", "measured": False, "why_not": "skipped (--quick)"},
        },
    }
    console = Console(record=True, width=200)
    console.print(gateways_table(report))
    text = console.export_text()
    assert "vllm-router (-)" in text and "Portkey (-)" in text
    assert "vllm-router: not measured, pip failed" in text
    assert "Portkey: not measured, skipped (--quick)" in text
    assert "yes / yes" in text and "800" in text


def test_nexus_auto_sits_right_after_nexus_with_its_workers_noted() -> None:
    def row(rps: float) -> dict[str, float]:
        return {"rps": rps}

    report: dict[str, Any] = {
        "meta": {"targets": ["direct", "nexus", "nexus-auto", "portkey"]},
        "throughput": {"c32": {"direct": row(9000), "nexus": row(800), "nexus-auto": row(1500),
                               "portkey": row(700)}},
        "nexus_auto": {"measured": True, "workers": 2, "processes": 4},
        "rivals": {"portkey": {"label": "Portkey", "measured": True}},
    }  # fmt: skip
    console = Console(record=True, width=200)
    console.print(gateways_table(report))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "measure" in line)
    assert header.index("Nexus ") < header.index("Nexus workers=auto") < header.index("Portkey")
    assert "Nexus workers=auto: 2 workers (4 processes" in text and "VmHWM" in text

    report["meta"]["targets"] = ["direct", "nexus", "portkey"]
    report["nexus_auto"] = {"measured": False, "why_not": "skipped (--skip-nexus-auto)"}
    console = Console(record=True, width=200)
    console.print(gateways_table(report))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "measure" in line)
    assert header.index("Nexus ") < header.index("Nexus workers=auto (-)") < header.index("Portkey")
    assert "Nexus workers=auto: not measured, skipped (--skip-nexus-auto)" in text


WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:8000/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  402.00us  12.00ms   90.00%
  Latency Distribution
     50%  950.00us
     75%    1.20ms
     90%    1.50ms
     99%    3.08ms
  113258 requests in 4.00s, 75.37MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  28313.16
Transfer/sec:     18.84MB
"""


def test_wrk_output_is_parsed() -> None:
    assert parse_wrk(WRK_OUTPUT) == {
        "requests": 113258,
        "rps": 28313.2,
        "p50_ms": 0.95,
        "p99_ms": 3.08,
        "errors": 3,
        "non_2xx": 5,
    }
