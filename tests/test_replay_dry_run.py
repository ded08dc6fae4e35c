"""``o2c replay --dry-run`` against the sandbox: it shows, field by field, what a replay would send
against what the target holds now, and changes nothing (ledger and sandbox equal before and after);
the replay after fixing the cause books exactly once."""

from __future__ import annotations

import json
import re
import sqlite3
from decimal import Decimal

import httpx
import pytest
from click.testing import CliRunner

from adapters.hubspot import HubSpotTarget
from connector.cli import main
from connector.composition import build_runners, build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import sync_pass
from connector.ledger import Ledger
from sandbox.generator import generate_orders
from sandbox.seed import REALM, SHOP, seed

GHOST = "GHOST-1"  # a SKU the QuickBooks company has no item for
MAPPED = "MUG-12OZ"  # an item the company has (sandbox/seed.py)


def order_spec(number: int, sku: str, *, price: str = "20.00") -> dict:
    """A plain unpaid order: one untaxed line and 5.00 shipping, so its steps end at the invoice."""
    spec = generate_orders(number, 1, first_number=number, variety=False)[0]
    spec.update(lines=[{"sku": sku, "title": "Widget", "quantity": 1, "unit_price": price, "discount": "0.00",
                        "taxable": False}],
                shipping=[{"title": "Standard", "code": "standard", "price": "5.00"}], tax_rate="0",
                tax_title="No tax", financial_status="pending", note=None)
    return spec


def shop_orders(sandbox) -> list[dict]:
    return sandbox.state("shopify")["shops"][SHOP]["orders"]


@pytest.fixture
def world(sandbox, tmp_path):
    return ghost_shop(sandbox, tmp_path)


def ghost_shop(sandbox, tmp_path):
    """A shop with one order of ``GHOST``; a config without ``default_item`` (so its invoice will die)."""
    credentials = seed(sandbox.urls, orders=0)
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders",
               json={"orders": [order_spec(1001, GHOST)]}, timeout=30).raise_for_status()
    path = write_config(tmp_path, credentials)
    path.write_text(re.sub(r"(?m)^  default_item:.*\n", "", path.read_text()))
    return path


def fix_item_map(config_path) -> None:
    """The merchant's fix: map ``GHOST`` to an item the company has."""
    text = config_path.read_text()
    config_path.write_text(text.replace("  refunds: refund_receipt", f"  item_map: {{{GHOST}: {MAPPED}}}\n"
                                                                    "  refunds: refund_receipt", 1))


def sync(config_path) -> None:
    settings = load_config(config_path)
    ledger = Ledger(settings.ledger_path)
    try:
        sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    finally:
        ledger.close()


def steps(config_path) -> dict[str, dict]:
    """``{step: row}`` of the ledger's steps (one order in these tests)."""
    conn = sqlite3.connect(load_config(config_path).ledger_path)
    try:
        conn.row_factory = sqlite3.Row
        return {row["step"]: dict(row) for row in conn.execute("SELECT * FROM steps")}
    finally:
        conn.close()


# The shared rate budget's bookkeeping (connector/rate_budget_shared.py): a dry run's reads really do
# spend the vendors' allowance, and the other processes on the ledger must know it. It is not the
# orders' history, which is what a dry run promises to leave alone.
RATE_TABLES = ('"rate_slots"', '"rate_blocks"')


def ledger_dump(config_path) -> list[str]:
    """Every table's contents, as SQL: what "the ledger changed" means here (rate bookkeeping aside)."""
    conn = sqlite3.connect(load_config(config_path).ledger_path)
    try:
        return [line for line in conn.iterdump() if not line.startswith(tuple(f"INSERT INTO {t}" for t in RATE_TABLES))]
    finally:
        conn.close()


def targets(sandbox) -> dict:
    return {system: sandbox.state(system) for system in ("hubspot", "quickbooks")}


def replay(*args: str) -> str:
    result = CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def invoices(sandbox, number: str) -> list[dict]:
    return [i for i in sandbox.state("quickbooks")["companies"][REALM]["Invoice"] if i["DocNumber"] == number]


def test_dry_run_of_a_dead_invoice_changes_nothing_and_after_the_fix_shows_the_lines_then_replay_books_once(
        sandbox, world):
    sync(world)
    invoice = steps(world)["quickbooks.invoice"]
    assert invoice["state"] == "dead"
    assert GHOST in invoice["error"] and "quickbooks.item_map" in invoice["what_to_do"]

    # 1. Dry run before the fix: the same error the replay would meet; nothing changed anywhere.
    ledger_before, sandbox_before = ledger_dump(world), targets(sandbox)
    shown = replay("--config", str(world), "--state", "dead", "--dry-run")
    assert "quickbooks.invoice" in shown and "would fail" in shown and GHOST in shown
    assert ledger_dump(world) == ledger_before
    assert targets(sandbox) == sandbox_before

    # 2. Map the SKU; the dry run now shows the invoice it would create, field by field.
    fix_item_map(world)
    mug = next(i for i in sandbox.state("quickbooks")["companies"][REALM]["Item"] if i["Name"] == MAPPED)
    preview = json.loads(replay("--config", str(world), "--state", "dead", "--dry-run", "--json"))
    (step,) = preview["steps"]
    assert (step["step"], step["verdict"]) == ("quickbooks.invoice", "would send")
    (write,) = step["writes"]
    assert (write["system"], write["operation"], write["entity"], write["key"]) == \
        ("quickbooks", "create", "Invoice", "DS-1001")
    assert write["summary"] == "would create Invoice DS-1001" and write["current"] is None
    rows = {row["path"]: row for row in write["diff"]["rows"]}
    item_ref = rows["Line[0].SalesItemLineDetail.ItemRef.value"]
    assert (item_ref["sent"], item_ref["current"], item_ref["status"]) == (str(mug["Id"]), None, "new")
    assert Decimal(rows["Line[0].Amount"]["sent"]) == Decimal("20.00") and rows["DocNumber"]["sent"] == "DS-1001"
    assert {row["status"] for row in rows.values()} == {"new"}
    table = replay("--config", str(world), "--state", "dead", "--dry-run")
    assert "would create Invoice DS-1001" in table and "Line[0].SalesItemLineDetail.ItemRef.value" in table
    assert ledger_dump(world) == ledger_before
    assert targets(sandbox) == sandbox_before
    assert invoices(sandbox, "DS-1001") == []

    # 3. The replay books it, once; a second replay and another sync book nothing more.
    replay("--config", str(world), "--state", "dead")
    (booked,) = invoices(sandbox, "DS-1001")
    assert booked["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == str(mug["Id"])
    assert steps(world)["quickbooks.invoice"]["state"] == "done"
    after = targets(sandbox)["quickbooks"]
    assert "Replaying 0 step(s)" in replay("--config", str(world), "--state", "dead")
    sync(world)
    assert len(invoices(sandbox, "DS-1001")) == 1
    assert targets(sandbox)["quickbooks"]["companies"][REALM]["Invoice"] == after["companies"][REALM]["Invoice"]


def test_dry_run_of_a_dead_deal_shows_the_amount_the_store_changed_since_and_fresh_reads_it_into_a_copy(
        sandbox, world):
    fix_item_map(world)
    # HubSpot refuses the line items once: the deal is written (25.00), its step is dead.
    sandbox.control("hubspot", "POST", "faults", json={"faults": [{
        "endpoint": "line_items/batch/upsert", "status": 400, "times": 1,
        "body": {"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR",
                 "correlationId": "0"}}]})
    sync(world)
    deal_step = steps(world)["hubspot.deal"]
    assert deal_step["state"] == "dead", deal_step
    (deal,) = sandbox.state("hubspot")["deals"]
    assert deal["properties"]["amount"] in ("25.00", "25", "25.0")

    # The shop edits the order: shipping 5.00 -> 10.00, total 25.00 -> 30.00.
    (node,) = shop_orders(sandbox)
    shipping = node["shippingLines"]
    for line in shipping["nodes"] if isinstance(shipping, dict) else shipping:
        for bag in ("originalPriceSet", "discountedPriceSet"):
            if line.get(bag):
                line[bag] = _money("10.0")
    fields = {"shippingLines": shipping}
    for bag in ("totalShippingPriceSet", "currentShippingPriceSet"):
        fields[bag] = _money("10.0")
    for bag in ("totalPriceSet", "currentTotalPriceSet", "originalTotalPriceSet", "totalOutstandingSet"):
        fields[bag] = _money("30.0")
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders/{node['legacyResourceId']}/touch",
               json={"fields": fields, "updated_at": "2030-01-01T00:00:00Z"}, timeout=30).raise_for_status()

    ledger_before, sandbox_before = ledger_dump(world), targets(sandbox)
    select = ("--config", str(world), "--step", "hubspot.deal", "--dry-run", "--json")
    # Without --fresh the ledger's snapshot is what a replay sends: the amount HubSpot holds.
    (step,) = json.loads(replay(*select))["steps"]
    deal_write = next(w for w in step["writes"] if w["entity"] == "deals")
    assert deal_write["operation"] == "upsert" and deal_write["target_id"] == deal["id"]
    amount = next(r for r in deal_write["diff"]["rows"] if r["path"] == "properties.amount")
    assert amount["status"] == "same"
    # With --fresh the order is re-read (into the copy): the replay would change the amount.
    preview = json.loads(replay(*select, "--fresh"))
    assert preview["refetched"][0]["changed"] == 1
    (step,) = preview["steps"]
    assert step["verdict"] == "would send"
    deal_write = next(w for w in step["writes"] if w["entity"] == "deals")
    assert deal_write["summary"].startswith(f"would update deal {deal['id']}")
    amount = next(r for r in deal_write["diff"]["rows"] if r["path"] == "properties.amount")
    assert (amount["sent"], amount["status"]) == ("30.00", "changed")
    assert amount["current"] in ("25.00", "25", "25.0")
    lines = [w for w in step["writes"] if w["entity"] == "line_items"]
    assert lines and all(w["operation"] == "upsert" and w["current"] is None for w in lines)
    assert any(w["operation"] == "associate" for w in step["writes"])
    table = replay("--config", str(world), "--step", "hubspot.deal", "--dry-run", "--fresh")
    assert "properties.amount" in table and "30.00" in table and "changed" in table
    assert "properties.dealname" not in table  # unchanged fields only with --all-fields
    assert "properties.dealname" in replay("--config", str(world), "--step", "hubspot.deal", "--dry-run",
                                           "--fresh", "--all-fields")
    assert ledger_dump(world) == ledger_before
    assert targets(sandbox) == sandbox_before

    # The replay with --fresh writes it: one deal, at the new amount, with its line item.
    replay("--config", str(world), "--step", "hubspot.deal", "--fresh")
    hubspot = sandbox.state("hubspot")
    (deal_after,) = hubspot["deals"]
    assert deal_after["id"] == deal["id"] and deal_after["properties"]["amount"] in ("30.00", "30", "30.0")
    assert len(hubspot["line_items"]) == 1
    assert steps(world)["hubspot.deal"]["state"] == "done"

    # What the dry run reads with: records by a unique property; emails match whatever their case.
    target = HubSpotTarget(load_config(world).hubspot)
    (contact,) = hubspot["contacts"]
    email = contact["properties"]["email"].upper()
    found = target.read_by_property("contacts", "email", [email, "nobody@example.com"], ["firstname"])
    assert list(found) == [email] and found[email]["id"] == contact["id"]
    assert set(found[email]["properties"]) == {"email", "firstname"}


def _money(amount: str) -> dict:
    return {"shopMoney": {"amount": amount, "currencyCode": "USD"},
            "presentmentMoney": {"amount": amount, "currencyCode": "USD"}}


def test_dry_run_of_a_failed_customer_shows_the_customer_it_would_create_and_sends_nothing(sandbox, world):
    fix_item_map(world)
    sandbox.control("quickbooks", "POST", "chaos", json={"faults": [
        {"path": "/customer", "method": "POST", "status": 400, "times": 1}]})
    sync(world)
    assert steps(world)["quickbooks.customer"]["state"] == "failed"  # retried later, or replayed now
    assert steps(world)["quickbooks.invoice"]["state"] == "pending"  # waits for its customer

    ledger_before, sandbox_before = ledger_dump(world), targets(sandbox)
    (step,) = json.loads(replay("--config", str(world), "--state", "failed", "--dry-run", "--json"))["steps"]
    assert (step["step"], step["verdict"]) == ("quickbooks.customer", "would send")
    (write,) = step["writes"]
    assert (write["operation"], write["entity"], write["current"]) == ("create", "Customer", None)
    name = write["body"]["DisplayName"]
    assert write["summary"] == f"would create Customer {name}"
    assert ledger_dump(world) == ledger_before
    assert targets(sandbox) == sandbox_before

    replay("--config", str(world), "--state", "failed")
    customers = sandbox.state("quickbooks")["companies"][REALM]["Customer"]
    assert [c["DisplayName"] for c in customers].count(name) == 1
    assert len(invoices(sandbox, "DS-1001")) == 1  # the invoice waited for it and went in the same replay


def test_a_step_waiting_for_one_the_dry_run_would_first_send_is_shown_waiting_not_run(tmp_path, monkeypatch):
    from connector import dry_run
    from connector.engine import StorePull, record_page
    from connector.protocols import Outcome
    from connector.replay import Selection, select
    from tests.test_workers import Source, order

    ledger = Ledger(tmp_path / "ledger.db")
    with ledger.transaction():
        record_page(Source(), [order(1)], ledger, StorePull("shop"))
    ids = dict(ledger.conn.execute("SELECT step, id FROM steps"))
    ledger.finish_step(ids["quickbooks.customer"], "failed", error="QuickBooks is unavailable")
    ledger.finish_step(ids["quickbooks.invoice"], "dead", error="an earlier attempt")
    before = list(ledger.conn.iterdump())
    ran = []

    class Runner:  # stands in for QuickBooksRunner: captures the customer's create
        def __init__(self, recorder):
            self.recorder = recorder

        def run(self, kind, work):
            ran.append(kind)
            write = self.recorder.add(dry_run.Write("quickbooks", "create", "Customer", "C1", {"DisplayName": "C1"},
                                                    "would create Customer C1"))
            return [Outcome(work[0].step_id, "failed", error=dry_run.WouldSend(write))]

    monkeypatch.setattr(dry_run, "_runner", lambda settings, real, copy, system, recorder: Runner(recorder))
    result = dry_run.preview(None, ledger, select(ledger, Selection(states=("failed", "dead"))))
    assert [(s.step, s.verdict) for s in result.steps] == [("quickbooks.customer", "would send"),
                                                            ("quickbooks.invoice", "waits")]
    assert "quickbooks.customer (failed, this replay would send it first)" in result.steps[1].message
    assert ran == ["quickbooks.customer"]
    assert list(ledger.conn.iterdump()) == before
