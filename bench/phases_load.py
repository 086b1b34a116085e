"""The measurements made with processes and wrk: throughput at a fixed concurrency (interleaved
rounds), Nexus start-up time, and Nexus memory after 1,000 and after 100,000 requests."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from bench.load import Loader, asyncio_load
from bench.phases import Accounting, rotated
from bench.targets import Target, start_nexus


def throughput(
    targets: Sequence[Target],
    account: Accounting,
    loader: Loader,
    concurrency: int,
    rounds: int,
    seconds: float,
    warmup: bool = True,
) -> dict[str, dict[str, Any]]:
    """Closed-loop load at ``concurrency``: median req/s and p99 over the rounds, per target."""
    for target in targets if warmup else ():  # warm-up: connections, pools, first code paths
        loader.run(target, concurrency, 1.0)
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for index in range(rounds):
        for target in rotated(targets, index):
            account.begin(target)
            run = loader.run(target, concurrency, seconds)
            account.end(target, f"json_c{concurrency}", run["requests"])
            runs[target.name].append(run)
    stats = {name: _summary(rows) for name, rows in runs.items()}
    direct = stats.get("direct", {}).get("rps")
    for name, row in stats.items():
        if direct and name != "direct":
            row["vs_direct"] = round(row["rps"] / direct, 4)
    return stats


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": round(statistics.median(r["rps"] for r in rows), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 3),
        "requests": sum(r["requests"] for r in rows),
        "errors": sum(r["errors"] + r["non_2xx"] for r in rows),
        "rounds_rps": [r["rps"] for r in rows],
    }


def startup(workdir: Path, upstream_port: int, runs: int) -> dict[str, dict[str, Any]]:
    """Fresh ``nexus serve`` processes, alternately local-only and with a translated (Anthropic,
    unreachable) backend: seconds to the first ``/health`` 200, to ``/health/ready`` 200 (the
    local backend probed healthy) and resident memory then."""
    samples: dict[str, list[dict[str, float]]] = {"local": [], "translated": []}
    for index in range(runs):
        for kind in ("local", "translated"):
            proc, _port = start_nexus(
                workdir, upstream_port, f"nexus-start-{kind}-{index}", kind == "translated"
            )
            try:
                time.sleep(0.2)
                memory = procs.memory_mb(proc.pid)
                samples[kind].append(
                    {
                        "health_s": proc.ready_after or 0.0,
                        "routable_s": float(proc.notes["routable_after"]),
                        "rss_mb": memory["rss_mb"],
                    }
                )
            finally:
                proc.stop()
    return {kind: _median_of(rows) for kind, rows in samples.items()}


def _median_of(rows: list[dict[str, float]]) -> dict[str, Any]:
    keys = rows[0].keys() if rows else ()
    summary: dict[str, Any] = {k: round(statistics.median(r[k] for r in rows), 3) for k in keys}
    summary["runs"] = rows
    return summary


def memory_growth(
    workdir: Path,
    upstream_port: int,
    loader: Loader,
    first: int,
    total: int,
    rps_hint: float,
    deadline: float,
) -> dict[str, Any]:
    """A fresh Nexus: RSS after ``first`` requests (asyncio client, concurrency 8) and after
    ``total`` (the loader at concurrency 32; wrk runs for the time ``rps_hint`` says it needs,
    stopping at ``total`` requests, and never past ``deadline``, a ``perf_counter`` value)."""
    proc, port = start_nexus(workdir, upstream_port, "nexus-growth")
    target = Target("nexus-growth", port, proc)
    try:
        ready = procs.memory_mb(proc.pid)["rss_mb"]
        done = asyncio_load(target, 8, 120, limit=first)["requests"]
        after_first = procs.memory_mb(proc.pid)["rss_mb"]
        started = time.perf_counter()
        budget = math.ceil((total - done) / max(rps_hint, 50.0) * 1.15) + 1
        budget = max(5, min(budget, math.floor(deadline - started)))
        rest = loader.run(target, 32, budget, limit=total - done)
        seconds = time.perf_counter() - started
        final = procs.memory_mb(proc.pid)
        served = _served(port)
    finally:
        proc.stop()
    count = done + rest["requests"]
    return {
        "rss_ready_mb": ready,
        "requests_first": done,
        "rss_after_first_mb": after_first,
        "requests_total": count,
        "rss_after_total_mb": final["rss_mb"],
        "peak_rss_mb": final["peak_rss_mb"],
        "growth_pct": round(100 * (final["rss_mb"] - after_first) / after_first, 2),
        "errors": rest["errors"] + rest["non_2xx"],
        "seconds": round(seconds, 1),
        "nexus_health": served,
    }


def _served(port: int) -> dict[str, Any]:
    try:
        body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body
