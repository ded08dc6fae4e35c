"""The report as JSON and as one long-form CSV (docs/report.md "Formats").

The CSV has one figure per row, ``section,store,currency,item,metric,value``,
so every section fits one file and a spreadsheet pivot rebuilds any table:

* ``section``: ``orders``, ``cycle_times``, ``daily``, ``cycle_histogram``, ``receivables``,
  ``receivables_store``, ``dso``, ``overdue``, ``sync_store``, ``sync_steps``, ``sync_failures``;
* ``store``: a store name, or ``*`` for every store in the report together, or empty;
* ``currency``: the ISO code of an amount or of what was counted, or empty;
* ``item``: what the row is about within the section (a day, a bucket, an invoice's DocNumber ...);
* ``metric`` and ``value``: the figure, written exactly as in the JSON (amounts as decimal text;
  empty for null; ``true``/``false``). A text value starting with ``= + - @`` gets a leading ``'``
  so a spreadsheet never runs it as a formula.
"""

from __future__ import annotations

import csv
import io
import json
import re

from connector.report import ALL, CYCLES, FIGURES

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d[\d .()/-]*")  # amounts, dates, phone numbers: nothing a formula can call
COLUMNS = ("section", "store", "currency", "item", "metric", "value")


def to_json(report: dict) -> str:
    """The report as indented JSON (it already holds only plain data)."""
    return json.dumps(report, indent=2, ensure_ascii=False)


def csv_rows(report: dict) -> list[dict]:
    """Every figure of the report as one long-form row (see the module docstring)."""
    rows: list[dict] = []

    def row(section: str, store: str = "", currency: str = "", item: str = "", metric: str = "", value="") -> None:
        rows.append({"section": section, "store": store, "currency": currency, "item": item, "metric": metric,
                     "value": "" if value is None else value})

    blocks = [(s["name"], s) for s in report["stores"]] + [(ALL, report["totals"])]
    for name, block in blocks:
        for currency, figures in block["currencies"].items():
            for figure in FIGURES:
                row("orders", name, currency, figure, "count", figures[figure]["count"])
                row("orders", name, currency, figure, "amount", figures[figure]["amount"])
        for cycle in CYCLES:
            for metric, value in block["cycle_times"][cycle].items():
                row("cycle_times", name, "", cycle, metric, value)
    for day in report["daily"]:
        for store, n in day["stores"].items():
            row("daily", store, "", day["date"], "orders", n)
        row("daily", ALL, "", day["date"], "orders", day["orders"])
        for currency, amount in day["amounts"].items():
            row("daily", ALL, currency, day["date"], "amount", amount)
    histogram = report["cycle_histogram"]
    for i, label in enumerate(histogram["buckets"]):
        for cycle in CYCLES:
            row("cycle_histogram", ALL, "", label, cycle, histogram[cycle][i])
    _receivables_rows(report["receivables"], row)
    health = report["sync_health"]
    for store in health["stores"]:
        for metric in ("orders", "rejects", "last_poll_at", "last_poll_age_seconds", "lag_seconds", "poll_late",
                       "last_poll_error", "webhooks_enabled", "webhooks_received", "webhooks_pending",
                       "webhooks_failed", "last_webhook_at"):
            row("sync_store", store["name"], "", "", metric, store[metric])
        for metric, value in store["coverage"].items():
            row("sync_store", store["name"], "", "webhook_coverage", metric, value)
    for state, n in health["steps"].items():
        row("sync_steps", "", "", "", state, n)
    for failure in health["failures"]:
        item = f"{failure['state']} {failure['step']}: {failure['pattern']}"
        for metric in ("count", "orders", "error", "what_to_do", "replay"):
            row("sync_failures", "", "", item, metric, failure[metric])
    return rows


def _receivables_rows(receivables: dict, row) -> None:
    if "currencies" not in receivables:
        row("receivables", "", "", "", "error" if "error" in receivables else "skipped",
            receivables.get("error") or receivables.get("skipped"))
        return
    row("receivables", "", "", "", "as_of", receivables["as_of"])
    row("receivables", "", "", "", "unattributed_open_invoices", receivables["unattributed_open_invoices"])
    for currency, entry in receivables["currencies"].items():
        row("receivables", ALL, currency, "all", "open_invoices", entry["open_invoices"])
        row("receivables", ALL, currency, "all", "amount", entry["total"])
        for bucket, figures in entry["buckets"].items():
            row("receivables", ALL, currency, bucket, "count", figures["count"])
            row("receivables", ALL, currency, bucket, "amount", figures["amount"])
    for store, currencies in receivables["stores"].items():
        for currency, entry in currencies.items():
            row("receivables_store", store, currency, "all", "open_invoices", entry["open_invoices"])
            row("receivables_store", store, currency, "all", "amount", entry["total"])
    for currency, entry in receivables["dso"].items():
        for metric in ("open_receivables", "credit_sales", "days", "dso_days"):
            row("dso", ALL, currency, "", metric, entry[metric])
    for invoice in receivables["overdue"]:
        item = invoice["doc_number"] or invoice["invoice_id"]
        for metric in ("invoice_id", "order_key", "order_name", "total", "balance", "txn_date", "due_date",
                       "due_from", "days_past_due", "bucket"):
            row("overdue", invoice["store"], invoice["currency"], item, metric, invoice[metric])
        for metric in ("name", "company", "email", "phone"):
            row("overdue", invoice["store"], invoice["currency"], item, f"customer_{metric}",
                invoice["customer"][metric])


def to_csv(report: dict) -> str:
    """The long-form CSV as text (header row first)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in csv_rows(report):
        writer.writerow({k: _cell(v) for k, v in item.items()})
    return out.getvalue()


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text[:1] in FORMULA_START and not _NUMBER.fullmatch(text):
        # A shopper's name like "=HYPERLINK(...)" must not become a formula in a spreadsheet (OWASP
        # "CSV injection"): a leading quote makes it text. Numbers (-5.00, +1 555 0100) stay as they are.
        return "'" + text
    return text
