"""The usage ledger in one SQLite file (stdlib ``sqlite3``, WAL mode, ``synchronous=NORMAL``).

Layout: table ``usage``, one row per (period, tenant) -- ``period`` is ``d:2026-12-05`` or
``m:2026-12``, ``tenant`` a tenant or ``"*"`` (every tenant) -- with the integer columns
``requests``, ``input_tokens``, ``output_tokens`` and ``spend_micros`` (US dollars x 10^6). Rows of
past periods stay: they are the history (read them with any SQLite client). Table ``batches``
holds, per writer (one a :class:`SqliteLedger`), the number of the last batch it applied, written
in the same transaction as the batch, so that a batch is never applied twice.

A flush is one ``BEGIN IMMEDIATE`` transaction of upserts (``ON CONFLICT DO UPDATE SET x = x +
excluded.x``) in a worker thread: the event loop never waits on the disk. Several processes may
share the file: their increments add up, and each reads the others' totals back after its flush.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from loguru import logger

from nexus.errors import ConfigError, StoreUnavailable
from nexus.state.ledger import Clock, StoredLedger, Table

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    period TEXT NOT NULL,
    tenant TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    spend_micros INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (period, tenant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    writer TEXT PRIMARY KEY,
    number INTEGER NOT NULL,
    written_at REAL NOT NULL
);
"""

UPSERT = """
INSERT INTO usage (period, tenant, requests, input_tokens, output_tokens, spend_micros)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (period, tenant) DO UPDATE SET
    requests = requests + excluded.requests,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    spend_micros = spend_micros + excluded.spend_micros
"""

#: How long the number of a writer's last batch is kept after its last write.
BATCHES_KEPT_SECONDS = 7 * 86_400


class SqliteLedger(StoredLedger):
    """A :class:`~nexus.state.ledger.Ledger` in the SQLite file ``path`` (its directories are
    created). :meth:`start` raises :class:`ConfigError` naming the path when the file cannot be
    opened or is not a usage ledger. A write waits at most ``busy_timeout`` seconds for another
    writer of the file (in its worker thread), then fails and is retried at the next flush."""

    def __init__(
        self,
        path: Path,
        *,
        flush_interval: float = 1.0,
        busy_timeout: float = 5.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(flush_interval=flush_interval, clock=clock)
        self.path = Path(path)
        self.where = f"SQLite file {self.path}"
        self.writer = uuid.uuid4().hex[:12]
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one transaction at a time on the connection

    async def _open(self) -> None:
        if self._conn is None:
            self._conn = await asyncio.to_thread(self._connect)

    async def _store(self, number: int, deltas: Table) -> None:
        await asyncio.to_thread(self._write, number, deltas)

    async def _load(self, wanted: Sequence[str]) -> Table:
        return await asyncio.to_thread(self._read, list(wanted))

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(self._disconnect, conn)

    # -- in the worker thread --------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open (create) the file in WAL mode with the schema, or raise :class:`ConfigError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # used from worker threads, one at a time
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from None
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            cutoff = time.time() - BATCHES_KEPT_SECONDS
            conn.execute("DELETE FROM batches WHERE written_at < ?", (cutoff,))
        except sqlite3.Error as exc:
            conn.close()
            raise self._unusable(exc) from None
        if mode != "wal":
            logger.warning("usage ledger: SQLite file {} is in {} mode, not WAL", self.path, mode)
        return conn

    def check(self) -> None:
        """Open the file once and close it, now: :class:`ConfigError` when it cannot be used
        (``nexus serve`` says so in one line before it starts listening)."""
        self._disconnect(self._connect())

    def _unusable(self, exc: Exception) -> ConfigError:
        return ConfigError([f"usage ledger: cannot open the SQLite file {self.path}: {exc}"])

    def _write(self, number: int, deltas: Table) -> None:
        """Apply batch ``number`` in one transaction, unless this writer already applied it."""
        rows = [
            (period, tenant, *counts)
            for period, table in deltas.items()
            for tenant, counts in table.items()
        ]
        with self._lock, self._failures() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute(
                    "SELECT number FROM batches WHERE writer = ?", (self.writer,)
                ).fetchone()
                if found is None or found[0] < number:
                    conn.executemany(UPSERT, rows)
                    conn.execute(
                        "INSERT OR REPLACE INTO batches (writer, number, written_at) "
                        "VALUES (?, ?, ?)",
                        (self.writer, number, time.time()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _read(self, wanted: list[str]) -> Table:
        marks = ", ".join("?" for _ in wanted)
        query = (
            "SELECT period, tenant, requests, input_tokens, output_tokens, spend_micros "
            f"FROM usage WHERE period IN ({marks})"
        )
        with self._lock, self._failures() as conn:
            rows = conn.execute(query, wanted).fetchall()
        stored: Table = {period: {} for period in wanted}
        for period, tenant, *counts in rows:
            stored[period][tenant] = counts
        return stored

    @contextmanager
    def _failures(self) -> Iterator[sqlite3.Connection]:
        """The open connection; any failure of the body becomes :class:`StoreUnavailable`."""
        if self._conn is None:
            raise StoreUnavailable(f"the SQLite file {self.path} is not open")
        try:
            yield self._conn
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    def _disconnect(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            conn.close()
