"""How ``o2c replay --dry-run`` prints a :class:`connector.dry_run.DryRun`: rich tables, or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.dry_run import WOULD_SEND, DryRun, Write
from connector.field_diff import SAME, summary

STYLE = {"changed": "yellow", "new": "green", "same": "dim"}
VERDICT_STYLE = {WOULD_SEND: "bold cyan", "would fail": "bold red", "paused": "bold red", "waits": "yellow"}
TARGET = {"quickbooks": "QuickBooks", "hubspot": "HubSpot"}
TABLED = ("create", "update", "void", "upsert")


def preview_json(result: DryRun) -> str:
    """The whole preview as JSON (money and dates as strings)."""
    return json.dumps(asdict(result), default=str, indent=2, ensure_ascii=False)


def print_preview(result: DryRun, console: Console, *, all_fields: bool = False) -> None:
    """Per step: its verdict, then per write a table of the fields that differ (all with ``all_fields``)."""
    console.print(f"[bold]Dry run[/]: {len(result.steps)} step(s) selected; nothing was sent, the ledger is "
                  "unchanged", highlight=False)
    for pull in result.refetched:
        console.print(f"--fresh: {pull['store']}: {pull['fetched']} re-read, {pull['changed']} changed, "
                      f"{pull['unchanged']} unchanged" + (f", {pull['rejected']} could not be mapped"
                                                          if pull["rejected"] else ""), highlight=False)
    for step in result.steps:
        style = VERDICT_STYLE.get(step.verdict, "bold")
        console.print()
        console.print(f"[bold]{escape(step.order_key)}[/]  {escape(step.step)}  ({step.state})  "
                      f"[{style}]{step.verdict}[/]", highlight=False)
        if step.message and step.verdict != WOULD_SEND:
            console.print(f"  {escape(step.message)}", highlight=False, soft_wrap=True)
        if step.what_to_do:
            console.print(f"  what to do: {escape(step.what_to_do)}", highlight=False, soft_wrap=True)
        for write in step.writes:
            _print_write(write, console, all_fields)


def _print_write(write: Write, console: Console, all_fields: bool) -> None:
    console.print(f"  [cyan]{escape(write.summary)}[/]", highlight=False, soft_wrap=True)
    if write.note:
        console.print(f"  [yellow]{escape(write.note)}[/]", highlight=False, soft_wrap=True)
    if write.diff is None or write.operation not in TABLED:
        return
    rows = write.diff.rows if all_fields else write.diff.differing
    if rows:
        holder = TARGET.get(write.system, write.system)
        table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 4))
        table.add_column("field", no_wrap=True)
        table.add_column("would send", overflow="fold")
        table.add_column(f"{holder} has now", overflow="fold")
        table.add_column("")
        for row in rows:
            table.add_row(escape(row.path), escape(row.sent), escape(row.current if row.current is not None else "-"),
                          f"[{STYLE.get(row.status, '')}]{row.status}[/]")
        console.print(table)
    same = write.diff.count(SAME)
    hidden = f"; {same} unchanged not shown (--all-fields shows them)" if same and not all_fields else ""
    console.print(f"    {summary(write.diff)}{hidden}", highlight=False)
