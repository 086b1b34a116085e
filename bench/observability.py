"""Benchmark of what metrics, stats, history and logging cost per request.

Run ``.venv/bin/python bench/observability.py`` (``--help`` for sizes). Two measurements:

1. **Observers alone**: ``observer.completed(event)`` for a varied stream of events (4 backends,
   12 models, errors, streams, fallbacks), for each observer and for the set the app uses. The
   log observer writes JSON lines (the ``json`` format) to ``/dev/null``.
2. **Whole requests, in process**: the real app (``create_app``) over an aiohttp upstream on
   127.0.0.1, driven through ``httpx.ASGITransport``, in setups run in alternating rounds so
   machine noise hits each alike: no log sink and no observability; JSON logs only; JSON logs
   plus metrics, stats and history (today's default: tracing off); the same with ``[tracing]``
   on, every trace sampled and exported over OTLP/HTTP (to the same aiohttp server, which
   answers ``/v1/traces`` with 200), and on with ``sample_ratio = 0`` (spans not recorded, the
   ``traceparent`` still sent). The difference of the medians is the cost per request.

Prints microseconds per request and writes ``bench/results/observability-<date>.json``.
A benchmark, not a test: the test suite only runs a tiny smoke version.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiohttp import web
from loguru import logger

from bench import RESULTS, write_result
from nexus.app import create_app
from nexus.config import NexusConfig
from nexus.observability.events import Completed, Observer, Observers, RequestLog
from nexus.observability.hub import Observability
from nexus.observability.logs import json_line

if TYPE_CHECKING:
    from loguru import Message

BACKENDS = ("gpu-1", "gpu-2", "cpu", "cloud")
MODELS = tuple(f"model-{i}" for i in range(12))
CHAT_ANSWER = (
    b'{"id":"c1","object":"chat.completion","created":1,"model":"model-0","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
)


def events(count: int) -> list[Completed]:
    """A deterministic mix: mostly 200s, some 404/429/500, streams, fallbacks and failovers."""
    statuses = (200, 200, 200, 200, 200, 200, 404, 429, 500, 200)
    return [
        Completed(
            request_id=f"r{i}",
            endpoint="chat",
            model=MODELS[i % len(MODELS)] if i % 17 else "unknown-model",
            backend=None if statuses[i % 10] == 404 else BACKENDS[i % len(BACKENDS)],
            location="local",
            route_reason="failover" if i % 7 == 0 else "capability-match",
            status=statuses[i % 10],
            stream=i % 3 == 0,
            started_at=1_700_000_000.0 + i,
            duration_s=0.05 + (i % 50) / 100,
            ttfb_s=0.01,
            failed_attempts=1 if i % 7 == 0 else 0,
            fallback_model=MODELS[0] if i % 11 == 0 else None,
            cost_usd=0.001 if i % 4 == 3 else None,
            input_tokens=20 + i % 100,
            output_tokens=10,
        )
        for i in range(count)
    ]


def config(base: str = "http://127.0.0.1:9", sample_ratio: float | None = None) -> NexusConfig:
    """Four backends at ``base``; with ``sample_ratio``, tracing on, exporting to ``base``."""
    backends = [
        {"name": name, "type": "vllm", "url": f"{base}/{name}", "models": list(MODELS)}
        for name in BACKENDS
    ]
    tracing: dict[str, Any] = {}
    if sample_ratio is not None:
        tracing = {"enabled": True, "endpoint": f"{base}/v1/traces", "sample_ratio": sample_ratio}
    return NexusConfig.model_validate(
        {
            "discovery": {"enabled": False},
            "health_check": {"interval_seconds": 3600},
            "tracing": tracing,
            "backends": backends,
        }
    )


async def upstream(request: web.Request) -> web.Response:
    """A backend answering any path: model listings and a fixed chat completion."""
    if request.path == "/v1/traces":  # the OTLP exporter's
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")
    if request.path.endswith("/models"):
        data = [{"id": m, "object": "model"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})
    await request.read()
    return web.Response(body=CHAT_ANSWER, content_type="application/json")


async def start_upstream() -> tuple[web.AppRunner, str]:
    """The upstream on a free 127.0.0.1 port, in this process; its base URL."""
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", upstream)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


@contextmanager
def log_sink(json_logs: bool) -> Iterator[None]:
    """No log sink at all, or JSON lines as ``format = "json"`` writes them, into /dev/null."""
    logger.remove()
    if not json_logs:
        yield
        return
    with open(os.devnull, "wb") as devnull:

        def write(message: Message) -> None:
            devnull.write(json_line(dict(message.record)))

        sink = logger.add(write, level="INFO")
        try:
            yield
        finally:
            logger.remove(sink)


def time_observer(observer: Observer, stream: list[Completed], repeat: int) -> float:
    """Median over ``repeat`` runs of microseconds per ``completed`` call."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for event in stream:
            observer.completed(event)
        runs.append((time.perf_counter_ns() - started) / 1000 / len(stream))
    return statistics.median(runs)


def observers_alone(count: int, repeat: int) -> dict[str, float]:
    app = create_app(config())
    hub = Observability.create(lambda: (app.gateway.registry, app.gateway.policy))
    stream = events(count)
    candidates: dict[str, Observer] = {
        "metrics": hub.metrics,
        "stats": hub.stats,
        "history": hub.history,
        "observability (metrics+stats+history)": Observers(hub.observers()),
        "log line (json)": RequestLog(),
        "all (log + observability)": Observers([RequestLog(), *hub.observers()]),
    }
    with log_sink(json_logs=True):
        return {
            name: round(time_observer(observer, stream, repeat), 2)
            for name, observer in candidates.items()
        }


async def _round(client: httpx.AsyncClient, requests: int) -> list[float]:
    """Microseconds of each of ``requests`` chat requests."""
    body = {"model": "model-3", "messages": [{"role": "user", "content": "hi"}]}
    timings = []
    for _ in range(requests):
        started = time.perf_counter_ns()
        response = await client.post("/v1/chat/completions", json=body)
        timings.append((time.perf_counter_ns() - started) / 1000)
        assert response.status_code == 200
    return timings


#: The setups of whole requests; a tracing setup's sample ratio (None: tracing off).
SETUPS: dict[str, float | None] = {
    "bare": None,
    "logs": None,
    "logs + observability": None,
    "+ tracing sampled": 1.0,
    "+ tracing unsampled": 0.0,
}


async def _setup(name: str, base: str) -> tuple[Any, httpx.AsyncClient]:
    """The app with only the observers ``name`` says: none, the log line, or everything (and
    tracing, for the tracing setups)."""
    app = create_app(config(base, SETUPS[name]))
    hub = app.gateway.observability
    app.gateway.observer = {
        "bare": Observers([]),
        "logs": Observers([RequestLog()]),
    }.get(name, Observers([RequestLog(), *hub.observers()]))
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    checker = app.gateway.checker
    assert checker is not None
    await checker.probe(app.gateway.registry.configs())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://nexus")
    return lifespan, client


async def whole_requests(requests: int, rounds: int) -> dict[str, float]:
    names = tuple(SETUPS)
    runner, base = await start_upstream()
    setups = {name: await _setup(name, base) for name in names}
    timings: dict[str, list[float]] = {name: [] for name in names}
    try:
        for number in range(rounds):
            turn = number % len(names)
            for name in names[turn:] + names[:turn]:  # each goes first in turn
                with log_sink(json_logs=name != "bare"):
                    timings[name] += await _round(setups[name][1], requests)
    finally:
        for lifespan, client in setups.values():
            await client.aclose()
            await lifespan.__aexit__(None, None, None)
        await runner.cleanup()
    return {name: round(statistics.median(values), 1) for name, values in timings.items()}


def run(
    events_count: int = 5000, repeat: int = 7, requests: int = 300, rounds: int = 7
) -> dict[str, Any]:
    logger.remove()
    alone = observers_alone(events_count, repeat)
    whole = asyncio.run(whole_requests(requests, rounds))
    return {
        "benchmark": "observability",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "events": events_count,
        "requests_per_round": requests,
        "rounds": rounds,
        "observers_us_per_event": alone,
        "requests_us_each": whole,
        "added_us_per_request": {
            "json logs": round(whole["logs"] - whole["bare"], 1),
            "observability": round(whole["logs + observability"] - whole["logs"], 1),
            "tracing (sampled)": round(
                whole["+ tracing sampled"] - whole["logs + observability"], 1
            ),
            "tracing (unsampled)": round(
                whole["+ tracing unsampled"] - whole["logs + observability"], 1
            ),
        },
    }


def table(report: dict[str, Any]) -> str:
    lines = [f"observer.completed(event), {report['events']} events (median us per event)"]
    lines += [f"  {name:<40}{us:>8.2f}" for name, us in report["observers_us_per_event"].items()]
    lines.append(
        f"whole requests in process, {report['rounds']} x {report['requests_per_round']} "
        "(median us per request)"
    )
    lines += [f"  {name:<40}{us:>8.1f}" for name, us in report["requests_us_each"].items()]
    lines += [
        f"  added by {name:<31}{us:>+8.1f}" for name, us in report["added_us_per_request"].items()
    ]
    return "\n".join(lines)


def write(report: dict[str, Any], folder: Path = RESULTS) -> Path:
    return write_result("observability", report, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the cost of metrics and logging.")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    report = run(args.events, args.repeat, args.requests, args.rounds)
    print(table(report))
    print(f"written: {write(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
