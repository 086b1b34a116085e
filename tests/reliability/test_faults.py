"""The fault suite: a real `nexus serve` in front of real fake backends that fail in every way
a backend can, beyond the one-fault-per-kind checks of ``tests/e2e/test_proxy_failures.py``.

For each case: what the client receives (:func:`~tests.reliability.verdicts.verdict`: a complete
response, a well-formed OpenAI error, or a stream ending with ``[DONE]`` or one final error
event; never a truncated stream), how long it took (never past the configured limits; failover
within 2 s where a healthy candidate exists), and that every in-flight count is back to 0.

Two gateways for the module. ``fixed``: probes only at start-up, one failure takes a backend out,
priority order; each case has its own model ``m-<case>`` on its own backend ``a-<case>``, with
the shared spare ``b`` behind it. ``live``: probes every second (a failed backend comes back as
soon as its model listing answers), two failures take a backend out; storms, cooldowns and a
backend that flaps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.configs import Gateway, backend, gateway, wait_until
from tests.fakes.chat import MALFORMED_BODY
from tests.fakes.server import FakeModel
from tests.reliability.misbehaving import BROKEN_EVENT, MisbehavingFake, RestartableFake
from tests.reliability.verdicts import (
    CHAT,
    COMPLETE,
    DONE,
    ERROR,
    ERROR_EVENT,
    Answer,
    chat,
    chat_body,
    verdict,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

TIMEOUT = 1.0  # [server] request_timeout_seconds of both gateways
FAILOVER_LIMIT = 2.0  # failover completes within 2 s of the failure (README, "Routing rules")
SLACK = 0.5  # scheduling noise on a loaded 2-core machine
FIXED_CASES = (
    "slow-json",
    "slow-stream",
    "short-json",
    "break-mid-stream",
    "stall-early",
    "stall-late",
    "drip",
    "malformed-json",
    "malformed-sse",
    "empty-json",
    "empty-sse",
    "sse-no-done",
    "disconnect-stream",
    "disconnect-json",
    "5xx-everywhere",
    "hang-concurrent",
    "503-passthrough",
)
WORKERS = 4  # concurrent clients in the storms
SOLO = {"5xx-everywhere", "hang-concurrent", "503-passthrough"}  # no spare behind them


@dataclass
class Fleet:
    gw: Gateway
    fakes: dict[str, MisbehavingFake]
    spare: MisbehavingFake
    client: httpx.Client
    extra: dict[str, MisbehavingFake] = field(default_factory=dict)

    def spare_calls(self, model: str) -> int:
        return sum(r.json()["model"] == model for r in self.spare.requests_to(CHAT))

    def settled(self) -> None:
        """Every in-flight count back to 0 (within a second: a stream ends asynchronously)."""
        wait_until(lambda: set(self.gw.in_flight().values()) == {0}, timeout=2, what="in-flight 0")


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fakes = {name: MisbehavingFake([f"m-{name}"]) for name in FIXED_CASES}
    spare = MisbehavingFake([f"m-{name}" for name in FIXED_CASES if name not in SOLO])
    second = MisbehavingFake(["m-5xx-everywhere"])
    started = [*fakes.values(), spare, second]
    try:
        for fake in started:
            fake.start()
        backends = [backend(f"a-{name}", fake.url, priority=1) for name, fake in fakes.items()]
        backends += [
            backend("b", spare.url, priority=90),
            backend("c-5xx-everywhere", second.url, priority=2),
        ]
        with (
            gateway(
                tmp_path_factory.mktemp("fixed"),
                backends,
                server={"request_timeout_seconds": TIMEOUT},
                health_check={"failure_threshold": 1},
                routing={"strategy": "priority_only"},
            ) as gw,
            httpx.Client(base_url=gw.url, timeout=10) as client,
        ):
            assert set(gw.statuses().values()) == {"healthy"}
            yield Fleet(gw, fakes, spare, client, {"c-5xx-everywhere": second})
    finally:
        for fake in started:
            fake.stop()


# -- slow but within the limit: served by the preferred backend -------------------------------


def test_slow_json_below_the_timeout_succeeds(fixed: Fleet) -> None:
    fixed.fakes["slow-json"].delay(0.6, path=CHAT)
    answer = chat(fixed.client, "m-slow-json")
    assert verdict(answer) == COMPLETE
    assert (answer.backend, answer.reason) == ("a-slow-json", "capability-match")
    assert 0.6 <= answer.elapsed < TIMEOUT + SLACK
    assert fixed.spare_calls("m-slow-json") == 0
    fixed.settled()


def test_slow_stream_below_the_timeout_completes(fixed: Fleet) -> None:
    fake = fixed.fakes["slow-stream"]
    fake.first_chunk_delay, fake.chunk_delay, fake.chunk_count = 0.3, 0.1, 4
    answer = chat(fixed.client, "m-slow-stream", "slowly now", stream=True)
    assert verdict(answer) == COMPLETE
    assert answer.text() == "echo: slowly now"
    assert answer.backend == "a-slow-stream"
    assert 0.3 + 5 * 0.1 <= answer.elapsed < TIMEOUT + SLACK
    fixed.settled()


# -- failures before the first byte: failover ----------------------------------------------


def test_json_cut_short_fails_over(fixed: Fleet) -> None:
    """200 with a Content-Length the backend never delivers: no byte reached the client yet."""
    fixed.fakes["short-json"].misbehave("short-json", times=1)
    answer = chat(fixed.client, "m-short-json", "cut")
    assert verdict(answer) == COMPLETE
    assert answer.text() == "echo: cut"
    assert (answer.backend, answer.reason) == ("b", "failover")
    assert answer.elapsed < FAILOVER_LIMIT
    listing = fixed.gw.backends()["a-short-json"]  # the model is out there, not the backend
    assert (listing["status"], set(listing["failing_models"])) == ("healthy", {"m-short-json"})
    fixed.settled()


def test_5xx_from_every_candidate_gives_the_last_error(fixed: Fleet) -> None:
    fixed.fakes["5xx-everywhere"].server_error(500)
    fixed.extra["c-5xx-everywhere"].server_error(502)
    answer = chat(fixed.client, "m-5xx-everywhere")
    assert verdict(answer) == ERROR
    assert answer.status == 502
    assert (answer.backend, answer.reason) == ("c-5xx-everywhere", "failover")
    assert answer.elapsed < FAILOVER_LIMIT
    fixed.settled()


def test_an_upstream_503_carries_retry_after(fixed: Fleet) -> None:
    fixed.fakes["503-passthrough"].server_error(503)
    answer = chat(fixed.client, "m-503-passthrough")
    assert verdict(answer) == ERROR and answer.status == 503
    assert answer.backend == "a-503-passthrough"
    assert "retry-after" in answer.headers


def test_concurrent_hangs_all_end_by_the_timeout(fixed: Fleet) -> None:
    """16 requests at once to a backend that never answers: each a 504 (or, once the first
    timeout took the backend out, a 503), none past the limit; no lease leaks."""
    fixed.fakes["hang-concurrent"].hang(path=CHAT)
    answers: list[Answer] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=fixed.gw.url, timeout=10) as client:
            answers.append(chat(client, "m-hang-concurrent", f"hang {i}", stream=i % 2 == 1))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(answers) == 16
    for answer in answers:
        assert verdict(answer) == ERROR
        assert answer.status in (503, 504)
        # 16 client threads on 2 busy cores: their own clocks add up to ~0.5 s (seen in CI)
        assert answer.elapsed < TIMEOUT + 2 * SLACK
    assert any(a.status == 504 for a in answers)
    fixed.settled()


# -- failures after the first byte: never a fallback, always a final error event -------------


def test_break_mid_stream_ends_with_an_error_event_not_a_fallback(fixed: Fleet) -> None:
    fixed.fakes["break-mid-stream"].break_stream_after(3, times=1)
    answer = chat(fixed.client, "m-break-mid-stream", "one two three", stream=True)
    assert verdict(answer) == ERROR_EVENT
    assert answer.status == 200 and answer.backend == "a-break-mid-stream"
    assert len(answer.events()) == 4, "the three events sent, then the error event"
    assert b"stream_interrupted" in answer.events()[-1]
    assert fixed.spare_calls("m-break-mid-stream") == 0, "no mid-stream fallback"
    fixed.settled()


def test_a_stream_that_stalls_early_ends_by_the_timeout(fixed: Fleet) -> None:
    fixed.fakes["stall-early"].misbehave("stall-after", events=2, times=1)
    answer = chat(fixed.client, "m-stall-early", stream=True)
    assert verdict(answer) == ERROR_EVENT
    assert b"gateway_timeout" in answer.events()[-1]
    assert answer.elapsed < TIMEOUT + SLACK
    fixed.settled()


def test_a_stream_that_stalls_late_ends_by_the_timeout(fixed: Fleet) -> None:
    fixed.fakes["stall-late"].misbehave("stall-after", events=3, delay=0.4, times=1)
    answer = chat(fixed.client, "m-stall-late", stream=True)
    assert verdict(answer) == ERROR_EVENT
    assert answer.elapsed < TIMEOUT + SLACK, f"ended after {answer.elapsed:.2f} s"


def test_a_stream_longer_than_the_limit_is_cut_with_an_error_event(fixed: Fleet) -> None:
    fake = fixed.fakes["drip"]
    fake.chunk_count, fake.chunk_delay = 20, 0.15  # a 3 s stream, every chunk in time
    answer = chat(fixed.client, "m-drip", stream=True)
    assert verdict(answer) == ERROR_EVENT
    assert b"whole-request limit" in answer.events()[-1]
    assert TIMEOUT <= answer.elapsed < TIMEOUT + 0.15 + SLACK
    fixed.settled()


def test_a_stream_that_ends_without_done_is_not_silently_truncated(fixed: Fleet) -> None:
    fixed.fakes["sse-no-done"].misbehave("sse-no-done", events=2, times=1)
    answer = chat(fixed.client, "m-sse-no-done", stream=True)
    assert answer.status == 200 and answer.backend == "a-sse-no-done"
    assert verdict(answer) == ERROR_EVENT


def test_an_empty_stream_fails_over(fixed: Fleet) -> None:
    fixed.fakes["empty-sse"].misbehave("empty-sse", times=1)
    answer = chat(fixed.client, "m-empty-sse", "anyone", stream=True)
    assert answer.body, "a 200 stream with no event at all"
    assert (answer.backend, answer.reason) == ("b", "failover")
    assert answer.text() == "echo: anyone"


# -- bodies Nexus relays without reading them (documented in docs/guarantees.md) --------------


def test_malformed_json_is_relayed_byte_for_byte(fixed: Fleet) -> None:
    fake = fixed.fakes["malformed-json"]
    fake.malformed_json(times=1)
    answer = chat(fixed.client, "m-malformed-json")
    assert answer.status == 200 and answer.backend == "a-malformed-json"
    assert answer.body == MALFORMED_BODY, "the backend's bytes, unchanged"
    with pytest.raises(ValueError):
        json.loads(answer.body)
    assert fixed.spare_calls("m-malformed-json") == 0, "no failover: the body is not parsed"
    assert fixed.gw.statuses()["a-malformed-json"] == "healthy"
    fixed.settled()


def test_malformed_sse_is_relayed_byte_for_byte(fixed: Fleet) -> None:
    fixed.fakes["malformed-sse"].misbehave("malformed-sse", times=1)
    answer = chat(fixed.client, "m-malformed-sse", stream=True)
    assert answer.status == 200 and answer.backend == "a-malformed-sse"
    assert BROKEN_EVENT in answer.body
    assert answer.body.endswith(DONE + b"\n\n")
    fixed.settled()


def test_an_empty_json_body_is_relayed(fixed: Fleet) -> None:
    fixed.fakes["empty-json"].misbehave("empty-json", times=1)
    answer = chat(fixed.client, "m-empty-json")
    assert (answer.status, answer.body, answer.backend) == (200, b"", "a-empty-json")
    assert fixed.spare_calls("m-empty-json") == 0
    fixed.settled()


# -- the client leaves ------------------------------------------------------------------------


def test_a_client_leaving_mid_stream_releases_everything(fixed: Fleet) -> None:
    fake = fixed.fakes["disconnect-stream"]
    fake.chunk_count, fake.chunk_delay = 20, 0.1
    body = chat_body("m-disconnect-stream", stream=True)
    with httpx.stream("POST", f"{fixed.gw.url}{CHAT}", json=body, timeout=5) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()  # kept: a collected iterator closes the response
        assert next(chunks).startswith(b"data: ")
        assert next(chunks).startswith(b"data: ")
        assert fixed.gw.in_flight()["a-disconnect-stream"] == 1
        assert fake.open_streams == 1
    wait_until(lambda: fake.open_streams == 0, timeout=1, what="upstream stream cancelled")
    fixed.settled()


def test_a_client_leaving_a_slow_request_releases_its_lease(fixed: Fleet) -> None:
    fake = fixed.fakes["disconnect-json"]
    fake.delay(5, path=CHAT, times=1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fixed.gw.url}{CHAT}", json=chat_body("m-disconnect-json"), timeout=0.3)
    wait_until(lambda: fixed.gw.in_flight()["a-disconnect-json"] == 0, timeout=1)
    assert time.monotonic() - started < TIMEOUT, "released at the disconnect, not the timeout"
    fixed.settled()


# -- storms, cooldowns and flapping (live probes) --------------------------------------------


@dataclass
class Live:
    gw: Gateway
    a: RestartableFake
    b: MisbehavingFake


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    a, b = RestartableFake([FakeModel("m")]), MisbehavingFake([FakeModel("m")])
    try:
        a.start()
        b.start()
        backends = [backend("a", a.url, priority=1), backend("b", b.url, priority=90)]
        health = {"interval_seconds": 1, "failure_threshold": 2, "recovery_threshold": 1}
        with gateway(
            tmp_path,
            backends,
            server={"request_timeout_seconds": TIMEOUT},
            health_check=health,
            routing={"strategy": "priority_only"},
        ) as gw:
            yield Live(gw, a, b)
    finally:
        a.stop()
        b.stop()


def traffic(url: str, seconds: float, workers: int = 4) -> list[tuple[float, Answer]]:
    """``workers`` clients sending chat requests (every third one streamed) for ``seconds``;
    each answer with the time it started."""
    out: list[tuple[float, Answer]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while time.monotonic() < deadline:
                at = time.monotonic()
                answer = chat(client, "m", f"w{worker} r{i}", stream=i % 3 == 2)
                with lock:
                    out.append((at, answer))
                i += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 15)
    return out


def all_served(answers: list[tuple[float, Answer]]) -> None:
    """Every answer complete, right, and (failover included) within 2 s."""
    assert answers
    for _, answer in answers:
        assert verdict(answer) == COMPLETE, answer
        assert answer.text().startswith("echo: w")
        assert answer.elapsed < FAILOVER_LIMIT, f"{answer.elapsed:.2f} s"


def test_a_5xx_storm_never_reaches_the_client(live: Live) -> None:
    live.a.server_error(500)
    answers = traffic(live.gw.url, 3.0, workers=WORKERS)
    all_served(answers)
    assert {a.backend for _, a in answers} == {"b"}
    # Two failures take it out and each probe (every second) brings it back: per second at most
    # the threshold plus the requests already on their way to it, never the whole storm.
    attempts = len(live.a.arrived())
    assert 2 <= attempts <= (2 + WORKERS - 1) * (3 + 2) < len(answers), attempts
    wait_until(lambda: set(live.gw.in_flight().values()) == {0}, timeout=2)


def bursts(arrivals: list[float], within: float = 0.2) -> list[list[float]]:
    """Arrivals grouped: a burst is requests planned at about the same moment."""
    out: list[list[float]] = []
    for at in arrivals:
        if out and at - out[-1][-1] < within:
            out[-1].append(at)
        else:
            out.append([at])
    return out


def test_a_429_storm_honours_retry_after(live: Live) -> None:
    """Every 429 says ``Retry-After: 1``: the backend sees one burst a second (the requests
    planned before the 429 came back), nothing in between."""
    live.a.rate_limit(retry_after=1)
    answers = traffic(live.gw.url, 3.2, workers=WORKERS)
    all_served(answers)
    groups = bursts(live.a.arrived())
    starts = [group[0] for group in groups]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert 2 <= len(groups) <= 5, groups
    assert all(len(group) <= WORKERS for group in groups), groups
    assert min(gaps) >= 1.0 - 0.05, f"a request reached the cooling backend early: {gaps}"
    assert live.gw.statuses()["a"] == "healthy", "a 429 only cools a backend down"
    wait_until(lambda: set(live.gw.in_flight().values()) == {0}, timeout=2)


def test_after_the_cooldown_the_limited_backend_serves_again(live: Live) -> None:
    live.a.rate_limit(retry_after=2, times=1)
    with httpx.Client(base_url=live.gw.url, timeout=10) as client:
        first = chat(client, "m", "w0 first")
        limited_at = live.a.arrived()[0]
        assert verdict(first) == COMPLETE and (first.backend, first.reason) == ("b", "failover")
        served_by: list[tuple[float, str]] = []
        while time.monotonic() < limited_at + 3.0:
            answer = chat(client, "m", "w0 again")
            assert verdict(answer) == COMPLETE
            served_by.append((time.monotonic(), answer.backend))
            time.sleep(0.05)
    early = [at for at in live.a.arrived()[1:] if at < limited_at + 2.0 - 0.05]
    assert not early, "a request reached the backend during its cooldown"
    back = [at for at, name in served_by if name == "a"]
    assert back and back[0] < limited_at + 2.0 + SLACK, "used again once the cooldown ended"
    assert all(name == "b" for at, name in served_by if at < limited_at + 2.0 - 0.05)


def test_a_backend_that_flaps_never_costs_a_request(live: Live) -> None:
    """Three times: the preferred backend dies (requests in flight on it included), traffic
    moves to the spare, it comes back, traffic returns. Four clients all along."""
    answers: list[tuple[float, Answer]] = []
    phases: list[tuple[float, float]] = []  # (died, came back)
    runner = threading.Thread(target=lambda: answers.extend(traffic(live.gw.url, 10.5)))
    runner.start()
    time.sleep(0.5)
    for _ in range(3):
        died = time.monotonic()
        live.a.stop()
        time.sleep(1.5)
        live.a.start()
        phases.append((died, time.monotonic()))
        time.sleep(1.8)  # the next probe (1 s interval) brings it back
    runner.join(timeout=20)
    all_served(answers)
    for died, back in phases:
        during = {a.backend for at, a in answers if died + 0.1 < at < back}
        after = {a.backend for at, a in answers if back + 1.2 < at < back + 1.8}
        assert during == {"b"}, during
        assert "a" in after, f"not back on a after {back:.1f}: {after}"
    wait_until(lambda: set(live.gw.in_flight().values()) == {0}, timeout=2)
