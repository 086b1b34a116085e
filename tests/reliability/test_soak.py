"""A bounded soak: 64 concurrent clients against a real `nexus serve` with three fake backends
that fail about 10 % of their calls at random (5xx, a dropped connection, a 429, a stream cut
mid-way: :data:`~tests.reliability.misbehaving.SOAK_FAILURES`), JSON chat, streamed chat and
embeddings mixed.

Every request carries a unique marker that the backend echoes, so each answer can be matched to
its request, and each backend keeps a ledger of what it did per marker. Afterwards:

- every request ended once: a whole answer (first try or after failover), a stream ended by the
  final error event (the backend broke it after the first byte), or an OpenAI error;
- no answer was lost or duplicated: each body is its own request's, and the backends served each
  successful request exactly once, broke each error-event stream exactly once, and served no
  request that ended in an error;
- ``/v1/stats`` counted exactly the requests sent, split as the clients saw them;
- every in-flight count is back to 0;
- memory is flat: the gateway's RSS at the end is within 10 % of its level after warm-up.

``NEXUS_SOAK_SECONDS`` sets the length (default 30; 120 for the full run).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.e2e.configs import Gateway, backend, gateway, wait_until
from tests.reliability.misbehaving import RandomlyFailingFake
from tests.reliability.verdicts import (
    CHAT,
    COMPLETE,
    EMBEDDINGS,
    ERROR,
    ERROR_EVENT,
    TALLY,
    Answer,
    verdict,
)

#: Read at import: the suite's autouse fixture clears NEXUS_* variables before each test runs.
SECONDS = float(os.environ.get("NEXUS_SOAK_SECONDS", "30"))
CONCURRENCY = 64
WARM_UP_SHARE = 0.25  # RSS after this share of the run is the reference level
RSS_GROWTH_LIMIT = 0.10
ERRORS: Counter[str] = Counter()  # error answers by status, code and message start

pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(SECONDS + 120)]


@dataclass
class Outcomes:
    """How each request ended, by marker."""

    ended: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def record(self, marker: str, how: str) -> None:
        if marker in self.ended:
            self.problems.append(f"{marker} answered twice")
        self.ended[marker] = how


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Sampler:
    """The RSS of one process, every ``every`` seconds, until stopped."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - started, rss_kib(self.pid)))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def soaked(tmp_path: Path) -> Iterator[tuple[Gateway, list[RandomlyFailingFake]]]:
    fakes = [RandomlyFailingFake(seed, ["m"]) for seed in (1, 2, 3)]
    try:
        for fake in fakes:
            fake.start()
        backends = [backend(f"gpu{i}", fake.url) for i, fake in enumerate(fakes)]
        health = {"interval_seconds": 1, "failure_threshold": 5, "recovery_threshold": 1}
        with gateway(
            tmp_path,
            backends,
            env={"NEXUS_LOG_LEVEL": "warning"},
            server={"request_timeout_seconds": 10},
            health_check=health,
        ) as gw:
            yield gw, fakes
    finally:
        for fake in fakes:
            fake.stop()


def request_for(marker: str, i: int) -> tuple[str, dict[str, object]]:
    """Six JSON chats, three streams and one embeddings request in ten."""
    if i % 10 == 9:
        return EMBEDDINGS, {"model": "m", "input": marker}
    messages = [{"role": "user", "content": marker}]
    return CHAT, {"model": "m", "messages": messages, "stream": i % 10 >= 6}


def judge(answer: Answer, path: str, marker: str, expected_vector: list[float]) -> str:
    """How one request ended; AssertionError when it is not allowed or not its own answer."""
    how = verdict(answer)
    if how == COMPLETE:
        if path == EMBEDDINGS:
            data = json.loads(answer.body)["data"]
            assert [float(v) for v in data[0]["embedding"]] == expected_vector, marker
        else:
            assert answer.text() == f"echo: {marker}", (marker, answer.body[:200])
        return "failover-success" if answer.reason == "failover" else "success"
    if how == ERROR_EVENT:
        assert f"echo: {marker}".startswith(answer.text()), "the events before the break are ours"
        return "stream-error-event"
    assert how == ERROR
    error = json.loads(answer.body)["error"]
    ERRORS[f"{answer.status} {error['code']}: {error['message'][:200]}"] += 1
    return f"error-{answer.status}"


async def soak(url: str, seconds: float, vectors: RandomlyFailingFake) -> Outcomes:
    """``CONCURRENCY`` clients in closed loops for ``seconds``. aiohttp, not httpx: httpx's
    AsyncClient alone tops out near 100 req/s at 64 connections on this machine."""
    outcomes = Outcomes()
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(client: aiohttp.ClientSession, w: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            marker = f"soak-{w}-{i}"
            path, body = request_for(marker, i + w)
            started = time.monotonic()
            i += 1
            try:
                async with client.post(path, json=body) as response:
                    raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcomes.record(marker, "lost")
                kind = "stream" if body.get("stream") else path
                elapsed = time.monotonic() - started
                outcomes.problems.append(f"{marker} ({kind}): {exc!r} after {elapsed:.2f} s")
                continue
            headers = httpx.Headers(list(response.headers.items()))
            stream = bool(body.get("stream"))
            answer = Answer(response.status, headers, raw, time.monotonic() - started, stream)
            outcomes.statuses[response.status] += 1
            outcomes.latencies.append(answer.elapsed)
            try:
                vector = [float(v) for v in vectors.vector(marker)] if path == EMBEDDINGS else []
                outcomes.record(marker, judge(answer, path, marker, vector))
            except (AssertionError, ValueError, KeyError) as exc:
                outcomes.record(marker, "wrong")
                outcomes.problems.append(f"{marker}: {exc!r}"[:300])

    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        await asyncio.gather(*(worker(client, w) for w in range(CONCURRENCY)))
    return outcomes


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def ledger_problems(outcomes: Outcomes, fakes: list[RandomlyFailingFake]) -> list[str]:
    """What the backends did for each marker, against how the request ended."""
    problems = []
    for marker, how in outcomes.ended.items():
        done: Counter[str] = Counter()
        for fake in fakes:
            done.update(fake.ledger.get(marker, Counter()))
        if how in ("success", "failover-success"):
            expected = (1, 0)
        elif how == "stream-error-event":
            expected = (0, 1)
        else:
            expected = (0, 0)
        if (done["served"], done["broken"]) != expected:
            problems.append(f"{marker} ended {how} but the backends did {dict(done)}")
    return problems


def test_soak(soaked: tuple[Gateway, list[RandomlyFailingFake]]) -> None:
    gw, fakes = soaked
    before = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()["requests"]
    pid = gw.served.process.pid
    cpu_before, own_before = cpu_seconds(pid), time.process_time()
    with Sampler(pid) as sampler:
        outcomes = asyncio.run(soak(gw.url, SECONDS, fakes[0]))
    cpu = (cpu_seconds(pid) - cpu_before) / SECONDS, (time.process_time() - own_before) / SECONDS
    wait_until(lambda: set(gw.in_flight().values()) == {0}, timeout=5, what="in-flight 0")
    after = httpx.get(f"{gw.url}/v1/stats", timeout=5).json()["requests"]

    sent = len(outcomes.ended)
    ended = Counter(outcomes.ended.values())
    samples = sampler.samples
    warm = [kib for at, kib in samples if at >= SECONDS * WARM_UP_SHARE][0]
    last = samples[-1][1]
    upstream = Counter[str]()
    for fake in fakes:
        for done in fake.ledger.values():
            upstream.update(done)
    TALLY.notes.append(
        f"soak {SECONDS:g} s x {CONCURRENCY}: {sent} requests ({sent / SECONDS:.0f}/s), "
        f"ended {dict(ended)}; upstream calls {dict(upstream)}; "
        f"RSS KiB first {samples[0][1]}, after warm-up {warm}, max {max(k for _, k in samples)}, "
        f"every ~{SECONDS / 10:.0f} s {[k for _, k in samples[:: max(1, len(samples) // 10)]]}, "
        f"last {last} ({(last - warm) / warm:+.1%}); "
        f"stats total {after['total'] - before['total']}, success "
        f"{after['success'] - before['success']}, errors {after['errors'] - before['errors']}; "
        f"CPU cores used: gateway {cpu[0]:.2f}, clients and fakes {cpu[1]:.2f}; "
        f"latency p50 {percentile(outcomes.latencies, 0.5):.3f} s, "
        f"p99 {percentile(outcomes.latencies, 0.99):.3f} s; "
        f"errors: {dict(ERRORS.most_common(6))}"
    )

    assert sent > CONCURRENCY * 10, "the soak sent too little to mean anything"
    assert not outcomes.problems, (outcomes.problems[:10], gw.served.stderr()[-3000:])
    assert ended["lost"] == ended["wrong"] == 0
    assert ended["failover-success"] > 0, "the random failures were failed over"
    assert upstream["failed"] > 0.05 * sum(upstream.values()), "about 10 % of calls failed"
    assert not ledger_problems(outcomes, fakes)[:10]
    assert after["total"] - before["total"] == sent
    assert after["success"] - before["success"] == sum(
        n for status, n in outcomes.statuses.items() if status < 300
    )
    assert after["errors"] - before["errors"] == sum(
        n for status, n in outcomes.statuses.items() if status >= 400
    )
    assert after["streams_broken"] - before["streams_broken"] == ended["stream-error-event"]
    assert last <= warm * (1 + RSS_GROWTH_LIMIT), f"RSS grew from {warm} to {last} KiB"
