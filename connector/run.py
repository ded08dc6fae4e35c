"""Run a sync pass for the CLI: progress bar while it runs, summary tables after."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.composition import build_runners, build_sources
from connector.engine import PassReport, sync_pass
from connector.ledger import Ledger

CREATED_LABELS = {
    "hubspot.contact": "HubSpot contacts created",
    "hubspot.deal": "HubSpot deals created",
    "quickbooks.customer": "QuickBooks customers created",
    "quickbooks.invoice": "QuickBooks invoices created",
    "quickbooks.sales_receipt": "QuickBooks sales receipts created",
    "quickbooks.payment": "QuickBooks payments created",
    "quickbooks.refund": "QuickBooks refunds booked",
    "quickbooks.void": "QuickBooks documents voided",
}


def run_sync_pass(settings, console: Console, *, only_store: str | None = None, show_progress: bool = True) -> int:
    """One pass with a progress bar; returns the exit code (0 ok, 1 a store could not be read)."""
    ledger = Ledger(settings.ledger_path)
    try:
        sources = build_sources(settings, only_store)
        runners = build_runners(settings, ledger)
        with Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, disable=not show_progress, transient=False) as bar:
            tasks: dict[str, int] = {}

            def progress(what: str, n: int) -> None:
                if what not in tasks:
                    total = None if what.startswith("pull:") else _due_total(ledger, what)
                    tasks[what] = bar.add_task(what.replace("pull:", "pull "), total=total)
                bar.advance(tasks[what], n)

            report = sync_pass(sources, runners, ledger, progress=progress)
            for task_id in tasks.values():
                task = bar.tasks[task_id]
                bar.update(task_id, total=task.completed)
        print_report(report, console)
        print_failures(ledger, console)
        for system, why in report.paused.items():
            console.print(f"[bold red]{system} paused:[/] {why}", highlight=False)
        console.print(f"ledger: {settings.ledger_path.resolve()}")
        return 1 if any(p.error for p in report.pulls) or report.paused else 0
    finally:
        ledger.close()


def _bar(console: Console, show: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=not show, transient=False)


def run_backfill(settings, console: Console, *, store: str, since, book: bool, show_progress: bool = True) -> int:
    """Backfill one store; then, unless told not to, run the steps its orders need."""
    from connector.backfill import backfill_store
    from connector.engine import PassReport, run_due_steps
    from connector.errors import SourceError
    ledger = Ledger(settings.ledger_path)
    try:
        (source, store_settings), = build_sources(settings, store)
        with _bar(console, show_progress) as bar:
            tasks: dict[str, int] = {}

            def progress(what: str, n: int) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(what.replace("backfill:", "backfill "), total=None)
                bar.advance(tasks[what], n)

            try:
                result = backfill_store(source, store_settings, ledger, since,
                                        workdir=settings.ledger_path.parent / "backfills", progress=progress)
            except SourceError as exc:
                console.print(f"[bold red]backfill stopped:[/] {exc}", highlight=False)
                return 1
            report = PassReport(pulls=[result.pull])
            if book:
                run_due_steps(ledger, build_runners(settings, ledger), report, progress=progress)
        state = "resumed" if result.resumed else "started"
        console.print(f"backfill of {store} ({state}, bulk operation {result.operation_id}): "
                      f"{result.pull.fetched} orders read")
        print_report(report, console)
        print_failures(ledger, console)
        return 0
    finally:
        ledger.close()


def _due_total(ledger: Ledger, step: str) -> int:
    counts = ledger.step_counts().get(step, {})
    return sum(n for state, n in counts.items() if state in ("pending", "failed", "in_flight"))


def print_report(report: PassReport, console: Console) -> None:
    pulls = Table(title="Orders pulled")
    for column in ("store", "fetched", "new", "changed", "unchanged", "older (ignored)", "rejected", "error"):
        pulls.add_column(column, justify="left" if column in ("store", "error") else "right")
    for p in report.pulls:
        pulls.add_row(p.store, str(p.fetched), str(p.new), str(p.changed), str(p.unchanged), str(p.stale),
                      str(p.rejected), p.error or "")
    console.print(pulls)

    writes = Table(title="Written this pass")
    writes.add_column("what")
    writes.add_column("count", justify="right")
    for step, label in CREATED_LABELS.items():
        writes.add_row(label, str(report.created.get(step, 0)))
    for step, states in report.outcomes.items():
        writes.add_row(f"{step} steps", ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    for system, calls in sorted(report.calls.items()):
        writes.add_row(f"{system} API calls", str(calls))
    console.print(writes)


def print_failures(ledger: Ledger, console: Console, limit: int = 20) -> None:
    rejects = ledger.rejects()
    if rejects:
        table = Table(title=f"Orders that could not be read ({len(rejects)})")
        for column in ("order", "error", "what to do"):
            table.add_column(column, overflow="fold")
        for r in rejects[:limit]:
            table.add_row(r["order_key"], r["error"], r["what_to_do"] or "")
        console.print(table)
    failures = ledger.failures()
    if not failures:
        console.print("failures: none")
        return
    table = Table(title=f"Failures ({len(failures)})")
    for column in ("order", "step", "state", "tries", "error", "what to do"):
        table.add_column(column, overflow="fold")
    for f in failures[:limit]:
        table.add_row(f["order_key"], f["step"], f["state"], str(f["attempts"]), f["error"] or "",
                      f["what_to_do"] or "")
    console.print(table)
    if len(failures) > limit:
        console.print(f"... and {len(failures) - limit} more: o2c status lists them all")


def print_status(settings, console: Console) -> None:
    ledger = Ledger(settings.ledger_path)
    try:
        table = Table(title="Steps by state")
        states = ("pending", "in_flight", "done", "skipped", "failed", "dead", "held", "mismatch")
        table.add_column("step")
        for s in states:
            table.add_column(s, justify="right")
        for step, counts in sorted(ledger.step_counts().items()):
            table.add_row(step, *(str(counts.get(s, 0)) for s in states))
        console.print(table)
        orders = Table(title="Orders per store")
        orders.add_column("store")
        orders.add_column("orders", justify="right")
        orders.add_column("cursor")
        for store in settings.stores:
            n = ledger.conn.execute("SELECT COUNT(*) FROM orders WHERE store = ?", (store.name,)).fetchone()[0]
            orders.add_row(store.name, str(n), ledger.cursor(store.name) or "(never synced)")
        console.print(orders)
        print_failures(ledger, console, limit=1000)
    finally:
        ledger.close()
