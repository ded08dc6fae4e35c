"""Copy a whole ledger to another place (SQLite file or PostgreSQL database) and prove the copy is whole.

``o2c ledger copy SOURCE DEST`` (connector/cli_ledger.py, docs/ledger.md "Moving a ledger") is how an
installation moves from its SQLite file to PostgreSQL when it adds workers, or back. The ledger holds
the bindings that make every write exactly-once (DESIGN.md guarantee 2), so a copy that lost a row
would make the next sync book a duplicate: every copy is checked, not trusted.

* DEST is opened as any command opens a ledger (created and migrated to the current schema), and
  must then hold no rows: a copy never deletes or overwrites a ledger (see :func:`_refuse_non_empty`).
* Every table of the schema is copied, found in the destination's catalogue (``migrations`` stays
  each ledger's own record), parents before the tables that reference them, rows in primary-key
  order, a batch at a time: neither side's table is ever held in memory.
* All of it runs in one transaction on DEST, so a failure leaves DEST as empty as it was; SOURCE is
  read inside one read transaction (a consistent snapshot).
* On PostgreSQL, identity sequences are moved past the largest id copied, so new rows do not collide.
* Then the copy is verified: per table, the row count and a sha256 over every row in key order, each
  value in one canonical text form (SQLite and psycopg hand back different Python types for the same
  stored value: :func:`canonical`), computed the same way on both sides.

:func:`verify_ledgers` runs the same check on two existing ledgers without copying anything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field

from connector.ledger_sides import Checksum, Side, Table
from connector.ledger_url import LedgerLocation, parse_ledger, redact_url

BATCH_ROWS = 2000  # rows per read and write: large enough to be fast, small enough for 100k-order ledgers
OWN_TABLES = {"migrations"}  # each ledger's record of its own schema; never copied


class LedgerCopyError(Exception):
    """The copy or verification cannot go on; the message says what happened and what to do.

    ``refused`` is True when nothing was attempted because the request itself is unsafe (CLI exit 2).
    """

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(redact_url(message))
        self.refused = refused


@dataclass(frozen=True)
class TableCheck:
    """One table compared: its rows and checksum on each side."""

    table: str
    source_rows: int
    dest_rows: int
    source_checksum: str
    dest_checksum: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.dest_rows and self.source_checksum == self.dest_checksum

    @property
    def difference(self) -> str:
        if self.source_rows != self.dest_rows:
            return f"{self.source_rows} rows in SOURCE, {self.dest_rows} in DEST"
        return "same number of rows, different content" if not self.ok else ""


@dataclass
class Comparison:
    """What a copy or a verification found, table by table."""

    source: str  # shown: never with a password
    dest: str
    copied: bool
    tables: list[TableCheck] = field(default_factory=list)
    changed_during_copy: list[str] = field(default_factory=list)  # SOURCE tables written to while copied

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.tables)


def _in_reference_order(side: Side, names: list[str]) -> list[str]:
    """Tables parents first (``orders`` before ``steps``): foreign keys are checked row by row."""
    remaining = {name: side.references(name) & set(names) - {name} for name in names}
    ordered: list[str] = []
    while remaining:
        ready = sorted(name for name, parents in remaining.items() if parents <= set(ordered))
        if not ready:  # a cycle: no ledger table has one; keep going rather than loop
            ready = sorted(remaining)
        ordered += ready
        for name in ready:
            del remaining[name]
    return ordered


def plan_tables(source: Side, dest: Side) -> list[Table]:
    """The tables to copy or compare, described from DEST; refuses two ledgers of different schemas."""
    if source.versions() != dest.versions():
        raise LedgerCopyError(
            f"{source.shown} is at schema versions {source.versions()} and {dest.shown} at {dest.versions()}: "
            "the one that is newer was written by a newer o2c. Run this command with that newer o2c.", refused=True)
    wanted = [name for name in dest.tables() if name not in OWN_TABLES]
    other = [name for name in source.tables() if name not in OWN_TABLES]
    if sorted(wanted) != sorted(other):
        raise LedgerCopyError(
            f"the two ledgers have different tables (only in {source.shown}: {sorted(set(other) - set(wanted))}; "
            f"only in {dest.shown}: {sorted(set(wanted) - set(other))}). A table added by hand is not part "
            "of the ledger: drop it or copy it yourself.", refused=True)
    plan = []
    for name in _in_reference_order(dest, wanted):
        table = dest.describe(name)
        if sorted(source.columns(name)) != table.columns:
            raise LedgerCopyError(
                f"table {name} has columns {sorted(source.columns(name))} in {source.shown} but {table.columns} "
                f"in {dest.shown}; the schemas differ although both record the same migrations. Was one "
                "altered by hand?", refused=True)
        plan.append(table)
    return plan


def _refuse_non_empty(dest: Side, plan: list[Table]) -> None:
    """A copy only ever goes into an empty ledger.

    There is deliberately no ``--replace``: the one ledger that would be wiped is the record of what
    was already booked; with SOURCE and DEST swapped by mistake it would be the live one, and the
    next sync would book every order again. An empty database costs one ``createdb``.
    """
    filled = {table.name: n for table in plan if (n := dest.count(table.name))}
    if filled:
        held = ", ".join(f"{n} {name}" for name, n in sorted(filled.items(), key=lambda kv: (-kv[1], kv[0])))
        raise LedgerCopyError(
            f"{dest.shown} already holds a ledger ({held}); a copy never overwrites one. Copy into an empty "
            "database (PostgreSQL: createdb a new one; SQLite: a path where no file is) or, to check that "
            "it already matches SOURCE, add --verify-only.", refused=True)


def _require_ledger(where: str, role: str) -> None:
    """SOURCE (and both ledgers of a verification) must exist: opening would create an empty one."""
    location = parse_ledger(where)
    if location.backend == "sqlite":
        if not location.path.is_file():
            raise LedgerCopyError(f"{role} {location.shown}: no such file; name an existing ledger file",
                                  refused=True)
        with sqlite3.connect(f"file:{location.path}?mode=ro", uri=True) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'")
            holds = found.fetchone() is not None
        conn.close()
    else:
        import psycopg
        try:
            with psycopg.connect(location.url, connect_timeout=10) as conn:
                holds = conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is not None
        except psycopg.Error as exc:
            raise LedgerCopyError(f"cannot open {role} {location.shown}: {str(exc).strip()}") from exc
    if not holds:
        raise LedgerCopyError(f"{role} {location.shown} holds no ledger (no migrations table); check the "
                              "path or URL", refused=True)


def _locations(source: str, dest: str) -> tuple[LedgerLocation, LedgerLocation]:
    try:
        found = parse_ledger(source), parse_ledger(dest)
    except ValueError as exc:
        raise LedgerCopyError(str(exc), refused=True) from exc
    first, second = found
    if first.backend == second.backend == "sqlite" and first.path.resolve() == second.path.resolve():
        raise LedgerCopyError(f"SOURCE and DEST are the same ledger ({first.shown}); name another DEST",
                              refused=True)
    return found


@contextmanager
def _opened(source: str, dest: str) -> Iterator[tuple[Side, Side]]:
    sides: list[Side] = []
    try:
        for role, where in (("SOURCE", source), ("DEST", dest)):
            try:
                sides.append(Side.open(where))
            except sqlite3.Error as exc:
                raise LedgerCopyError(
                    f"cannot open {role}: {exc}. A PostgreSQL ledger's database must exist (createdb) and its "
                    "user may create tables in it; a SQLite ledger's folder must be writable") from exc
        if sides[0].same_database_as(sides[1]):
            raise LedgerCopyError(f"SOURCE and DEST are the same ledger ({sides[0].shown}); name another DEST",
                                  refused=True)
        yield sides[0], sides[1]
    finally:
        for side in sides:
            side.close()


# -- the two operations ---------------------------------------------------------------------------

Progress = Callable[[str], None]  # told what is going on: 'copying steps: 12,000 rows'


def copy_ledger(source: str, dest: str, *, batch_rows: int = BATCH_ROWS,
                progress: Progress | None = None) -> Comparison:
    """Copy every row of the ledger at ``source`` into the empty ledger at ``dest``, then verify it.

    Raises:
        LedgerCopyError: refused (same ledger, DEST not empty, no ledger at SOURCE, schemas differ) or
            failed (DEST is left as it was: the copy is one transaction).
    """
    _locations(source, dest)
    _require_ledger(source, "SOURCE")
    with _opened(source, dest) as (src, dst):
        plan = plan_tables(src, dst)
        _refuse_non_empty(dst, plan)
        sums: dict[str, Checksum] = {}
        current = None
        dst.begin()
        try:
            with src.snapshot():
                for table in plan:
                    current = table.name
                    sums[table.name] = summed = Checksum(table.columns)
                    # closing(): a failed write must not leave SOURCE's server-side cursor to the collector.
                    with dst.writer(table) as write, closing(src.batches(src.select_sql(table), batch_rows)) as read:
                        for rows in read:
                            write(rows)
                            summed.add(rows)  # of exactly the rows written: compared with SOURCE after
                            if progress:
                                progress(f"copying {table.name}: {summed.rows:,} rows")
                    dst.reset_identities(table)
            current = None
            dst.commit()
        except Exception as exc:
            dst.rollback()
            where = f"copying table {current}" if current else "committing the copy"
            raise LedgerCopyError(
                f"{where} failed: {type(exc).__name__}: {str(exc).strip()}. {dst.shown} was left as it was "
                "(the copy is one transaction); fix the cause and run the copy again") from exc
        # Read SOURCE again rather than trust the sums taken while copying: a daemon still writing to
        # it would otherwise leave DEST short of its last rows, and "verified".
        result = _compare(src, dst, plan, batch_rows, copied=True, progress=progress)
        result.changed_during_copy = [check.table for check in result.tables
                                      if check.source_checksum != sums[check.table].hexdigest]
        return result


def _compare(src: Side, dst: Side, plan: list[Table], batch_rows: int, *, copied: bool,
             progress: Progress | None = None) -> Comparison:
    result = Comparison(src.shown, dst.shown, copied=copied)
    with src.snapshot(), dst.snapshot():
        for table in plan:
            if progress:
                progress(f"verifying {table.name}")
            ours, theirs = src.checksum(table, batch_rows), dst.checksum(table, batch_rows)
            result.tables.append(TableCheck(table.name, ours.rows, theirs.rows, ours.hexdigest, theirs.hexdigest))
    return result


def verify_ledgers(source: str, dest: str, *, batch_rows: int = BATCH_ROWS,
                   progress: Progress | None = None) -> Comparison:
    """Compare two existing ledgers table by table (rows and checksums); nothing is written.

    Raises:
        LedgerCopyError: one is missing or they have different schemas.
    """
    _locations(source, dest)
    _require_ledger(source, "SOURCE")
    _require_ledger(dest, "DEST")
    with _opened(source, dest) as (src, dst):
        return _compare(src, dst, plan_tables(src, dst), batch_rows, copied=False, progress=progress)

