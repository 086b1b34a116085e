"""Benchmarks: scripts that measure, print a table and write JSON to bench/results/."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, report: dict[str, Any], folder: Path = RESULTS) -> Path:
    """Write ``report`` to ``<folder>/<name>-<today>.json`` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{datetime.date.today().isoformat()}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def save_report(report: dict[str, Any], stem: str, *, quick: bool, out: Path | None) -> Path:
    """Write ``report`` to ``out``, else ``RESULTS/<today>-<stem>[-quick].json``; the path."""
    suffix = "-quick" if quick else ""
    today = datetime.date.today().isoformat()
    path = out or RESULTS / f"{today}-{stem}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path
