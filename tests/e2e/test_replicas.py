"""Several real `nexus serve` processes sharing state through a real redis-server: a failure seen
by one is honoured by the others within a second, ``max_concurrent`` holds across replicas,
Redis may die and come back while requests keep being served, and the leases of a replica killed
with SIGKILL expire. Plus ``[server] workers = 2``: two processes serve one port."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.configs import CHAT, Gateway, backend, gateway, wait_until
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.state.redis_server import RedisServer

pytestmark = pytest.mark.e2e

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
UNAVAILABLE = "shared state in Redis unavailable"
AVAILABLE_AGAIN = "shared state in Redis is available again"


@pytest.fixture
def fakes(start_fake) -> list[FakeOpenAI]:
    started = [start_fake(FakeOpenAI) for _ in range(2)]
    for fake in started:
        fake.set_models(FakeModel("m"))
    return started


@contextmanager
def replicas(
    tmp_path: Path,
    count: int,
    backends: Sequence[Mapping[str, Any]],
    redis: RedisServer,
    queue: Mapping[str, Any] | None = None,
    **state: Any,
) -> Iterator[list[Gateway]]:
    """``count`` gateways on the same backends and Redis, routing by priority only."""
    sections: dict[str, Any] = {
        "state": {"backend": "redis", "redis_url": redis.url, **state},
        "routing": {"strategy": "priority_only"},
    }
    if queue is not None:
        sections["queue"] = queue
    with ExitStack() as stack:
        started = []
        for index in range(count):
            directory = tmp_path / f"replica-{index}"
            directory.mkdir()
            started.append(
                stack.enter_context(
                    gateway(
                        directory,
                        backends,
                        **sections,
                    )
                )
            )
        yield started


def chat(gw: Gateway, timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{gw.url}{CHAT}", json=BODY, timeout=timeout)


def skip_reasons(gw: Gateway) -> dict[str, str | None]:
    plan = httpx.get(f"{gw.url}/v1/route", params={"model": "m"}, timeout=5).json()
    return {
        entry["backend"]: entry["reason"]
        for stage in plan.get("stages", [])
        for entry in stage["backends"]
    }


def test_a_429_on_one_replica_is_honoured_by_the_other_within_a_second(
    tmp_path, real_redis, fakes
) -> None:
    flaky, steady = fakes
    configured = [
        backend("flaky", flaky.url, priority=1),
        backend("steady", steady.url, priority=2),
    ]
    with replicas(tmp_path, 2, configured, real_redis) as (a, b):
        flaky.rate_limit(retry_after=30)
        answered = chat(a)
        seen = time.monotonic()
        assert answered.status_code == 200
        assert answered.headers["x-nexus-backend"] == "steady", "A failed over"
        wait_until(lambda: skip_reasons(b)["flaky"] == "cooling_down", 1.0, "B sees the cooldown")
        assert time.monotonic() - seen < 1.0
        sent_to_flaky = len(flaky.requests_to(CHAT))
        for _ in range(3):
            assert chat(b).headers["x-nexus-backend"] == "steady"
        assert len(flaky.requests_to(CHAT)) == sent_to_flaky, "B never sent to it"


def test_a_dead_backend_seen_by_one_of_three_replicas_is_skipped_by_all(
    tmp_path, real_redis, fakes
) -> None:
    doomed, steady = fakes
    configured = [
        backend("doomed", doomed.url, priority=1),
        backend("steady", steady.url, priority=2),
    ]
    with replicas(tmp_path, 3, configured, real_redis) as (a, b, c):
        doomed.stop()  # connection refused from now on: a hard failure
        assert chat(a).headers["x-nexus-backend"] == "steady"
        seen = time.monotonic()
        for other in (b, c):
            wait_until(partial(_status_is, other, "doomed", "unhealthy"), 1.0, "shared failure")
        assert time.monotonic() - seen < 1.0
        last_error = b.backends()["doomed"]["last_error"]
        assert "replica" in last_error, last_error
        assert chat(c).headers["x-nexus-backend"] == "steady"
        assert "attempt on backend doomed failed" not in c.served.stderr(), "C never tried it"


def _status_is(gw: Gateway, name: str, status: str) -> bool:
    return gw.statuses()[name] == status


def _logged(gw: Gateway, text: str) -> bool:
    return text in gw.served.stderr()


def concurrent_chats(gateways: Sequence[Gateway]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(gateways)) as pool:
        return list(pool.map(chat, gateways))


def test_max_concurrent_holds_across_replicas(tmp_path, real_redis, fakes) -> None:
    slow, spare = fakes
    slow.delay(1.0, path=CHAT)
    configured = [
        backend("slow", slow.url, priority=1, max_concurrent=2),
        backend("spare", spare.url, priority=2),
    ]
    with replicas(tmp_path, 2, configured, real_redis) as (a, b):
        for _ in range(2):  # all at once: the planners cannot know yet, admission decides
            slow.reset()
            spare.reset()
            slow.delay(1.0, path=CHAT)
            answers = concurrent_chats([a, a, b, b])
            assert [r.status_code for r in answers] == [200] * 4
            served = sorted(r.headers["x-nexus-backend"] for r in answers)
            assert served == ["slow", "slow", "spare", "spare"]
            assert len(slow.requests_to(CHAT)) == 2


def test_at_capacity_everywhere_waits_in_the_queue(tmp_path, real_redis, fakes) -> None:
    slow = fakes[0]
    slow.delay(1.0, path=CHAT)
    configured = [backend("slow", slow.url, max_concurrent=2)]
    with replicas(tmp_path, 2, configured, real_redis) as (a, b):
        answers = concurrent_chats([a, b, a, b])
        assert [r.status_code for r in answers] == [200] * 4
        assert len(slow.requests_to(CHAT)) == 4
        waited = sorted(r.elapsed.total_seconds() for r in answers)
        assert waited[1] < 1.5 < waited[2], "two were served at once, two waited for a slot"


def test_at_capacity_everywhere_without_queue_is_a_503_with_context(
    tmp_path, real_redis, fakes
) -> None:
    slow = fakes[0]
    slow.delay(1.5, path=CHAT)
    configured = [backend("slow", slow.url, max_concurrent=2)]
    with replicas(tmp_path, 2, configured, real_redis, queue={"enabled": False}) as (a, b):
        answers = concurrent_chats([a, b, a])
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 200, 503]
        [refused] = [r for r in answers if r.status_code == 503]
        body = refused.json()
        assert "capacity" in body["error"]["message"]
        assert "context" in body and refused.headers["retry-after"]
        assert len(slow.requests_to(CHAT)) == 2


def test_redis_killed_and_restarted_while_requests_are_served(tmp_path, real_redis, fakes) -> None:
    configured = [backend("gpu", fakes[0].url, max_concurrent=50)]
    with replicas(tmp_path, 2, configured, real_redis) as (a, b):
        codes: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=5) as client:
                while not stop.is_set():
                    for gw in (a, b):
                        codes.append(client.post(f"{gw.url}{CHAT}", json=BODY).status_code)
                    time.sleep(0.01)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(0.5)
            real_redis.kill()
            time.sleep(1.5)
            served_while_down = len(codes)
            real_redis.start()
            for gw in (a, b):
                wait_until(partial(_logged, gw, AVAILABLE_AGAIN), 3.0, "recovery logged")
            time.sleep(0.5)
        finally:
            stop.set()
            worker.join(10)
        assert codes and set(codes) == {200}, sorted(set(codes))
        assert len(codes) > served_while_down > 20
        for gw in (a, b):
            log = gw.served.stderr()
            assert log.count(UNAVAILABLE) == 1, log
            assert log.count(AVAILABLE_AGAIN) == 1
            stats = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()
            assert stats["process"]["shared"] is True
        wait_until(lambda: _total(a) == _total(b) == len(codes), 2.0, "counters shared again")


def _total(gw: Gateway) -> int:
    total: int = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()["requests"]["total"]
    return total


def test_leases_of_a_replica_killed_with_sigkill_expire(tmp_path, real_redis, fakes) -> None:
    slow = fakes[0]
    configured = [backend("slow", slow.url, max_concurrent=1)]
    no_queue = {"enabled": False}
    with replicas(tmp_path, 2, configured, real_redis, no_queue, lease_ttl_seconds=2) as (a, b):
        slow.hang(path=CHAT)
        pending = threading.Thread(target=lambda: _ignore_errors(lambda: chat(a, timeout=10)))
        pending.start()
        wait_until(lambda: len(slow.requests_to(CHAT)) == 1, 5.0, "the request reached it")
        wait_until(lambda: b.in_flight()["slow"] == 1, 1.0, "B counts A's lease")
        assert chat(b).status_code == 503, "at capacity across replicas"
        a.served.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: b.in_flight()["slow"] == 0, 4.0, "A's lease expired")
        assert time.monotonic() - killed > 1.0, "it lived until its TTL"
        slow.reset()
        answer = chat(b)
        assert answer.status_code == 200 and answer.headers["x-nexus-backend"] == "slow"
        pending.join(15)


def _ignore_errors(call: Any) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass


def ready_workers(gw: Gateway, expected: int, timeout: float = 10) -> set[int]:
    """The pids answering ``/v1/stats`` on new connections whose first probe has found model
    ``m``, polled until ``expected`` of them were seen."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < expected and time.monotonic() < deadline:
        body = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()
        if "m" in {model["name"] for model in body["models"]}:
            pids.add(body["process"]["pid"])
    return pids


def test_two_workers_serve_one_port_and_sigterm_exits_zero(tmp_path, fakes) -> None:
    configured = [backend("gpu", fakes[0].url)]
    with gateway(tmp_path, configured, server={"workers": 2}) as gw:
        pids = ready_workers(gw, 2)
        assert len(pids) == 2 and gw.served.process.pid not in pids
        assert {chat(gw).status_code for _ in range(10)} == {200}
        killed = pids.pop()
        os.kill(killed, signal.SIGKILL)  # a crashed worker is replaced
        wait_until(lambda: len(ready_workers(gw, 2, timeout=1) - {killed}) == 2, 15, "replaced")
        code, log = gw.served.stop(timeout=15)
    assert code == 0, log
    assert "in 2 worker processes" in log and log.count("draining") >= 2
    assert f"(pid {killed}) exited with code -9; starting another" in log


def test_two_workers_share_counters_through_redis(tmp_path, real_redis, fakes) -> None:
    configured = [backend("gpu", fakes[0].url)]
    state = {"backend": "redis", "redis_url": real_redis.url}
    with gateway(tmp_path, configured, server={"workers": 2}, state=state) as gw:
        assert len(ready_workers(gw, 2)) == 2
        for _ in range(10):
            assert chat(gw).status_code == 200

        def both_count_ten() -> bool:
            seen: dict[int, int] = {}
            for _ in range(20):
                body = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()
                seen[body["process"]["pid"]] = body["requests"]["total"]
            return len(seen) == 2 and set(seen.values()) == {10}

        wait_until(both_count_ten, 3.0, "both workers report the shared total")
        code, _ = gw.served.stop(timeout=15)
    assert code == 0


def test_sigint_to_the_parent_lets_every_worker_drain(tmp_path, fakes) -> None:
    slow = fakes[0]
    configured = [backend("gpu", slow.url)]
    with gateway(tmp_path, configured, server={"workers": 2}) as gw:
        assert len(ready_workers(gw, 2)) == 2
        slow.delay(1.0, path=CHAT)
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(chat, gw) for _ in range(4)]
            wait_until(lambda: len(slow.requests_to(CHAT)) == 4, 5.0, "all four in flight")
            gw.served.process.send_signal(signal.SIGINT)
            answers = [future.result(timeout=10) for future in pending]
        code = gw.served.process.wait(timeout=15)
    assert [answer.status_code for answer in answers] == [200] * 4
    assert code == 0
