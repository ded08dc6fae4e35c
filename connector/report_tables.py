"""The report as terminal tables (``o2c report``, the default format)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from connector.report import FIGURES, cycle_rows
from connector.report_receivables import BUCKETS
from connector.status import duration

CYCLE_LABELS = {"order_to_booked": "booked document", "order_to_cash": "cash"}


def _table(title: str, *columns: str, right_from: int = 1) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i >= right_from else "left", overflow="fold")
    return table


def _dash(value) -> str:
    return "-" if value is None else str(value)


def print_report(report: dict, console: Console) -> None:
    """Print every section of ``report`` (from :func:`connector.report.build_report`)."""
    period = report["period"]
    console.print(f"[bold]{report['title']}[/]  {period['since'][:16]} .. {period['until'][:16]} UTC "
                  f"({period['days']} days), stores: {', '.join(report['stores_in_report'])}", highlight=False)
    _orders(report, console)
    _cycles(report, console)
    _receivables(report["receivables"], console)
    _health(report["sync_health"], console)
    console.print("Definitions: docs/report.md", style="dim")


def _orders(report: dict, console: Console) -> None:
    table = _table("Orders received in the period (count / amount; as they stand now)", "store", "currency",
                   *FIGURES, right_from=2)
    blocks = [(s["name"], s["currencies"]) for s in report["stores"]]
    if len(report["stores"]) > 1:
        blocks.append(("all stores", report["totals"]["currencies"]))
    for name, currencies in blocks:
        for currency, figures in currencies.items():
            table.add_row(name, currency, *(f"{figures[f]['count']} / {figures[f]['amount']}" for f in FIGURES),
                          style="bold" if name == "all stores" else None)
    if not table.rows:
        table.add_row("(no orders in the period)", "", *("" for _ in FIGURES))
    console.print(table)


def _cycles(report: dict, console: Console) -> None:
    table = _table("Cycle times in hours (nearest-rank percentiles)", "store", "from order to", "orders", "p50",
                   "p90", "max", right_from=2)
    for name, cycle, c in cycle_rows(report):
        table.add_row(name, CYCLE_LABELS[cycle], str(c["count"]), _dash(c["p50_hours"]),
                      _dash(c["p90_hours"]), _dash(c["max_hours"]))
    console.print(table)


def _receivables(receivables: dict, console: Console) -> None:
    if "currencies" not in receivables:
        if "error" in receivables:
            console.print(f"[bold red]Receivables could not be read:[/] {receivables['error']} "
                          f"({receivables['what_to_do']})", highlight=False)
        else:
            console.print(f"Receivables: {receivables.get('skipped')}", highlight=False)
        return
    table = _table(f"Open invoices as of {receivables['as_of']} (aged by {receivables['due_basis']})",
                   "currency", "open", "total", *(b.replace("_", " ") for b in BUCKETS), "DSO days")
    for currency, entry in receivables["currencies"].items():
        table.add_row(currency, str(entry["open_invoices"]), entry["total"],
                      *(entry["buckets"][b]["amount"] for b in BUCKETS),
                      _dash(receivables["dso"].get(currency, {}).get("dso_days")))
    if not receivables["currencies"]:
        table.add_row("(none)", "0", *("" for _ in range(len(BUCKETS) + 2)))
    console.print(table)
    for currency, dso in receivables["dso"].items():
        console.print(f"  DSO {currency}: open {dso['open_receivables']} / invoiced in the period "
                      f"{dso['credit_sales']} x {dso['days']} days = {_dash(dso['dso_days'])} days", highlight=False)
    if receivables["unattributed_open_invoices"]:
        console.print(f"  {receivables['unattributed_open_invoices']} other open invoice(s) in QuickBooks were not "
                      "booked by the connector and are not counted", highlight=False)
    overdue = _table(f"Overdue invoices ({len(receivables['overdue'])})", "store", "invoice", "order", "customer",
                     "email", "phone", "days overdue", "balance", right_from=6)
    for o in receivables["overdue"]:
        customer = o["customer"]
        overdue.add_row(o["store"], _dash(o["doc_number"]), o["order_name"], _dash(customer["name"]),
                        _dash(customer["email"]), _dash(customer["phone"]), str(o["days_past_due"]),
                        f"{o['balance']} {o['currency']}")
    if receivables["overdue"]:
        console.print(overdue)


def _health(health: dict, console: Console) -> None:
    table = _table("Sync health", "store", "cursor lag", "last poll", "webhooks", "webhook coverage", "rejects")
    for s in health["stores"]:
        lag = duration(s["lag_seconds"]) if s["lag_seconds"] is not None else "never polled"
        last = duration(s["last_poll_age_seconds"]) + " ago" if s["last_poll_age_seconds"] is not None else "never"
        cover = s["coverage"]
        coverage = f"{cover['by_webhook']}/{cover['orders']} ({_dash(cover['percent'])}%)"
        hooks = (f"{s['webhooks_received']} received, {s['webhooks_pending']} waiting, {s['webhooks_failed']} failed"
                 if s["webhooks_enabled"] else "off")
        table.add_row(s["name"], lag, last, hooks, coverage, str(s["rejects"]))
    console.print(table)
    console.print(f"  steps: {health['dead']} dead, {health['held']} held, {health['mismatch']} mismatch, "
                  f"{health['failed']} failed (retrying), {health['steps'].get('pending', 0)} pending; "
                  f"QuickBooks token: {health['quickbooks_token']}", highlight=False)
    if health["failures"]:
        table = _table("Failures by reason", "state", "step", "steps", "reason", "what to do", right_from=9)
        for f in health["failures"]:
            table.add_row(f["state"], f["step"], str(f["count"]), f["pattern"] or f["error"], f["what_to_do"])
        console.print(table)

