"""Receivables for the report: open invoices read from QuickBooks, aged, with DSO and the overdue list.

QuickBooks is the truth for what is still owed (a bookkeeper may have taken a
payment there by hand), so the open balances are read live, never from the
ledger's copy. The ledger says which invoices are ours and whose order each
is (bindings of kind ``invoice``); an open invoice the connector did not book
is counted in ``unattributed_open_invoices`` and left out of every figure.

Reads (notes/quickbooks.md §2.1; ``STARTPOSITION`` is 1-based, ``MAXRESULTS`` at most 1000):

* ``SELECT * FROM Invoice WHERE Balance > '0'``, page by page;
* ``SELECT * FROM Invoice WHERE Id IN (...)`` for the period's invoices (DSO's credit sales);
* ``SELECT * FROM Customer WHERE Active IN (true, false) AND Id IN (...)`` for the overdue invoices'
  customers (inactive customers are only returned when asked for, notes §1.1).

Definitions (docs/report.md): an invoice is due on its ``DueDate``, or on its ``TxnDate`` when it
has none. ``days_past_due`` = as-of date (UTC) minus that date. Buckets: ``current`` (not yet due,
days < 0), ``0-30`` (due today up to 30 days past due), ``31-60``, ``61-90``, ``over_90``. Overdue:
days past due >= 1. DSO per currency = open receivables / credit sales of the period x days in the
period, where credit sales are the ``TotalAmt`` of the invoices booked for the period's orders.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

from connector.errors import StepError
from connector.ledger import Ledger
from connector.report import amount_text as _text

BUCKETS = ("current", "0-30", "31-60", "61-90", "over_90")
PAGE = 1000  # MAXRESULTS maximum (notes §2.1)
IDS_PER_QUERY = 100  # ids per IN (...) list: keeps each query short
DUE_BASIS = "DueDate, or TxnDate when the invoice has no DueDate"


def bucket_of(days_past_due: int) -> str:
    """The aging bucket of an invoice ``days_past_due`` days past its due date (negative: not yet due)."""
    if days_past_due < 0:
        return "current"
    if days_past_due <= 30:
        return "0-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "over_90"


def _money(value) -> Decimal:
    return Decimal(str(value if value not in (None, "") else 0))


def query_all(books, sql: str, entity: str) -> list[dict]:
    """Every row of ``sql``, page by page; stops if a page repeats (a paginator that loops)."""
    rows: list[dict] = []
    seen: set[str] = set()
    start = 1
    while True:
        page = books.query(f"{sql} STARTPOSITION {start} MAXRESULTS {PAGE}").get(entity) or []
        fresh = [row for row in page if str(row.get("Id")) not in seen]
        if page and not fresh:
            break  # the same page again: never loop forever
        seen.update(str(row.get("Id")) for row in fresh)
        rows += fresh
        if len(page) < PAGE:
            return rows
        start += PAGE
    return rows


def read_by_ids(books, entity: str, ids: list[str], *, extra: str = "") -> dict[str, dict]:
    """``{Id: object}`` for ``ids``, one ``Id IN (...)`` query per :data:`IDS_PER_QUERY` ids."""
    found: dict[str, dict] = {}
    ids = sorted(set(ids), key=lambda i: (len(i), i))
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ", ".join("'" + i.replace("\\", "\\\\").replace("'", "\\'") + "'"
                          for i in ids[start:start + IDS_PER_QUERY])
        for row in books.query(f"SELECT * FROM {entity} WHERE {extra}Id IN ({chunk}) MAXRESULTS {PAGE}"
                               ).get(entity) or []:
            found[str(row["Id"])] = row
    return found


def _due(invoice: dict) -> tuple[date | None, str]:
    if invoice.get("DueDate"):
        return date.fromisoformat(str(invoice["DueDate"])[:10]), "DueDate"
    if invoice.get("TxnDate"):
        return date.fromisoformat(str(invoice["TxnDate"])[:10]), "TxnDate"
    return None, "none"


def _customer(row: dict | None, ref: dict) -> dict:
    row = row or {}
    return {"id": ref.get("value"), "name": row.get("DisplayName") or ref.get("name"),
            "company": row.get("CompanyName"),
            "email": (row.get("PrimaryEmailAddr") or {}).get("Address"),
            "phone": (row.get("PrimaryPhone") or {}).get("FreeFormNumber")
            or (row.get("Mobile") or {}).get("FreeFormNumber")}


def receivables_section(settings, ledger: Ledger, stores: list[str], orders: list, booked: dict, *, now: datetime,
                        period_days: Decimal, books=None) -> dict:
    """Open invoices of ``stores`` aged at ``now``'s UTC date, totals per currency, DSO and overdue invoices.

    ``orders`` and ``booked`` are the period's orders and their booked documents
    (:func:`connector.report.booked_at`). A QuickBooks that cannot be read gives
    ``{"error", "what_to_do"}`` instead: the rest of the report still stands.
    """
    if books is None:
        from connector.composition import quickbooks_target
        books = quickbooks_target(settings, ledger)
    try:
        return _receivables(ledger, books, stores, orders, booked, now, period_days)
    except StepError as exc:
        return {"error": str(exc), "what_to_do": exc.what_to_do or "check the QuickBooks connection (o2c status)"}


def _receivables(ledger: Ledger, books, stores: list[str], orders: list, booked: dict, now: datetime,
                 period_days: Decimal) -> dict:
    as_of = now.astimezone(timezone.utc).date()
    ours = {external_id: (key, store, name) for key, external_id, store, name in ledger.conn.execute(
        "SELECT b.canonical_key, b.external_id, o.store, o.name FROM bindings b JOIN orders o"
        " ON o.order_key = b.canonical_key WHERE b.system = 'quickbooks' AND b.kind = 'invoice'")}
    home: list[str] = []

    def currency_of(doc: dict) -> str:
        code = (doc.get("CurrencyRef") or {}).get("value")
        if code:
            return code
        if not home:  # a company without multicurrency sends no CurrencyRef: its home currency
            home.append(((books.preferences().get("CurrencyPrefs") or {}).get("HomeCurrency") or {}).get("value")
                        or "USD")
        return home[0]

    currencies: dict[str, dict] = {}
    per_store: dict[str, dict] = {name: {} for name in stores}
    overdue: list[dict] = []
    unattributed = 0
    for invoice in query_all(books, "SELECT * FROM Invoice WHERE Balance > '0'", "Invoice"):
        balance = _money(invoice.get("Balance"))
        mine = ours.get(str(invoice.get("Id")))
        if balance <= 0:
            continue
        if mine is None:
            unattributed += 1
            continue
        order_key, store, order_name = mine
        if store not in stores:
            continue
        currency = currency_of(invoice)
        due, due_from = _due(invoice)
        days = (as_of - due).days if due else 0
        bucket = bucket_of(days)
        entry = currencies.setdefault(currency, {"open_invoices": 0, "total": Decimal(0),
                                                 "buckets": {b: {"count": 0, "amount": Decimal(0)} for b in BUCKETS}})
        entry["open_invoices"] += 1
        entry["total"] += balance
        entry["buckets"][bucket]["count"] += 1
        entry["buckets"][bucket]["amount"] += balance
        mine_store = per_store[store].setdefault(currency, {"open_invoices": 0, "total": Decimal(0)})
        mine_store["open_invoices"] += 1
        mine_store["total"] += balance
        if days >= 1:
            overdue.append({
                "store": store, "order_key": order_key, "order_name": order_name,
                "invoice_id": str(invoice["Id"]), "doc_number": invoice.get("DocNumber"), "currency": currency,
                "total": _text(_money(invoice.get("TotalAmt"))), "balance": _text(balance),
                "txn_date": invoice.get("TxnDate") or None, "due_date": due.isoformat(), "due_from": due_from,
                "days_past_due": days, "bucket": bucket,
                "_customer_ref": invoice.get("CustomerRef") or {},
            })
    customers = read_by_ids(books, "Customer", [str(o["_customer_ref"].get("value")) for o in overdue
                                                if o["_customer_ref"].get("value")],
                            extra="Active IN (true, false) AND ") if overdue else {}
    for row in overdue:
        ref = row.pop("_customer_ref")
        row["customer"] = _customer(customers.get(str(ref.get("value"))), ref)
    overdue.sort(key=lambda o: (-o["days_past_due"], o["store"], o["doc_number"] or "", o["invoice_id"]))

    # DSO: the period's invoices as QuickBooks holds them now (a voided one totals 0).
    period_ids = [entry["external_id"] for key, entry in booked.items() if entry["kind"] == "invoice"]
    credit = defaultdict(Decimal)
    for doc in read_by_ids(books, "Invoice", period_ids).values():
        credit[currency_of(doc)] += _money(doc.get("TotalAmt"))
    dso = {}
    for currency in sorted({*currencies, *credit}):
        open_total = currencies.get(currency, {}).get("total", Decimal(0))
        sales = credit.get(currency, Decimal(0))
        value = None
        if sales > 0:
            value = str((open_total / sales * period_days).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
        dso[currency] = {"open_receivables": _text(open_total), "credit_sales": _text(sales),
                         "days": str(period_days), "dso_days": value}
    return {
        "as_of": as_of.isoformat(),
        "due_basis": DUE_BASIS,
        "buckets": list(BUCKETS),
        "currencies": {c: {"open_invoices": e["open_invoices"], "total": _text(e["total"]),
                           "buckets": {b: {"count": v["count"], "amount": _text(v["amount"])}
                                       for b, v in e["buckets"].items()}}
                       for c, e in sorted(currencies.items())},
        "stores": {name: {c: {"open_invoices": e["open_invoices"], "total": _text(e["total"])}
                          for c, e in sorted(per_store[name].items())} for name in stores},
        "dso": dso,
        "overdue": overdue,
        "unattributed_open_invoices": unattributed,
    }
