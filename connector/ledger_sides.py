"""The two sides of a ledger copy: each backend's catalogue, batched reads in key order, writes, and checksums.

:mod:`connector.ledger_copy` plans, copies and verifies; this module is how it reads and writes one
ledger, SQLite or PostgreSQL, so that both compute the same checksum for the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from connector.ledger import Ledger

# -- canonical content --------------------------------------------------------------------------

def canonical(value):
    """The value as both backends agree on it, for the checksum.

    The schema stores TEXT, INTEGER and REAL (``repr`` of a float is exact both ways); psycopg may
    still hand back a ``bool`` for an integer-valued expression, ``Decimal`` for NUMERIC, ``memoryview``
    for BYTEA, where SQLite says ``int``, ``float``/``str`` and ``bytes``. Tagged so a text can never
    pass for a number or a blob.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"real": repr(value)}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else {"real": repr(float(value))}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"blob": bytes(value).hex()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return {"other": str(value)}


class Checksum:
    """sha256 over a table's column names, then each row (values in column-name order) as a JSON line."""

    def __init__(self, columns: list[str]):
        self.rows = 0
        self._hash = hashlib.sha256(json.dumps(columns).encode() + b"\n")

    def add(self, rows: list[tuple]) -> None:
        for row in rows:
            line = json.dumps([canonical(v) for v in row], ensure_ascii=False, separators=(",", ":"))
            self._hash.update(line.encode("utf-8", "surrogatepass") + b"\n")
        self.rows += len(rows)

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# -- one side of the copy: a ledger and its catalogue ----------------------------------------------

@dataclass(frozen=True)
class Table:
    name: str
    columns: list[str]  # sorted by name: the order the checksum reads them in, whatever the physical order
    key: list[str]  # the primary key: the order rows are read, written and checked in
    identity: list[str]  # PostgreSQL identity columns, whose sequences follow the copied ids


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Side:
    """A ledger seen as tables: its catalogue, batched reads in key order, and writes."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.shown = ledger.location

    @classmethod
    def open(cls, where: str) -> Side:
        ledger = Ledger(where)
        return (PostgresSide if ledger.backend == "postgresql" else SQLiteSide)(ledger)

    def close(self) -> None:
        self.ledger.close()

    def describe(self, table: str) -> Table:
        return Table(table, sorted(self.columns(table)), self.primary_key(table), self.identity_columns(table))

    def select_sql(self, table: Table) -> str:
        order = table.key or table.columns  # every ledger table has a key; all columns if one ever has not
        return (f"SELECT {', '.join(map(_quoted, table.columns))} FROM {_quoted(table.name)}"
                f" ORDER BY {', '.join(map(_quoted, order))}")

    def versions(self) -> list[int]:
        return [row[0] for row in self.ledger.conn.execute("SELECT version FROM migrations ORDER BY version")]

    def count(self, table: str) -> int:
        return self.ledger.conn.execute(f"SELECT COUNT(*) FROM {_quoted(table)}").fetchone()[0]

    def checksum(self, table: Table, batch_rows: int) -> Checksum:
        summed = Checksum(table.columns)
        for rows in self.batches(self.select_sql(table), batch_rows):
            summed.add(rows)
        return summed

    def begin(self) -> None:
        """Open DEST's one write transaction (on PostgreSQL also the ledger's writer lock)."""
        self.ledger.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.ledger.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.ledger.conn.in_transaction:
            self.ledger.conn.execute("ROLLBACK")

    def identity_columns(self, table: str) -> list[str]:
        return []  # SQLite: an INTEGER PRIMARY KEY goes on from the largest id by itself

    def reset_identities(self, table: Table) -> None:
        pass

    def same_database_as(self, other: Side) -> bool:
        return False

    # The catalogue, streaming reads and the write path differ by backend: the subclasses below.
    def tables(self) -> list[str]:
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        raise NotImplementedError

    def primary_key(self, table: str) -> list[str]:
        raise NotImplementedError

    def references(self, table: str) -> set[str]:
        raise NotImplementedError

    def snapshot(self):
        raise NotImplementedError

    def batches(self, sql: str, batch_rows: int) -> Iterator[list[tuple]]:
        raise NotImplementedError

    def writer(self, table: Table):
        raise NotImplementedError


class SQLiteSide(Side):
    def tables(self) -> list[str]:
        return [row[0] for row in self.ledger.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.ledger.conn.execute(f"PRAGMA table_info({_quoted(table)})")]

    def primary_key(self, table: str) -> list[str]:
        info = self.ledger.conn.execute(f"PRAGMA table_info({_quoted(table)})").fetchall()
        return [row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]

    def references(self, table: str) -> set[str]:
        return {row[2] for row in self.ledger.conn.execute(f"PRAGMA foreign_key_list({_quoted(table)})")}

    @contextmanager
    def snapshot(self):
        # A read transaction in WAL mode sees one snapshot until it ends, whatever is written meanwhile.
        self.ledger.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.ledger.conn.execute("COMMIT")

    def batches(self, sql: str, batch_rows: int) -> Iterator[list[tuple]]:
        cursor = self.ledger.conn.execute(sql)  # sqlite3 steps through the result as it is fetched
        while rows := cursor.fetchmany(batch_rows):
            yield rows

    @contextmanager
    def writer(self, table: Table):
        statement = (f"INSERT INTO {_quoted(table.name)} ({', '.join(map(_quoted, table.columns))})"
                     f" VALUES ({', '.join('?' * len(table.columns))})")
        yield lambda rows: self.ledger.conn.executemany(statement, rows)

    def same_database_as(self, other: Side) -> bool:
        if not isinstance(other, SQLiteSide):
            return False
        return os.path.samefile(self.ledger.path, other.ledger.path)


class PostgresSide(Side):
    @property
    def raw(self):
        return self.ledger.conn.raw  # psycopg itself: server-side cursors and COPY have no sqlite3 twin

    def tables(self) -> list[str]:
        return [row[0] for row in self.raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE' ORDER BY table_name")]

    def columns(self, table: str) -> list[str]:
        return [row[0] for row in self.raw.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s ORDER BY ordinal_position", (table,))]

    def primary_key(self, table: str) -> list[str]:
        return [row[0] for row in self.raw.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)", (_quoted(table),))]

    def references(self, table: str) -> set[str]:
        return {row[0] for row in self.raw.execute(
            "SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.confrelid"
            " WHERE k.contype = 'f' AND k.conrelid = %s::regclass", (_quoted(table),))}

    def identity_columns(self, table: str) -> list[str]:
        return [row[0] for row in self.raw.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND is_identity = 'YES'", (table,))]

    @contextmanager
    def snapshot(self):
        # REPEATABLE READ: every table is read as of the same instant (READ COMMITTED would not).
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            self.raw.execute("COMMIT")

    def batches(self, sql: str, batch_rows: int) -> Iterator[list[tuple]]:
        # A server-side cursor: psycopg's ordinary cursor would pull the whole table into memory.
        with self.raw.cursor(name="o2c_ledger_copy") as cursor:
            cursor.itersize = batch_rows
            cursor.execute(sql)
            while rows := cursor.fetchmany(batch_rows):
                yield rows

    @contextmanager
    def writer(self, table: Table):
        # COPY is several times faster than INSERTs for a large ledger; still inside the open transaction.
        with self.raw.cursor() as cursor, cursor.copy(
                f"COPY {_quoted(table.name)} ({', '.join(map(_quoted, table.columns))}) FROM STDIN") as copy:
            def write(rows: list[tuple]) -> None:
                for row in rows:
                    copy.write_row(row)
            yield write

    def reset_identities(self, table: Table) -> None:
        for column in table.identity:
            self.raw.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX({_quoted(column)}), 0) + 1, false)"
                f" FROM {_quoted(table.name)}", (_quoted(table.name), column))

    def same_database_as(self, other: Side) -> bool:
        if not isinstance(other, PostgresSide):
            return False
        # Host names and ports can differ for one server (localhost, 127.0.0.1, a socket): ask the
        # server instead. The other connection's backend, as it sees itself, visible from this one in
        # the same database, is the same server and database.
        pid, started = other.raw.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
        return self.raw.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND backend_start = %s AND datname = current_database()",
            (pid, started)).fetchone() is not None


# -- planning -------------------------------------------------------------------------------------
