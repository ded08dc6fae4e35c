"""The whole pass over loopback HTTP: official SDKs -> sandbox emulators -> ledger.

Nothing is mocked: the sandbox runs as its own process, the connector uses
ShopifyAPI, woocommerce, hubspot-api-client and python-quickbooks with only
their base URLs changed, and the assertions read the emulators' state.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

import pytest

from connector.config import load_config
from connector.composition import build_runners, build_sources
from connector.demo import write_config
from connector.engine import sync_pass
from connector.ledger import Ledger
from sandbox.seed import REALM, SHOP, SITE, seed

ORDERS = 60


@pytest.fixture
def seeded(sandbox, tmp_path, monkeypatch):
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=11)
    for key in ("O2C_DEMO_SHOPIFY_TOKEN",):
        monkeypatch.delenv(key, raising=False)
    config = write_config(tmp_path, credentials)
    return load_config(config)


def run_pass(settings):
    ledger = Ledger(settings.ledger_path)
    try:
        return sync_pass(build_sources(settings), build_runners(settings, ledger), ledger), ledger.step_counts()
    finally:
        ledger.close()


def write_requests(counters: dict) -> int:
    """Requests that could change state: every POST except queries and searches."""
    total = 0
    for endpoint, statuses in counters["by_endpoint"].items():
        if endpoint.startswith("POST") and "/query" not in endpoint and "/search" not in endpoint:
            total += sum(n for status, n in statuses.items() if status != "total")
    return total


def test_sync_twice_books_each_order_once_and_the_second_pass_changes_nothing(sandbox, seeded):
    report, steps = run_pass(seeded)
    assert [p.error for p in report.pulls] == [None, None]
    assert sum(p.new for p in report.pulls) == ORDERS
    assert all(states.keys() <= {"done", "skipped"} for states in steps.values()), steps

    shop_orders = sandbox.state("shopify")["shops"][SHOP]["orders"]
    woo_orders = sandbox.state("woocommerce")["sites"][SITE]["orders"]
    hubspot = sandbox.state("hubspot")
    books = sandbox.state("quickbooks")["companies"][REALM]

    # HubSpot: exactly one contact per distinct email.
    emails = {o["email"].lower() for o in shop_orders if o.get("email")} | \
             {o["billing"]["email"].lower() for o in woo_orders if o["billing"].get("email")}
    contact_emails = [c["properties"]["email"] for c in hubspot["contacts"]]
    assert sorted(contact_emails) == sorted(emails)

    # QuickBooks: one invoice per order, each equal to the store's total; cancelled orders' invoices voided.
    cancelled = sum(1 for o in shop_orders if o.get("cancelledAt")) + \
        sum(1 for o in woo_orders if o["status"] == "cancelled")
    assert cancelled > 0  # the generator's variety reaches the books
    invoices = books["Invoice"]
    assert len(invoices) == ORDERS
    assert len({i["DocNumber"] for i in invoices}) == len(invoices)
    voided = [i for i in invoices if i.get("PrivateNote", "").startswith("Voided")]
    assert len(voided) == cancelled
    store_totals = {f"demo-shop:{o['legacyResourceId']}": Decimal(o["totalPriceSet"]["shopMoney"]["amount"])
                    for o in shop_orders}
    store_totals.update({f"demo-woo:{o['id']}": Decimal(o["total"]) for o in woo_orders})
    for invoice in invoices:
        assert len(invoice["DocNumber"]) <= 21
        order_key = re.search(r"\((demo-[a-z]+:\d+)\)", invoice["PrivateNote"]).group(1)
        expected = Decimal("0") if invoice in voided else store_totals[order_key]
        assert Decimal(str(invoice["TotalAmt"])) == expected, invoice["DocNumber"]

    # One customer per shopper, one payment per captured transaction, paid invoices have no balance left.
    customers = books["Customer"]
    assert len(customers) == len({c["DisplayName"] for c in customers})
    captured = sum(1 for o in shop_orders for t in o.get("transactions") or []
                   if t["kind"] in ("SALE", "CAPTURE") and t["status"] == "SUCCESS"
                   and Decimal(t["amountSet"]["shopMoney"]["amount"])) \
        + sum(1 for o in woo_orders if o.get("date_paid_gmt") and Decimal(o["total"]))
    payments = books["Payment"]
    assert len(payments) == captured
    linked = Counter(line["LinkedTxn"][0]["TxnId"] for p in payments for line in p["Line"])
    for invoice in invoices:
        if invoice in voided:
            continue
        expected = Decimal("0") if invoice["Id"] in linked else Decimal(str(invoice["TotalAmt"]))
        assert Decimal(str(invoice["Balance"])) == expected, invoice["DocNumber"]

    # One refund document per refund.
    refunds = sum(len(o.get("refunds") or []) for o in shop_orders) + \
        sum(len(o.get("refunds") or []) for o in woo_orders)
    assert refunds > 0
    assert len(books["RefundReceipt"]) == refunds

    before = {system: write_requests(sandbox.control(system, "GET", "counters"))
              for system in ("hubspot", "quickbooks")}
    state_before = {system: sandbox.state(system) for system in ("hubspot", "quickbooks")}

    second, _ = run_pass(seeded)
    assert sum(p.new + p.changed for p in second.pulls) == 0
    assert second.created == {}
    after = {system: write_requests(sandbox.control(system, "GET", "counters"))
             for system in ("hubspot", "quickbooks")}
    assert after == before
    assert {system: sandbox.state(system) for system in ("hubspot", "quickbooks")} == state_before
