"""How ``o2c reconcile`` prints what it found: one table per kind of finding, with the proposed action."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from connector.reconcile import ReconcileResult

STATUS_STYLE = {"open": "bold red", "requeued": "yellow", "fixed": "green", "accepted": "dim"}


def print_result(result: ReconcileResult, console: Console) -> None:
    for run in result.runs:
        line = f"[bold]{run.store}[/] {run.since} .. {run.until}: {run.checked} orders checked"
        if run.error:
            line += f", [bold red]stopped: {run.error}[/]"
        if run.note:
            line += f" ({run.note})"
        console.print(line, highlight=False, soft_wrap=True)
    live = [f for f in result.findings if f["status"] != "fixed"]
    fixed = [f for f in result.findings if f["status"] == "fixed"]
    if not live:
        console.print("[green]No differences: the books match the stores.[/]" if not any(r.error for r in result.runs)
                      else "No differences found in what could be read.")
    by_kind: dict[str, list[dict]] = {}
    for finding in live:
        by_kind.setdefault(finding["kind"], []).append(finding)
    for kind, items in sorted(by_kind.items()):
        table = Table(title=f"{kind} ({len(items)})", title_justify="left", show_lines=True)
        for column in ("id", "order", "system", "what", "proposed action", "safe", "status"):
            table.add_column(column, overflow="fold")
        for f in items:
            style = STATUS_STYLE.get(f["status"], "")
            table.add_row(str(f["id"]), f["order_key"], f["system"], f["detail"].get("text", ""),
                          f["proposed_action"], "yes" if f["safe"] else "no",
                          f"[{style}]{f['status']}[/]" if style else f["status"])
        console.print(table)
    if fixed:
        console.print(f"[green]{len(fixed)} finding(s) closed: no longer there[/] "
                      f"({', '.join(str(f['id']) for f in fixed)})", highlight=False)
    if result.open_unsafe:
        console.print(f"[bold red]{len(result.open_unsafe)} finding(s) need a person[/]: do what the proposed action "
                      "says, then run o2c reconcile again (or --accept ID what is intended).", highlight=False)
    elif any(f["status"] == "open" and f["safe"] for f in live):
        console.print("Safe findings are open: o2c reconcile --fix repairs them through the normal steps.")


def result_json(result: ReconcileResult) -> str:
    return json.dumps(result.as_dict(), indent=2, default=str)
