"""A PostgreSQL connection that looks like the ``sqlite3`` connection the ledger code was written for.

Why a look-alike: modules all over ``connector/`` and ``adapters/`` run SQL
through ``ledger.conn`` with SQLite's surface (``execute`` returning a cursor
with ``fetchone``/``fetchall``/``rowcount``/``lastrowid``, ``executemany``,
``in_transaction``, ``BEGIN IMMEDIATE``, ``sqlite3.Error`` subclasses). Keeping
that surface means every call site works on both ledgers unchanged; the SQL
itself goes through :func:`connector.pg_dialect.translate`.

Semantics kept from the SQLite ledger (which opens with ``isolation_level=None``):

* autocommit: each statement commits on its own unless a ``BEGIN`` is open;
* ``BEGIN IMMEDIATE`` (and ``EXCLUSIVE``) takes the writer lock at once: here a
  transaction-level advisory lock, so writers that asked for it take turns as
  on SQLite (a plain ``BEGIN`` does not);
* ``BEGIN`` inside an open transaction is an error, as in SQLite;
* errors are raised as ``sqlite3`` exception types (an integrity violation is a
  ``sqlite3.IntegrityError`` on both ledgers), the psycopg error as ``__cause__``;
* an ``INSERT`` into a table with an ``id`` key gets ``RETURNING id`` so
  ``cursor.lastrowid`` works.

Rows are plain tuples, as the SQLite connection returns them (no row factory is set there).
"""

from __future__ import annotations

import re
import sqlite3

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from connector.errors import SQLiteOnlyError
from connector.ledger_url import redact_url
from connector.pg_dialect import UnsupportedSQL, translate

# pg_advisory_xact_lock key of the ledger's writer lock: "o2c_ledg" as a signed 64-bit integer.
WRITER_LOCK = int.from_bytes(b"o2c_ledg", "big")

_BEGIN = re.compile(r"^\s*BEGIN(?:\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(?:\s+TRANSACTION)?\s*;?\s*$", re.I)
_END = re.compile(r"^\s*(COMMIT|END|ROLLBACK)(?:\s+TRANSACTION)?\s*;?\s*$", re.I)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+(\w+)", re.I)
# SQLite durability and integrity knobs; PostgreSQL is durable (synchronous_commit) and always checks keys.
_HARMLESS_PRAGMAS = {"synchronous", "foreign_keys", "journal_mode", "busy_timeout"}
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)


def _id_tables() -> frozenset[str]:
    """Tables whose key is an ``id`` column (their INSERTs report ``lastrowid``), from the migrations."""
    from connector.migrations import MIGRATIONS
    found = set()
    for _, _, sql in MIGRATIONS:
        found |= {m.group(1) for m in re.finditer(r"CREATE TABLE (\w+) \(\s*id INTEGER PRIMARY KEY", sql)}
    found.discard("steps_new")
    return frozenset(found | {"steps"})


def _as_sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    """The ``sqlite3`` exception a caller of the SQLite ledger would have caught for the same failure."""
    message = redact_url(str(exc).strip())
    if isinstance(exc, pg_errors.IntegrityError):
        return sqlite3.IntegrityError(message)
    if isinstance(exc, (psycopg.OperationalError, pg_errors.LockNotAvailable, pg_errors.SerializationFailure,
                        pg_errors.DeadlockDetected)):
        return sqlite3.OperationalError(message)
    if isinstance(exc, psycopg.ProgrammingError):
        return sqlite3.OperationalError(message)  # SQLite reports bad SQL as OperationalError too
    return sqlite3.DatabaseError(message)


class PgCursor:
    """The part of ``sqlite3.Cursor`` the ledger code reads."""

    def __init__(self, cursor: psycopg.Cursor | None, lastrowid: int | None = None, rowcount: int = -1):
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount if cursor is not None and rowcount == -1 else rowcount

    @property
    def description(self):
        return self._cursor.description if self._cursor is not None else None

    def _has_rows(self) -> bool:
        return self._cursor is not None and self._cursor.description is not None

    def fetchone(self):
        return self._cursor.fetchone() if self._has_rows() else None

    def fetchall(self) -> list:
        return self._cursor.fetchall() if self._has_rows() else []

    def fetchmany(self, size: int = 1) -> list:
        return self._cursor.fetchmany(size) if self._has_rows() else []

    def __iter__(self):
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection with the ``sqlite3.Connection`` surface the ledger code uses."""

    backend = "postgresql"

    def __init__(self, url: str, *, connect_timeout: int = 10):
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout,
                                       application_name="o2c-connector")
        except psycopg.Error as exc:
            raise sqlite3.OperationalError(
                f"cannot open the PostgreSQL ledger {redact_url(url)}: {redact_url(str(exc).strip())}") from exc
        self.url = redact_url(url)
        self._id_tables = _id_tables()

    # -- transactions ------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def commit(self) -> None:
        if self.in_transaction:
            self._run("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self._run("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    # -- statements --------------------------------------------------------------------
    def execute(self, sql: str, params=()) -> PgCursor:
        begin = _BEGIN.match(sql)
        if begin:
            if self.in_transaction:
                raise sqlite3.OperationalError("cannot start a transaction within a transaction")
            self._run("BEGIN")
            if (begin.group(1) or "").upper() in ("IMMEDIATE", "EXCLUSIVE"):
                self._run("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            return PgCursor(None, rowcount=-1)
        if _END.match(sql):
            if not self.in_transaction:
                raise sqlite3.OperationalError("cannot commit - no transaction is active")
            self._run(_END.match(sql).group(1).upper().replace("END", "COMMIT"))
            return PgCursor(None, rowcount=-1)
        pragma = _PRAGMA.match(sql)
        if pragma:
            if pragma.group(1).lower() in _HARMLESS_PRAGMAS:
                return PgCursor(None, rowcount=-1)
            raise SQLiteOnlyError(f"PRAGMA {pragma.group(1)}")
        statement = self._translate(sql).rstrip().rstrip(";")
        table = _INSERT_INTO.match(sql)
        returning = bool(table and table.group(1) in self._id_tables and not _RETURNING.search(statement))
        if returning:
            statement += " RETURNING id"
        cursor = self._run(statement, tuple(params) if not isinstance(params, dict) else params)
        if returning:
            ids = cursor.fetchall()
            return PgCursor(None, lastrowid=ids[-1][0] if ids else None, rowcount=len(ids))
        return PgCursor(cursor)

    def executemany(self, sql: str, seq_of_params) -> PgCursor:
        statement = self._translate(sql)
        cursor = self.raw.cursor()
        try:
            cursor.executemany(statement, [tuple(p) for p in seq_of_params])
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc
        return PgCursor(cursor)

    def executescript(self, script: str) -> PgCursor:
        """Run several PostgreSQL statements (no parameters, no translation): migrations only."""
        return PgCursor(self._run_script(script))

    def backup(self, *args, **kwargs):
        raise SQLiteOnlyError("copying the ledger with sqlite3 backup (dry runs)")

    # -- internals ---------------------------------------------------------------------
    def _translate(self, sql: str) -> str:
        try:
            return translate(sql)
        except UnsupportedSQL as exc:
            raise sqlite3.OperationalError(f"not supported on a PostgreSQL ledger: {exc}") from exc

    def _run(self, statement: str, params=None) -> psycopg.Cursor:
        try:
            return self.raw.execute(statement, params)
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc

    def _run_script(self, script: str) -> psycopg.Cursor:
        try:
            return self.raw.execute(script)
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc


def connect(url: str) -> PgConnection:
    """Open a PostgreSQL ledger connection (autocommit, like the SQLite ledger's)."""
    return PgConnection(url)
