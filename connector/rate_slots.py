"""The ledger's record of rate-budget slots: what every process sent on a budget, in flight or lately ended.

Two tables (migration 11, docs/operations.md "Rate limits"): ``rate_slots`` has
one row per request granted a slot (its cost, when it was granted, when it
ended, its lease) and ``rate_blocks`` one row per budget paused by a 429. The
decision what to grant is :mod:`connector.rate_budget_shared`'s; this module
only reads and writes the rows, in short transactions that hold the budget's
lock, so that two processes never both take the last unit of a window:

* PostgreSQL: a plain ``BEGIN`` and ``pg_advisory_xact_lock`` on a key hashed
  from the budget's name. Not the ledger's writer lock (``BEGIN IMMEDIATE``):
  budgets queue neither behind step claims nor behind each other;
* SQLite: ``BEGIN IMMEDIATE``, the file's one write lock (one host anyway).

**One clock for every process.** Windows compare times stamped by different
processes, so they all take them from the same clock: PostgreSQL's
``clock_timestamp()`` (machines whose clocks disagree still agree on it), or
the host's ``time.time()`` for a SQLite file, which only processes of one host
can open. Times are float seconds since the epoch.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from connector.ledger import Ledger

# The database's clock, as float seconds since the epoch (PostgreSQL only).
PG_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"


@dataclass(frozen=True)
class Slot:
    """One row as a decision sees it. ``ended`` is None while the request is in flight.

    A row still in flight past its lease belongs to a holder that died: it is read as
    ended at ``lease_until`` (it still counts in the windows for one window after that,
    as the vendor may have counted it, but no longer holds a concurrency slot).
    """

    cost: int
    ended: float | None
    lease_until: float
    hint: bool  # the vendor said someone else spent this much: counts in the first window only


def lock_key(budget: str) -> int:
    """The ``pg_advisory_xact_lock`` key of a budget: a signed 64-bit hash of its name."""
    return int.from_bytes(hashlib.sha256(f"o2c_rate:{budget}".encode()).digest()[:8], "big", signed=True)


def holder_name() -> str:
    """Who took a slot, for a person reading the table: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SlotTable:
    """The rate tables of one ledger, on a connection of their own (thread-safe).

    A connection of its own: a slot is taken from inside whatever the caller is doing, never
    inside the caller's ledger transaction. On SQLite, therefore, never take a slot while holding
    a write transaction on the same ledger file: the slot's ``BEGIN IMMEDIATE`` would wait for it.
    """

    def __init__(self, ledger: str):
        self._where = ledger
        self._ledger = Ledger(ledger)  # opens (and migrates) it like any process would
        self.postgres = self._ledger.backend == "postgresql"
        self.location = self._ledger.location
        self._lock = threading.Lock()  # one statement or transaction at a time on the connection
        self._closed = False
        self.transactions = 0
        self.seconds = 0.0  # spent in this table's statements and transactions, lock waits included

    @property
    def conn(self):
        """The connection; a PostgreSQL one the server dropped (a restart) is opened again."""
        if self._closed:
            raise sqlite3.ProgrammingError(f"the rate tables of {self.location} were closed (sharing stopped)")
        if self.postgres and self._ledger.conn.raw.closed:
            self._ledger = Ledger(self._where)
        return self._ledger.conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ledger.close()

    @contextmanager
    def locked(self, budget: str):
        """A transaction holding ``budget``'s lock; yields a :class:`LockedBudget` for reads and writes.

        Commits when the block ends, rolls back if it raises.
        """
        with self._lock:
            started = time.perf_counter()
            conn = self.conn
            try:
                if self.postgres:
                    conn.execute("BEGIN")
                    # The clock may be read before the lock is granted: early, so only good as a lower
                    # bound (which rows to prune); LockedBudget.usage() reads it again.
                    now = conn.execute(f"SELECT pg_advisory_xact_lock(?), {PG_NOW}", (lock_key(budget),)).fetchone()[1]
                else:
                    conn.execute("BEGIN IMMEDIATE")  # no other writer, no release, until we commit
                    now = time.time()
                yield LockedBudget(conn, budget, float(now), self.postgres)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self.transactions += 1
                self.seconds += time.perf_counter() - started

    def end(self, slot_id: int) -> None:
        """Stamp the slot ended now (one statement: no lock needed, it only makes a row count less)."""
        self._autocommit(f"UPDATE rate_slots SET ended_at = {PG_NOW} WHERE id = ? AND ended_at IS NULL",
                         "UPDATE rate_slots SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (slot_id,))

    def block(self, budget: str, seconds: float) -> None:
        """Nobody sends on ``budget`` for ``seconds`` from now (a longer block already there stays)."""
        upsert = ("INSERT INTO rate_blocks (budget, blocked_until) VALUES (?, {now} + ?) ON CONFLICT (budget)"
                  " DO UPDATE SET blocked_until = MAX(rate_blocks.blocked_until, excluded.blocked_until)")
        with self._lock:
            started = time.perf_counter()
            try:
                if self.postgres:
                    self.conn.execute(upsert.format(now=PG_NOW), (budget, seconds))
                else:
                    self.conn.execute(upsert.format(now="?"), (budget, time.time(), seconds))
            finally:
                self.transactions += 1
                self.seconds += time.perf_counter() - started

    def _autocommit(self, postgres_sql: str, sqlite_sql: str, params: tuple) -> None:
        with self._lock:
            started = time.perf_counter()
            try:
                if self.postgres:
                    self.conn.execute(postgres_sql, params)
                else:
                    self.conn.execute(sqlite_sql, (time.time(),) + params)
            finally:
                self.transactions += 1
                self.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class Usage:
    """What every process has spent of one budget, as one statement saw it at ``now``."""

    now: float
    blocked_until: float | None
    in_flight: int  # requests holding a concurrency slot
    used: tuple[int, ...]  # units counted in each window (in flight, or ended less than a window ago)


@lru_cache(maxsize=16)
def _usage_sql(windows: int, postgres: bool) -> str:
    """One statement: the clock, the block, and the sums the decision needs, for ``windows`` windows.

    Parameters, in order: each window's length, [the clock on SQLite], the budget twice, the longest
    window. The clock is read *inside* the statement (once: PostgreSQL does not flatten a subquery
    with a volatile function), hence after the rows it sees were committed: a release it counts as
    ended has ``ended_at`` before ``now``. Read before the rows, a grant could look stamped before a
    release it saw (one request too many in flight). A row in flight past its lease (a dead holder)
    counts as ended at ``lease_until``; hints count in the first window only.
    """
    ended = ("(CASE WHEN s.ended_at IS NOT NULL THEN s.ended_at WHEN s.lease_until <= clock.now"
             " THEN s.lease_until END)")
    sums = "".join(f", COALESCE(SUM(CASE WHEN {'' if i == 0 else 's.hint = 0 AND '}({ended} IS NULL"
                   f" OR {ended} > clock.now - ?) THEN s.cost ELSE 0 END), 0)" for i in range(windows))
    return (f"SELECT MAX(clock.now), MAX(clock.blocked_until),"
            f" COALESCE(SUM(CASE WHEN s.id IS NOT NULL AND {ended} IS NULL THEN 1 ELSE 0 END), 0){sums}"
            f" FROM (SELECT {PG_NOW if postgres else '?'} AS now,"
            "  (SELECT blocked_until FROM rate_blocks WHERE budget = ?) AS blocked_until) AS clock"
            " LEFT JOIN rate_slots AS s ON s.budget = ? AND (s.ended_at IS NULL OR s.ended_at > clock.now - ?)")


class LockedBudget:
    """Reads and writes of one budget's rows inside :meth:`SlotTable.locked`; ``now`` is the shared clock."""

    def __init__(self, conn, budget: str, now: float, postgres: bool):
        self.conn, self.budget, self.now, self._postgres = conn, budget, now, postgres

    def usage(self, windows: tuple[float, ...]) -> Usage:
        """The sums for windows of these lengths (seconds); ``now`` moves to when they were read."""
        longest = max(windows, default=0.0)
        params = tuple(windows) + (() if self._postgres else (time.time(),)) + (self.budget, self.budget, longest)
        row = self.conn.execute(_usage_sql(len(windows), self._postgres), params).fetchone()
        self.now = float(row[0])
        return Usage(self.now, float(row[1]) if row[1] is not None else None, int(row[2]),
                     tuple(int(u) for u in row[3:]))

    def live(self, seconds: float) -> list[Slot]:
        """The rows that may still count in a window of ``seconds`` before ``now`` (to work out a wait)."""
        rows = self.conn.execute(
            "SELECT cost, ended_at, lease_until, hint FROM rate_slots"
            " WHERE budget = ? AND (ended_at IS NULL OR ended_at > ?)", (self.budget, self.now - seconds)).fetchall()
        return [Slot(int(cost), ended if ended is not None else (lease if lease <= self.now else None),
                     float(lease), bool(hint)) for cost, ended, lease, hint in rows]

    def grant(self, cost: int, lease_seconds: float, holder: str) -> int:
        """Insert a slot in flight from now; its id."""
        cursor = self.conn.execute(
            "INSERT INTO rate_slots (budget, cost, granted_at, ended_at, lease_until, holder, hint)"
            " VALUES (?, ?, ?, NULL, ?, ?, 0)", (self.budget, cost, self.now, self.now + lease_seconds, holder))
        return int(cursor.lastrowid)

    def hint(self, cost: int, ended_at: float) -> None:
        """The vendor says ``cost`` more units were spent by others: a row that counts in the first window
        as if those requests had ended at ``ended_at``."""
        self.conn.execute(
            "INSERT INTO rate_slots (budget, cost, granted_at, ended_at, lease_until, holder, hint)"
            " VALUES (?, ?, ?, ?, ?, 'vendor', 1)", (self.budget, cost, self.now, ended_at, self.now))

    def prune(self, before: float) -> int:
        """Delete the rows that ended (or whose lease ran out) before ``before``; how many."""
        return self.conn.execute("DELETE FROM rate_slots WHERE budget = ? AND COALESCE(ended_at, lease_until) < ?",
                                 (self.budget, before)).rowcount
