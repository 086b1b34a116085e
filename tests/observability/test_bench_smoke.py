"""The observability benchmark still runs (a smoke check, no timing assertion)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import observability as bench
from tests.observability.observed import restore_default_logging


def test_bench_runs_small_and_writes_json(tmp_path: Path) -> None:
    try:
        report = bench.run(events_count=40, repeat=1, requests=3, rounds=1)
    finally:
        restore_default_logging()
    assert set(report["requests_us_each"]) == {
        "bare",
        "logs",
        "logs + observability",
        "+ tracing sampled",
        "+ tracing unsampled",
    }
    assert all(us > 0 for us in report["observers_us_per_event"].values())
    assert "added by observability" in bench.table(report)
    assert "added by tracing (sampled)" in bench.table(report)
    written = bench.write(report, tmp_path)
    assert written.name.startswith("observability-") and json.loads(written.read_text()) == report
