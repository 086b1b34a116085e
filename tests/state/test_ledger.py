"""The usage ledger: periods and totals on every ledger, then SQLite's file (batching, restarts,
failures, a real SIGKILL) and Redis shared by two replicas (a real redis-server, killed, frozen)."""

from __future__ import annotations

import asyncio
import math
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from loguru import logger

from nexus.errors import ConfigError
from nexus.state.ledger import Ledger, MemoryLedger, Usage, periods
from nexus.state.ledger_redis import RedisLedger
from nexus.state.ledger_sqlite import SqliteLedger
from tests.conftest import REPO
from tests.state.redis_server import RedisServer, redis_server
from tests.state.stores import FakeClock


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


NOW = ts("2026-12-05T12:00:00Z")


@pytest.fixture
def logs() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    yield messages
    logger.remove(sink)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Ledger]:
    """Each ledger kind, started (what charge/usage/tenants promise does not depend on it)."""
    started: Ledger
    if request.param == "memory":
        started = MemoryLedger(clock=clock)
    else:
        started = SqliteLedger(tmp_path / "usage.db", clock=clock)
    await started.start()
    yield started
    await started.stop()


Trace = Callable[[Callable[[str], None]], None]


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    """``trace(callback)``: every SQLite connection opened from then on calls ``callback`` with
    each statement it runs, in the thread that runs it."""

    def install(callback: Callable[[str], None]) -> None:
        connect = sqlite3.connect

        def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn: sqlite3.Connection = connect(*args, **kwargs)
            conn.set_trace_callback(callback)
            return conn

        monkeypatch.setattr(sqlite3, "connect", traced)

    return install


def stored(path: Path, tenant: str, period: str) -> tuple[int, ...] | None:
    """The row of ``tenant`` and ``period`` in a ledger file, read with a connection of its own."""
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT requests, input_tokens, output_tokens, spend_micros FROM usage "
            "WHERE tenant = ? AND period = ?",
            (tenant, period),
        ).fetchone()
    return None if row is None else tuple(row)


# -- periods and totals, on every ledger ----------------------------------------------------------


def test_periods_are_the_utc_day_and_month() -> None:
    assert periods(ts("2026-11-30T23:59:59Z")) == ("d:2026-11-30", "m:2026-11")
    assert periods(ts("2026-12-01T00:00:00Z")) == ("d:2026-12-01", "m:2026-12")
    assert periods(ts("2026-12-31T23:59:59.999Z")) == ("d:2026-12-31", "m:2026-12")
    assert periods(ts("2027-01-01T00:30:00+01:00")) == ("d:2026-12-31", "m:2026-12"), "UTC"


async def test_a_charge_counts_in_its_day_and_month(ledger: Ledger) -> None:
    last_second, first_second = ts("2026-11-30T23:59:59Z"), ts("2026-12-01T00:00:00Z")
    ledger.charge("acme", usd=1.25, input_tokens=100, output_tokens=20, at=last_second)
    ledger.charge("acme", usd=0.5, input_tokens=10, output_tokens=2, at=first_second)
    november = Usage(requests=1, input_tokens=100, output_tokens=20, spend_usd=1.25)
    december = Usage(requests=1, input_tokens=10, output_tokens=2, spend_usd=0.5)
    assert ledger.usage("acme", "day", at=last_second) == november
    assert ledger.usage("acme", "month", at=last_second - 86_400 * 29) == november
    assert ledger.usage("acme", "day", at=first_second) == december
    assert ledger.usage("acme", "month", at=first_second + 86_400 * 30) == december
    assert ledger.usage("acme", "day", at=first_second + 86_400) == Usage()
    assert ledger.usage("globex", "month") == Usage()


async def test_the_global_total_is_the_sum_of_the_tenants(ledger: Ledger) -> None:
    for tenant, usd in (("acme", 0.1), ("globex", 0.2), ("acme", 0.3), ("initech", 0.0)):
        ledger.charge(tenant, usd=usd, input_tokens=7, output_tokens=3)
    total = Usage(requests=4, input_tokens=28, output_tokens=12, spend_usd=0.6)
    assert ledger.usage("*", "day") == ledger.usage("*", "month") == total
    parts = [ledger.usage(tenant, "month") for tenant in ledger.tenants()]
    assert ledger.tenants() == ("acme", "globex", "initech")
    assert sum(p.requests for p in parts) == total.requests
    assert round(sum(p.spend_usd for p in parts), 6) == total.spend_usd


async def test_spend_is_counted_in_micro_dollars_without_drift(ledger: Ledger) -> None:
    for _ in range(1000):
        ledger.charge("acme", usd=0.001, input_tokens=1, output_tokens=1)
    assert ledger.usage("acme", "day").spend_usd == 1.0  # a float sum gives 1.0000000000000007
    ledger.charge("acme", usd=0.0000004, input_tokens=0, output_tokens=0, requests=0)
    assert ledger.usage("acme", "day").spend_usd == 1.0, "rounded to the micro-dollar"


async def test_a_bad_charge_is_logged_and_ignored(ledger: Ledger, logs: list[str]) -> None:
    ledger.charge("*", usd=1.0, input_tokens=1, output_tokens=1)
    ledger.charge("acme", usd=math.nan, input_tokens=1, output_tokens=1)
    ledger.charge("acme", usd=1.0, input_tokens=1, output_tokens=1, at=math.inf)
    assert ledger.usage("*", "month") == Usage()
    assert ledger.tenants() == ()
    assert len([m for m in logs if "ignored" in m]) == 3
    with pytest.raises(ValueError, match="'day' or 'month'"):
        ledger.usage("acme", "week")  # type: ignore[arg-type]


async def test_tenants_are_those_of_the_current_month(ledger: Ledger) -> None:
    ledger.charge("old", usd=1, input_tokens=1, output_tokens=1, at=ts("2026-11-30T23:59:59Z"))
    ledger.charge("new", usd=1, input_tokens=1, output_tokens=1)
    assert ledger.tenants() == ("new",)


# -- SQLite ---------------------------------------------------------------------------------------


async def test_a_flush_writes_many_charges_in_one_transaction(
    tmp_path: Path, clock: FakeClock, trace: Trace
) -> None:
    statements: list[str] = []
    trace(statements.append)
    ledger = SqliteLedger(tmp_path / "usage.db", flush_interval=60, clock=clock)
    await ledger.start()
    statements.clear()
    for i in range(1000):
        ledger.charge(("acme", "globex")[i % 2], usd=0.001, input_tokens=2, output_tokens=1)
    assert await ledger.flush()
    upserts = [s for s in statements if "INSERT INTO usage" in s]
    assert statements.count("BEGIN IMMEDIATE") == statements.count("COMMIT") == 1
    assert len(upserts) == 6, "tenant and '*' for one day and one month: 6 rows"
    assert (ledger.flushes, ledger.rows_written) == (1, 6)
    await ledger.stop()
    day, month = periods(NOW)
    assert stored(tmp_path / "usage.db", "acme", day) == (500, 1000, 500, 500_000)
    assert stored(tmp_path / "usage.db", "*", month) == (1000, 2000, 1000, 1_000_000)


async def test_a_restart_continues_from_the_stored_totals(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "deep" / "dir" / "usage.db"
    first = SqliteLedger(path, clock=clock)
    await first.start()
    first.charge("acme", usd=2.5, input_tokens=100, output_tokens=10)
    first.charge("acme", usd=1.0, input_tokens=1, output_tokens=1, at=NOW - 40 * 86_400)
    await first.stop()
    clock.advance(3600)
    second = SqliteLedger(path, clock=clock)
    await second.start()
    assert second.usage("acme", "day") == Usage(1, 100, 10, 2.5)
    assert second.usage("acme", "month", at=NOW - 40 * 86_400) == Usage(), "only current rows"
    second.charge("acme", usd=0.5, input_tokens=1, output_tokens=1)
    await second.stop()
    third = SqliteLedger(path, clock=clock)
    await third.start()
    assert third.usage("acme", "month") == Usage(2, 101, 11, 3.0)
    assert third.usage("*", "month") == Usage(2, 101, 11, 3.0)
    await third.stop()
    old_month = periods(NOW - 40 * 86_400)[1]
    assert stored(path, "acme", old_month) == (1, 1, 1, 1_000_000), "history stays in the file"


async def test_old_periods_leave_memory_but_stay_in_the_file(
    tmp_path: Path, clock: FakeClock
) -> None:
    ledger = SqliteLedger(tmp_path / "usage.db", clock=clock)
    await ledger.start()
    ledger.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    assert await ledger.flush()
    clock.advance(86_400)
    assert await ledger.flush()
    assert ledger.usage("acme", "day", at=NOW).requests == 1, "yesterday is kept"
    clock.advance(86_400)
    assert await ledger.flush()
    assert ledger.usage("acme", "day", at=NOW) == Usage()
    assert ledger.usage("acme", "month", at=NOW).requests == 1
    await ledger.stop()
    assert stored(tmp_path / "usage.db", "acme", periods(NOW)[0]) == (1, 1, 1, 1_000_000)


async def test_a_charge_made_while_a_flush_writes_goes_into_the_next(
    tmp_path: Path, clock: FakeClock, trace: Trace
) -> None:
    ledger = SqliteLedger(tmp_path / "usage.db", flush_interval=60, clock=clock)
    late: list[str] = []

    def charge_during_the_write(statement: str) -> None:
        if "INSERT INTO usage" in statement and not late:
            late.append(statement)
            ledger.charge("late", usd=1, input_tokens=1, output_tokens=1)  # from the writer thread

    trace(charge_during_the_write)
    await ledger.start()
    ledger.charge("early", usd=1, input_tokens=1, output_tokens=1)
    assert await ledger.flush()
    assert late, "the charge came in while the flush wrote"
    assert ledger.usage("*", "day").requests == 2, "memory has both"
    assert stored(tmp_path / "usage.db", "late", periods(NOW)[0]) is None, "not in that batch"
    assert await ledger.flush()
    await ledger.stop()
    assert stored(tmp_path / "usage.db", "late", periods(NOW)[0]) == (1, 1, 1, 1_000_000)
    assert stored(tmp_path / "usage.db", "*", periods(NOW)[1]) == (2, 2, 2, 2_000_000)


async def test_charges_from_another_thread_during_flushes_are_all_kept(
    tmp_path: Path, clock: FakeClock
) -> None:
    path, count = tmp_path / "usage.db", 20_000
    ledger = SqliteLedger(path, flush_interval=60, clock=clock)
    await ledger.start()

    def charge_many() -> None:
        for _ in range(count):
            ledger.charge("acme", usd=0.000001, input_tokens=1, output_tokens=2)

    thread = threading.Thread(target=charge_many)
    thread.start()
    while thread.is_alive():
        assert await ledger.flush()
    thread.join()
    await ledger.stop()
    assert ledger.flushes > 1, "the flushes ran while charges came in"
    assert ledger.usage("acme", "month") == Usage(count, count, 2 * count, 0.02)
    assert stored(path, "acme", periods(NOW)[1]) == (count, count, 2 * count, count)


async def test_a_failed_write_keeps_the_deltas(
    tmp_path: Path, clock: FakeClock, logs: list[str]
) -> None:
    path = tmp_path / "usage.db"
    ledger = SqliteLedger(path, flush_interval=60, busy_timeout=0.05, clock=clock)
    await ledger.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
    ledger.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    assert not await ledger.flush()
    ledger.charge("acme", usd=2, input_tokens=2, output_tokens=2)
    assert not await ledger.flush()
    assert ledger.available is False
    assert len([m for m in logs if "unavailable" in m and "database is locked" in m]) == 1
    assert ledger.usage("acme", "day") == Usage(2, 3, 3, 3.0), "memory kept counting"
    blocker.execute("ROLLBACK")
    blocker.close()
    assert await ledger.flush()
    assert any("available again" in m for m in logs)
    assert stored(path, "acme", periods(NOW)[0]) == (2, 3, 3, 3_000_000)
    assert ledger.usage("acme", "day") == Usage(2, 3, 3, 3.0)
    await ledger.stop()


async def test_a_flush_cancelled_while_it_commits_is_not_applied_twice(
    tmp_path: Path, clock: FakeClock, trace: Trace
) -> None:
    """The worker thread commits after the flush was cancelled: the batch, kept for a retry, is
    recognised by its number and skipped."""
    path = tmp_path / "usage.db"
    ledger = SqliteLedger(path, flush_interval=60, clock=clock)
    committing, go_on = threading.Event(), threading.Event()

    def hold_the_commit(statement: str) -> None:
        if statement == "COMMIT" and not committing.is_set():
            committing.set()
            go_on.wait(5)

    trace(hold_the_commit)
    await ledger.start()
    ledger.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    flush = asyncio.create_task(ledger.flush())
    assert await asyncio.to_thread(committing.wait, 5)
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flush
    go_on.set()  # the thread commits the batch after all
    assert await ledger.flush()
    await ledger.stop()
    assert stored(path, "acme", periods(NOW)[0]) == (1, 1, 1, 1_000_000)
    assert ledger.usage("acme", "day") == Usage(1, 1, 1, 1.0)


async def test_two_processes_on_one_file_add_up(tmp_path: Path, clock: FakeClock) -> None:
    a = SqliteLedger(tmp_path / "usage.db", clock=clock)
    b = SqliteLedger(tmp_path / "usage.db", clock=clock)
    await a.start()
    await b.start()
    a.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    b.charge("globex", usd=2, input_tokens=2, output_tokens=2)
    assert await a.flush() and await b.flush() and await a.flush()
    for ledger in (a, b):
        assert ledger.usage("*", "month") == Usage(2, 3, 3, 3.0)
        assert ledger.tenants() == ("acme", "globex")
    await a.stop()
    await b.stop()


@pytest.mark.parametrize("problem", ["parent is a file", "not a database"])
async def test_a_file_that_cannot_be_opened_is_a_config_error(tmp_path: Path, problem: str) -> None:
    (tmp_path / "file").write_text("x")
    if problem == "parent is a file":
        path = tmp_path / "file" / "usage.db"
    else:
        path = tmp_path / "usage.db"
        path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ConfigError, match="cannot open the SQLite file") as raised:
        await SqliteLedger(path).start()
    assert str(path) in str(raised.value)


async def test_a_killed_process_loses_at_most_one_flush_interval(tmp_path: Path) -> None:
    """SIGKILL a process charging ~150 times a second with the default 1 s flush interval: the
    file holds at least what it had charged 1.5 s before the kill and never more than it charged;
    a new ledger on the file continues from there."""
    path, window = tmp_path / "usage.db", 1.5
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.state.ledger_child", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        seen: list[tuple[float, int]] = []
        started = time.monotonic()
        while time.monotonic() - started < 2.6:
            line = child.stdout.readline()
            assert line, "the child died"
            seen.append((time.monotonic(), int(line)))
        child.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        child.wait(timeout=5)
        rest = child.stdout.read().split()  # printed before the kill, not read yet
        charged = int(rest[-1]) if rest else seen[-1][1]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    written = days_total(path, "acme")
    before_window = max((n for at, n in seen if at <= killed - window), default=0)
    assert before_window > 100
    assert before_window <= written[0] <= charged
    assert written == (written[0], 10 * written[0], 5 * written[0], 1000 * written[0])
    reopened = SqliteLedger(path)
    await reopened.start()
    today = stored(path, "acme", periods(time.time())[0]) or (0, 0, 0, 0)
    assert reopened.usage("acme", "day").requests == today[0]
    reopened.charge("acme", usd=0.001, input_tokens=10, output_tokens=5)
    await reopened.stop()
    n = written[0] + 1
    assert days_total(path, "acme") == (n, 10 * n, 5 * n, 1000 * n), "continued from the file"


def days_total(path: Path, tenant: str) -> tuple[int, ...]:
    """The sums of the day rows of ``tenant`` (whatever the days: a test may cross midnight)."""
    with sqlite3.connect(path) as conn:
        return tuple(
            conn.execute(
                "SELECT SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(spend_micros) "
                "FROM usage WHERE tenant = ? AND period LIKE 'd:%'",
                (tenant,),
            ).fetchone()
        )


# -- Redis ---------------------------------------------------------------------------------------


class Replicas:
    """RedisLedgers on one real redis-server, each on a client of its own (closed at the end)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.clients: list[aioredis.Redis] = []

    def client(self) -> aioredis.Redis:
        client = aioredis.Redis.from_url(
            self.server.url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self.clients.append(client)
        return client

    def ledger(self, **options: float) -> RedisLedger:
        return RedisLedger(self.client(), "t:", **options)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    with redis_server() as server:
        made = Replicas(server)
        yield made
        await made.aclose()


async def test_two_replicas_see_the_sum_after_one_interval(replicas: Replicas) -> None:
    a, b = replicas.ledger(flush_interval=0.1), replicas.ledger(flush_interval=0.1)
    await a.start()
    await b.start()
    a.charge("acme", usd=1.5, input_tokens=100, output_tokens=10)
    b.charge("acme", usd=0.25, input_tokens=1, output_tokens=1)
    b.charge("globex", usd=0.000001, input_tokens=2, output_tokens=2)
    await asyncio.sleep(0.35)
    for ledger in (a, b):
        assert ledger.usage("acme", "day") == Usage(2, 101, 11, 1.75)
        assert ledger.usage("*", "month") == Usage(3, 103, 13, 1.750001)
        assert ledger.tenants() == ("acme", "globex")
    c = replicas.ledger()
    await c.start()
    assert c.usage("*", "day") == Usage(3, 103, 13, 1.750001), "loaded at start"
    for ledger in (a, b, c):
        await ledger.stop()


async def test_the_redis_layout(replicas: Replicas) -> None:
    ledger = replicas.ledger()
    await ledger.start()
    ledger.charge("tenants", usd=0.5, input_tokens=3, output_tokens=4)
    assert await ledger.flush()
    await ledger.stop()
    client = replicas.client()
    day, month = periods(time.time())
    assert await client.hgetall(f"t:usage:{day}:t:tenants") == {
        b"requests": b"1",
        b"input_tokens": b"3",
        b"output_tokens": b"4",
        b"spend_micros": b"500000",
    }
    assert await client.smembers(f"t:usage:{month}:tenants") == {b"tenants"}
    assert await client.hget(f"t:usage:{month}:t:*", "spend_micros") == b"500000"
    assert 39 * 86_400 < await client.ttl(f"t:usage:{day}:t:*") <= 40 * 86_400
    assert 399 * 86_400 < await client.ttl(f"t:usage:{month}:t:tenants") <= 400 * 86_400
    assert 399 * 86_400 < await client.ttl(f"t:usage:{month}:tenants") <= 400 * 86_400


async def test_redis_down_keeps_the_deltas_until_it_is_back(
    replicas: Replicas, logs: list[str]
) -> None:
    ledger = replicas.ledger(timeout=0.5)
    await ledger.start()
    replicas.server.kill()
    ledger.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    assert not await ledger.flush()
    ledger.charge("acme", usd=2, input_tokens=2, output_tokens=2)
    assert not await ledger.flush()
    assert ledger.usage("acme", "day") == Usage(2, 3, 3, 3.0)
    assert len([m for m in logs if "Redis unavailable" in m]) == 1, "one warning an outage"
    replicas.server.start()
    assert await ledger.flush() or await ledger.flush()  # a pooled connection may be dead
    assert any("available again" in m for m in logs)
    other = replicas.ledger()
    await other.start()
    assert other.usage("acme", "day") == Usage(2, 3, 3, 3.0)
    await other.stop()
    await ledger.stop()


async def test_a_batch_retried_after_a_timeout_is_applied_once(replicas: Replicas) -> None:
    ledger = replicas.ledger(timeout=0.3)
    await ledger.start()
    ledger.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    assert await ledger.flush()
    ledger.charge("acme", usd=1, input_tokens=1, output_tokens=1)
    replicas.server.freeze()  # the batch reaches Redis, the answer does not come back in time
    assert not await ledger.flush()
    replicas.server.thaw()
    await asyncio.sleep(0.2)
    key = f"t:usage:{periods(time.time())[0]}:t:acme"
    assert replicas.server.command("HGET", key, "requests") == b"$1\r\n2\r\n", "applied late"
    assert await ledger.flush() or await ledger.flush()
    assert replicas.server.command("HGET", key, "requests") == b"$1\r\n2\r\n", "not twice"
    assert ledger.usage("acme", "day").requests == 2
    await ledger.stop()


async def test_stopping_with_redis_down_logs_what_is_lost(
    replicas: Replicas, logs: list[str]
) -> None:
    replicas.server.kill()
    ledger = replicas.ledger(timeout=0.2)
    await ledger.start()  # starts anyway, from zero
    ledger.charge("acme", usd=0.25, input_tokens=3, output_tokens=4)
    await ledger.stop()
    lost = Usage(requests=1, input_tokens=3, output_tokens=4, spend_usd=0.25)
    assert any(f"now lost: {lost}" in m for m in logs)
