"""HubSpot target against the sandbox: contacts, deals, line items, associations, write-back.

Nothing is mocked: the sandbox runs as its own process and the connector talks
to it through hubspot-api-client 12.0.0 with only the host changed. Only the
HubSpot runner is built here (the QuickBooks side has its own tests), so the
QuickBooks booking steps stay pending unless a test settles them in the ledger.
Assertions read the emulator's state and request counters.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from adapters.hubspot import HubSpotTarget
from adapters.hubspot_runner import HubSpotRunner
from adapters.shopify import ShopifySource
from adapters.woocommerce import WooCommerceSource
from connector.config import load_config
from connector.demo import write_config
from connector.engine import PassReport, run_due_steps, sync_pass
from connector.ledger import Ledger
from connector.snapshot import from_json
from mappings.hubspot_deal import line_items
from sandbox.seed import SHOP, SITE, seed


def make_settings(sandbox, tmp_path, orders: int, seed_value: int = 11):
    credentials = seed(sandbox.urls, orders=orders, seed_value=seed_value)
    return load_config(write_config(tmp_path, credentials))


def sources(settings, only: str | None = None):
    return [(ShopifySource(s) if s.system == "shopify" else WooCommerceSource(s), s) for s in settings.stores
            if only is None or s.system == only]


def hubspot_runner(settings, ledger, **overrides):
    hubspot = settings.hubspot.model_copy(update=overrides)
    return HubSpotRunner(HubSpotTarget(hubspot), ledger, hubspot)


def hubspot_pass(settings, only: str | None = None, **overrides):
    """One pass with only the HubSpot runner (and optionally one store's system); returns (report, ledger)."""
    ledger = Ledger(settings.ledger_path)
    report = sync_pass(sources(settings, only), [hubspot_runner(settings, ledger, **overrides)], ledger)
    return report, ledger


def pull_only(settings) -> Ledger:
    ledger = Ledger(settings.ledger_path)
    sync_pass(sources(settings), [], ledger)
    return ledger


def steps(ledger, kind: str) -> list[dict]:
    rows = ledger.conn.execute(
        "SELECT order_key, step, state, error, what_to_do FROM steps WHERE step = ? OR step LIKE ? ORDER BY id",
        (kind, kind + ":%")).fetchall()
    return [dict(zip(("order_key", "step", "state", "error", "what_to_do"), row)) for row in rows]


def orders(ledger) -> dict:
    keys = [row[0] for row in ledger.conn.execute("SELECT DISTINCT order_key FROM steps")]
    return {key: from_json(ledger.order_snapshot(key)) for key in keys}


def store_totals(sandbox) -> dict[str, tuple[Decimal, str]]:
    shop = sandbox.state("shopify")["shops"][SHOP]["orders"]
    woo = sandbox.state("woocommerce")["sites"][SITE]["orders"]
    totals = {f"{SHOP}:{o['legacyResourceId']}": (Decimal(o["totalPriceSet"]["shopMoney"]["amount"]),
                                                 o["totalPriceSet"]["shopMoney"]["currencyCode"]) for o in shop}
    totals.update({f"{SITE}:{o['id']}": (Decimal(o["total"]), o["currency"]) for o in woo})
    return totals


def counters(sandbox) -> dict:
    return sandbox.control("hubspot", "GET", "counters")


def calls(sandbox, endpoint: str, status: str | None = None) -> int:
    by_status = counters(sandbox)["by_endpoint"].get(endpoint, {})
    return sum(n for s, n in by_status.items() if status is None or s == status)


def writes(sandbox) -> int:
    return sum(n for endpoint, by_status in counters(sandbox)["by_endpoint"].items()
               if not endpoint.startswith("GET") and "/search" not in endpoint for n in by_status.values())


def associated(state, from_type, from_id, to_type) -> set[str]:
    return {a["toObjectId"] for a in state["associations"]
            if a["fromObjectType"] == from_type and a["fromObjectId"] == from_id and a["toObjectType"] == to_type}


def fault(sandbox, **rule) -> None:
    sandbox.control("hubspot", "POST", "faults", json={"faults": [rule]})


# -- the full variety ---------------------------------------------------------------------
def test_full_variety_books_one_deal_per_order_with_store_totals_lines_and_associations(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=40)  # 20 per store: every generator case in each
    report, ledger = hubspot_pass(settings)
    canonical = orders(ledger)
    assert len(canonical) == 40
    for kind in ("hubspot.contact", "hubspot.deal"):
        states = {row["state"] for row in steps(ledger, kind)}
        assert states <= {"done", "skipped"}, steps(ledger, kind)
    assert {row["state"] for row in steps(ledger, "hubspot.deal")} == {"done"}

    state = sandbox.state("hubspot")
    deals = {d["properties"]["o2c_order_key"]: d for d in state["deals"]}
    assert len(state["deals"]) == len(deals) == 40 and set(deals) == set(canonical)
    totals = store_totals(sandbox)
    for key, deal in deals.items():
        amount, currency = totals[key]
        assert Decimal(deal["properties"]["amount"]) == amount, key
        assert deal["properties"]["amount"] == f"{amount:.2f}"
        assert deal["properties"]["deal_currency_code"] == currency
        assert deal["properties"]["pipeline"] == "default"
        assert deal["properties"]["closedate"].endswith("Z")

    # Line items: one per canonical line, with its SKU, quantity, unit price and discount, under its deal.
    items = {i["properties"]["o2c_line_key"]: i for i in state["line_items"]}
    assert len(items) == len(state["line_items"])
    expected_count = 0
    for key, order in canonical.items():
        deal_id = deals[key]["id"]
        linked = associated(state, "deals", deal_id, "line_items")
        expected = {line_key: props for line_key, props in line_items(order, "o2c_line_key").items()}
        expected_count += len(expected)
        assert linked == {items[k]["id"] for k in expected}, key
        for line in order.lines:
            item = items[f"{key}:{line.source_line_id}"]["properties"]
            assert item["quantity"] == str(line.quantity)
            assert Decimal(item["price"]) == line.unit_price.amount
            assert Decimal(item["discount"]) == line.discount_total.amount
            assert item.get("hs_sku") == line.sku
            assert Decimal(item["price"]) >= 0
    assert len(items) == expected_count
    assert any(len(associated(state, "deals", d["id"], "line_items")) == 120 for d in state["deals"])  # many_lines

    # Contacts: one per email; each deal with an email is linked to that contact, guests to none.
    contacts = {c["properties"]["email"]: c["id"] for c in state["contacts"]}
    for key, order in canonical.items():
        linked = associated(state, "deals", deals[key]["id"], "contacts")
        if order.customer.email:
            assert linked == {contacts[order.customer.email.lower()]}, key
            assert deals[key]["id"] in associated(state, "contacts", contacts[order.customer.email.lower()], "deals")
        else:
            assert linked == set()
    skipped = [row for row in steps(ledger, "hubspot.contact") if row["state"] == "skipped"]
    assert skipped and all("has no email" in row["error"] for row in skipped)

    # Stages follow the order's status (the default map).
    for key, order in canonical.items():
        stage = deals[key]["properties"]["dealstage"]
        if order.cancelled_at is not None or order.financial_status.value in ("refunded", "voided"):
            assert stage == "closedlost", key
        elif order.financial_status.value in ("paid", "partially_refunded"):
            assert stage == "closedwon", key
        else:
            assert stage == "contractsent", key
    ledger.close()

    # A second pass writes nothing at all.
    before_writes, before_state = writes(sandbox), sandbox.state("hubspot")
    second, ledger = hubspot_pass(settings)
    assert second.created == {}
    assert writes(sandbox) == before_writes
    assert sandbox.state("hubspot") == before_state
    ledger.close()


def test_deal_sync_writes_the_quickbooks_document_number_balance_and_status(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    _, ledger = hubspot_pass(settings)
    canonical = orders(ledger)
    # Stand in for the QuickBooks runner: bind each order's document as it does, then settle its steps.
    booked = {}
    for n, key in enumerate(sorted(canonical)):
        order = canonical[key]
        kind = "sales_receipt" if n % 4 == 0 else "invoice"
        total = order.total.rounded().amount
        balance = Decimal("0") if kind == "sales_receipt" or n % 3 == 0 else total
        ledger.bind("quickbooks", kind, key, str(9000 + n),
                    {"DocNumber": f"DS-{1000 + n}", "TotalAmt": str(total), "Balance": str(balance)})
        booked[key] = (f"DS-{1000 + n}", balance, "paid" if balance == 0 else "open")
    with ledger.transaction():
        ledger.conn.execute("UPDATE steps SET state='done' WHERE step LIKE 'quickbooks.%'")
    report = PassReport()
    run_due_steps(ledger, [hubspot_runner(settings, ledger)], report)
    sync_steps = steps(ledger, "hubspot.deal_sync")
    assert sync_steps and {row["state"] for row in sync_steps} == {"done"}, sync_steps
    assert calls(sandbox, "POST /crm/v3/objects/deals/batch/update", "200") == 1  # 16 orders, one batch

    state = sandbox.state("hubspot")
    assert {p["name"] for p in state["properties"]["deals"]} >= {"o2c_order_key", "o2c_qbo_doc_number",
                                                                  "o2c_qbo_balance", "o2c_qbo_status"}
    for deal in state["deals"]:
        props = deal["properties"]
        number, balance, status = booked[props["o2c_order_key"]]
        assert props["o2c_qbo_doc_number"] == number
        assert Decimal(props["o2c_qbo_balance"]) == balance and props["o2c_qbo_balance"] == f"{balance:.2f}"
        assert props["o2c_qbo_status"] == status
    ledger.close()


def test_quickbooks_steps_in_the_same_pass_feed_the_write_back(sandbox, tmp_path):
    """With the real QuickBooks runner: deal_sync runs after the booking steps, in one pass."""
    from connector import composition
    settings = make_settings(sandbox, tmp_path, orders=16)
    ledger = Ledger(settings.ledger_path)
    sync_pass(composition.build_sources(settings), composition.build_runners(settings, ledger), ledger)
    done = [row for row in steps(ledger, "hubspot.deal_sync") if row["state"] == "done"]
    assert done, ledger.step_counts()  # the booking steps finished, so every write-back ran
    deals = {d["properties"]["o2c_order_key"]: d["properties"] for d in sandbox.state("hubspot")["deals"]}
    for row in done:
        details = (ledger.binding_details("quickbooks", "invoice", row["order_key"])
                   or ledger.binding_details("quickbooks", "sales_receipt", row["order_key"]))
        assert deals[row["order_key"]]["o2c_qbo_doc_number"] == details["DocNumber"]
        assert Decimal(deals[row["order_key"]]["o2c_qbo_balance"]) == Decimal(str(details["Balance"]))
    ledger.close()


# -- faults and partial failures ------------------------------------------------------------
def _status_with_orders(ledger, wanted=("pending", "authorized", "partially_paid")) -> str:
    """A financial status some (not all) of the pulled, not-cancelled orders have."""
    seen = [o.financial_status.value for o in orders(ledger).values() if o.cancelled_at is None]
    return next(s for s in wanted if s in seen)


def test_a_configured_stage_id_missing_from_the_pipeline_kills_only_those_deals_naming_the_setting(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=32)
    ledger = pull_only(settings)
    status = _status_with_orders(ledger)
    hit = {k for k, o in orders(ledger).items() if o.financial_status.value == status and o.cancelled_at is None
           and f"{status}+{o.fulfillment_status.value}" not in settings.hubspot.stage_map()}
    stages = {**settings.hubspot.stage_map(), status: "nosuchstage"}
    run_due_steps(ledger, [hubspot_runner(settings, ledger, deal_stages=stages)], PassReport())
    rows = {row["order_key"]: row for row in steps(ledger, "hubspot.deal")}
    dead = {k for k, row in rows.items() if row["state"] == "dead"}
    assert dead == hit and 0 < len(dead) < len(rows)
    for key in dead:
        assert f"hubspot.deal_stages.{status} is 'nosuchstage'" in rows[key]["error"]
        assert "closedwon" in rows[key]["error"]  # the pipeline's real stage ids are listed
        assert f"set hubspot.deal_stages.{status}" in rows[key]["what_to_do"]
    assert {row["state"] for k, row in rows.items() if k not in dead} == {"done"}
    deals = {d["properties"]["o2c_order_key"] for d in sandbox.state("hubspot")["deals"]}
    assert deals == set(rows) - dead
    ledger.close()


def test_a_207_from_hubspot_becomes_per_order_outcomes_while_the_rest_of_the_batch_is_written(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=32)
    ledger = pull_only(settings)
    status = _status_with_orders(ledger)
    stages = {**settings.hubspot.stage_map(), status: "nosuchstage"}
    # Without the pipelines scope the connector cannot check stage ids itself: HubSpot judges each deal.
    fault(sandbox, endpoint="GET /crm/v3/pipelines/deals", status=403, times=-1,
          body={"status": "error", "message": "This app hasn't been granted all required scopes",
                "category": "MISSING_SCOPES"})
    run_due_steps(ledger, [hubspot_runner(settings, ledger, deal_stages=stages)], PassReport())
    assert calls(sandbox, "POST /crm/v3/objects/deals/batch/upsert", "207") == 1
    rows = {row["order_key"]: row for row in steps(ledger, "hubspot.deal")}
    dead = {k for k, row in rows.items() if row["state"] == "dead"}
    assert 0 < len(dead) < len(rows)
    for key in dead:
        assert "nosuchstage was not one of the allowed options" in rows[key]["error"]
        assert key in rows[key]["error"] and rows[key]["what_to_do"]
    assert {row["state"] for k, row in rows.items() if k not in dead} == {"done"}
    state = sandbox.state("hubspot")
    assert {d["properties"]["o2c_order_key"] for d in state["deals"]} == set(rows) - dead
    assert not any(i["properties"]["o2c_line_key"].rsplit(":", 1)[0] in dead for i in state["line_items"])
    ledger.close()


def test_rate_limited_deal_upserts_are_retried_in_the_request_and_end_done(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    fault(sandbox, endpoint="deals/batch/upsert", status=429, times=2, retry_after=1)
    report, ledger = hubspot_pass(settings)
    assert calls(sandbox, "POST /crm/v3/objects/deals/batch/upsert", "429") == 2
    assert calls(sandbox, "POST /crm/v3/objects/deals/batch/upsert", "200") == 1
    assert {row["state"] for row in steps(ledger, "hubspot.deal")} == {"done"}
    assert len(sandbox.state("hubspot")["deals"]) == 16
    ledger.close()


def test_rate_limit_that_outlasts_the_retries_leaves_the_steps_failed_for_a_later_attempt(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    fault(sandbox, endpoint="deals/batch/upsert", status=429, times=-1, retry_after=0.01)
    _, ledger = hubspot_pass(settings)
    rows = steps(ledger, "hubspot.deal")
    assert {row["state"] for row in rows} == {"failed"}
    assert all("rate limiting" in row["error"] for row in rows)
    ledger.close()


def test_an_injected_409_ends_as_a_dead_step_that_says_what_to_do(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    fault(sandbox, endpoint="deals/batch/upsert", status=409, times=1,
          body={"status": "error", "message": "Deal already exists. Existing ID: 4242", "category": "CONFLICT"})
    _, ledger = hubspot_pass(settings)
    rows = steps(ledger, "hubspot.deal")
    assert {row["state"] for row in rows} == {"dead"}
    for row in rows:
        assert "conflict" in row["error"] and "Existing ID: 4242" in row["error"]
        assert "duplicate" in row["what_to_do"] and "replay" in row["what_to_do"]
    assert sandbox.state("hubspot")["deals"] == []
    ledger.close()


def test_more_than_100_orders_go_in_several_batches_of_at_most_100(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=210, seed_value=5)
    _, ledger = hubspot_pass(settings, only="woocommerce")  # 105 orders; the Shopify pull adds only time
    assert {row["state"] for row in steps(ledger, "hubspot.deal")} == {"done"}
    state = sandbox.state("hubspot")
    assert len(state["deals"]) == 105
    # The emulator answers 400 to any batch of 101+, so success in several calls proves the split.
    assert calls(sandbox, "POST /crm/v3/objects/deals/batch/upsert", "200") == 2
    assert calls(sandbox, "POST /crm/v3/objects/contacts/batch/upsert", "200") >= 2
    line_calls = calls(sandbox, "POST /crm/v3/objects/line_items/batch/upsert", "200")
    assert line_calls >= -(-len(state["line_items"]) // 100)
    assert calls(sandbox, "POST /crm/v4/associations/deals/line_items/batch/create") >= line_calls
    refused = {e: s for e, s in counters(sandbox)["by_endpoint"].items()
               if set(s) - {"200", "201"} and not e.startswith("GET /crm/v3/properties/")}  # 404: not created yet
    assert refused == {}
    ledger.close()


# -- orders without an email ---------------------------------------------------------------------
def test_orders_without_email_are_skipped_with_the_reason_under_the_skip_rule(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=32)
    _, ledger = hubspot_pass(settings)
    guests = {k for k, o in orders(ledger).items() if not o.customer.email}
    rows = {row["order_key"]: row for row in steps(ledger, "hubspot.contact")}
    assert guests and {k for k, r in rows.items() if r["state"] == "skipped"} == guests
    for key in guests:
        assert "has no email, and hubspot.no_email_rule is 'skip'" in rows[key]["error"]
    ledger.close()


def test_orders_without_email_match_a_contact_by_phone_or_are_skipped_naming_the_phone(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=32)
    ledger = pull_only(settings)
    guests = {k: o for k, o in orders(ledger).items() if not o.customer.email}
    phones = {k: o.customer.phone or (o.billing_address.phone if o.billing_address else None)
              for k, o in guests.items()}
    with_phone = sorted(k for k, p in phones.items() if p)
    assert with_phone, phones
    known = with_phone[0]
    created = httpx.post(f"{sandbox.url('hubspot')}/crm/v3/objects/contacts", json={"properties": {
        "email": "front.desk@example.com", "phone": phones[known]}},
        headers={"Authorization": "Bearer pat-sandbox-demo-token"}).json()
    run_due_steps(ledger, [hubspot_runner(settings, ledger, no_email_rule="match_by_phone")], PassReport())
    rows = {row["order_key"]: row for row in steps(ledger, "hubspot.contact")}
    matched = {k for k in guests if phones[k] == phones[known]}
    for key in guests:
        if key in matched:
            assert rows[key]["state"] == "done"
        else:
            assert rows[key]["state"] == "skipped"
            assert ("no HubSpot contact has the phone" in rows[key]["error"]) == bool(phones[key])
    assert calls(sandbox, "POST /crm/v3/objects/contacts/search") == sum(1 for k in guests if phones[k])
    state = sandbox.state("hubspot")
    deal = next(d for d in state["deals"] if d["properties"]["o2c_order_key"] == known)
    assert associated(state, "deals", deal["id"], "contacts") == {created["id"]}
    ledger.close()


# -- configuration -------------------------------------------------------------------------------
def test_a_date_versioned_api_path_sends_the_same_bodies_under_the_new_prefix(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    _, ledger = hubspot_pass(settings, api_version="2026-03")
    assert {row["state"] for row in steps(ledger, "hubspot.deal")} == {"done"}
    endpoints = counters(sandbox)["by_endpoint"]
    assert "POST /crm/objects/2026-03/deals/batch/upsert" in endpoints
    assert "POST /crm/associations/2026-03/deals/line_items/batch/create" in endpoints
    assert "GET /crm/pipelines/2026-03/deals" in endpoints
    assert not any("/v3/" in e or "/v4/" in e for e in endpoints), endpoints
    ledger.close()


def test_rate_limit_headers_pace_the_calls_so_a_small_window_is_never_exceeded(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    sandbox.control("hubspot", "POST", "config", json={"ten_second_limit": 8})
    _, ledger = hubspot_pass(settings, only="woocommerce")
    assert {row["state"] for row in steps(ledger, "hubspot.deal")} == {"done"}
    assert counters(sandbox)["requests"] > 8  # more calls than one window allows ...
    assert counters(sandbox)["rate_limited"] == 0  # ... yet no 429: the headers said when to wait
    ledger.close()


def test_a_lost_answer_after_the_write_is_retried_without_duplicating_deals_or_line_items(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=16)
    sandbox.control("hubspot", "POST", "faults", json={"faults": [
        {"endpoint": "deals/batch/upsert", "status": 503, "times": 1, "after_apply": True},
        {"endpoint": "line_items/batch/upsert", "status": 502, "times": 1, "after_apply": True}]})
    _, ledger = hubspot_pass(settings)
    assert {row["state"] for row in steps(ledger, "hubspot.deal")} == {"done"}
    state = sandbox.state("hubspot")
    assert len(state["deals"]) == 16
    keys = [i["properties"]["o2c_line_key"] for i in state["line_items"]]
    assert len(keys) == len(set(keys)) == sum(len(line_items(o, "o2c_line_key")) for o in orders(ledger).values())
    ledger.close()


def test_the_adapter_splits_any_number_of_records_into_batches_of_100(sandbox, tmp_path):
    settings = make_settings(sandbox, tmp_path, orders=2)
    target = HubSpotTarget(settings.hubspot)
    records = {f"shopper{n}@example.com": {"email": f"shopper{n}@example.com", "firstname": f"S{n}"}
               for n in range(250)}
    results = target.upsert("contacts", records, "email")
    assert all(r.error is None and r.created for r in results.values()) and len(results) == 250
    assert calls(sandbox, "POST /crm/v3/objects/contacts/batch/upsert", "200") == 3
    assert len(sandbox.state("hubspot")["contacts"]) == 250
