"""Quality-aware routing through a real `nexus serve`, driven by the official `openai` SDK at 10
requests per second over three fakes serving one model: one starts failing 30 % of requests,
one's time to first token goes to 2 s. The failing one is ejected within seconds (no client
request fails: its failures fail over), the slow one gets under 10 % of the traffic, and both
come back within the configured times once they recover. The same with two replicas sharing the
figures through a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.configs import CHAT, Gateway, backend, gateway
from tests.fakes.fixtures import StartFake
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.state.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

RATE = 10.0  # requests per second, over every replica
FAULTY_SECONDS = 25.0
QUALITY = {
    "error_rate_threshold": 0.2,
    "min_requests": 10,
    "ttft_penalty_threshold_ms": 500,
    "window_seconds": 30,
    "base_ejection_seconds": 5,
    "max_ejection_seconds": 10,
    "metrics_interval_seconds": 1,
}
#: When each one must be back after it recovered: the longest ejection plus 10 s of requests for
#: its 3 probe successes (at a 10 % share of 10 requests/s, 100 requests hold 3 probes 99.8 % of
#: the time; 8 s failed once at 18.2 s) plus 2 s of polling; the routing window plus one 10 s
#: bucket and one refresh (its slow samples leave the window; the latency average needs less,
#: see HEALTH).
FAILING_BACK_WITHIN = QUALITY["max_ejection_seconds"] + 12
SLOW_BACK_WITHIN = QUALITY["window_seconds"] + 10 + QUALITY["metrics_interval_seconds"] + 4


@dataclass
class Reply:
    at: float  # seconds since the run started
    backend: str | None
    error: str | None = None


@dataclass
class Watch:
    """What a poller of ``/v1/route`` and ``/v1/backends`` saw, in run seconds."""

    first_ejected: float | None = None
    failing_back: float | None = None
    slow_back: float | None = None
    notes: list[str] = field(default_factory=list)


def fakes(start_fake: StartFake) -> tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]:
    started = tuple(start_fake(FakeOpenAI) for _ in range(3))
    for fake in started:
        fake.set_models(FakeModel("m"))
    return started  # type: ignore[return-value]


def fleet(failing: FakeOpenAI, slow: FakeOpenAI, steady: FakeOpenAI) -> list[dict[str, Any]]:
    return [
        backend("failing", failing.url, priority=1),
        backend("slow", slow.url, priority=50),
        backend("steady", steady.url, priority=60),
    ]


#: Passive health's own per-model ejection (3 errors in a row, for one probe interval) is set
#: out of the way, so the figures show what quality tracking does alone. Probes every second:
#: the smart score's latency term (an average of probe and request latencies, outside quality
#: tracking) learnt the slow backend's 2 s too, and only probes bring it down while the backend
#: gets no traffic (10 probes from 2 s to under 0.25 s).
HEALTH = {"interval_seconds": 1, "timeout_seconds": 2, "failure_threshold": 10}


def one(client: openai.OpenAI, at: float) -> Reply:
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.APIError as exc:
        return Reply(at, None, f"{type(exc).__name__}: {exc}")
    return Reply(at, raw.headers.get("x-nexus-backend"))


def watch(
    gateways: Sequence[Gateway],
    began: float,
    recovered: threading.Event,
    recovered_at: list[float],
    stop: threading.Event,
    seen: Watch,
) -> None:
    """Poll every gateway: the first ejection of ``failing``; once the fakes recovered, when
    ``failing`` is ok again and ``slow`` carries no penalty (first in line after failing)."""
    backs: dict[str, set[str]] = {"failing": set(), "slow": set()}
    while not stop.wait(0.25):
        for gw in gateways:
            now = time.monotonic() - began
            quality = gw.backends()["failing"]["quality"].get("m", {})
            if quality.get("status") == "ejected" and seen.first_ejected is None:
                seen.first_ejected = now
            if not recovered.is_set():
                continue
            route = httpx.get(f"{gw.url}/v1/route", params={"model": "m"}, timeout=5).json()
            order = [c["backend"] for c in route["candidates"]]
            rows = {row["backend"]: row for row in route["stages"][0]["backends"]}
            if quality.get("status") == "ok" and order[0] == "failing":
                backs["failing"].add(gw.url)
            slow = rows["slow"]["quality"]
            if order == ["failing", "slow", "steady"] and (slow is None or slow["penalty"] == 0):
                backs["slow"].add(gw.url)
        if recovered.is_set():
            since = time.monotonic() - began - recovered_at[0]
            if seen.failing_back is None and len(backs["failing"]) == len(gateways):
                seen.failing_back = since
            if seen.slow_back is None and len(backs["slow"]) == len(gateways):
                seen.slow_back = since
            if seen.failing_back is not None and seen.slow_back is not None:
                return


def run(
    gateways: Sequence[Gateway], failing: FakeOpenAI, slow: FakeOpenAI
) -> tuple[list[Reply], Watch]:
    """10 requests/s spread over ``gateways``: ``FAULTY_SECONDS`` with the faults, then without
    them until both are back (or their deadlines pass)."""
    failing.respond(500, path=CHAT, share=0.3)
    slow.delay(2.0, path=CHAT)
    seen, stop, recovered = Watch(), threading.Event(), threading.Event()
    recovered_at: list[float] = []
    began = time.monotonic()
    poller = threading.Thread(
        target=watch, args=(gateways, began, recovered, recovered_at, stop, seen), daemon=True
    )
    poller.start()
    limit = FAULTY_SECONDS + max(FAILING_BACK_WITHIN, SLOW_BACK_WITHIN) + 2
    futures: list[Future[Reply]] = []
    with ExitStack() as stack:
        clients = [stack.enter_context(gw.sdk(timeout=15))[0] for gw in gateways]
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=48))
        index, settled = 0, limit
        while (at := index / RATE) < min(limit, settled):
            time.sleep(max(0.0, began + at - time.monotonic()))
            if not poller.is_alive() and settled == limit:  # both back: 3 s more, then stop
                settled = at + 3.0
            if at >= FAULTY_SECONDS and not recovered.is_set():
                failing.reset()
                slow.reset()
                recovered_at.append(at)
                recovered.set()
            futures.append(pool.submit(one, clients[index % len(clients)], at))
            index += 1
        stop.set()
        poller.join(timeout=10)
        replies = [future.result() for future in futures]
    return replies, seen


def check(replies: list[Reply], seen: Watch) -> None:
    failed = [r for r in replies if r.error is not None]
    served = [r for r in replies if r.error is None]
    faulty = [r for r in served if r.at < FAULTY_SECONDS]
    slow_share = sum(1 for r in faulty if r.backend == "slow") / len(faulty)
    summary = (
        f"{len(replies)} requests, {len(failed)} failed, first ejection at {seen.first_ejected} s, "
        f"slow share {slow_share:.1%}, back after recovery: failing {seen.failing_back} s, "
        f"slow {seen.slow_back} s"
    )
    print(summary)
    assert seen.first_ejected is not None and seen.first_ejected < 60, summary
    assert len(failed) < 0.05 * len(replies), [r.error for r in failed][:5]
    assert all(r.at <= seen.first_ejected for r in failed), summary
    assert slow_share < 0.10, summary
    assert seen.failing_back is not None and seen.failing_back <= FAILING_BACK_WITHIN, summary
    assert seen.slow_back is not None and seen.slow_back <= SLOW_BACK_WITHIN, summary
    late = [r for r in served if r.at >= FAULTY_SECONDS + seen.failing_back + 1]
    assert late and all(r.backend == "failing" for r in late), "back to the preferred backend"


def test_a_failing_and_a_slow_backend_are_steered_around_and_come_back(
    tmp_path: Path, start_fake: StartFake
) -> None:
    failing, slow, steady = fakes(start_fake)
    with gateway(
        tmp_path, fleet(failing, slow, steady), quality=QUALITY, health_check=HEALTH
    ) as gw:
        replies, seen = run([gw], failing, slow)
        failing_m = gw.backends()["failing"]["quality"]["m"]
    check(replies, seen)
    assert failing_m["failures_5m"].get("server_error", 0) > 0


def test_the_same_with_two_replicas_sharing_the_figures_through_redis(
    tmp_path: Path, start_fake: StartFake, real_redis: RedisServer
) -> None:
    failing, slow, steady = fakes(start_fake)
    backends = fleet(failing, slow, steady)
    state = {"backend": "redis", "redis_url": real_redis.url}
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(
                gateway(
                    _folder(tmp_path / name),
                    backends,
                    quality=QUALITY,
                    health_check=HEALTH,
                    state=state,
                )
            )
            for name in ("a", "b")
        ]
        replies, seen = run(replicas, failing, slow)
        published = httpx.get(f"{replicas[0].url}/v1/backends", timeout=5).json()
    check(replies, seen)
    assert published["data"]


def _folder(path: Path) -> Path:
    path.mkdir()
    return path
