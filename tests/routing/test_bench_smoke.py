"""The planner benchmark still runs (a smoke check, no timing assertion)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import planner as bench


def test_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    report = bench.run(backends=6, models=30, decisions=60, seed=3)
    strategies = {"smart", "round_robin", "priority_only", "random"}
    assert set(report["results"]) == strategies | {f"{name}+quality" for name in strategies}
    for row in report["results"].values():
        assert row["p50_us"] > 0 and row["p99_us"] >= row["p50_us"]
    assert "p50 us" in bench.table(report)
    written = bench.write(report, tmp_path)
    assert written.name.startswith("planner-") and json.loads(written.read_text()) == report
