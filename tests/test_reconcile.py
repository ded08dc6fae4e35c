"""The reconciler against the sandbox: each kind of drift is found, ``--fix`` repairs only the safe ones.

Nothing is mocked. Orders are synced, then drift is made the way it happens: a
bookkeeper voids an invoice, changes an amount and deletes a payment in
QuickBooks (through the API, as another app); a salesperson edits a deal and
deletes a contact in HubSpot; a webhook and a poll miss an order at the store;
a ledger binding points at nothing.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from adapters.quickbooks import to_qbo_json
from connector.cli import main
from connector.composition import build_runners, build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import sync_pass
from connector.findings import accept
from connector.ledger import Ledger
from connector.reconcile import reconcile, run_scheduled
from sandbox.generator import generate_orders
from sandbox.seed import CREDENTIALS, REALM, SHOP, seed
from tests.test_quickbooks_target import books, ledger_rows

ORDERS = 32  # 16 per store: every generator case in each store


@pytest.fixture
def synced(sandbox, tmp_path):
    """Two seeded stores, synced once into HubSpot and QuickBooks."""
    settings = load_config(write_config(tmp_path, seed(sandbox.urls, orders=ORDERS, seed_value=5)))
    ledger = Ledger(settings.ledger_path)
    try:
        sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
        assert ledger.failures() == []
    finally:
        ledger.close()
    return settings


def run_reconcile(settings, **kwargs):
    ledger = Ledger(settings.ledger_path)
    try:
        return reconcile(settings, ledger, **kwargs)
    finally:
        ledger.close()




def key_of(doc: dict) -> str:
    return re.search(r"\((demo-[a-z]+:\d+)\)", doc["PrivateNote"]).group(1)


def found(result) -> set[tuple[str, str, str]]:
    return {(f["order_key"], f["kind"], f["subject"]) for f in result.findings if f["status"] != "fixed"}


class Bookkeeper:
    """A person working in QuickBooks through the API, as another app (their own OAuth client)."""

    def __init__(self, sandbox):
        self.base = f"{sandbox.url('quickbooks')}/v3/company/{REALM}"
        refresh = sandbox.control("quickbooks", "POST", "oauth/clients", json={
            "client_id": "bookkeeper", "client_secret": "s", "realm_id": REALM})["refresh_token"]
        self.token = httpx.post(f"{sandbox.url('quickbooks')}/oauth2/v1/tokens/bearer", auth=("bookkeeper", "s"),
                                data={"grant_type": "refresh_token", "refresh_token": refresh}).json()["access_token"]

    def post(self, entity: str, body: dict, **params) -> dict:
        answer = httpx.post(f"{self.base}/{entity.lower()}", params=params, content=to_qbo_json(body),
                            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                                     "Accept": "application/json"})
        assert answer.status_code == 200, answer.text
        return answer.json()


def hubspot(sandbox, method: str, path: str, **kwargs) -> httpx.Response:
    answer = httpx.request(method, f"{sandbox.url('hubspot')}{path}", timeout=30, **kwargs,
                           headers={"Authorization": f"Bearer {CREDENTIALS['hubspot']['access_token']}"})
    assert answer.status_code < 300, answer.text
    return answer


def test_a_clean_sync_reconciles_without_findings_and_the_next_run_starts_where_it_ended(sandbox, synced):
    first = run_reconcile(synced)
    assert first.findings == [] and first.exit_code == 0, [f["detail"] for f in first.findings]
    assert [r.error for r in first.runs] == [None, None]
    assert all(r.checked >= ORDERS // 2 for r in first.runs)  # the first run looks 30 days back
    second = run_reconcile(synced)
    assert [r.since for r in second.runs] == [r.until for r in first.runs]
    assert second.findings == [] and second.exit_code == 0
    runs = ledger_rows(synced, "SELECT store, finished_at, error, cdc_since FROM reconcile_runs ORDER BY id")
    assert len(runs) == 4 and all(r[1] and r[2] is None and r[3] for r in runs)
    # The command: JSON for scripts, exit 0 when nothing needs a person.
    answer = CliRunner().invoke(main, ["reconcile", "--config", str(synced_config(synced)), "--json"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["findings"] == [] and len(json.loads(answer.output)["runs"]) == 2


def test_each_kind_of_drift_is_found_and_fix_repairs_only_the_safe_ones(sandbox, synced):
    qbo = books(sandbox)
    invoices = {key_of(i): i for i in qbo["Invoice"] if not i["PrivateNote"].startswith("Voided")}
    paid = {line["LinkedTxn"][0]["TxnId"] for p in qbo["Payment"] for line in p["Line"]}
    unpaid = sorted(k for k, i in invoices.items() if i["Id"] not in paid and Decimal(str(i["TotalAmt"])) > 0)
    voided_key, changed_key = unpaid[0], unpaid[1]
    single = [p for p in qbo["Payment"] if sum(1 for q in qbo["Payment"] if key_of(q) == key_of(p)) == 1]
    payment = sorted(single, key=key_of)[0]
    paid_key = key_of(payment)
    person = Bookkeeper(sandbox)

    # (1) a bookkeeper voids an invoice; (2) changes an invoice's amount; (3) deletes a payment.
    invoice = invoices[voided_key]
    person.post("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}, operation="void")
    invoice = invoices[changed_key]
    lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    lines[0]["Amount"] = Decimal(str(lines[0]["Amount"])) + 7
    lines[0]["SalesItemLineDetail"]["UnitPrice"], lines[0]["SalesItemLineDetail"]["Qty"] = lines[0]["Amount"], 1
    person.post("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True, "Line": lines})
    person.post("Payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"]}, operation="delete")

    # (4) an order the connector never saw: placed at the store, its webhook dropped, and stamped before the
    # store's cursor, so the next poll does not read it either.
    cursor = datetime.fromisoformat(ledger_rows(synced, "SELECT value FROM cursors WHERE store = 'demo-shop'")[0][0])
    stamp = (cursor - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec = generate_orders(404, 1, start=cursor - timedelta(hours=2), first_number=1901, variety=False)[0]
    spec.update({"created_at": stamp, "updated_at": stamp, "financial_status": "paid", "cancelled": False})
    sandbox.control("shopify", "POST", f"shops/{SHOP}/orders", json={"orders": [spec]})
    missed = next(o for o in sandbox.state("shopify")["shops"][SHOP]["orders"] if o["name"] == "#1901")
    missed_key = f"demo-shop:{missed['legacyResourceId']}"

    # (5) a salesperson changes a deal's amount in HubSpot.
    deal_key = sorted(k for k in invoices if k not in (voided_key, changed_key, paid_key))[0]
    deal_id = ledger_rows(synced, "SELECT external_id FROM bindings WHERE system = 'hubspot' AND kind = 'deal'"
                                  " AND canonical_key = ?", deal_key)[0][0]
    hubspot(sandbox, "PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": {"amount": "1.00"}})

    # (6) bindings pointing at nothing: a QuickBooks customer binding to an id the company never had, and a
    # HubSpot contact deleted by a person.
    customer_order = sorted(k for k in invoices if k not in (voided_key, changed_key, paid_key, deal_key)
                            and k.startswith("demo-woo:"))[0]
    email = email_of(synced, customer_order)
    ledger_rows(synced, "UPDATE bindings SET external_id = '999999' WHERE system = 'quickbooks' AND kind = 'customer'"
                        " AND canonical_key = ?", f"email:{email}")
    taken = (voided_key, changed_key, paid_key, deal_key, customer_order)
    contact_orders = sorted(k for k in invoices if k not in taken and email_of(synced, k))
    contact_email = email_of(synced, contact_orders[0])
    contact_id = ledger_rows(synced, "SELECT external_id FROM bindings WHERE system = 'hubspot' AND kind = 'contact'"
                                     " AND canonical_key = ?", contact_email)[0][0]
    hubspot(sandbox, "DELETE", f"/crm/v3/objects/contacts/{contact_id}")
    contact_owner = sorted(k for k in contact_orders if email_of(synced, k) == contact_email)[0]

    # -- the reconciler finds each one, and nothing else --------------------------------------------
    result = run_reconcile(synced)
    assert found(result) == {
        (voided_key, "voided_in_target", "quickbooks.invoice"),
        (changed_key, "amount_differs", "quickbooks.invoice"),
        (paid_key, "payment_missing", f"quickbooks.payment:{payment['PaymentRefNum']}"),
        (missed_key, "never_synced", "order"),
        (deal_key, "deal_out_of_date", "hubspot.deal"),
        (customer_order, "binding_dangling", "quickbooks.customer"),
        (contact_owner, "binding_dangling", "hubspot.contact"),
    }, [(f["order_key"], f["kind"], f["detail"]["text"]) for f in result.findings]
    by_order = {(f["order_key"], f["kind"]): f for f in result.findings}
    voided = by_order[(voided_key, "voided_in_target")]
    assert not voided["safe"] and "voided" in voided["proposed_action"] and f"--accept {voided['id']}" in \
        voided["proposed_action"]
    changed = by_order[(changed_key, "amount_differs")]
    assert not changed["safe"] and "A person changed" in changed["proposed_action"]
    assert Decimal(changed["detail"]["quickbooks"]) > Decimal(changed["detail"]["store"]) == \
        Decimal(changed["detail"]["booked"])
    deleted = by_order[(paid_key, "payment_missing")]
    assert not deleted["safe"] and deleted["detail"]["quickbooks"] == "deleted"
    assert "enter the payment again" in deleted["proposed_action"]
    assert by_order[(missed_key, "never_synced")]["safe"]
    deal = by_order[(deal_key, "deal_out_of_date")]
    assert deal["safe"] and deal["detail"]["hubspot"]["amount"] == "1.00"
    assert by_order[(customer_order, "binding_dangling")]["safe"]
    assert result.exit_code == 1 and len(result.open_unsafe) == 3
    first_ids = {f["id"] for f in result.findings}

    # -- --fix repairs the safe ones through the normal steps and leaves the books alone -----------
    before = books(sandbox)
    fixed = run_reconcile(synced, fix=True)
    after = books(sandbox)
    for entity, objects in before.items():
        if isinstance(objects, list):
            now = {o["Id"]: o for o in after.get(entity, [])}
            for obj in objects:
                assert now.get(obj["Id"]) == obj, (entity, obj["Id"])  # nothing a person did was touched
    new_invoices = [i for i in after["Invoice"] if key_of(i) == missed_key]
    assert len(new_invoices) == 1 and Decimal(str(new_invoices[0]["Balance"])) == 0  # booked once, and paid
    assert len([p for p in after["Payment"] if key_of(p) == missed_key]) == 1
    created = {e: len(after.get(e, [])) - len(before.get(e, [])) for e in ("Invoice", "Payment", "Customer")}
    assert created["Invoice"] == 1 and created["Payment"] == 1 and created["Customer"] <= 1
    statuses = {(f["order_key"], f["kind"]): f["status"] for f in fixed.findings}
    assert statuses[(voided_key, "voided_in_target")] == "open"
    assert statuses[(changed_key, "amount_differs")] == "open"
    assert statuses[(paid_key, "payment_missing")] == "open"
    for key in ((missed_key, "never_synced"), (deal_key, "deal_out_of_date"),
                (customer_order, "binding_dangling"), (contact_owner, "binding_dangling")):
        assert statuses[key] == "fixed", (key, statuses)
    deal_now = hubspot(sandbox, "GET", f"/crm/v3/objects/deals/{deal_id}", params={"properties": "amount"}).json()
    assert Decimal(deal_now["properties"]["amount"]) == Decimal(snapshot_total(synced, deal_key))
    contacts = [c for c in sandbox.state("hubspot")["contacts"] if c["properties"]["email"] == contact_email]
    assert len([c for c in contacts if not c.get("archived")]) == 1
    customer = ledger_rows(synced, "SELECT external_id FROM bindings WHERE system = 'quickbooks' AND kind = 'customer'"
                                   " AND canonical_key = ?", f"email:{email}")[0][0]
    assert customer != "999999" and customer in {c["Id"] for c in after["Customer"]}
    assert fixed.exit_code == 1

    # -- a later run keeps one finding per drift and does not reopen the repaired ones ---------------
    again = run_reconcile(synced)
    assert found(again) == {(voided_key, "voided_in_target", "quickbooks.invoice"),
                            (changed_key, "amount_differs", "quickbooks.invoice"),
                            (paid_key, "payment_missing", f"quickbooks.payment:{payment['PaymentRefNum']}")}
    assert {f["id"] for f in again.findings} <= first_ids
    counts = ledger_rows(synced, "SELECT kind, order_key, COUNT(*) FROM findings GROUP BY kind, order_key, subject")
    assert all(n == 1 for _, _, n in counts), counts
    assert ledger_rows(synced, "SELECT COUNT(*) FROM findings WHERE status = 'fixed'")[0][0] == 4
    assert books(sandbox) == after  # still nothing written to the books

    # A bookkeeper accepts what they did on purpose: nothing is left for a person.
    ledger = Ledger(synced.ledger_path)
    try:
        assert accept(ledger, [f["id"] for f in again.open_unsafe]) == 3
    finally:
        ledger.close()
    assert run_reconcile(synced).exit_code == 0


def synced_config(settings):
    return Path(settings.ledger_path).parent / "config.yaml"


def email_of(settings, order_key: str) -> str | None:
    """The order's email as the ledger holds it, lower-cased (the binding key)."""
    snapshot = json.loads(ledger_rows(settings, "SELECT snapshot FROM orders WHERE order_key = ?", order_key)[0][0])
    return (snapshot["customer"]["email"] or "").lower() or None


def snapshot_total(settings, order_key: str) -> str:
    return ledger_rows(settings, "SELECT total FROM orders WHERE order_key = ?", order_key)[0][0]


def test_a_deleted_invoice_is_reported_and_a_deleted_deal_is_written_again(sandbox, synced):
    qbo = books(sandbox)
    paid = {line["LinkedTxn"][0]["TxnId"] for p in qbo["Payment"] for line in p["Line"]}
    invoice = sorted((i for i in qbo["Invoice"] if i["Id"] not in paid and not i["PrivateNote"].startswith("Voided")),
                     key=key_of)[0]
    Bookkeeper(sandbox).post("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}, operation="delete")
    deal_key = sorted(key_of(i) for i in qbo["Invoice"] if key_of(i) != key_of(invoice))[0]
    deal_id = ledger_rows(synced, "SELECT external_id FROM bindings WHERE system = 'hubspot' AND kind = 'deal'"
                                  " AND canonical_key = ?", deal_key)[0][0]
    hubspot(sandbox, "DELETE", f"/crm/v3/objects/deals/{deal_id}")

    result = run_reconcile(synced, fix=True)
    by_kind = {f["kind"]: f for f in result.findings}
    assert set(by_kind) == {"deleted_in_target", "deal_missing"}, [f["detail"] for f in result.findings]
    gone = by_kind["deleted_in_target"]
    assert gone["order_key"] == key_of(invoice) and gone["status"] == "open" and not gone["safe"]
    assert invoice["DocNumber"] in gone["proposed_action"]
    assert by_kind["deal_missing"]["status"] == "fixed"
    assert not [i for i in books(sandbox)["Invoice"] if key_of(i) == key_of(invoice)]  # not booked again
    deals = [d for d in sandbox.state("hubspot")["deals"]
             if d["properties"].get("o2c_order_key") == deal_key and not d.get("archived")]
    assert len(deals) == 1
    assert result.exit_code == 1


def test_the_daemon_job_queues_safe_fixes_for_the_workers_and_closes_them_on_its_next_run(sandbox, synced):
    qbo = books(sandbox)
    deal_key = sorted(key_of(i) for i in qbo["Invoice"])[0]
    deal_id = ledger_rows(synced, "SELECT external_id FROM bindings WHERE system = 'hubspot' AND kind = 'deal'"
                                  " AND canonical_key = ?", deal_key)[0][0]
    hubspot(sandbox, "PATCH", f"/crm/v3/objects/deals/{deal_id}", json={"properties": {"dealstage": "qualifiedtobuy"}})
    run_scheduled(synced)
    assert ledger_rows(synced, "SELECT kind, status FROM findings") == [("deal_out_of_date", "requeued")]
    assert ledger_rows(synced, "SELECT state FROM steps WHERE order_key = ? AND step = 'hubspot.deal'",
                       deal_key) == [("pending",)]  # left to the daemon's workers
    ledger = Ledger(synced.ledger_path)
    try:
        sync_pass(build_sources(synced), build_runners(synced, ledger), ledger)
    finally:
        ledger.close()
    run_scheduled(synced)
    assert ledger_rows(synced, "SELECT kind, status FROM findings") == [("deal_out_of_date", "fixed")]
    deal = hubspot(sandbox, "GET", f"/crm/v3/objects/deals/{deal_id}", params={"properties": "dealstage"}).json()
    assert deal["properties"]["dealstage"] != "qualifiedtobuy"
