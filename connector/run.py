"""Run a sync pass for the CLI: progress bar while it runs, summary tables after."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connector.composition import build_sources, run_all_targets
from connector.engine import PassReport, pull_store
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
    ledger = Ledger(settings.ledger_url)
    try:
        sources = build_sources(settings, only_store)
        with Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, disable=not show_progress, transient=False) as bar:
            tasks: dict[str, int] = {}

            def progress(what: str, n: int) -> None:
                if what not in tasks:
                    total = None if what.startswith("pull:") else _due_total(ledger, what)
                    tasks[what] = bar.add_task(what.replace("pull:", "pull "), total=total)
                bar.advance(tasks[what], n)

            pulls = [pull_store(source, store, ledger, progress=progress) for source, store in sources]
            report = run_all_targets(settings, progress=progress)
            report.pulls = pulls
            for source, _ in sources:
                report.calls[source.system] = report.calls.get(source.system, 0) + source.calls
            for task_id in tasks.values():
                task = bar.tasks[task_id]
                bar.update(task_id, total=task.completed)
        print_report(report, console)
        print_failures(ledger, console)
        for system, why in report.paused.items():
            console.print(f"[bold red]{system} paused:[/] {why}", highlight=False)
        console.print(f"ledger: {settings.ledger_path.resolve() if settings.ledger_is_sqlite else settings.ledger_shown}")
        return 1 if any(p.error for p in report.pulls) or report.paused else 0
    finally:
        ledger.close()


def _backfill_dir(settings) -> Path:
    """Where a backfill's downloads go: beside a SQLite ledger; with PostgreSQL, var/backfills here."""
    return settings.ledger_path.parent / "backfills" if settings.ledger_is_sqlite else Path("var") / "backfills"


def _bar(console: Console, show: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=not show, transient=False)


def run_backfill(settings, console: Console, *, store: str, since, book: bool, show_progress: bool = True) -> int:
    """Backfill one store; then, unless told not to, run the steps its orders need."""
    from connector.backfill import backfill_store
    from connector.errors import SourceError
    ledger = Ledger(settings.ledger_url)
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
                                        workdir=_backfill_dir(settings), progress=progress)
            except SourceError as exc:
                console.print(f"[bold red]backfill stopped:[/] {exc}", highlight=False)
                return 1
            report = PassReport(pulls=[result.pull])
            if book:
                booked = run_all_targets(settings, progress=progress)
                booked.pulls = report.pulls
                report = booked
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


def print_status(settings, console: Console, status: dict | None = None, *, config_path: str | None = None) -> dict:
    """Print where things stand (:func:`connector.status.collect_status`); return the data printed.

    Laid out for an 80-column terminal: alerts first, then the queue, the problems with what to do
    and the replay command for each, the stores, and the tokens. No secret is ever part of it.
    """
    from datetime import datetime

    from rich import box
    from rich.padding import Padding
    from rich.text import Text

    from connector.status import collect_status, duration

    if status is None:
        ledger = Ledger(settings.ledger_url)
        try:
            status = collect_status(settings, ledger, config_path=config_path)
        finally:
            ledger.close()
    now = datetime.fromisoformat(status["generated_at"])

    def when(value: str | None, never: str = "never") -> str:
        if not value:
            return never
        seconds = int((now - datetime.fromisoformat(value)).total_seconds())
        return f"{duration(seconds)} ago" if seconds >= 0 else f"in {duration(-seconds)}"

    def line(*parts: tuple[str, str] | str, indent: int = 0, lead: tuple[str, str] | None = None) -> None:
        """One line of plain text (never markup: errors may hold brackets); wrapped lines keep the
        indent, and with ``lead`` ("x ", "-> ") they line up after it."""
        text = Text()
        for part in parts:
            text.append(*(part if isinstance(part, tuple) else (part,)))
        if lead is None:
            console.print(Padding(text, (0, 0, 0, indent)), highlight=False)
            return
        grid = Table.grid(padding=0)
        grid.add_column(width=indent)
        grid.add_column(no_wrap=True)
        grid.add_column()
        grid.add_row("", Text(*lead), text)
        console.print(grid, highlight=False)

    line(("o2c status", "bold"), f" at {status['generated_at'][:19].replace('T', ' ')} UTC")
    line(f"ledger: {status['ledger']}")
    alerts = status["alerts"]
    console.print()
    if not alerts:
        line(("No alerts:", "bold green"), " nothing needs you now.")
    else:
        line((f"Alerts ({len(alerts)})", "bold red"))
        for alert in alerts:
            mark, style = ("x", "bold red") if alert["severity"] == "critical" else ("!", "bold yellow")
            line(alert["message"], indent=1, lead=(f"{mark} ", style))
            line(alert["what_to_do"], indent=3, lead=("-> ", "dim"))

    states = status["queue"]["states"]
    short = {"pending": "pending", "in_flight": "running", "failed": "retry", "dead": "dead", "held": "held",
             "mismatch": "mism.", "skipped": "skipped", "done": "done"}
    table = Table(title="Steps by target and state", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    table.add_column("step", no_wrap=True)
    for state in states:
        table.add_column(short[state], justify="right", no_wrap=True)
    notes = []
    for system, entry in status["queue"]["systems"].items():
        table.add_row(Text(system, style="bold"), *(str(entry["counts"][s]) for s in states))
        for kind, one in entry["kinds"].items():
            table.add_row("  " + kind.split(".", 1)[1], *(str(one["counts"][s]) if one["counts"][s] else "."
                                                          for s in states))
        if entry["next_retry_at"]:
            notes.append(f"{system}: next retry {when(entry['next_retry_at'])}")
        if entry["blocked"]:
            notes.append(f"{system}: {entry['blocked']} pending step(s) wait on dead or held ones")
        if entry["lease_expired"]:
            notes.append(f"{system}: {entry['lease_expired']} running step(s) whose worker stopped; they are "
                         "taken up again at the next pass")
    console.print()
    console.print(table)
    for note in notes:
        line(note, indent=1)

    problems = status["problems"]
    console.print()
    if not problems:
        line(("Problems:", "bold"), " none")
    else:
        line((f"Problems ({len(problems)})", "bold"), " grouped by step and error")
        for group in problems:
            noun = "order" if group["state"] == "rejected" else "step"
            line((group["state"], "bold red" if group["state"] in ("dead", "rejected") else "bold yellow"),
                 f"  {group['step']}  ", (f"{group['count']} {noun}{'s' if group['count'] != 1 else ''}", "bold"),
                 indent=1)
            line(group["error"] if group["count"] == 1 else group["pattern"], indent=3)
            if group["values"] and group["count"] > 1:
                more = f" (+{group['more_values']} more)" if group["more_values"] else ""
                line(", ".join(group["values"]) + more, indent=3, lead=("values: ", "dim"))
            if group["what_to_do"]:
                line(group["what_to_do"], indent=3, lead=("what to do: ", "dim"))
            more = f" (+{group['orders'] - len(group['examples'])} more)" if group["orders"] > len(group["examples"]) \
                else ""
            line(", ".join(group["examples"]) + more, indent=3, lead=("orders: ", "dim"))
            if group["replay"]:
                extra = "" if group["replay_covers"] == group["count"] else \
                    f"  (also retries {group['replay_covers'] - group['count']} other step(s))"
                line((group["replay"], "cyan"), extra, indent=3, lead=("retry: ", "dim"))
    if status["retrying"]:
        console.print()
        line(("Retrying by themselves", "bold"))
        for group in status["retrying"]:
            line(f"{group['count']} step(s), next try {when(group.get('next_retry_at'), 'soon')}: ",
                 group["error"] if group["count"] == 1 else group["pattern"], indent=1,
                 lead=(f"{group['step']}: ", ""))

    stores = Table(title="Stores (webhook deliveries: last, waiting, failed)", box=box.SIMPLE_HEAD, pad_edge=False,
                   title_justify="left")
    for column in ("store", "last poll", "cursor lag", "orders", "last webhook", "waiting", "failed"):
        stores.add_column(column, justify="left" if column in ("store", "last poll", "last webhook") else "right",
                          no_wrap=column != "store")
    store_notes = []
    for store in status["stores"]:
        hooks = store["webhooks"]
        poll = when(store["last_poll_at"])
        style = "red" if store["last_poll_error"] or store["poll_late"] else ""
        lag = duration(store["cursor_lag_seconds"]) if store["cursor_lag_seconds"] is not None else "-"
        stores.add_row(store["name"], Text(poll, style=style), lag, str(store["orders"]),
                       when(hooks["last_received_at"]) if hooks["received"] or hooks["enabled"] else "off",
                       str(hooks["pending"]), str(hooks["failed"]))
        if store["last_poll_error"]:
            error = store["last_poll_error"]
            why = (error["error"] or "").removeprefix(f"{store['name']}: ")
            store_notes.append((store["name"], f"last poll failed {when(error['at'])}: {why}"))
        if store["rejects"]:
            store_notes.append((store["name"], f"{store['rejects']} order(s) could not be read (see Problems)"))
        if hooks["received"]:
            cover = hooks["coverage"]
            store_notes.append((store["name"], f"webhooks: last processed {when(hooks['last_processed_at'])}; "
                                               f"{cover['by_webhook']} of {cover['orders']} orders announced by "
                                               f"webhook, {cover['poll_only_since_first_webhook']} since the first "
                                               "delivery came only by polling"))
    console.print()
    console.print(stores)
    for name, note in store_notes:
        line(note, indent=1, lead=(f"{name}: ", "bold"))

    console.print()
    line(("Tokens", "bold"))
    qbo = status["tokens"]["quickbooks"]
    if qbo["stored"]:
        access = (f"access token valid until {qbo['access_token_expires_at'][11:16]} UTC" if qbo["access_token_valid"]
                  else "access token expired (renewed at next use)")
        detail = f"{access}; refresh token renewed {when(qbo['refresh_token_renewed_at'])}"
    else:
        detail = "no token stored yet"
    style = "green" if qbo["status"] == "ok" else "bold red"
    line(f"QuickBooks (company {qbo['company']}): ", (qbo["status"].replace("_", " "), style), f"; {detail}",
         indent=1)
    if qbo["what_to_do"]:
        line(qbo["what_to_do"], indent=3, lead=("-> ", "dim"))
    hubspot = status["tokens"]["hubspot"]
    line(f"HubSpot: {hubspot['auth']} {hubspot['status']}", indent=1)
    return status
