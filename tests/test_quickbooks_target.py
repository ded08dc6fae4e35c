"""QuickBooks target against the sandbox: totals to the cent, posting modes, currencies, and every rule.

Nothing is mocked: python-quickbooks talks to the emulator over loopback,
and the assertions read the emulator's state (``/_sandbox/state``).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from decimal import Decimal

import pytest

from connector.composition import build_runners, build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import sync_pass
from connector.ledger import Ledger, iso, utcnow
from sandbox.seed import REALM, SHOP, SITE, seed

ORDERS = 32  # 16 per store: every generator case in each store


def configure(settings, *, stores: dict | None = None, **quickbooks):
    """``settings`` with QuickBooks (and per-store) options changed."""
    update = {"quickbooks": settings.quickbooks.model_copy(update=quickbooks)}
    if stores:
        update["stores"] = [s.model_copy(update=stores) for s in settings.stores]
    return settings.model_copy(update=update)


@pytest.fixture
def settings(sandbox, tmp_path):
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=5)
    return load_config(write_config(tmp_path, credentials))


def run_pass(settings):
    ledger = Ledger(settings.ledger_path)
    try:
        report = sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
        return report, ledger.step_counts(), ledger.failures()
    finally:
        ledger.close()


def retry_now(settings):
    """Make every failed step due now (the backoff is the engine's business, not these tests')."""
    ledger = Ledger(settings.ledger_path)
    try:
        ledger.conn.execute("UPDATE steps SET next_attempt_at = ? WHERE state = 'failed'", (iso(utcnow()),))
    finally:
        ledger.close()


def ledger_rows(settings, sql, *args):
    ledger = Ledger(settings.ledger_path)
    try:
        return ledger.conn.execute(sql, args).fetchall()
    finally:
        ledger.close()


def books(sandbox) -> dict:
    return sandbox.state("quickbooks")["companies"][REALM]


def store_orders(sandbox, side: str = "shopMoney") -> dict[str, dict]:
    """``{order_key: {total, tax, currency}}`` as the stores have them."""
    shop = sandbox.state("shopify")["shops"][SHOP]["orders"]
    woo = sandbox.state("woocommerce")["sites"][SITE]["orders"]
    result = {}
    for o in shop:
        result[f"demo-shop:{o['legacyResourceId']}"] = {
            "total": Decimal(o["totalPriceSet"][side]["amount"]),
            "tax": Decimal(o["totalTaxSet"][side]["amount"]),
            "currency": o["totalPriceSet"][side]["currencyCode"], "cancelled": bool(o.get("cancelledAt"))}
    for o in woo:
        result[f"demo-woo:{o['id']}"] = {"total": Decimal(o["total"]), "tax": Decimal(o["total_tax"]),
                                         "currency": o["currency"], "cancelled": o["status"] == "cancelled"}
    return result


def order_key(doc: dict) -> str:
    return re.search(r"\((demo-[a-z]+:\d+)\)", doc["PrivateNote"]).group(1)


def assert_documents_equal_store(documents: list[dict], expected: dict[str, dict]) -> None:
    for doc in documents:
        want = expected[order_key(doc)]
        if doc["PrivateNote"].startswith("Voided"):
            assert want["cancelled"]
            continue
        assert Decimal(str(doc["TotalAmt"])) == want["total"], doc["DocNumber"]
        assert Decimal(str(doc["TxnTaxDetail"]["TotalTax"])) == want["tax"], doc["DocNumber"]
        assert doc["CurrencyRef"]["value"] == want["currency"], doc["DocNumber"]
        assert len(doc["DocNumber"]) <= 21


# -- the full variety --------------------------------------------------------------------

def test_invoice_mode_books_every_generated_order_to_the_cent_with_the_stores_tax(sandbox, settings):
    _, _, failures = run_pass(settings)
    assert failures == []
    qbo = books(sandbox)
    expected = store_orders(sandbox)
    assert len(qbo["Invoice"]) == ORDERS and "SalesReceipt" not in qbo or not qbo["SalesReceipt"]
    assert_documents_equal_store(qbo["Invoice"], expected)
    # Tax-inclusive orders keep their tax in QuickBooks (the lines book net of it).
    inclusive = [i for i in qbo["Invoice"] if any("TaxInclusiveAmt" in (line.get("SalesItemLineDetail") or {})
                                                  for line in i["Line"])]
    assert inclusive and all(Decimal(str(i["TxnTaxDetail"]["TotalTax"])) > 0 for i in inclusive)
    # Split tender (gift card + card) gives two payments on one invoice.
    per_invoice = Counter(line["LinkedTxn"][0]["TxnId"] for p in qbo["Payment"] for line in p["Line"])
    assert max(per_invoice.values()) == 2
    # Refunds: one refund receipt each, paid from the configured account, naming the original.
    assert qbo["RefundReceipt"]
    for receipt in qbo["RefundReceipt"]:
        assert receipt["DepositToAccountRef"]["name"] == "Checking"
        assert re.search(r"-R\d", receipt["DocNumber"]) or "~" in receipt["DocNumber"]
        assert "refund" in receipt["PrivateNote"]
    # The invoice binding keeps Balance current after payments (the HubSpot write-back reads it).
    rows = ledger_rows(settings, "SELECT external_id, details FROM bindings WHERE kind = 'invoice'")
    by_id = {i["Id"]: i for i in qbo["Invoice"]}
    import json
    for external_id, details in rows:
        assert Decimal(json.loads(details)["Balance"]) == Decimal(str(by_id[external_id]["Balance"]))


def test_sales_receipt_mode_books_orders_paid_at_checkout_as_receipts_and_the_rest_as_invoices(sandbox, settings):
    settings = configure(settings, stores={"posting": "sales_receipt"})
    _, _, failures = run_pass(settings)
    assert failures == []
    qbo = books(sandbox)
    expected = store_orders(sandbox)
    receipts, invoices = qbo["SalesReceipt"], qbo["Invoice"]
    assert receipts and invoices
    assert len(receipts) + len(invoices) == ORDERS
    assert_documents_equal_store(receipts + invoices, expected)
    assert all(r["PaymentMethodRef"]["name"] in ("Credit Card", "Check") for r in receipts)
    # Payments only go to invoices (orders not paid at checkout), never to receipts. Ids are per entity
    # type, so check the link's type and that no receipt's order also got a payment.
    links = [line["LinkedTxn"][0] for p in qbo.get("Payment", []) for line in p["Line"]]
    assert all(link["TxnType"] == "Invoice" for link in links)
    assert {link["TxnId"] for link in links} <= {i["Id"] for i in invoices}
    paid_orders = {order_key(p) for p in qbo.get("Payment", [])}
    assert not paid_orders & {order_key(r) for r in receipts}


def test_presentment_money_books_in_the_shoppers_currency_with_the_stores_exchange_rate(sandbox, settings):
    settings = configure(settings)
    settings = settings.model_copy(update={"stores": [
        s.model_copy(update={"book_in": "presentment"}) if s.system == "shopify" else s for s in settings.stores]})
    _, _, failures = run_pass(settings)
    assert failures == []
    qbo = books(sandbox)
    expected = store_orders(sandbox, side="presentmentMoney")
    shop_docs = [i for i in qbo["Invoice"] if order_key(i).startswith("demo-shop")]
    assert_documents_equal_store(shop_docs, expected)
    euros = [i for i in shop_docs if i["CurrencyRef"]["value"] == "EUR"]
    assert euros
    for invoice in euros:
        shop_total = store_orders(sandbox)[order_key(invoice)]["total"]
        rate = Decimal(str(invoice["ExchangeRate"]))
        assert rate != 1
        assert abs(Decimal(str(invoice["TotalAmt"])) * rate - shop_total) <= Decimal("0.01")


# -- the rules ----------------------------------------------------------------------------

def test_a_currency_the_company_lacks_is_a_dead_step_saying_to_turn_it_on(sandbox, settings):
    sandbox.control("quickbooks", "POST", f"companies/{REALM}", json={"settings": {"currencies": ["USD"]}})
    settings = settings.model_copy(update={"stores": [
        s.model_copy(update={"book_in": "presentment"}) if s.system == "shopify" else s for s in settings.stores]})
    run_pass(settings)
    dead = [f for f in ledger_rows(settings, "SELECT step, state, error, what_to_do FROM steps WHERE state='dead'")]
    assert dead
    assert all("currenc" in error.lower() and "multicurrency" in what for _, _, error, what in dead)
    assert not [i for i in books(sandbox).get("Invoice", []) if i["CurrencyRef"]["value"] == "EUR"]


def test_a_sku_without_item_fails_naming_it_or_creates_the_item_when_configured(sandbox, settings):
    sandbox.control("quickbooks", "POST", "reset")
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=5)
    # Drop the catalogue: the company knows only Services and Shipping.
    sandbox.control("quickbooks", "POST", "reset")
    sandbox.control("quickbooks", "POST", f"companies/{REALM}",
                    json={"settings": {"home_currency": "USD", "currencies": ["USD", "EUR"]}})
    sandbox.control("quickbooks", "POST", "oauth/clients", json={
        "client_id": credentials["quickbooks"]["client_id"], "client_secret": credentials["quickbooks"]["client_secret"],
        "refresh_token": credentials["quickbooks"]["refresh_token"], "realm_id": REALM})
    strict = configure(settings, default_item=None)
    run_pass(strict)
    dead = ledger_rows(strict, "SELECT error, what_to_do FROM steps WHERE state='dead' AND step='quickbooks.invoice'")
    assert dead and all(re.search(r"SKU '[A-Z0-9-]+'", error) for error, _ in dead)
    assert all("create_missing_items" in what for _, what in dead)

    # Created items win over the fallback, which still takes lines without a SKU (a handling fee).
    creating = configure(settings, create_missing_items=True, missing_item_type="Service")
    ledger_rows(creating, "UPDATE steps SET state='pending', attempts=0 WHERE state='dead'")
    _, _, failures = run_pass(creating)
    assert failures == [], [(f["step"], f["error"]) for f in failures]
    items = {i["Name"]: i for i in books(sandbox)["Item"]}
    assert items["BULK-000"]["Type"] == "Service"
    assert items["BULK-000"]["IncomeAccountRef"]["name"] == "Sales of Product Income"
    assert_documents_equal_store(books(sandbox)["Invoice"], store_orders(sandbox))


def test_duplicate_name_binds_the_inactive_owner_and_a_vendor_owned_name_says_what_to_fix(sandbox, settings):
    shop = sandbox.state("shopify")["shops"][SHOP]["orders"]
    with_names = [o for o in shop if o.get("customer") and o["customer"].get("firstName")]
    first = with_names[0]
    name = f"{first['customer']['firstName']} {first['customer']['lastName']}"
    other = next(o for o in with_names if o["customer"]["firstName"] != first["customer"]["firstName"])
    vendor_name = f"{other['customer']['firstName']} {other['customer']['lastName']}"
    created = sandbox.control("quickbooks", "POST", f"companies/{REALM}/seed",
                              json={"Customer": [{"DisplayName": name, "Active": False}],
                                    "Vendor": [{"DisplayName": vendor_name}]})
    owner = created["Customer"][0]["Id"]
    run_pass(settings)
    customers = books(sandbox)["Customer"]
    assert [c["Id"] for c in customers if c["DisplayName"].casefold() == name.casefold()] == [owner]
    invoice = next(i for i in books(sandbox)["Invoice"] if order_key(i) == f"demo-shop:{first['legacyResourceId']}")
    assert invoice["CustomerRef"]["value"] == owner
    # 6240 from a vendor: no second customer, a dead step that says what to rename.
    dead = ledger_rows(settings, "SELECT error, what_to_do FROM steps WHERE step = 'quickbooks.customer' AND"
                                 " state = 'dead' AND order_key = ?", f"demo-shop:{other['legacyResourceId']}")
    assert dead and vendor_name in dead[0][0] and "rename the vendor" in dead[0][1]
    assert not [c for c in customers if c["DisplayName"].casefold() == vendor_name.casefold()]


def test_lowercase_duplicate_name_fault_is_understood_as_6240(sandbox, settings):
    from adapters.quickbooks import classify
    body = ('Error returned with status code \'400\': {"fault":{"error":[{"message":"Duplicate Name Exists Error",'
            '"detail":"The name supplied already exists. : null","code":"6240"}],"type":"ValidationFault"}}')
    error = classify(10000, body, None, 400)
    assert error.code == "6240" and "Duplicate Name" in str(error)


def _cancel_one(sandbox, settings):
    """Book everything, then cancel the first pending Shopify order at the store."""
    run_pass(settings)
    shop = sandbox.state("shopify")["shops"][SHOP]["orders"]
    order = next(o for o in shop if not o.get("cancelledAt") and o["displayFinancialStatus"] == "PENDING")
    now = utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")
    sandbox.control("shopify", "POST", f"shops/{SHOP}/orders/{order['legacyResourceId']}/cancel",
                    json={"cancelled_at": now})
    time.sleep(1.1)  # the pull window ends "now": let the store's whole-second updatedAt fall inside it
    return f"demo-shop:{order['legacyResourceId']}"


def _invoice_of(sandbox, key):
    return next(i for i in books(sandbox)["Invoice"] if order_key(i) == key)


def test_stale_sync_token_from_our_own_writes_rereads_and_voids(sandbox, settings):
    key = _cancel_one(sandbox, settings)
    # The ledger holds an older token than QuickBooks (e.g. a payment we made bumped it).
    ledger_rows(settings, "UPDATE bindings SET details = json_set(details, '$.SyncToken', '-1')"
                          " WHERE kind = 'invoice' AND canonical_key = ?", key)
    _, steps, failures = run_pass(settings)
    assert failures == []
    assert steps["quickbooks.void"] == {"done": 3}, steps  # the generator's cancelled orders, and this one
    assert _invoice_of(sandbox, key)["PrivateNote"].startswith("Voided")


def test_a_document_edited_in_quickbooks_is_held_for_review_not_overwritten(sandbox, settings):
    import httpx
    key = _cancel_one(sandbox, settings)
    invoice = _invoice_of(sandbox, key)
    # A bookkeeper changes the memo line amount in QuickBooks.
    lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    lines[0]["Amount"] = Decimal(str(lines[0]["Amount"])) + 1
    lines[0]["SalesItemLineDetail"]["UnitPrice"] = lines[0]["Amount"]
    lines[0]["SalesItemLineDetail"]["Qty"] = 1
    token = sandbox.control("quickbooks", "POST", "oauth/clients", json={
        "client_id": "editor", "client_secret": "s", "realm_id": REALM})["refresh_token"]
    from adapters.quickbooks import to_qbo_json
    access = httpx.post(f"{sandbox.url('quickbooks')}/oauth2/v1/tokens/bearer", auth=("editor", "s"),
                        data={"grant_type": "refresh_token", "refresh_token": token}).json()["access_token"]
    edited = httpx.post(f"{sandbox.url('quickbooks')}/v3/company/{REALM}/invoice",
                        headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json",
                                 "Accept": "application/json"},
                        content=to_qbo_json({"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True,
                                             "Line": lines}))
    assert edited.status_code == 200, edited.text
    run_pass(settings)
    state, error, what = ledger_rows(settings, "SELECT state, error, what_to_do FROM steps WHERE order_key = ? AND"
                                               " step = 'quickbooks.void'", key)[0]
    assert state == "held" and "edited in QuickBooks" in error and "review" in what
    assert not _invoice_of(sandbox, key)["PrivateNote"].startswith("Voided")
    events = ledger_rows(settings, "SELECT kind FROM events WHERE order_key = ? AND kind = 'held_for_review'", key)
    assert events


def test_a_crash_between_send_and_commit_leaves_no_duplicate_after_restart(sandbox, settings):
    # Two batches are written and their answers lost, as if we crashed before binding: first the
    # customers', then (on the next pass) the invoices'.
    lose_next_batch = {"faults": [{"path_contains": "/batch", "method": "POST", "status": 500, "after_write": True}]}
    sandbox.control("quickbooks", "POST", "faults", json=lose_next_batch)
    import adapters.quickbooks as qbmod
    original = qbmod.Retry
    qbmod.Retry = lambda **kw: original(**{**kw, "total": 0})  # no in-request retry: the loss reaches the ledger
    try:
        run_pass(settings)
        customers = len(books(sandbox)["Customer"])
        assert customers > 0
        failed = "SELECT COUNT(*) FROM steps WHERE step = ? AND state = 'failed'"
        assert ledger_rows(settings, failed, "quickbooks.customer")[0][0] > 0
        retry_now(settings)
        sandbox.control("quickbooks", "POST", "faults", json=lose_next_batch)
        run_pass(settings)  # customers found by lookup; the invoices' batch answer is lost
        assert ledger_rows(settings, failed, "quickbooks.invoice")[0][0] > 0
        assert books(sandbox)["Invoice"]
    finally:
        qbmod.Retry = original
    retry_now(settings)
    _, _, failures = run_pass(settings)
    assert failures == []
    qbo = books(sandbox)
    assert len(qbo["Customer"]) == customers
    invoices = qbo["Invoice"]
    assert len(invoices) == ORDERS
    assert len({order_key(i) for i in invoices}) == ORDERS
    notes = ledger_rows(settings, "SELECT COUNT(*) FROM events WHERE detail = 'found by DocNumber'")
    assert notes[0][0] > 0  # the probe, not luck, bound them


def test_throttling_is_retried_in_request_then_left_for_a_later_attempt(sandbox, settings):
    sandbox.control("quickbooks", "POST", "faults", json={"faults": [
        {"path_contains": "/batch", "status": 429, "times": 1}]})
    _, _, failures = run_pass(settings)
    assert failures == []  # one 429 is absorbed by the in-request retry
    sandbox.control("quickbooks", "POST", "reset")
    credentials = seed(sandbox.urls, orders=4, seed_value=9)
    import adapters.quickbooks as qbmod
    original = qbmod.Retry
    qbmod.Retry = lambda **kw: original(**{**kw, "total": 0})
    sandbox.control("quickbooks", "POST", "faults", json={"faults": [
        {"path_contains": "/v3/company", "status": 429, "times": 1000}]})
    fresh = settings.model_copy(update={"ledger": settings.ledger + ".2"})
    try:
        run_pass(fresh)
    finally:
        qbmod.Retry = original
    rows = ledger_rows(fresh, "SELECT state, error, next_attempt_at, updated_at FROM steps"
                              " WHERE step = 'quickbooks.customer'")
    assert rows and all(state == "failed" and "throttl" in error.lower() for state, error, _, _ in rows)
    assert all(nxt >= upd for _, _, nxt, upd in rows)
    assert credentials


def _store_says_more(extra: str):
    from mappings.quickbooks_sales import Expected, expected

    def fake(order):
        real = expected(order)
        return Expected(real.total + Decimal(extra), real.tax) if order.name.endswith("1001") else real
    return fake


def test_a_one_cent_difference_is_absorbed_by_the_configured_rounding_line_and_recorded(
        sandbox, settings, monkeypatch):
    import adapters.quickbooks_documents as documents
    monkeypatch.setattr(documents, "expected", _store_says_more("0.01"))
    _, _, failures = run_pass(configure(settings, rounding_item="Services"))
    assert failures == []
    invoice = next(i for i in books(sandbox)["Invoice"] if i["DocNumber"] == "DS-1001")
    rounding = [line for line in invoice["Line"] if line.get("Description") == "Rounding"]
    assert [line["Amount"] for line in rounding] == [Decimal("0.01")] or \
        [Decimal(str(line["Amount"])) for line in rounding] == [Decimal("0.01")]
    events = ledger_rows(settings, "SELECT kind, detail FROM events WHERE kind = 'rounding'")
    assert len(events) == 1 and "DS-1001" in events[0][1]


def test_a_total_mismatch_is_recorded_with_both_figures_without_blocking_the_order(sandbox, settings, monkeypatch):
    import json

    import adapters.quickbooks_documents as documents
    monkeypatch.setattr(documents, "expected", _store_says_more("0.50"))
    _, _, failures = run_pass(configure(settings, rounding_item="Services"))
    # The order goes on (payments and the deal are booked); the invoice step ends in its own state.
    assert [(f["step"], f["state"]) for f in failures] == [("quickbooks.invoice", "mismatch")]
    assert "the store says" in failures[0]["error"] and failures[0]["what_to_do"]
    events = ledger_rows(settings, "SELECT order_key, detail FROM events WHERE kind = 'total_mismatch'")
    assert len(events) == 1 and "the store says" in events[0][1]
    details = json.loads(ledger_rows(settings, "SELECT details FROM bindings WHERE kind = 'invoice' AND"
                                               " canonical_key = ?", events[0][0])[0][0])
    mismatch = details["Mismatch"]
    assert Decimal(mismatch["store_total"]) - Decimal(mismatch["qbo_total"]) == Decimal("0.50")
