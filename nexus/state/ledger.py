"""A durable ledger of usage and spend per tenant: requests, input and output tokens and US dollars,
totalled by UTC day and UTC month (:func:`periods`), for budgets and reports.

On the request path :meth:`Ledger.charge` only adds to in-memory totals (the tenant's and the
global ``"*"``) and queues the delta; :meth:`Ledger.usage` and :meth:`Ledger.tenants` only read
memory. Every ``flush_interval`` seconds a background task writes the queued deltas in one batch
and reads back the stored totals of the current day and month, so that what other processes or
replicas charged shows within about one interval:

- :class:`MemoryLedger`: nothing durable (tests, no storage configured);
- :class:`~nexus.state.ledger_sqlite.SqliteLedger`: one SQLite file (WAL), one transaction a flush;
- :class:`~nexus.state.ledger_redis.RedisLedger`: atomic increments on Redis hashes, so that
  several replicas add up.

Spend is counted in integer micro-dollars everywhere (memory, SQLite, Redis): sums of integers do
not drift whatever the order and number of charges; each charge is rounded to the nearest
micro-dollar once, and :attr:`Usage.spend_usd` converts back.

**Durability.** Killing the process (SIGKILL, OOM) loses at most the charges made since the last
successful flush began: one flush interval (1 s by default) plus the time one write takes; a
restart loads the stored totals of the current day and month and continues from them.
:meth:`Ledger.stop` flushes a last time. A flush that fails (disk, lock, Redis down or slow) keeps
its batch and retries it, unchanged, before anything newer; one warning is logged per outage and
one line when storage answers again, and memory keeps counting meanwhile, so nothing is lost
while the process lives. Each batch carries a number that the store records in the same atomic
write, so a batch retried after a write whose answer was lost (a timeout) is applied once. With
SQLite (``synchronous=NORMAL`` in WAL mode) a committed flush survives a process kill; a power
loss or OS crash may also lose the last flushes committed before it. With Redis, durability is the
server's (AOF or RDB): a Redis restarted without persistence has lost the totals (the deltas a
replica still holds are written after the restart).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from loguru import logger

from nexus.errors import StoreUnavailable

#: The pseudo-tenant whose totals are those of every tenant.
GLOBAL = "*"
#: The four counters of a total, in this order everywhere (memory, SQLite columns, Redis fields).
FIELDS = ("requests", "input_tokens", "output_tokens", "spend_micros")
MICROS_PER_USD = 1_000_000

Clock = Callable[[], float]
#: Totals or deltas: period key (``d:2026-12-05``, ``m:2026-12``) -> tenant -> the four counters.
Table = dict[str, dict[str, list[int]]]


@dataclass(frozen=True, slots=True)
class Usage:
    """The totals of one tenant (or ``"*"``) over one day or month."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    spend_usd: float = 0.0

    @classmethod
    def of(cls, counts: Sequence[int]) -> Usage:
        """From the four counters of :data:`FIELDS` (spend in micro-dollars)."""
        requests, input_tokens, output_tokens, micros = counts
        return cls(requests, input_tokens, output_tokens, micros / MICROS_PER_USD)


class Ledger(Protocol):
    """Usage and spend per tenant, by UTC day and month (see the module docstring)."""

    def charge(
        self,
        tenant: str,
        *,
        usd: float,
        input_tokens: int,
        output_tokens: int,
        requests: int = 1,
        at: float | None = None,
    ) -> None:
        """Add to the in-memory totals of ``tenant`` and of ``"*"`` for the UTC day and month of
        ``at`` (unix seconds; default now) and queue the delta for the next write. Synchronous,
        cheap, thread-safe; never blocks on I/O, never raises (a bad charge is logged)."""
        ...

    def usage(
        self, tenant: str, period: Literal["day", "month"], *, at: float | None = None
    ) -> Usage:
        """Totals of ``tenant`` (``"*"``: every tenant) for the UTC day or month containing
        ``at`` (default now). Reads memory only."""
        ...

    def tenants(self) -> tuple[str, ...]:
        """Every tenant with usage in the current month, sorted (``"*"`` not included)."""
        ...

    async def start(self) -> None:
        """Load the current day's and month's totals from storage; start the background flush."""
        ...

    async def stop(self) -> None:
        """Stop the background flush, flush a last time, close."""
        ...


def periods(at: float) -> tuple[str, str]:
    """The keys of the UTC day and month containing ``at`` (unix seconds): ``("d:2026-12-05",
    "m:2026-12")``. A day starts at 00:00 UTC, a month at 00:00 UTC on the 1st."""
    return _periods_of_day(int(at // 86_400))  # a UTC day is 86 400 unix seconds


@functools.lru_cache(maxsize=64)
def _periods_of_day(day: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(day * 86_400, UTC)
    return f"d:{moment:%Y-%m-%d}", f"m:{moment:%Y-%m}"


def oldest_kept(now: float) -> tuple[str, str]:
    """The oldest day and month whose totals stay in memory at ``now``: yesterday and last
    month (older totals are only in storage, as history)."""
    day_of_month = datetime.fromtimestamp(now, UTC).day  # that many days back: last month
    return periods(now - 86_400)[0], periods(now - day_of_month * 86_400)[1]


class Tally:
    """Totals by period and tenant, and (with ``queue``) the deltas not yet stored. Thread-safe:
    one lock, held for dictionary updates only, never across I/O."""

    def __init__(self, *, queue: bool) -> None:
        self._lock = threading.Lock()
        self._totals: Table = {}
        self._pending: Table | None = {} if queue else None

    def add(self, tenant: str, delta: Sequence[int], at: float) -> None:
        """Add ``delta`` to ``tenant`` and ``"*"`` for the day and month of ``at``."""
        day, month = periods(at)
        with self._lock:
            for table in (self._totals, self._pending):
                if table is not None:
                    for period in (day, month):
                        rows = table.setdefault(period, {})
                        _add(rows, tenant, delta)
                        _add(rows, GLOBAL, delta)

    def get(self, period: str, tenant: str) -> Usage:
        with self._lock:
            counts = self._totals.get(period, {}).get(tenant)
            return Usage() if counts is None else Usage.of(counts)

    def tenants(self, period: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(t for t in self._totals.get(period, {}) if t != GLOBAL))

    def take(self) -> Table:
        """The queued deltas, leaving an empty queue (charges from now on go to the next one)."""
        with self._lock:
            taken = self._pending or {}
            if self._pending is not None:
                self._pending = {}
            return taken

    def queued(self) -> Table:
        with self._lock:
            return _merged({}, self._pending or {})

    def apply(self, stored: Table) -> None:
        """Replace the totals of each period of ``stored`` by the stored ones plus the deltas
        queued since they were written (``stored`` must not include the queued deltas)."""
        with self._lock:
            for period, rows in stored.items():
                fresh = {tenant: list(counts) for tenant, counts in rows.items()}
                for tenant, counts in (self._pending or {}).get(period, {}).items():
                    _add(fresh, tenant, counts)
                self._totals[period] = fresh

    def prune(self, day: str, month: str) -> None:
        """Forget the totals of the days before ``day`` and the months before ``month``."""
        with self._lock:
            for period in list(self._totals):
                oldest = day if period.startswith("d:") else month
                if period < oldest and period not in (self._pending or {}):
                    del self._totals[period]


def _add(rows: dict[str, list[int]], tenant: str, delta: Sequence[int]) -> None:
    counts = rows.get(tenant)
    if counts is None:
        rows[tenant] = list(delta)
    else:  # unrolled: this runs four or eight times a charge
        requests, input_tokens, output_tokens, micros = delta
        counts[0] += requests
        counts[1] += input_tokens
        counts[2] += output_tokens
        counts[3] += micros


def _merged(into: Table, other: Table) -> Table:
    for period, rows in other.items():
        target = into.setdefault(period, {})
        for tenant, counts in rows.items():
            _add(target, tenant, counts)
    return into


class _Counting:
    """``charge``, ``usage`` and ``tenants`` over a :class:`Tally`, on ``clock`` (unix time)."""

    def __init__(self, *, clock: Clock, queue: bool) -> None:
        self._clock = clock
        self._tally = Tally(queue=queue)

    def charge(
        self,
        tenant: str,
        *,
        usd: float,
        input_tokens: int,
        output_tokens: int,
        requests: int = 1,
        at: float | None = None,
    ) -> None:
        """See :meth:`Ledger.charge`. Deltas may be negative (a correction); the tenant ``"*"``,
        a spend that is not a finite number or a bad ``at`` is logged and ignored."""
        try:
            if not isinstance(tenant, str) or tenant == GLOBAL:
                raise ValueError(f'"{GLOBAL}" is the total of every tenant, not a tenant')
            micros = round(usd * MICROS_PER_USD)
            delta = (int(requests), int(input_tokens), int(output_tokens), micros)
            self._tally.add(tenant, delta, self._clock() if at is None else at)
        except Exception as exc:  # a bad charge must not fail the request that made it
            charge = (tenant, usd, input_tokens, output_tokens, requests, at)
            reason = f"{type(exc).__name__}: {exc}"
            logger.warning("usage ledger: charge {!r} ignored ({})", charge, reason)

    def usage(
        self, tenant: str, period: Literal["day", "month"], *, at: float | None = None
    ) -> Usage:
        """See :meth:`Ledger.usage`; an unknown ``period`` raises :class:`ValueError`."""
        if period not in ("day", "month"):
            raise ValueError(f"period must be 'day' or 'month', not {period!r}")
        day, month = periods(self._clock() if at is None else at)
        return self._tally.get(day if period == "day" else month, tenant)

    def tenants(self) -> tuple[str, ...]:
        """See :meth:`Ledger.tenants`."""
        return self._tally.tenants(periods(self._clock())[1])


class MemoryLedger(_Counting):
    """A :class:`Ledger` in memory only: everything is lost with the process."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock, queue=False)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class StoredLedger(_Counting, ABC):
    """A :class:`Ledger` kept in storage by a background flush. Subclasses give the storage:
    ``_open`` (may raise :class:`~nexus.errors.ConfigError`), ``_store`` (apply one numbered
    batch atomically, once: a number already applied is skipped), ``_load`` (the stored totals of
    some periods) and ``_close``; the last three raise :class:`StoreUnavailable` on failure.

    ``available`` is None before the first flush, then whether the last one succeeded;
    ``flushes`` counts the batches stored and ``rows_written`` the (period, tenant) totals they
    added to."""

    #: Where the totals are kept, for log lines.
    where = "storage"

    def __init__(self, *, flush_interval: float, clock: Clock) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, not {flush_interval!r}")
        super().__init__(clock=clock, queue=True)
        self.available: bool | None = None
        self.flushes = 0
        self.rows_written = 0
        self._interval = flush_interval
        self._batch: tuple[int, Table] | None = None  # failed: retried as it is, before new ones
        self._number = 0
        self._flushing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the storage, load the current totals (a failure is logged; the background flush
        tries again), then flush every ``flush_interval`` seconds until :meth:`stop`."""
        await self._open()
        self._stopping.clear()
        await self.flush()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-ledger")

    async def stop(self) -> None:
        """Stop the background flush, flush a last time (what cannot be written is logged as
        lost), close the storage."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if not await self.flush():
            lost = self._unsaved()
            logger.warning("usage ledger: not written to {}, now lost: {}", self.where, lost)
        await self._close()

    async def flush(self) -> bool:
        """Store the failed batch if there is one, then the deltas queued since the last flush
        (one batch), then load the stored totals of the current day and month and of the
        periods written. Returns whether all of it succeeded; never raises: on failure the
        deltas wait for the next flush and memory keeps its own totals."""
        async with self._flushing:
            try:
                return await self._flush()
            except Exception as exc:  # a bug must not stop the flushes; the batch is kept
                logger.opt(exception=exc).error("usage ledger: flush failed")
                self.available = False
                return False

    async def _flush(self) -> bool:
        written: set[str] = set()
        if self._batch is not None and not await self._send(self._batch, written):
            return False
        deltas = self._tally.take()
        if deltas:
            self._number += 1
            self._batch = (self._number, deltas)
            if not await self._send(self._batch, written):
                return False
        now = self._clock()
        try:
            stored = await self._load(sorted({*periods(now), *written}))
        except StoreUnavailable as exc:
            return self._down(str(exc))
        self._tally.apply(stored)
        self._tally.prune(*oldest_kept(now))
        self._up()
        return True

    def _unsaved(self) -> Usage:
        """The total of the failed batch and of the queued deltas."""
        unsaved = _merged(_merged({}, self._batch[1] if self._batch else {}), self._tally.queued())
        months = [
            rows[GLOBAL] for p, rows in unsaved.items() if p.startswith("m:") and GLOBAL in rows
        ]
        return Usage.of([sum(column) for column in zip([0, 0, 0, 0], *months, strict=True)])

    async def _send(self, batch: tuple[int, Table], written: set[str]) -> bool:
        number, deltas = batch
        try:
            await self._store(number, deltas)
        except StoreUnavailable as exc:
            return self._down(str(exc))
        self._batch = None
        self.flushes += 1
        self.rows_written += sum(len(rows) for rows in deltas.values())
        written.update(deltas)
        return True

    async def _run(self) -> None:
        """Flush every interval (counted from the start of the last flush) until stopped."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            delay = max(self._interval - (loop.time() - started), 0.0)
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
                    return
            started = loop.time()
            await self.flush()

    def _down(self, reason: str) -> bool:
        if self.available is not False:
            message = "usage ledger: {} unavailable ({}); charges wait in memory until it answers"
            logger.warning(message, self.where, reason)
        self.available = False
        return False

    def _up(self) -> None:
        if self.available is False:
            logger.info("usage ledger: {} available again; kept charges written", self.where)
        self.available = True

    # -- the storage (subclasses) ----------------------------------------------------------------

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _store(self, number: int, deltas: Table) -> None: ...

    @abstractmethod
    async def _load(self, wanted: Sequence[str]) -> Table:
        """The stored totals of the ``wanted`` periods, each a key (empty when nothing is)."""

    @abstractmethod
    async def _close(self) -> None: ...
