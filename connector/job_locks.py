"""Named locks across processes and machines: a scheduled job runs on one node at a time.

Several daemons may share one ledger (issue 10). Each schedules the same jobs
(poll a store, reconcile, refresh tokens, check webhooks, process the inbox);
each job must still run once at a time across all of them::

    with job_lock(ledger, "poll:main-shop") as held:
        if not held:
            return  # another node is polling this store right now
        ...

The lock never waits: a node that finds it held skips this run, and the job's
next tick tries again. :func:`waiting_lock` is the same lock for work that must
run, only not at the same time as another node's (QuickBooks' find-then-create
of customers): it waits until it holds the lock or ``timeout`` runs out.

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on the
  job's own ledger connection, keyed by :func:`advisory_key` of the name. A
  node that crashes loses its connection, and PostgreSQL frees the lock with it.
* SQLite (several processes on one host sharing the file): a row of
  ``job_locks`` (migration 10) with an expiring lease, taken under
  ``BEGIN IMMEDIATE``. A thread renews the lease while the job runs, so a long
  reconcile keeps it; a crashed holder stops renewing and its lease runs out
  after ``lease_seconds``.

One holder per connection: taking a name the same connection already holds
yields False, as it would for another node (PostgreSQL's advisory locks would
otherwise let a session take its own lock twice).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

LOG = logging.getLogger("o2c.job_locks")

DEFAULT_LEASE_SECONDS = 60.0
_held_on: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # PostgreSQL connection -> names it holds
_held_guard = threading.Lock()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint): sha256, first 8 bytes.

    Stable across processes and Python versions (unlike ``hash()``), so every node agrees on it.
    """
    return int.from_bytes(hashlib.sha256(f"o2c:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def job_lock(ledger, name: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Iterator[bool]:
    """Hold the lock ``name`` for the block if no one else holds it; yield whether it is held.

    ``ledger`` is the job's own :class:`connector.ledger.Ledger` (its connection holds the lock on
    PostgreSQL). ``lease_seconds`` (SQLite only): how long a crashed holder keeps others out.
    """
    take = _pg_lock if ledger.backend == "postgresql" else _sqlite_lock
    with take(ledger, name, lease_seconds) as held:
        if not held:
            LOG.debug("job %s skipped here: another node holds it", name)
        yield held


_local_locks: dict[str, threading.Lock] = {}  # name -> the lock this process's threads queue on first


@contextmanager
def waiting_lock(ledger, name: str, *, timeout: float, poll: float = 0.02,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Iterator[bool]:
    """Hold the lock ``name`` for the block, waiting up to ``timeout`` seconds for another holder to let go;
    yield whether it is held (False: the wait ran out, the caller tries again later).

    The threads of one process queue on a ``threading.Lock`` first, so only one of them at a time asks the
    database. Then PostgreSQL waits in ``pg_advisory_lock`` under a ``lock_timeout`` (no polling; waiters are
    served in turn); SQLite tries its lease again after ``poll`` seconds, doubling up to half a second.
    """
    deadline = time.monotonic() + timeout
    with _held_guard:
        local = _local_locks.setdefault(name, threading.Lock())
    if not local.acquire(timeout=timeout):
        yield False
        return
    try:
        if ledger.backend == "postgresql":
            with _pg_lock(ledger, name, lease_seconds, wait=max(0.001, deadline - time.monotonic())) as held:
                yield held
            return
        delay = poll
        while True:
            with job_lock(ledger, name, lease_seconds=lease_seconds) as held:
                if held or time.monotonic() >= deadline:
                    yield held
                    return
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)
    finally:
        local.release()


# -- PostgreSQL -----------------------------------------------------------------------------------
@contextmanager
def _pg_lock(ledger, name: str, _lease_seconds: float, wait: float = 0.0) -> Iterator[bool]:
    conn = ledger.conn
    with _held_guard:
        names = _held_on.setdefault(conn, set())
        mine = name in names
        if not mine and wait <= 0:
            held = bool(conn.execute("SELECT pg_try_advisory_lock(?)", (advisory_key(name),)).fetchone()[0])
    if mine:
        held = False
    elif wait > 0:  # waits outside the guard: other connections' locks go on meanwhile
        held = _pg_wait(conn, advisory_key(name), wait)
    if held:
        with _held_guard:
            names.add(name)
    if not held:
        yield False
        return
    try:
        yield True
    finally:
        with _held_guard:
            names.discard(name)
        try:
            if conn.in_transaction:  # a job that failed mid-transaction; the unlock needs a usable session
                conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(?)", (advisory_key(name),))
        except Exception as exc:  # noqa: BLE001 - the connection is gone: so is the lock, with the session
            LOG.warning("could not release job lock %s (%s); it is freed when this connection closes", name, exc)


def _pg_wait(conn, key: int, seconds: float) -> bool:
    """``pg_advisory_lock`` that gives up after ``seconds`` (PostgreSQL's ``lock_timeout``, SQLSTATE 55P03)."""
    conn.execute(f"SET lock_timeout = {max(1, int(seconds * 1000))}")
    try:
        conn.execute("SELECT pg_advisory_lock(?)", (key,))
        return True
    except Exception as exc:  # noqa: BLE001 - only the timeout is an answer; anything else is raised
        if "lock timeout" not in str(exc):
            raise
        return False
    finally:
        conn.execute("SET lock_timeout = 0")


# -- SQLite ---------------------------------------------------------------------------------------
def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_take(conn, name: str, holder: str, lease_seconds: float, now: datetime | None = None) -> bool:
    """Take the SQLite lease ``name`` for ``holder`` unless someone else's lease is still running."""
    now = now or datetime.now(timezone.utc)
    conn.execute("BEGIN IMMEDIATE")  # one writer at a time across processes: read and take as one step
    try:
        row = conn.execute("SELECT holder, lease_until FROM job_locks WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] != holder and row[1] > _utc_iso(now):
            conn.execute("COMMIT")
            return False
        conn.execute(
            "INSERT INTO job_locks (name, holder, lease_until, taken_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until,"
            " taken_at = excluded.taken_at",
            (name, holder, _utc_iso(now + timedelta(seconds=lease_seconds)), _utc_iso(now)))
        conn.execute("COMMIT")
        return True
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def _sqlite_lock(ledger, name: str, lease_seconds: float) -> Iterator[bool]:
    holder = _holder()
    if not try_take(ledger.conn, name, holder, lease_seconds):
        yield False
        return
    renewer = _LeaseRenewer(ledger.sqlite_path("job locks"), name, holder, lease_seconds)
    renewer.start()
    try:
        yield True
    finally:
        renewer.stop()
        try:
            ledger.conn.execute("DELETE FROM job_locks WHERE name = ? AND holder = ?", (name, holder))
        except sqlite3.Error as exc:  # the lease runs out by itself
            LOG.warning("could not release job lock %s (%s); others may take it after %ss", name, exc,
                        lease_seconds)


class _LeaseRenewer(threading.Thread):
    """Extends a held SQLite lease every third of its length, on a connection of its own.

    Its own connection: the job's may be inside a transaction of its own, which the renewal must not join.
    """

    def __init__(self, path, name: str, holder: str, lease_seconds: float):
        super().__init__(name=f"job-lock:{name}", daemon=True)
        self.path, self.lock_name, self.holder, self.lease_seconds = path, name, holder, lease_seconds
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.join()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            while not self._stopped.wait(self.lease_seconds / 3):
                until = _utc_iso(datetime.now(timezone.utc) + timedelta(seconds=self.lease_seconds))
                try:
                    renewed = conn.execute("UPDATE job_locks SET lease_until = ? WHERE name = ? AND holder = ?",
                                           (until, self.lock_name, self.holder)).rowcount
                except sqlite3.Error as exc:  # busy for longer than the timeout: try again next time
                    LOG.warning("could not renew job lock %s: %s", self.lock_name, exc)
                    continue
                if not renewed:
                    LOG.warning("job lock %s was taken over after its lease ran out; this run goes on, but "
                                "another node may be running the same job", self.lock_name)
                    return
        finally:
            conn.close()
