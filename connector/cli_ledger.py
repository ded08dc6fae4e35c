"""``o2c ledger ...``: work on a ledger as a whole; today: copy one to another place and verify it.

The copy itself is :mod:`connector.ledger_copy`; this module turns its findings into a table and an
exit code (docs/ledger.md "Moving a ledger").
"""

from __future__ import annotations

import os
import re
import sys

import click
from rich.table import Table

COPY_EXAMPLES = """\b
Examples:
  o2c ledger copy var/o2c.db '${O2C_LEDGER_URL}'     SQLite file -> PostgreSQL, then verify
  o2c ledger copy postgresql://o2c@db:5432/o2c sqlite:///var/back.db   PostgreSQL -> a new SQLite file
  o2c ledger copy --verify-only var/o2c.db '${O2C_LEDGER_URL}'   compare two ledgers, copy nothing
"""

_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _consoles():
    from connector.cli import console, err_console
    return console, err_console


def _from_environment(value: str) -> str:
    """``${NAME}`` (quoted, so the shell leaves it) is read from the environment: a URL with a password
    then never appears in the process list, as it would as a plain argument."""
    match = _ENV_REFERENCE.match(value.strip())
    if not match:
        return value
    found = os.environ.get(match.group(1))
    if not found:
        _, err_console = _consoles()
        err_console.print(f"[bold red]error:[/] {value} names the environment variable {match.group(1)}, which "
                          "is not set; export it (the ledger URL) and run again", highlight=False)
        sys.exit(2)
    return found


@click.group(epilog="\b\nExamples:\n  o2c ledger copy var/o2c.db '${O2C_LEDGER_URL}'\n"
                    "  o2c ledger copy --verify-only var/o2c.db '${O2C_LEDGER_URL}'")
def ledger() -> None:
    """Work on a ledger as a whole: copy it between SQLite and PostgreSQL, verify two are the same."""


@ledger.command(epilog=COPY_EXAMPLES)
@click.argument("source")
@click.argument("dest")
@click.option("--verify-only", is_flag=True,
              help="copy nothing: compare SOURCE and DEST table by table (rows and checksums)")
@click.option("--batch-rows", default=2000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="rows read and written at a time")
def copy(source: str, dest: str, verify_only: bool, batch_rows: int) -> None:
    """Copy the ledger at SOURCE into the empty ledger at DEST, then verify every table.

    Each of SOURCE and DEST is a file path, sqlite:///path or postgresql://user@host:5432/db
    ('${VAR}' reads it from the environment). DEST is created and migrated if need be and must hold
    no rows: a copy never overwrites a ledger. The copy is one transaction on DEST: if it fails, DEST
    stays empty. Stop every daemon and worker on SOURCE first. Exit 0 when every table's row count and
    checksum agree, 1 when one differs or the copy failed, 2 when the copy was refused.
    """
    from connector.ledger_copy import LedgerCopyError, copy_ledger, verify_ledgers
    console, err_console = _consoles()
    source, dest = _from_environment(source), _from_environment(dest)
    try:
        with console.status("opening the ledgers") as status:
            if verify_only:
                result = verify_ledgers(source, dest, batch_rows=batch_rows, progress=status.update)
            else:
                result = copy_ledger(source, dest, batch_rows=batch_rows, progress=status.update)
    except LedgerCopyError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2 if exc.refused else 1)
    print_comparison(result, console)
    if result.ok:
        what = "copied and verified" if result.copied else "verified"
        console.print(f"{what}: {result.dest} holds the same rows as {result.source} in every table",
                      highlight=False, soft_wrap=True)
        return
    differing = ", ".join(f"{c.table} ({c.difference})" for c in result.tables if not c.ok)
    if result.changed_during_copy:
        hint = (f"SOURCE was written to while it was being copied ({', '.join(result.changed_during_copy)}): "
                "a daemon or worker is still running on it. Stop every one, empty DEST (drop and create the "
                "database, or delete the file) and copy again")
    elif result.copied:
        hint = ("the copy was committed but does not match: do not use DEST; empty it (drop and create the "
                "database, or delete the file), make sure nothing writes to either ledger, and copy again")
    else:
        hint = ("they are not the same ledger: was one written to after the copy (a daemon or worker still "
                "running on it)? Copy again with every process stopped")
    err_console.print(f"[bold red]verification failed:[/] {result.dest} differs from {result.source} in "
                      f"{differing}; {hint}", highlight=False, soft_wrap=True)
    sys.exit(1)


def print_comparison(result, console) -> None:
    table = Table(title=f"{result.source} -> {result.dest}" if result.copied else
                  f"{result.source} vs {result.dest}")
    for column, justify in (("table", "left"), ("rows", "right"), ("rows in DEST", "right"),
                            ("checksum (sha256)", "left"), ("checksum ok", "left")):
        table.add_column(column, justify=justify)
    for check in result.tables:
        table.add_row(check.table, f"{check.source_rows:,}", f"{check.dest_rows:,}", check.source_checksum[:16],
                      "ok" if check.ok else "[bold red]DIFFERS[/]")
    console.print(table)
