"""``o2c report`` against the sandbox: every figure is recomputed here from the emulators' state.

One sync pass books 60 generated orders; then QuickBooks is changed behind the
connector's back the way a bookkeeper would: due dates moved so open invoices
fall in every aging bucket, a partial payment, an
invoice the connector never booked, a customer with markup and a formula in
their names. The expected figures come from ``sandbox.state(...)`` with the
small, separate code below (store orders' totals, transactions, refunds and
cancellations; invoices' Balance/DueDate/TxnDate/TotalAmt; customers), and
cycle times from the ledger's bindings read with plain SQL: never from the
report's own functions.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sqlite3
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser

import httpx
import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.composition import build_runners, build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import sync_pass
from connector.errors import RetryableError
from connector.ledger import Ledger
from connector.report import build_report, nearest_rank, parse_moment
from connector.report_export import to_csv
from connector.report_html import render_html, write_html_report
from connector.report_receivables import bucket_of
from sandbox.seed import REALM, SHOP, SITE, seed

ORDERS = 60
TOKEN = "report-test-access-token"
NASTY_NAME = '<script>alert("x")</script> Zoë & Co'
FORMULA_COMPANY = "=HYPERLINK(\"x\")"
# Days from the as-of date to the due date given to the open invoices, in this order: every bucket and edge.
DUE_OFFSETS = [-91, -61, -31, -1, 0, 10, -30, -60, -90]


# -- the world ----------------------------------------------------------------------------------

def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _qbo(sandbox, method: str, path: str, body: dict | None = None) -> dict:
    response = httpx.request(method, f"{sandbox.url('quickbooks')}/v3/company/{REALM}/{path}", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _sparse(sandbox, entity: str, obj: dict, **fields) -> dict:
    body = {"Id": obj["Id"], "SyncToken": obj["SyncToken"], "sparse": True, **fields}
    return _qbo(sandbox, "POST", entity.lower(), body)[entity]


@pytest.fixture(scope="module")
def world(sandbox_process, tmp_path_factory):
    """A synced sandbox whose QuickBooks a bookkeeper then touched; the report's inputs, fixed."""
    sandbox = sandbox_process
    sandbox.reset()
    workdir = tmp_path_factory.mktemp("report")
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=11)
    settings = load_config(write_config(workdir, credentials))
    ledger = Ledger(settings.ledger_path)
    try:
        sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    finally:
        ledger.close()

    now = datetime.now(timezone.utc).replace(microsecond=0)
    as_of = now.date()
    sandbox.control("quickbooks", "POST", f"companies/{REALM}", json={"access_token": TOKEN})
    books = sandbox.state("quickbooks")["companies"][REALM]
    open_invoices = sorted((i for i in books["Invoice"] if Decimal(str(i["Balance"])) > 0), key=lambda i: int(i["Id"]))
    assert len(open_invoices) >= 7, "the generator should leave pending and authorized orders unpaid"
    for invoice, offset in zip(open_invoices, DUE_OFFSETS):
        _sparse(sandbox, "Invoice", invoice, DueDate=(as_of + timedelta(days=offset)).isoformat())
    # A partial payment: the report must age the Balance, not the TotalAmt.
    partly = open_invoices[1]
    sandbox.control("quickbooks", "POST", f"companies/{REALM}/seed", json={"Payment": [{
        "TotalAmt": "1.00", "CustomerRef": partly["CustomerRef"],
        "Line": [{"Amount": "1.00", "LinkedTxn": [{"TxnId": partly["Id"], "TxnType": "Invoice"}]}]}]})
    # An invoice somebody typed into QuickBooks: open and overdue, but not the connector's.
    item = next(i for i in books["Item"] if i.get("Type") == "NonInventory")
    sandbox.control("quickbooks", "POST", f"companies/{REALM}/seed", json={"Invoice": [{
        "CustomerRef": partly["CustomerRef"], "DueDate": (as_of - timedelta(days=45)).isoformat(),
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": "70.00",
                  "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1, "UnitPrice": "70.00"}}]}]})
    # A customer whose names carry markup and a spreadsheet formula (the first overdue invoice's).
    customer_id = open_invoices[0]["CustomerRef"]["value"]
    customer = next(c for c in books["Customer"] if c["Id"] == customer_id)
    _sparse(sandbox, "Customer", customer, DisplayName=NASTY_NAME, CompanyName=FORMULA_COMPANY)

    # Sync health: one dead and one mismatch step, as a failure would leave them.
    conn = sqlite3.connect(settings.ledger_path)
    with conn:
        conn.execute("UPDATE steps SET state = 'dead', error = 'QuickBooks refused: Duplicate Name Exists',"
                     " what_to_do = 'rename the customer' WHERE id = (SELECT MIN(id) FROM steps"
                     " WHERE step = 'hubspot.contact')")
        conn.execute("UPDATE steps SET state = 'mismatch', error = 'total differs by 0.01'"
                     " WHERE id = (SELECT MAX(id) FROM steps WHERE step = 'quickbooks.invoice')")
    conn.close()

    state = {system: sandbox.state(system) for system in ("shopify", "woocommerce", "quickbooks")}
    return {"sandbox": sandbox, "settings": settings, "credentials": credentials, "now": now, "as_of": as_of,
            "state": state, "workdir": workdir, "nasty_customer": customer_id,
            "first_created": min(o["created"] for o in store_orders(state).values())}


def report_of(world, **kwargs) -> dict:
    ledger = Ledger(world["settings"].ledger_path)
    try:
        kwargs.setdefault("since", world["now"] - timedelta(days=30))
        kwargs.setdefault("until", world["now"])
        return build_report(world["settings"], ledger, now=world["now"], **kwargs)
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def report(world) -> dict:
    return report_of(world)


# -- expected figures, computed here from the emulators' state ----------------------------------

def store_orders(state: dict) -> dict[str, dict]:
    """Every store order as the store holds it: ``{order_key: {store, currency, total, created, ...}}``."""
    orders = {}
    for o in state["shopify"]["shops"][SHOP]["orders"]:
        total = Decimal(o["totalPriceSet"]["shopMoney"]["amount"])
        captured = sorted(((_utc(t["processedAt"]), Decimal(t["amountSet"]["shopMoney"]["amount"]))
                           for t in o.get("transactions") or []
                           if t["kind"] in ("SALE", "CAPTURE") and t["status"] == "SUCCESS"), key=lambda x: x[0])
        orders[f"{SHOP}:{o['legacyResourceId']}"] = {
            "store": SHOP, "currency": o["totalPriceSet"]["shopMoney"]["currencyCode"], "total": total,
            "created": _utc(o["createdAt"]), "captured": captured,
            "refunded": sum((Decimal(r["totalRefundedSet"]["shopMoney"]["amount"]) for r in o.get("refunds") or []),
                            Decimal(0)),
            "cancelled": o.get("cancelledAt") is not None}
    for o in state["woocommerce"]["sites"][SITE]["orders"]:
        total = Decimal(o["total"])
        paid = [(_utc(o["date_paid_gmt"]), total)] if o.get("date_paid_gmt") else []
        orders[f"{SITE}:{o['id']}"] = {
            "store": SITE, "currency": o["currency"], "total": total, "created": _utc(o["date_created_gmt"]),
            "captured": paid,
            "refunded": sum((abs(Decimal(r["total"])) for r in o.get("refunds") or []), Decimal(0)),
            "cancelled": o["status"] == "cancelled"}
    return orders


def invoices_by_order(state: dict) -> dict[str, dict]:
    """The connector's invoices, found by the order key it writes in PrivateNote."""
    found = {}
    for invoice in state["quickbooks"]["companies"][REALM]["Invoice"]:
        match = re.search(r"\(([a-z-]+:\d+)\)", invoice.get("PrivateNote") or "")
        if match:
            found[match.group(1)] = invoice
    return found


def expected_orders(state: dict, since: datetime, until: datetime, stores=(SHOP, SITE)) -> dict:
    """``{store or "*": {currency: {figure: (count, amount)}}}`` for orders created in [since, until)."""
    booked = invoices_by_order(state)
    result: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: [0, Decimal(0)])))
    for key, o in store_orders(state).items():
        if o["store"] not in stores or not since <= o["created"] < until:
            continue
        figures = [("received", o["total"])]
        if key in booked:
            figures.append(("booked", o["total"]))
        captured = sum((amount for _, amount in o["captured"]), Decimal(0))
        if captured > 0:
            figures.append(("paid", captured))
        if o["refunded"] > 0:
            figures.append(("refunded", o["refunded"]))
        if o["cancelled"]:
            figures.append(("cancelled", o["total"]))
        for name in (o["store"], "*"):
            for figure, amount in figures:
                entry = result[name][o["currency"]][figure]
                entry[0] += 1
                entry[1] += amount
    return result


def percentile(values: list, p: int):
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def as_hours(delta: timedelta) -> str:
    micro = delta // timedelta(microseconds=1)
    return str((Decimal(micro) / Decimal(3_600_000_000)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def expected_cycles(world, since: datetime, until: datetime) -> dict:
    orders = store_orders(world["state"])
    conn = sqlite3.connect(world["settings"].ledger_path)
    booked_at = dict(conn.execute("SELECT canonical_key, created_at FROM bindings WHERE system = 'quickbooks'"
                                  " AND kind IN ('invoice', 'sales_receipt')").fetchall())
    conn.close()
    cycles: dict = defaultdict(lambda: {"order_to_booked": [], "order_to_cash": []})
    for key, o in orders.items():
        if not since <= o["created"] < until:
            continue
        for name in (o["store"], "*"):
            if key in booked_at:
                cycles[name]["order_to_booked"].append(_utc(booked_at[key]) - o["created"])
            running = Decimal(0)
            for moment, amount in o["captured"]:
                running += amount
                if o["total"] > 0 and running >= o["total"]:
                    cycles[name]["order_to_cash"].append(moment - o["created"])
                    break
    return cycles


def expected_receivables(world, stores=(SHOP, SITE)) -> dict:
    as_of, state = world["as_of"], world["state"]
    books = state["quickbooks"]["companies"][REALM]
    customers = {c["Id"]: c for c in books["Customer"]}
    ours = {invoice["Id"]: key for key, invoice in invoices_by_order(state).items()}
    buckets: dict = defaultdict(lambda: defaultdict(lambda: [0, Decimal(0)]))
    overdue, unattributed = [], 0
    for invoice in books["Invoice"]:
        balance = Decimal(str(invoice["Balance"]))
        if balance <= 0:
            continue
        if invoice["Id"] not in ours:
            unattributed += 1
            continue
        if ours[invoice["Id"]].split(":")[0] not in stores:
            continue
        due = date.fromisoformat(invoice["DueDate"] or invoice["TxnDate"])
        days = (as_of - due).days
        name = "current" if days < 0 else "0-30" if days <= 30 else "31-60" if days <= 60 else \
            "61-90" if days <= 90 else "over_90"
        currency = invoice["CurrencyRef"]["value"]
        for key in (name, "total"):
            buckets[currency][key][0] += 1
            buckets[currency][key][1] += balance
        if days > 0:
            customer = customers[invoice["CustomerRef"]["value"]]
            overdue.append({"doc_number": invoice["DocNumber"], "days_past_due": days, "balance": balance,
                            "name": customer["DisplayName"],
                            "email": (customer.get("PrimaryEmailAddr") or {}).get("Address"),
                            "phone": (customer.get("PrimaryPhone") or {}).get("FreeFormNumber")})
    return {"buckets": buckets, "overdue": overdue, "unattributed": unattributed}


def expected_credit_sales(world, since: datetime, until: datetime) -> dict[str, Decimal]:
    orders = store_orders(world["state"])
    credit: dict = defaultdict(Decimal)
    for key, invoice in invoices_by_order(world["state"]).items():
        if since <= orders[key]["created"] < until:
            credit[invoice["CurrencyRef"]["value"]] += Decimal(str(invoice["TotalAmt"]))
    return credit


def assert_orders_match(report: dict, expected: dict) -> None:
    blocks = {s["name"]: s["currencies"] for s in report["stores"]}
    blocks["*"] = report["totals"]["currencies"]
    for name, currencies in blocks.items():
        want = {currency: {figure: [n, amount] for figure, (n, amount) in figures.items()}
                for currency, figures in expected.get(name, {}).items()}
        got = {currency: {figure: [f["count"], Decimal(f["amount"])] for figure, f in figures.items() if f["count"]}
               for currency, figures in currencies.items()}
        assert got == want, name


# -- tests --------------------------------------------------------------------------------------

def test_orders_per_store_and_currency_match_the_stores_and_the_books(world, report):
    since, until = world["now"] - timedelta(days=30), world["now"]
    expected = expected_orders(world["state"], since, until)
    assert_orders_match(report, expected)
    totals = report["totals"]["currencies"]
    assert set(totals) == {"USD", "EUR"}  # WooCommerce sells in euros too; never added to dollars
    assert totals["USD"]["received"]["count"] + totals["EUR"]["received"]["count"] == ORDERS
    for figure in ("paid", "refunded", "cancelled"):
        assert totals["USD"][figure]["count"] > 0, figure


def test_a_period_boundary_takes_orders_created_at_since_and_leaves_those_at_until(world):
    created = sorted(o["created"] for o in store_orders(world["state"]).values())
    since, until = created[10], created[40]
    partial = report_of(world, since=since, until=until)
    expected = expected_orders(world["state"], since, until)
    assert_orders_match(partial, expected)
    received = sum(f["received"]["count"] for f in partial["totals"]["currencies"].values())
    assert received == sum(1 for c in created if since <= c < until) >= 30
    assert sum(day["orders"] for day in partial["daily"]) == received


def test_cycle_times_are_nearest_rank_percentiles_of_the_ledger_bindings_and_store_payments(world, report):
    since, until = world["now"] - timedelta(days=30), world["now"]
    cycles = expected_cycles(world, since, until)
    blocks = {s["name"]: s["cycle_times"] for s in report["stores"]}
    blocks["*"] = report["totals"]["cycle_times"]
    for name, got in blocks.items():
        for cycle, values in cycles[name].items():
            assert values, (name, cycle)
            assert got[cycle] == {"count": len(values), "p50_hours": as_hours(percentile(values, 50)),
                                  "p90_hours": as_hours(percentile(values, 90)),
                                  "max_hours": as_hours(max(values))}, (name, cycle)
    histogram = report["cycle_histogram"]
    assert sum(histogram["order_to_booked"]) == len(cycles["*"]["order_to_booked"])
    assert sum(histogram["order_to_cash"]) == len(cycles["*"]["order_to_cash"])
    under_an_hour = sum(1 for v in cycles["*"]["order_to_cash"] if v < timedelta(hours=1))
    assert histogram["buckets"][0] == "< 1 h" and histogram["order_to_cash"][0] == under_an_hour


def test_daily_volume_counts_each_order_on_its_utc_day(world, report):
    since, until = world["now"] - timedelta(days=30), world["now"]
    per_day: dict = defaultdict(lambda: defaultdict(int))
    amounts: dict = defaultdict(lambda: defaultdict(Decimal))
    for o in store_orders(world["state"]).values():
        per_day[o["created"].date().isoformat()][o["store"]] += 1
        amounts[o["created"].date().isoformat()][o["currency"]] += o["total"]
    assert report["daily"][0]["date"] == since.date().isoformat()
    assert report["daily"][-1]["date"] == until.date().isoformat()
    assert len(report["daily"]) == 31
    for day in report["daily"]:
        assert day["stores"] == {SHOP: per_day[day["date"]][SHOP], SITE: per_day[day["date"]][SITE]}
        assert {c: Decimal(a) for c, a in day["amounts"].items()} == dict(amounts[day["date"]])


def test_receivables_age_open_invoice_balances_from_quickbooks_by_due_date(world, report):
    receivables = report["receivables"]
    expected = expected_receivables(world)
    assert receivables["as_of"] == world["as_of"].isoformat()
    for currency, entry in receivables["currencies"].items():
        want = expected["buckets"][currency]
        assert entry["open_invoices"] == want["total"][0]
        assert Decimal(entry["total"]) == want["total"][1]
        for bucket, figures in entry["buckets"].items():
            assert (figures["count"], Decimal(figures["amount"])) == tuple(want.get(bucket, (0, Decimal(0)))), bucket
    assert set(receivables["currencies"]) == set(expected["buckets"])
    usd = receivables["currencies"]["USD"]["buckets"]
    assert all(usd[b]["count"] for b in ("current", "0-30", "31-60", "61-90", "over_90")), usd
    # The invoice typed into QuickBooks by hand is seen but not counted.
    assert receivables["unattributed_open_invoices"] == expected["unattributed"] == 1
    # Per store, the store's share.
    for store in (SHOP, SITE):
        mine = expected_receivables(world, stores=(store,))["buckets"]
        assert {c: (e["open_invoices"], Decimal(e["total"])) for c, e in receivables["stores"][store].items()} == \
            {c: tuple(b["total"]) for c, b in mine.items()}


def test_partially_paid_invoice_is_aged_by_its_balance(world, report):
    books = world["state"]["quickbooks"]["companies"][REALM]
    partly = next(i for i in books["Invoice"] if Decimal(str(i["Balance"])) > 0
                  and Decimal(str(i["Balance"])) == Decimal(str(i["TotalAmt"])) - 1)
    row = next(o for o in report["receivables"]["overdue"] if o["invoice_id"] == partly["Id"])
    assert Decimal(row["balance"]) == Decimal(str(partly["Balance"]))
    assert Decimal(row["total"]) == Decimal(str(partly["TotalAmt"]))


class _WithoutDueDate:
    """QuickBooks as a company that sends one invoice without a DueDate (the emulator always sets one)."""

    def __init__(self, target, invoice_id: str):
        self.target, self.invoice_id = target, invoice_id

    def query(self, sql: str) -> dict:
        answer = self.target.query(sql)
        for invoice in answer.get("Invoice") or []:
            if invoice["Id"] == self.invoice_id:
                invoice["DueDate"] = ""  # how python-quickbooks writes an unset date (notes §1)
        return answer


def test_invoice_without_due_date_is_aged_from_its_transaction_date(world, report):
    from adapters.quickbooks import QuickBooksTarget
    books = world["state"]["quickbooks"]["companies"][REALM]
    ours = {i["Id"] for i in invoices_by_order(world["state"]).values()}
    undated = next(i for i in books["Invoice"] if i["Id"] in ours and Decimal(str(i["Balance"])) > 0
                   and date.fromisoformat(i["DueDate"]) > date.fromisoformat(i["TxnDate"]) + timedelta(days=1)
                   and (world["as_of"] - date.fromisoformat(i["TxnDate"])).days >= 1)
    ledger = Ledger(world["settings"].ledger_path)
    try:
        data = build_report(world["settings"], ledger, since=world["now"] - timedelta(days=30), until=world["now"],
                            now=world["now"], books=_WithoutDueDate(QuickBooksTarget(world["settings"].quickbooks,
                                                                                     ledger), undated["Id"]))
    finally:
        ledger.close()
    row = next(o for o in data["receivables"]["overdue"] if o["invoice_id"] == undated["Id"])
    assert row["due_from"] == "TxnDate"
    assert row["due_date"] == undated["TxnDate"]
    assert row["days_past_due"] == (world["as_of"] - date.fromisoformat(undated["TxnDate"])).days
    assert row["bucket"] == bucket_of(row["days_past_due"])
    assert all(o["due_from"] == "DueDate" for o in report["receivables"]["overdue"])


def test_overdue_invoices_list_the_customer_contact_details_from_quickbooks(world, report):
    expected = expected_receivables(world)["overdue"]
    got = report["receivables"]["overdue"]
    assert sorted((o["doc_number"], o["days_past_due"], Decimal(o["balance"]), o["customer"]["name"],
                   o["customer"]["email"], o["customer"]["phone"]) for o in got) == \
        sorted((o["doc_number"], o["days_past_due"], o["balance"], o["name"], o["email"], o["phone"])
               for o in expected)
    assert [o["days_past_due"] for o in got] == sorted((o["days_past_due"] for o in got), reverse=True)
    assert all(o["days_past_due"] >= 1 for o in got)  # due today is in 0-30 but not overdue
    assert any(o["customer"]["email"] and o["customer"]["phone"] for o in got)
    assert any(o["customer"]["name"] == NASTY_NAME for o in got)


def test_dso_is_open_receivables_over_the_periods_invoiced_sales_times_its_days(world, report):
    since, until = world["now"] - timedelta(days=30), world["now"]
    credit = expected_credit_sales(world, since, until)
    buckets = expected_receivables(world)["buckets"]
    dso = report["receivables"]["dso"]
    assert set(dso) == set(credit) | set(buckets)
    for currency, entry in dso.items():
        open_total = buckets[currency]["total"][1] if currency in buckets else Decimal(0)
        assert Decimal(entry["open_receivables"]) == open_total
        assert Decimal(entry["credit_sales"]) == credit[currency]
        assert entry["days"] == "30"
        want = (open_total / credit[currency] * 30).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        assert Decimal(entry["dso_days"]) == want, currency
    assert Decimal(dso["USD"]["dso_days"]) > 0


def test_one_store_report_holds_only_that_stores_orders_and_invoices(world):
    woo = report_of(world, store=SITE)
    since, until = world["now"] - timedelta(days=30), world["now"]
    assert [s["name"] for s in woo["stores"]] == [SITE]
    expected = expected_orders(world["state"], since, until, stores=(SITE,))
    assert_orders_match(woo, expected)
    assert {o["store"] for o in woo["receivables"]["overdue"]} == {SITE}
    want = expected_receivables(world, stores=(SITE,))["buckets"]
    assert {c: Decimal(e["total"]) for c, e in woo["receivables"]["currencies"].items()} == \
        {c: b["total"][1] for c, b in want.items()}
    assert [s["name"] for s in woo["sync_health"]["stores"]] == [SITE]


def test_sync_health_shows_lag_dead_and_mismatched_steps_and_webhook_coverage(world, report):
    health = report["sync_health"]
    conn = sqlite3.connect(world["settings"].ledger_path)
    states = dict(conn.execute("SELECT state, COUNT(*) FROM steps GROUP BY state").fetchall())
    cursors = dict(conn.execute("SELECT store, value FROM cursors").fetchall())
    orders = dict(conn.execute("SELECT store, COUNT(*) FROM orders GROUP BY store").fetchall())
    conn.close()
    assert health["dead"] == states["dead"] == 1
    assert health["mismatch"] == states["mismatch"] == 1
    assert {k: v for k, v in health["steps"].items() if v} == states
    reasons = {(f["state"], f["step"]): f for f in health["failures"]}
    assert reasons[("dead", "hubspot.contact")]["count"] == 1
    assert reasons[("dead", "hubspot.contact")]["what_to_do"] == "rename the customer"
    assert ("mismatch", "quickbooks.invoice") in reasons
    for store in health["stores"]:
        assert store["lag_seconds"] == int((world["now"] - _utc(cursors[store["name"]])).total_seconds())
        assert store["coverage"] == {"orders": orders[store["name"]], "by_webhook": 0,
                                     "poll_only": orders[store["name"]], "poll_only_since_first_webhook": 0,
                                     "percent": "0.0"}


def secrets_of(world) -> list[str]:
    values = [v for system in world["credentials"].values() for k, v in system.items()
              if k in ("access_token", "consumer_key", "consumer_secret", "client_id", "client_secret",
                       "refresh_token")]
    conn = sqlite3.connect(world["settings"].ledger_path)
    values += [v for row in conn.execute("SELECT refresh_token, access_token FROM tokens") for v in row if v]
    conn.close()
    assert len(values) >= 8
    return values


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.svg_ids, self.stack, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "svg":
            if not any(t == "svg" for t in self.stack):
                self.svg_ids.append(dict(attrs).get("id"))
        if tag not in ("meta", "rect", "line", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop() == tag:
                break

    def handle_data(self, data):
        self.text.append(data)


def test_html_page_is_self_contained_with_three_inline_svg_charts_and_the_key_figures(world, report):
    page_text = render_html(report)
    page = _Page()
    page.feed(page_text)
    text = " ".join(" ".join(page.text).split())
    assert page.svg_ids == ["chart-daily", "chart-cycle", "chart-aging"]
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not re.match(r"\s*(https?:)?//", value or ""), (tag, name, value)
            assert not name.startswith("on"), (tag, name)
    assert "url(" not in page_text and "@import" not in page_text
    # The figures a merchant looks for.
    for store in report["stores"]:
        for currency, figures in store["currencies"].items():
            assert f"{figures['received']['count']} / {figures['received']['amount']}" in text
    for currency, entry in report["receivables"]["currencies"].items():
        assert entry["total"] in text
        assert f"{report['receivables']['dso'][currency]['dso_days']} days" in text
    for invoice in report["receivables"]["overdue"]:
        assert invoice["doc_number"] in text
        if invoice["customer"]["email"]:
            assert invoice["customer"]["email"] in text
    # Escaped, not run: the customer's markup arrives as text.
    assert NASTY_NAME in text
    assert "<script" not in page_text
    for secret in secrets_of(world):
        assert secret not in page_text


def test_csv_is_one_long_form_file_that_matches_the_json(world, report):
    text = to_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["section", "store", "currency", "item", "metric", "value"]
    figures = {(r["store"], r["currency"], r["item"], r["metric"]): r["value"] for r in rows
               if r["section"] == "orders"}
    for store in report["stores"]:
        for currency, block in store["currencies"].items():
            for name, f in block.items():
                assert figures[(store["name"], currency, name, "count")] == str(f["count"])
                assert figures[(store["name"], currency, name, "amount")] == f["amount"]
    aging = {(r["currency"], r["item"], r["metric"]): r["value"] for r in rows if r["section"] == "receivables"}
    for currency, entry in report["receivables"]["currencies"].items():
        assert aging[(currency, "all", "amount")] == entry["total"]
        for bucket, f in entry["buckets"].items():
            assert aging[(currency, bucket, "amount")] == f["amount"]
            assert aging[(currency, bucket, "count")] == str(f["count"])
    dso = {(r["currency"], r["metric"]): r["value"] for r in rows if r["section"] == "dso"}
    for currency, entry in report["receivables"]["dso"].items():
        assert dso[(currency, "dso_days")] == (entry["dso_days"] or "")
    overdue = {(r["item"], r["metric"]): r["value"] for r in rows if r["section"] == "overdue"}
    for invoice in report["receivables"]["overdue"]:
        assert overdue[(invoice["doc_number"], "balance")] == invoice["balance"]
        assert overdue[(invoice["doc_number"], "days_past_due")] == str(invoice["days_past_due"])
        assert overdue[(invoice["doc_number"], "customer_email")] == (invoice["customer"]["email"] or "")
    # A formula in a customer's company name stays text in a spreadsheet.
    companies = [r["value"] for r in rows if r["section"] == "overdue" and r["metric"] == "customer_company"]
    assert "'" + FORMULA_COMPANY in companies and FORMULA_COMPANY not in companies
    for secret in secrets_of(world):
        assert secret not in text and secret not in json.dumps(report)


def test_cli_report_writes_json_csv_and_html_for_the_last_30_days_by_default(world, tmp_path):
    runner = CliRunner()
    config = str(world["workdir"] / "config.yaml")
    result = runner.invoke(main, ["report", "--config", config, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["period"]["days"] == "30"
    assert _utc(data["period"]["until"]) - _utc(data["period"]["since"]) == timedelta(days=30)
    assert data["totals"]["currencies"]["USD"]["received"]["count"] > 0
    assert data["receivables"]["overdue"]
    html_path = tmp_path / "out" / "report.html"
    result = runner.invoke(main, ["report", "--config", config, "--format", "html", "--out", str(html_path)])
    assert result.exit_code == 0, result.output
    assert str(html_path) in result.output and html_path.read_text().startswith("<!DOCTYPE html>")
    csv_path = tmp_path / "report.csv"
    result = runner.invoke(main, ["report", "--config", config, "--format", "csv", "--out", str(csv_path),
                                  "--store", SHOP, "--since", world["first_created"].date().isoformat(),
                                  "--until", world["as_of"].isoformat()])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(csv_path.open()))
    assert {r["store"] for r in rows if r["section"] == "orders"} == {SHOP, "*"}
    result = runner.invoke(main, ["report", "--config", config])
    assert result.exit_code == 0, result.output
    assert "Order-to-cash report" in result.output and "Overdue invoices" in result.output
    result = runner.invoke(main, ["report", "--config", config, "--since", "last tuesday"])
    assert result.exit_code == 2 and "--since" in result.output


def test_demo_html_report_is_written_where_the_demo_prints_it(world, tmp_path):
    path = write_html_report(world["settings"], tmp_path / "demo" / "report.html", now=world["now"])
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.svg_ids == ["chart-daily", "chart-cycle", "chart-aging"]


class _Unreachable:
    def query(self, sql):
        raise RetryableError("QuickBooks could not be reached: connection refused", system="quickbooks")


def test_quickbooks_down_leaves_the_rest_of_the_report_standing(world):
    broken = report_of(world, books=_Unreachable())
    assert "could not be reached" in broken["receivables"]["error"]
    assert broken["totals"]["currencies"]["USD"]["received"]["count"] > 0
    page = _Page()
    page.feed(render_html(broken))
    assert page.svg_ids == ["chart-daily", "chart-cycle", "chart-aging"]
    assert "Receivables could not be read" in " ".join(page.text)


# -- the definitions, on known values -----------------------------------------------------------

def test_nearest_rank_percentile_takes_the_value_at_rank_ceil_p_n():
    values = [15, 20, 35, 40, 50]
    assert [nearest_rank(values, p) for p in (5, 30, 40, 50, 90, 100)] == [15, 20, 20, 35, 50, 50]
    assert nearest_rank([3, 1, 2], 50) == 2
    assert nearest_rank([], 50) is None
    assert nearest_rank(list(range(1, 11)), 90) == 9


def test_aging_bucket_edges():
    assert [bucket_of(d) for d in (-1, 0, 30, 31, 60, 61, 90, 91)] == \
        ["current", "0-30", "0-30", "31-60", "31-60", "61-90", "61-90", "over_90"]


def test_a_date_until_includes_that_whole_day():
    assert parse_moment("2026-11-30", end=True) == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert parse_moment("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_moment("2026-11-01T08:00:00Z") == datetime(2026, 11, 1, 8, tzinfo=timezone.utc)
