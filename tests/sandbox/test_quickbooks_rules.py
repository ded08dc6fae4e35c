"""QuickBooks emulator: each vendor rule tripped, with the vendor's exact error shape (notes §1, §2.6, §3).

Fault texts come from the notes and fixtures where they give them (6240, 5010, 6070, 6080, 6100,
2050, 3001, 4001); 2020, 2500 and some 6000 details are emulator wording, so only their shape
(``Message``/``Detail``/``code``/``element``, ``type`` ``ValidationFault``, HTTP 400) is pinned.
"""

from __future__ import annotations

import concurrent.futures
import json
import xml.etree.ElementTree as ET

import pytest
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from test_quickbooks_emulator import (
    FIXTURES,
    REALM,
    client,
    connect,
    fixture,
    new_customer,
    new_invoice,
    new_item,
    pay,
    raw,
)


@pytest.fixture
def qbo(sandbox):
    return connect(sandbox)


STALE = {"Message": "Stale Object Error",
         "Detail": "Stale Object Error : You and root were working on this at the same time. root finished "
                   "before you did, so your work was not saved.", "code": "5010", "element": ""}


def fault_of(response) -> dict:
    """The single ``Error`` of a 400 ``ValidationFault`` answer."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"Fault", "time"} and body["Fault"]["type"] == "ValidationFault"
    (error,) = body["Fault"]["Error"]
    return error


def invoice_body(customer_id: str) -> dict:
    return {"CustomerRef": {"value": customer_id}, "DocNumber": "R-1",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 40.0,
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 20.0}}]}


@pytest.mark.parametrize("mutate, expected", [
    (lambda body: body["Line"][0].update(Amount=41.0),
     {"Message": "Amount calculation incorrect in the request",
      "Detail": "Amount is not equal to Qty * UnitPrice. Supplied value:41.0", "code": "6070", "element": ""}),
    (lambda body: body.update(DocNumber="X" * 22),
     {"Message": "Length exceeds limit", "Detail": "Length of the field exceeds 21 chars", "code": "2050",
      "element": "DocNumber"}),
    (lambda body: body.update(CurrencyRef={"value": "EUR"}),
     {"Message": "A business validation error has occurred while processing your request",
      "Detail": "Business Validation Error: Currency EUR is not enabled for this company.", "code": "6000",
      "element": ""}),
    (lambda body: body.update(CustomerRef={"value": "999"}),
     {"Message": "Invalid Reference Id", "Detail": "Invalid Reference Id : CustomerRef reference 999 does not exist",
      "code": "2500", "element": "CustomerRef"}),
    (lambda body: body["Line"][0]["SalesItemLineDetail"].update(ItemRef={"value": "999"}),
     {"Message": "Invalid Reference Id", "Detail": "Invalid Reference Id : ItemRef reference 999 does not exist",
      "code": "2500", "element": "ItemRef"}),
    (lambda body: body.update(Line=[]),
     {"Message": "A business validation error has occurred while processing your request",
      "Detail": "Business Validation Error: You must fill out at least one split line.", "code": "6000",
      "element": ""}),
    (lambda body: body.pop("CustomerRef"),
     {"Message": "Required param missing, need to supply the required value for the API",
      "Detail": "Required parameter CustomerRef is missing in the request", "code": "2020",
      "element": "CustomerRef"}),
])
def test_invoice_rule_faults_have_the_exact_error_shape(qbo, mutate, expected):
    customer = raw(qbo, "POST", "customer", json={"DisplayName": "Rule Rita"}).json()["Customer"]
    body = invoice_body(customer["Id"])
    mutate(body)
    assert fault_of(raw(qbo, "POST", "invoice", json=body)) == expected
    assert qbo.control("GET", "state")["companies"][REALM]["Invoice"] == []


def test_21_char_docnumber_is_fine_and_amount_compared_at_cents(qbo):
    customer = raw(qbo, "POST", "customer", json={"DisplayName": "Edge Ed"}).json()["Customer"]
    body = invoice_body(customer["Id"]) | {"DocNumber": "X" * 21}
    body["Line"][0].update(Amount=59.97, SalesItemLineDetail={"ItemRef": {"value": "1"}, "Qty": 3, "UnitPrice": 19.99})
    assert raw(qbo, "POST", "invoice", json=body).status_code == 200


def test_stale_synctoken_is_5010_exactly_and_sdk_sees_error_code(qbo):
    qb = client(qbo)
    invoice = new_invoice(qb, new_customer(qb, "Stale Sue").Id, "1", "ST-1")
    body = {"Id": invoice.Id, "SyncToken": "0", "sparse": True, "PrivateNote": "one"}
    assert raw(qbo, "POST", "invoice", json=body).status_code == 200
    assert fault_of(raw(qbo, "POST", "invoice", json=body)) == STALE
    assert fault_of(raw(qbo, "POST", "invoice?operation=delete", json={"Id": invoice.Id, "SyncToken": "0"})) == STALE
    with pytest.raises(QuickbooksException) as caught:
        qb.update_object("Invoice", json.dumps(body))
    assert (caught.value.error_code, caught.value.message) == (5010, "Stale Object Error")


def test_6080_when_no_name_part_is_given(qbo):
    assert fault_of(raw(qbo, "POST", "customer", json={"GivenName": "", "CompanyName": "X"})) == {
        "Message": "No Name Provided",
        "Detail": "Title, GivenName, MiddleName, FamilyName, DisplayName, Suffix - one of these must be non-empty",
        "code": "6080", "element": ""}


def test_query_validation_error_matches_the_published_text(qbo):
    published = ET.parse(FIXTURES / "errors/quickbooks-ruby.query_validation_error.xml").getroot()
    error = published.find("{*}Fault/{*}Error")
    ours = fault_of(raw(qbo, "GET", "query", params={"query": "select * from Item startposition 0"}))
    assert (ours["Message"], ours["Detail"], ours["code"]) == (
        error.find("{*}Message").text, error.find("{*}Detail").text, error.get("code"))
    too_big = fault_of(raw(qbo, "GET", "query", params={"query": "select * from Item maxresults 1001"}))
    assert too_big["Detail"] == "QueryValidationError: value 1001 is too large. Max allowed value is 1000"
# -- rules -----------------------------------------------------------------------------------

def test_duplicate_display_name_any_case_raises_6240_with_exact_fault_body(qbo):
    qb = client(qbo)
    new_customer(qb, "Bill's Windsurf Shop")
    with pytest.raises(QuickbooksException) as caught:
        new_customer(qb, "BILL'S WINDSURF SHOP")
    assert caught.value.error_code == 6240
    response = raw(qbo, "POST", "customer", json={"DisplayName": "bill's windsurf shop"})
    assert response.status_code == 400
    body = response.json()
    body.pop("time")
    expected = fixture("errors/fault.6240.duplicate-name.json")
    expected.pop("time")
    assert body == expected
    assert len(qbo.control("GET", "state")["companies"][REALM]["Customer"]) == 1


def test_display_name_is_built_from_name_parts_or_6080_when_none(qbo):
    created = raw(qbo, "POST", "customer", json={"GivenName": "Ada", "FamilyName": "Lovelace", "Title": ""})
    assert created.json()["Customer"]["DisplayName"] == "Ada Lovelace"
    nameless = raw(qbo, "POST", "customer", json={"GivenName": "", "CompanyName": "X"})
    assert nameless.status_code == 400 and nameless.json()["Fault"]["Error"][0]["code"] == "6080"


def test_payment_over_invoice_balance_is_rejected_and_changes_nothing(qbo):
    qb = client(qbo)
    invoice = new_invoice(qb, new_customer(qb, "Over Olga").Id, "1", "OVER-1")
    with pytest.raises(QuickbooksException) as caught:
        pay(qb, invoice, 40.01)
    assert caught.value.error_code == 6000
    assert Invoice.get(invoice.Id, qb=qb).Balance == 40.0
    missing_total = raw(qbo, "POST", "payment", json={"CustomerRef": {"value": "1"}, "TotalAmt": ""})
    assert missing_total.json()["Fault"]["Error"][0]["code"] == "2020"


def test_item_needs_unique_name_and_income_account(qbo):
    qb = client(qbo)
    new_item(qb, "Widget")
    with pytest.raises(QuickbooksException) as duplicate:
        new_item(qb, "widget")
    assert duplicate.value.error_code == 6240
    no_account = raw(qbo, "POST", "item", json={"Name": "Lonely", "Type": "Service"})
    assert no_account.json()["Fault"]["Error"][0]["code"] == "2020"
    seeded = [i.Name for i in Item.all(qb=qb)]
    assert {"Services", "Shipping", "Widget"} <= set(seeded)


# -- throttling and injected faults -----------------------------------------------------------

def test_requests_over_the_per_minute_limit_get_429_xml_or_json(qbo):
    qbo.control("POST", "options", json={"requests_per_minute": 3})
    qb = client(qbo)
    for _ in range(3):
        Item.count(qb=qb)
    with pytest.raises(QuickbooksException) as caught:
        Item.count(qb=qb)
    assert caught.value.error_code == 10000  # python-quickbooks cannot read the XML body (notes §5)
    response = raw(qbo, "GET", "query", params={"query": "select count(*) from Item"})
    assert response.status_code == 429 and response.text.startswith("<?xml")
    assert "ThrottleExceeded" in response.text and response.headers["intuit_tid"]
    qbo.control("POST", "options", json={"throttle_format": "json"})
    as_json = raw(qbo, "GET", "query", params={"query": "select count(*) from Item"})
    assert as_json.status_code == 429 and as_json.json()["Fault"]["Error"][0]["code"] == "3001"
    assert qbo.control("GET", "counters")["throttled"] == 3


def test_batch_requests_have_their_own_per_minute_limit(qbo):
    qbo.control("POST", "options", json={"batch_requests_per_minute": 1})
    body = {"BatchItemRequest": [{"bId": "q", "Query": "select count(*) from Item"}]}
    assert raw(qbo, "POST", "batch", json=body).status_code == 200
    assert raw(qbo, "POST", "batch", json=body).status_code == 429
    assert raw(qbo, "GET", "query", params={"query": "select count(*) from Item"}).status_code == 200


def test_more_than_max_concurrent_requests_get_429(qbo):
    qbo.control("POST", "options", json={"latency_ms": 400, "max_concurrent": 2})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(lambda _: raw(qbo, "GET", "query", params={
            "query": "select count(*) from Item"}).status_code, range(4)))
    assert statuses == [200, 200, 429, 429]


def test_duplicate_name_in_lowercase_variant_when_company_asks_for_it(qbo):
    qbo.control("POST", f"companies/{REALM}", json={"settings": {"duplicate_name_variant": "lowercase"}})
    raw(qbo, "POST", "customer", json={"DisplayName": "Twice"})
    response = raw(qbo, "POST", "customer", json={"DisplayName": "Twice"})
    assert response.status_code == 400
    body, expected = response.json(), fixture("errors/fault.6240.duplicate-name.lowercase-variant.json")
    assert isinstance(body.pop("time"), int) and expected.pop("time")
    assert body == expected
    with pytest.raises(QuickbooksException) as caught:
        new_customer(client(qbo), "twice")
    assert caught.value.error_code == 10000  # python-quickbooks only reads "Fault" (notes §5)


def test_injected_fault_after_write_loses_the_answer_but_keeps_the_invoice(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Crash Cora")
    qbo.control("POST", "faults", json={"faults": [{"path_contains": "/invoice", "status": 503, "after_write": True}]})
    with pytest.raises(QuickbooksException):
        new_invoice(qb, customer.Id, "1", "CRASH-1", request_id="crash-1")
    again = new_invoice(qb, customer.Id, "1", "CRASH-1", request_id="crash-1")  # retry replays
    assert again.DocNumber == "CRASH-1"
    assert Invoice.count(qb=qb) == 1


def test_throttle_bodies_are_exact_in_xml_and_json(qbo):
    """429 XML as ``errors/quickbooks-ruby.too_many_requests_error.xml``; JSON with the same error."""
    qbo.control("POST", "options", json={"requests_per_minute": 1})
    raw(qbo, "GET", "item/1")
    as_xml = raw(qbo, "GET", "item/1")
    assert as_xml.status_code == 429 and as_xml.headers["content-type"].startswith("application/xml")
    ours, published = ET.fromstring(as_xml.content), ET.parse(
        FIXTURES / "errors/quickbooks-ruby.too_many_requests_error.xml").getroot()
    for tree in (ours, published):
        assert tree.tag == "{http://schema.intuit.com/finance/v3}IntuitResponse"
    assert [(e.tag, e.attrib, (e.text or "").strip()) for e in ours.iter() if e is not ours] == \
        [(e.tag, e.attrib, (e.text or "").strip()) for e in published.iter() if e is not published]
    qbo.control("POST", "options", json={"throttle_format": "json"})
    as_json = raw(qbo, "GET", "item/1")
    assert as_json.status_code == 429
    assert as_json.json()["Fault"] == {"Error": [{
        "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "Detail": "The request limit was reached.  Try again later", "code": "3001"}], "type": "SERVICE"}


def test_currency_not_enabled_for_a_customer_too_and_refs_carry_currency_names(qbo):
    euro = {"DisplayName": "Euro Emma", "CurrencyRef": {"value": "EUR"}}
    assert fault_of(raw(qbo, "POST", "customer", json=euro))["Detail"] == \
        "Business Validation Error: Currency EUR is not enabled for this company."
    qbo.control("POST", f"companies/{REALM}", json={"settings": {"currencies": ["USD", "EUR"]}})
    customer = raw(qbo, "POST", "customer", json=euro).json()["Customer"]
    assert customer["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    invoice = raw(qbo, "POST", "invoice", json=invoice_body(customer["Id"])).json()["Invoice"]
    assert invoice["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}  # as the batch sample


def test_optional_per_second_limit(qbo):
    qbo.control("POST", "options", json={"requests_per_second": 2})
    statuses = [raw(qbo, "GET", "item/1").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    qbo.control("POST", "clock", json={"advance_seconds": 1.5})
    assert raw(qbo, "GET", "item/1").status_code == 200
