"""The ledger: one SQLite file (or PostgreSQL database) that remembers every order, step, binding and cursor.

It is also the work queue: steps are rows, and workers claim the due ones.
Every write happens in a short transaction, so a crash at any instant leaves
the file consistent (WAL mode). Schema: docs/ledger.md; migrations:
:mod:`connector.migrations`. On PostgreSQL (``postgresql://...``) the same
methods and SQL run through :mod:`connector.ledger_postgres`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from connector import ledger_claims
from connector.errors import SQLiteOnlyError
from connector.ledger_url import parse_ledger
from connector.migrations import migrate
from connector.model import Order, balance_difference
from connector.events import redact
from connector.snapshot import from_json, hash_of, to_json

FINAL_STATES = ("done", "skipped", "mismatch")  # ends that let dependent steps go on
# Raised by both ledgers for a broken constraint (PostgreSQL's is translated: connector/ledger_postgres.py).
IntegrityError = sqlite3.IntegrityError
LedgerError = sqlite3.Error
# Where a step goes in the queue, by how its order arrived (lower first; migration 7).
PRIORITY = {"webhook": 0, "poll": 5, "backfill": 9}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class OrderChange:
    """What recording an order did: ``new``, ``changed``, ``unchanged`` or ``stale``."""

    order_key: str
    outcome: str
    content_hash: str | None = None  # of the order as recorded (or found unchanged)


@dataclass(frozen=True)
class StepRow:
    id: int
    order_key: str
    step: str
    state: str
    attempts: int
    request_id: str | None
    external_id: str | None
    planned_hash: str
    claim_token: str | None = None  # set on the rows claim_due hands out: what finish_step and release name


def _progress(order: Order) -> tuple:
    """How far an order's money has moved; never goes down as the order changes at the store."""
    return (len(order.refunds), len(order.transactions), order.cancelled_at is not None)


class Ledger:
    """Verb-on-noun access to the ledger file (or database)."""

    def __init__(self, path: str | Path):
        """Open (create, migrate) the ledger at ``path``: a file path, ``sqlite:///path`` or ``postgresql://...``."""
        where = parse_ledger(path)
        self.backend = where.backend
        self.location = where.shown  # safe to print: no password
        self._db = None
        if where.backend == "postgresql":
            from connector.ledger_postgres import connect  # psycopg only when asked for

            self.path = None
            self.conn = connect(where.url)
            migrate(self.conn)
            return
        self.path = where.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        # Switching the journal mode needs the database to itself; a second worker opening an
        # already-WAL ledger must not ask (it would fail "database is locked" at once).
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA foreign_keys=ON")
        self.conn = conn
        migrate(conn)

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the SQLite ledger, for admin queries; not available on PostgreSQL."""
        if self.backend != "sqlite":
            raise SQLiteOnlyError("sqlite-utils access (ledger.db)")
        if self._db is None:
            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def sqlite_path(self, feature: str) -> Path:
        """The ledger file, for a feature only SQLite has (e.g. a file copy); a clear error on PostgreSQL."""
        if self.path is None:
            raise SQLiteOnlyError(feature)
        return self.path

    def close(self) -> None:
        self.conn.close()

    def transaction(self, lock: str | None = None):
        """``with ledger.transaction():`` groups writes atomically, holding the ledger's writer lock.

        ``lock="<name>"`` holds only the lock of that name instead, for work that must run once at a
        time across every process and node (e.g. ``"quickbooks-token:<realm>"``) but must not stall the
        other writers meanwhile: on PostgreSQL a plain ``BEGIN`` and a transaction-level advisory lock
        on the name, freed at commit or rollback (and when the connection dies). A SQLite file has one
        writer lock only, so there it is ``BEGIN IMMEDIATE`` as without a name.
        """
        if lock is None or self.backend == "sqlite":
            return _Transaction(self.conn)
        from connector.job_locks import advisory_key  # job_locks builds on the ledger; imported when used
        return _Transaction(self.conn, begin="BEGIN", lock_key=advisory_key(lock))

    # -- orders -----------------------------------------------------------
    def record_order(self, order: Order) -> OrderChange:
        """Store the order's snapshot unless it is unchanged or older than what we hold.

        An older snapshot (late webhook, slow poll) never overwrites a newer
        one: the source's updated time decides (DESIGN.md guarantee 5).
        """
        snapshot = to_json(order)
        digest = hash_of(snapshot)
        now = iso(utcnow())
        row = self.conn.execute(
            "SELECT content_hash, source_updated_at FROM orders WHERE order_key = ?", (order.order_key,)
        ).fetchone()
        updated = iso(order.updated_at)
        values = {
            "order_key": order.order_key, "store": order.store, "system": order.system,
            "source_order_id": order.source_order_id, "name": order.name, "currency": order.currency,
            "total": str(order.total.amount), "source_created_at": iso(order.created_at),
            "source_updated_at": updated, "content_hash": digest, "snapshot": snapshot,
            "balance_difference": str(balance_difference(order).amount), "last_changed_at": now,
        }
        if row is None:
            values["first_seen_at"] = now
            self.conn.execute(f"INSERT INTO orders ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                              tuple(values.values()))
            return OrderChange(order.order_key, "new", digest)
        if row[0] == digest:
            return OrderChange(order.order_key, "unchanged", digest)
        if updated < row[1]:
            return OrderChange(order.order_key, "stale")
        if updated == row[1] and _progress(order) < _progress(from_json(self.order_snapshot(order.order_key))):
            # Both stores stamp whole seconds: two versions in one second tie. Money only ever moves
            # forward (refunds and transactions are added, a cancellation stays), so the version
            # with less of it is the older one, read before and recorded after (guarantee 5).
            return OrderChange(order.order_key, "stale")
        del values["order_key"]
        self.conn.execute(f"UPDATE orders SET {', '.join(f'{k} = ?' for k in values)} WHERE order_key = ?",
                          (*values.values(), order.order_key))
        return OrderChange(order.order_key, "changed", digest)

    def order_snapshot(self, order_key: str) -> str | None:
        row = self.conn.execute("SELECT snapshot FROM orders WHERE order_key = ?", (order_key,)).fetchone()
        return row[0] if row else None

    def record_reject(self, store: str, source_order_id: str, error, payload: dict) -> None:
        """Remember an order that could not be mapped, with its payload, for a person to look at."""
        now = iso(utcnow())
        self.conn.execute(
            "INSERT INTO rejects (order_key, store, source_order_id, error, what_to_do, payload, first_seen_at,"
            " last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_key) DO UPDATE SET"
            " error=excluded.error, what_to_do=excluded.what_to_do, payload=excluded.payload,"
            " last_seen_at=excluded.last_seen_at",
            (f"{store}:{source_order_id}", store, source_order_id, str(error), getattr(error, "what_to_do", None),
             json.dumps(payload, default=str), now, now))

    def clear_reject(self, order_key: str) -> None:
        self.conn.execute("DELETE FROM rejects WHERE order_key = ?", (order_key,))

    def rejects(self) -> list[dict]:
        keys = ("order_key", "error", "what_to_do", "last_seen_at")
        return [dict(zip(keys, row)) for row in self.conn.execute(
            "SELECT order_key, error, what_to_do, last_seen_at FROM rejects ORDER BY order_key")]

    # -- steps ------------------------------------------------------------
    def plan_step(self, order_key: str, step: str, depends_on: tuple[str, ...], planned_hash: str,
                  request_id: str | None = None, priority: int = PRIORITY["poll"]) -> bool:
        """Add a pending step unless the order already has it; True when added."""
        now = iso(utcnow())
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO steps (order_key, step, depends_on, planned_hash, request_id,"
            " created_at, updated_at, next_attempt_at, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order_key, step, ",".join(depends_on), planned_hash, request_id, now, now, now, priority),
        )
        return cursor.rowcount == 1

    def retry_skipped(self, order_key: str, steps: list[str]) -> int:
        """Put the order's ``skipped`` steps among ``steps`` back in the queue; how many were."""
        if not steps:
            return 0
        now = iso(utcnow())
        marks = ",".join("?" * len(steps))
        return self.conn.execute(
            f"UPDATE steps SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?"
            f" WHERE order_key = ? AND state = 'skipped' AND step IN ({marks})",
            (now, now, order_key, *steps)).rowcount

    def raise_priority(self, order_key: str, priority: int) -> None:
        """Move an order's unfinished steps up the queue (a webhook announced it: a person may be waiting)."""
        self.conn.execute(
            "UPDATE steps SET priority = ? WHERE order_key = ? AND priority > ?"
            " AND state IN ('pending', 'failed', 'in_flight')", (priority, order_key, priority))

    def due_steps(self, kind: str, limit: int = 1000, now: datetime | None = None) -> list[StepRow]:
        """Steps of one kind (``kind`` or ``kind:<id>``) that may run now: due, dependencies ended well.

        Read only, for reports and tests; a worker takes steps with :meth:`claim_due`, never by reading
        them here and claiming after (another worker could take the same ones in between).
        """
        rows = ledger_claims.due_rows(self.conn, self.backend, kind, iso(now or utcnow()), limit)
        return [StepRow(*row[:8]) for row in rows]

    def claim_due(self, kind: str, limit: int, lease_seconds: int = 300,
                  now: datetime | None = None) -> list[StepRow]:
        """Take up to ``limit`` due steps of ``kind`` for this worker alone, in queue order.

        Due as in :meth:`due_steps` (pending; failed and due; in flight with a lease run out; every
        dependency ended well). In the same transaction they are marked ``in_flight``, one more
        attempt, leased until ``now + lease_seconds`` and stamped with a fresh claim token, so two
        workers never hold the same step (connector/ledger_claims.py says how, per database). The rows
        come back as claimed: ``attempts`` is this attempt's number, ``claim_token`` what
        :meth:`finish_step` and :meth:`release` must name.
        """
        moment = now or utcnow()
        token = ledger_claims.new_claim_token()
        lease, stamp = iso(moment + timedelta(seconds=lease_seconds)), iso(utcnow())
        with self._claim_transaction():
            rows = ledger_claims.due_rows(self.conn, self.backend, kind, iso(moment), limit, claim=True)
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), ledger_claims.CLAIM_CHUNK):
                chunk = ids[start:start + ledger_claims.CLAIM_CHUNK]
                self.conn.execute(ledger_claims.MARK_CLAIMED.format(ids=",".join("?" * len(chunk))),
                                  (lease, token, stamp, *chunk))
        return [StepRow(row[0], row[1], row[2], "in_flight", row[4] + 1, row[5], row[6], row[7], token)
                for row in rows]

    def step_endings(self):
        """``with ledger.step_endings():`` records a batch's endings (:meth:`finish_step`, their events)
        at once: the writer lock on SQLite, a plain transaction on PostgreSQL (row locks suffice there)."""
        return self._claim_transaction()

    def _claim_transaction(self):
        """SQLite: the file's writer lock (one claimer at a time, across processes). PostgreSQL: no
        global lock at all; the claim's ``FOR UPDATE SKIP LOCKED`` row locks keep claimers apart."""
        return _Transaction(self.conn, begin="BEGIN IMMEDIATE" if self.backend == "sqlite" else "BEGIN")

    def claim(self, step_ids: list[int], lease_seconds: int = 300) -> None:
        """Mark these steps in flight, unconditionally (no token): for a single-process tool on its own
        copy of the ledger (the replay dry run). Workers sharing a ledger use :meth:`claim_due`."""
        lease = iso(utcnow() + timedelta(seconds=lease_seconds))
        with self.transaction():
            for step_id in step_ids:
                self.conn.execute(
                    "UPDATE steps SET state='in_flight', attempts=attempts+1, lease_until=?, claim_token=NULL,"
                    " updated_at=? WHERE id=?", (lease, iso(utcnow()), step_id))

    def release(self, step_ids: list[int], error: str, what_to_do: str | None, *,
                claim: str | None = None) -> int:
        """Give claimed steps back untried: pending again, the attempt not counted; how many were.

        With ``claim`` (the token :meth:`claim_due` gave), only the steps still held under that claim
        go back: one whose lease ran out and that another worker took over is left to its new owner.
        """
        fence = ledger_claims.STILL_CLAIMED if claim else ""
        stale = []
        with self._claim_transaction():
            for step_id in step_ids:
                cursor = self.conn.execute(
                    "UPDATE steps SET state='pending', attempts=MAX(attempts-1, 0), lease_until=NULL,"
                    " claim_token=NULL, error=?, what_to_do=?, updated_at=? WHERE id=?" + fence,
                    (error, what_to_do, iso(utcnow()), step_id, *((claim,) if claim else ())))
                if cursor.rowcount == 0:
                    stale.append(step_id)
        for step_id in stale if claim else ():
            ledger_claims.record_stale_finish(self, step_id, claim, "release")
        return len(step_ids) - len(stale)

    def finish_step(self, step_id: int, state: str, *, external_id: str | None = None,
                    error: str | None = None, what_to_do: str | None = None,
                    retry_at: datetime | None = None, claim: str | None = None) -> bool:
        """End an attempt: ``done``, ``skipped``, ``failed`` (with ``retry_at``) or ``dead``; True when recorded.

        With ``claim`` (the token :meth:`claim_due` gave) the ending is recorded only while the step is
        still that claim. A worker whose lease ran out and whose step another worker took over gets
        False: its late result is dropped (logged, and an event ``claim``/``stale_dropped``) so it
        never overwrites the new owner's.
        """
        fence = ledger_claims.STILL_CLAIMED if claim else ""
        cursor = self.conn.execute(
            "UPDATE steps SET state=?, external_id=COALESCE(?, external_id), error=?, what_to_do=?,"
            " next_attempt_at=?, lease_until=NULL, claim_token=NULL, updated_at=? WHERE id=?" + fence,
            (state, external_id, error, what_to_do, iso(retry_at) if retry_at else None, iso(utcnow()), step_id,
             *((claim,) if claim else ())),
        )
        if claim and cursor.rowcount == 0:
            ledger_claims.record_stale_finish(self, step_id, claim, f"'{state}'")
            return False
        return True

    def step_counts(self) -> dict[str, dict[str, int]]:
        """``{step kind: {state: count}}`` over the whole ledger (``quickbooks.payment:42`` counts as a payment)."""
        counts: dict[str, dict[str, int]] = {}
        kind = "CASE WHEN instr(step, ':') > 0 THEN substr(step, 1, instr(step, ':') - 1) ELSE step END"
        for step, state, n in self.conn.execute(
                f"SELECT {kind} AS kind, state, COUNT(*) FROM steps GROUP BY kind, state"):
            counts.setdefault(step, {})[state] = n
        return counts

    def failures(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT order_key, step, state, attempts, error, what_to_do FROM steps"
            " WHERE state IN ('failed','dead','held','mismatch') ORDER BY order_key, step").fetchall()
        keys = ("order_key", "step", "state", "attempts", "error", "what_to_do")
        return [dict(zip(keys, row)) for row in rows]

    # -- bindings ---------------------------------------------------------
    def bind(self, system: str, kind: str, canonical_key: str, external_id: str, details: dict | None = None) -> None:
        """Remember that ``canonical_key`` is ``external_id`` in ``system`` (committed at once)."""
        now = iso(utcnow())
        self.conn.execute(
            "INSERT INTO bindings (system, kind, canonical_key, external_id, details, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (system, kind, canonical_key) DO UPDATE SET"
            " external_id=excluded.external_id, details=excluded.details, updated_at=excluded.updated_at",
            (system, kind, canonical_key, external_id, json.dumps(details) if details else None, now, now),
        )

    def binding(self, system: str, kind: str, canonical_key: str) -> str | None:
        row = self.conn.execute(
            "SELECT external_id FROM bindings WHERE system=? AND kind=? AND canonical_key=?",
            (system, kind, canonical_key)).fetchone()
        return row[0] if row else None

    def binding_details(self, system: str, kind: str, canonical_key: str) -> dict | None:
        row = self.conn.execute(
            "SELECT details FROM bindings WHERE system=? AND kind=? AND canonical_key=?",
            (system, kind, canonical_key)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    # -- cursors ----------------------------------------------------------
    def cursor(self, store: str) -> str | None:
        row = self.conn.execute("SELECT value FROM cursors WHERE store = ?", (store,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, store: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO cursors (store, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (store) DO UPDATE"
            " SET value=excluded.value, updated_at=excluded.updated_at", (store, value, iso(utcnow())))

    # -- tokens -----------------------------------------------------------
    def token(self, system: str, account: str) -> dict | None:
        row = self.conn.execute(
            "SELECT refresh_token, access_token, access_expires_at FROM tokens WHERE system=? AND account=?",
            (system, account)).fetchone()
        return dict(zip(("refresh_token", "access_token", "access_expires_at"), row)) if row else None

    def save_token(self, system: str, account: str, refresh_token: str, access_token: str | None,
                   access_expires_at: datetime | None) -> None:
        """Commit a rotated refresh token before the old one is dropped (guarantee 6).

        A saved token also clears any "needs reconnect" flag: the connection works again.
        """
        self.conn.execute(
            "INSERT INTO tokens (system, account, refresh_token, access_token, access_expires_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (system, account) DO UPDATE SET"
            " refresh_token=excluded.refresh_token, access_token=excluded.access_token,"
            " access_expires_at=excluded.access_expires_at, updated_at=excluded.updated_at,"
            " needs_reconnect=NULL",
            (system, account, refresh_token, access_token,
             iso(access_expires_at) if access_expires_at else None, iso(utcnow())))

    # -- backfills --------------------------------------------------------
    def open_backfill(self, store: str, since: str, until: str) -> dict:
        """The unfinished backfill of ``store`` from ``since``, or a new one."""
        row = self.conn.execute(
            "SELECT id FROM backfills WHERE store = ? AND since = ? AND status NOT IN ('done', 'failed')"
            " ORDER BY id DESC LIMIT 1", (store, since)).fetchone()
        if row is None:
            now = iso(utcnow())
            cursor = self.conn.execute(
                "INSERT INTO backfills (store, since, until, status, started_at, updated_at)"
                " VALUES (?, ?, ?, 'started', ?, ?)", (store, since, until, now, now))
            row = (cursor.lastrowid,)
        return self.backfill(row[0])

    def backfill(self, backfill_id: int) -> dict:
        cursor = self.conn.execute("SELECT * FROM backfills WHERE id = ?", (backfill_id,))
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone()))

    def update_backfill(self, backfill_id: int, **values) -> None:
        values["updated_at"] = iso(utcnow())
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE backfills SET {sets} WHERE id = ?", (*values.values(), backfill_id))

    def mark_reconnect(self, system: str, account: str, reason: str) -> None:
        """Remember that ``system`` refused our credentials; its steps pause until a reconnect."""
        cursor = self.conn.execute(
            "UPDATE tokens SET needs_reconnect = ?, updated_at = ? WHERE system = ? AND account = ?",
            (reason, iso(utcnow()), system, account))
        if cursor.rowcount == 0:
            self.conn.execute(
                "INSERT INTO tokens (system, account, refresh_token, updated_at, needs_reconnect)"
                " VALUES (?, ?, '', ?, ?)", (system, account, iso(utcnow()), reason))

    def needs_reconnect(self, system: str, account: str) -> str | None:
        row = self.conn.execute("SELECT needs_reconnect FROM tokens WHERE system = ? AND account = ?",
                                (system, account)).fetchone()
        return row[0] if row else None

    # -- events -----------------------------------------------------------
    def record_event(self, kind: str, outcome: str, *, order_key: str | None = None, step: str | None = None,
                     request_id: str | None = None, payload_hash: str | None = None,
                     detail: str | None = None, duration_ms: int | None = None, response: str | None = None,
                     error: str | None = None, system: str | None = None) -> None:
        """One line of the events table (docs/ledger.md); text passes through ``redact``: no secret lands here."""
        if system is None and step and "." in step:
            system = step.split(".", 1)[0]
        self.conn.execute(
            "INSERT INTO events (at, order_key, step, kind, outcome, request_id, payload_hash, detail, duration_ms,"
            " response, error, system) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (iso(utcnow()), order_key, step, kind, outcome, request_id, payload_hash, redact(detail, 2000),
             duration_ms, redact(response), redact(error, 2000), system))


class _Transaction:
    """``BEGIN IMMEDIATE`` (or ``begin``) ... ``COMMIT``, ``ROLLBACK`` on an exception.

    ``lock_key`` (PostgreSQL): also wait for that transaction-level advisory lock once begun.
    """

    def __init__(self, conn, begin: str = "BEGIN IMMEDIATE", lock_key: int | None = None):
        self.conn = conn
        self.begin = begin
        self.lock_key = lock_key

    def __enter__(self):
        self.conn.execute(self.begin)
        if self.lock_key is not None:
            try:
                self.conn.execute("SELECT pg_advisory_xact_lock(?)", (self.lock_key,))
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
