"""Deals, line items, pipelines, associations v4 and search limits, driven by the official
``hubspot-api-client`` 12.0.0 over loopback; each rule is tripped and its exact body checked.

Rules and their sources (``shared/notes/hubspot.md``): upsert by a unique custom
property (§2.1), deal pipeline/stage options (§2.2, INVALID_OPTION in §5),
line item ``price`` not negative and one single parent deal (§2.3), association
type ids (§2.4), 100 inputs per batch (§3), the search limit apart from the burst
window (§4). Wording the notes do not give is the emulator's and marked so in
``sandbox/hubspot``; those tests pin it so a connector's parser sees a stable body.
"""

from __future__ import annotations

import json

import test_hubspot_emulator as base
from hubspot.crm import contacts as hs_contacts
from hubspot.crm import deals as hs_deals
from hubspot.crm import line_items as hs_items
from hubspot.crm import properties as hs_properties
from hubspot.crm.associations import v4 as hs_assoc
from test_hubspot_emulator import control, error_of, fixture, upsert_contacts, without

# The emulator tests' server fixtures, re-exported (tests/sandbox has no conftest).
_own_server, hs_url, client = base._own_server, base.hs_url, base.client

STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
          "contractsent", "closedwon", "closedlost"]


def invalid_values(*problems: dict) -> dict:
    """The PROPERTY_DOESNT_EXIST-style body (notes §5) for ``problems``, without correlationId."""
    embedded = json.dumps(list(problems), separators=(",", ":"))
    return {"status": "error", "message": f"Property values were not valid: {embedded}",
            "category": "VALIDATION_ERROR"}


def problem(name: str, message: str, code: str) -> dict:
    return {"isValid": False, "message": message, "error": code, "name": name}


def unique_key(client, object_type: str, name: str) -> None:
    client.crm.properties.core_api.create(object_type, hs_properties.PropertyCreate(
        name=name, label=name, type="string", field_type="text", group_name="sandbox", has_unique_value=True))


def spec(type_id: int, model=hs_deals.AssociationSpec):
    return model(association_category="HUBSPOT_DEFINED", association_type_id=type_id)


def deal(client, name: str = "Order #1001", **props) -> str:
    return client.crm.deals.basic_api.create(hs_deals.SimplePublicObjectInputForCreate(
        properties={"dealname": name, **props})).id


def line_items_for(client, deal_id: str, *rows: dict):
    """``line_items.batch_api.create`` with each item under ``deal_id`` (type 20, notes §2.3)."""
    return client.crm.line_items.batch_api.create(hs_items.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        hs_items.SimplePublicObjectBatchInputForCreate(properties=row, associations=[
            hs_items.PublicAssociationsForObject(to=hs_items.PublicObjectId(id=deal_id),
                                                 types=[spec(20, hs_items.AssociationSpec)])])
        for row in rows]))


# --- deals: batch create / update / upsert by a unique custom property ------------------
def test_deals_batch_create_update_and_upsert_by_order_key(client, hs_url):
    unique_key(client, "deals", "o2c_order_key")
    contact_id = upsert_contacts(client, ("ada@example.com", {})).results[0].id
    created = client.crm.deals.batch_api.create(hs_deals.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        hs_deals.SimplePublicObjectBatchInputForCreate(
            properties={"dealname": "Order #1001", "o2c_order_key": "shop:1001", "pipeline": "default",
                        "dealstage": "appointmentscheduled"},
            associations=[hs_deals.PublicAssociationsForObject(to=hs_deals.PublicObjectId(id=contact_id),
                                                               types=[spec(3)])])]))
    deal_id = created.results[0].id
    updated = client.crm.deals.batch_api.update(hs_deals.BatchInputSimplePublicObjectBatchInput(inputs=[
        hs_deals.SimplePublicObjectBatchInput(id="shop:1001", id_property="o2c_order_key",
                                              properties={"dealstage": "closedwon", "amount": "59.90"})]))
    assert (updated.results[0].id, updated.results[0].properties["dealstage"]) == (deal_id, "closedwon")
    upserted = client.crm.deals.batch_api.upsert(hs_deals.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        hs_deals.SimplePublicObjectBatchInputUpsert(id=key, id_property="o2c_order_key",
                                                    properties={"dealname": f"Order {key}"})
        for key in ("shop:1001", "shop:1002")]))
    assert [(r.new, r.id == deal_id) for r in upserted.results] == [(False, True), (True, False)]
    assert len(control(hs_url, "GET", "state")["deals"]) == 2
    assert client.crm.contacts.basic_api.get_by_id(contact_id, associations=["deals"]) \
        .associations["deals"].results[0].id == deal_id


# --- line items: batch create / update / upsert ------------------------------------------------
def test_line_items_batch_create_update_and_upsert_by_line_key(client, hs_url):
    unique_key(client, "line_items", "o2c_line_key")
    deal_id = deal(client)
    created = line_items_for(client, deal_id, {"name": "T-shirt", "quantity": "2", "price": "19.95",
                                               "o2c_line_key": "shop:1001:1"})
    item_id = created.results[0].id
    updated = client.crm.line_items.batch_api.update(hs_items.BatchInputSimplePublicObjectBatchInput(inputs=[
        hs_items.SimplePublicObjectBatchInput(id=item_id, properties={"quantity": "3"})]))
    assert updated.results[0].properties["quantity"] == "3"
    upserted = client.crm.line_items.batch_api.upsert(hs_items.BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[hs_items.SimplePublicObjectBatchInputUpsert(id="shop:1001:1", id_property="o2c_line_key",
                                                            properties={"price": "0"})]))
    assert (upserted.results[0].new, upserted.results[0].id) == (False, item_id)
    listing = client.crm.associations.v4.basic_api.get_page("line_items", item_id, "deals")
    assert [(r.to_object_id, [t.type_id for t in r.association_types]) for r in listing.results] == \
        [(deal_id, [20])]


# --- pipelines and deal stage options -------------------------------------------------------
def test_pipelines_endpoint_lists_the_default_pipeline_and_its_stage_ids(client):
    pipelines = client.crm.pipelines.pipelines_api.get_all("deals").results
    assert [(p.id, [s.id for s in p.stages]) for p in pipelines] == [("default", STAGES)]
    assert client.crm.pipelines.pipelines_api.get_by_id("deals", "default").stages[5].metadata == \
        {"isClosed": "true", "probability": "1.0"}
    assert [s.id for s in client.crm.pipelines.pipeline_stages_api.get_all("deals", "default").results] == STAGES
    status, body, _ = error_of(lambda: client.crm.pipelines.pipelines_api.get_by_id("deals", "nope"))
    assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"


def test_unknown_deal_stage_is_invalid_option(client, hs_url):
    status, body, _ = error_of(lambda: deal(client, pipeline="default", dealstage="shipped"))
    allowed = ", ".join(STAGES)
    assert status == 400
    assert without(body, "correlationId") == invalid_values(problem(
        "dealstage", f"shipped was not one of the allowed options: [{allowed}]", "INVALID_OPTION"))
    # Without a pipeline the stage is checked against the default one.
    status, _, _ = error_of(lambda: deal(client, dealstage="Closed Won"))
    assert status == 400
    assert control(hs_url, "GET", "state")["deals"] == []
    assert deal(client, dealstage="closedlost")


def test_unknown_pipeline_is_invalid_option_also_in_an_update(client):
    deal_id = deal(client, pipeline="default", dealstage="closedwon")
    status, body, _ = error_of(lambda: client.crm.deals.basic_api.update(
        deal_id, hs_deals.SimplePublicObjectInput(properties={"pipeline": "webshop"})))
    assert status == 400
    assert without(body, "correlationId") == invalid_values(problem(
        "pipeline", "webshop was not one of the allowed options: [default]", "INVALID_OPTION"))


# --- line items: price and single parent ---------------------------------------------------------
def test_negative_line_item_price_is_refused_and_nothing_is_created(client, hs_url):
    deal_id = deal(client)
    status, body, _ = error_of(lambda: line_items_for(client, deal_id, {"name": "Refund", "price": "-5.00"}))
    assert status == 400
    assert without(body, "correlationId") == invalid_values(problem(
        "price", "-5.00 is not a valid price: price cannot be negative", "NEGATIVE_PRICE"))
    assert control(hs_url, "GET", "state")["line_items"] == []
    assert line_items_for(client, deal_id, {"name": "Free gift", "price": "0.00"}).results


def test_line_item_keeps_its_single_parent_deal(client, hs_url):
    first, second = deal(client, "Order #1"), deal(client, "Order #2")
    item_id = line_items_for(client, first, {"name": "Shipping", "price": "5"}).results[0].id
    expected = {"status": "error", "category": "VALIDATION_ERROR",
                "message": f"Line item {item_id} already belongs to deal {first}. "
                           "Line items belong to one single parent object.",
                "context": {"lineItemId": [item_id], "dealId": [first]}, "links": {}, "errors": []}
    pair = hs_assoc.PublicAssociationMultiPost(_from=hs_assoc.PublicObjectId(id=second),
                                               to=hs_assoc.PublicObjectId(id=item_id),
                                               types=[spec(19, hs_assoc.AssociationSpec)])
    typed = client.crm.associations.v4.batch_api.create(
        "deals", "line_items", hs_assoc.BatchInputPublicAssociationMultiPost(inputs=[pair]))
    assert typed.num_errors == 1 and typed.results == []
    assert {k: v for k, v in typed.errors[0].to_dict().items() if v is not None} == expected
    default = client.crm.associations.v4.batch_api.create_default(
        "line_items", "deals", {"inputs": [{"from": {"id": item_id}, "to": {"id": second}}]})
    assert default.num_errors == 1 and default.errors[0].message == expected["message"]
    status, body, _ = error_of(lambda: client.crm.associations.v4.basic_api.create_default(
        "deals", second, "line_items", item_id))
    assert status == 400
    assert without(body, "correlationId") == without(expected, "links", "errors")
    # Re-linking the same parent is fine; nothing tied the item to the second deal.
    assert client.crm.associations.v4.batch_api.create_default(
        "deals", "line_items", {"inputs": [{"from": {"id": first}, "to": {"id": item_id}}]}).results
    assert client.crm.associations.v4.basic_api.get_page("deals", second, "line_items").results == []


def test_new_line_item_under_two_deals_is_refused(client, hs_url):
    first, second = deal(client, "Order #1"), deal(client, "Order #2")
    body = {"properties": {"name": "Shipping", "price": "5"}, "associations": [
        {"to": {"id": d}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}
        for d in (first, second)]}
    status, answer, _ = error_of(lambda: client.crm.line_items.basic_api.create(body))
    assert status == 400
    assert without(answer, "correlationId") == {
        "status": "error", "category": "VALIDATION_ERROR", "context": {"dealId": sorted([first, second])},
        "message": f"Line items belong to one single parent object; got deals {', '.join(sorted([first, second]))}."}
    assert control(hs_url, "GET", "state")["line_items"] == []


def test_new_deal_cannot_take_a_line_item_of_another_deal(client, hs_url):
    first = deal(client, "Order #1")
    item_id = line_items_for(client, first, {"name": "Shipping", "price": "5"}).results[0].id
    body = hs_deals.SimplePublicObjectInputForCreate(properties={"dealname": "Order #2"}, associations=[
        hs_deals.PublicAssociationsForObject(to=hs_deals.PublicObjectId(id=item_id), types=[spec(19)])])
    status, answer, _ = error_of(lambda: client.crm.deals.basic_api.create(body))
    assert (status, answer["context"]) == (400, {"lineItemId": [item_id], "dealId": [first]})
    assert len(control(hs_url, "GET", "state")["deals"]) == 1


# --- batch sizes on the other endpoints ----------------------------------------------------------
def test_101_inputs_are_refused_by_line_item_and_association_batches(client):
    expected = without(fixture("errors.400.batch_too_large.json"), "correlationId")
    deal_id = deal(client)
    status, body, _ = error_of(lambda: line_items_for(client, deal_id, *[{"name": f"i{n}"} for n in range(101)]))
    assert (status, without(body, "correlationId")) == (400, expected)
    pairs = {"inputs": [{"from": {"id": deal_id}, "to": {"id": str(n)}} for n in range(101)]}
    status, body, _ = error_of(lambda: client.crm.associations.v4.batch_api.create_default(
        "deals", "line_items", pairs))
    assert (status, without(body, "correlationId")) == (400, expected)


# --- search: paging and its own rate limit ------------------------------------------------------
def test_search_pages_through_results(client):
    upsert_contacts(client, *[(f"c{n}@example.com", {}) for n in range(3)])
    request = hs_contacts.PublicObjectSearchRequest(limit=2, sorts=["email"], properties=["email"])
    first = client.crm.contacts.search_api.do_search(request)
    assert first.total == 3 and first.paging.next.after == "2"
    request.after = first.paging.next.after
    second = client.crm.contacts.search_api.do_search(request)
    assert [r.properties["email"] for r in second.results] == ["c2@example.com"] and second.paging is None


def test_search_has_its_own_limit_apart_from_the_burst_window(client, hs_url):
    control(hs_url, "POST", "config", json={"search_per_second": 2, "ten_second_limit": 1})
    request = hs_contacts.PublicObjectSearchRequest(limit=1)
    upsert_contacts(client, ("ada@example.com", {}))  # uses the whole burst window
    status, _, _ = error_of(lambda: upsert_contacts(client, ("ada@example.com", {})))
    assert status == 429
    assert client.crm.contacts.search_api.do_search(request).total == 1  # search is counted apart
    client.crm.contacts.search_api.do_search(request)
    status, body, headers = error_of(lambda: client.crm.contacts.search_api.do_search(request))
    assert status == 429
    # Notes §4: only the message is known (Node SDK RetryDecorator); policyName is the emulator's.
    assert without(body, "correlationId") == {"status": "error", "message": "You have reached your secondly limit.",
                                              "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}
    assert not [h for h in headers if h.lower().startswith("x-hubspot-ratelimit")]
