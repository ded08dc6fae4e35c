"""QuickBooks emulator batch endpoint: item isolation, metering, requestid limits, and the request
bodies python-quickbooks 0.9.12 was captured sending (notes §2.2, §2.5, §3, §5)."""

from __future__ import annotations

import httpx
import pytest
from quickbooks.batch import batch_create, batch_delete, batch_update
from quickbooks.objects.customer import Customer
from test_quickbooks_emulator import REALM, TOKEN, client, connect, fixture, new_customer, raw


@pytest.fixture
def qbo(sandbox):
    return connect(sandbox)


def batch(server, items: list[dict], token: str = TOKEN, query: str = "") -> httpx.Response:
    return raw(server, "POST", f"batch{query}", json={"BatchItemRequest": items},
               headers={"Authorization": f"Bearer {token}"})


def by_bid(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return {item["bId"]: item for item in response.json()["BatchItemResponse"]}


def test_items_of_one_batch_cannot_see_each_others_creates(qbo):
    answers = by_bid(batch(qbo, [
        {"bId": "c", "operation": "create", "Customer": {"DisplayName": "Fresh Fay"}},
        {"bId": "i", "operation": "create", "Invoice": {"CustomerRef": {"value": "1"}, "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 5.0, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]}},
        {"bId": "u", "operation": "update", "Customer": {"Id": "1", "SyncToken": "0", "sparse": True, "Notes": "x"}},
        {"bId": "q", "Query": "select * from Customer where DisplayName = 'Fresh Fay'"},
        {"bId": "n", "operation": "create", "Customer": {"DisplayName": "FRESH FAY"}},
    ]))
    assert answers["c"]["Customer"]["Id"] == "1"
    assert answers["i"]["Fault"]["Error"][0]["code"] == "2500"  # the new customer is not usable yet
    assert answers["u"]["Fault"]["Error"][0]["code"] == "610"
    assert answers["q"]["QueryResponse"] == {}
    assert answers["n"]["Fault"]["Error"][0]["code"] == "6240"  # but its name is taken
    after = by_bid(batch(qbo, [{"bId": "q", "Query": "select * from Customer where DisplayName = 'Fresh Fay'"}]))
    assert [c["Id"] for c in after["q"]["QueryResponse"]["Customer"]] == ["1"]


def test_sdk_batch_update_and_delete_report_per_item_faults(qbo):
    qb = client(qbo)
    customers = [new_customer(qb, f"Batch {n}") for n in range(3)]
    customers[0].Notes = "updated"
    customers[1].SyncToken = "7"  # stale
    result = batch_update(customers[:2], qb=qb)
    assert [c.Notes for c in result.successes] == ["updated"]
    assert [(f.Error[0].code, f.Error[0].Message) for f in result.faults] == [("5010", "Stale Object Error")]
    deleted = batch_delete(customers[2:], qb=qb)  # customers are made inactive, never deleted
    assert [f.Error[0].code for f in deleted.faults] == ["500"]


def test_each_batch_item_is_metered_against_the_per_minute_limit(qbo):
    qbo.control("POST", "options", json={"requests_per_minute": 5})
    three = [{"bId": str(n), "Query": "select count(*) from Item"} for n in range(3)]
    assert batch(qbo, three).status_code == 200  # 3 of 5 used
    refused = batch(qbo, three)  # 3 more do not fit: refused whole, as XML by default
    assert refused.status_code == 429 and "ThrottleExceeded" in refused.text
    assert raw(qbo, "GET", "item/1").status_code == 200  # 4 of 5
    assert batch(qbo, three[:1]).status_code == 200  # 5 of 5
    assert raw(qbo, "GET", "item/1").status_code == 429


def test_batch_requests_per_minute_per_app_and_per_realm(qbo):
    qbo.control("POST", "options", json={"batch_requests_per_minute": 2, "batch_requests_per_realm_per_minute": 3})
    for client_id in ("app-a", "app-b"):
        qbo.control("POST", "oauth/clients", json={"client_id": client_id, "client_secret": "s", "realm_id": REALM,
                                                   "refresh_token": f"RT-{client_id}"})
    tokens = {}
    for client_id in ("app-a", "app-b"):
        answer = httpx.post(f"{qbo.url}/oauth2/v1/tokens/bearer", auth=(client_id, "s"),
                            data={"grant_type": "refresh_token", "refresh_token": f"RT-{client_id}"})
        tokens[client_id] = answer.json()["access_token"]
    item = [{"bId": "q", "Query": "select count(*) from Item"}]
    statuses = [batch(qbo, item, tokens["app-a"]).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # 2 per realm+app
    assert batch(qbo, item, tokens["app-b"]).status_code == 200  # another app has its own 2...
    assert batch(qbo, item, tokens["app-b"]).status_code == 429  # ...but the realm allows 3 in all
    assert raw(qbo, "GET", "item/1").status_code == 200  # plain calls are not batch-limited


def test_batch_requestid_length_and_bid_length_limits(qbo):
    item = [{"bId": "b1", "Query": "select count(*) from Item"}]
    assert batch(qbo, item, query="?requestid=" + "r" * 36).status_code == 200
    too_long = batch(qbo, item, query="?requestid=" + "r" * 37)
    assert too_long.status_code == 400 and too_long.json()["Fault"]["Error"][0]["code"] == "2050"
    long_bid = batch(qbo, [{"bId": "b" * 11, "Query": "select count(*) from Item"}], query="?requestid=r2")
    assert long_bid.status_code == 400 and long_bid.json()["Fault"]["Error"][0]["element"] == "bId"
    uuid_bids = batch(qbo, [{"bId": "b" * 36, "Query": "select count(*) from Item"}])  # no requestid: fine
    assert uuid_bids.status_code == 200


def test_captured_python_quickbooks_wire_bodies_are_accepted(qbo):
    """``python-quickbooks-wire/*.json``: batch create, invoice create, then the payment linked to it."""
    answers = by_bid(raw(qbo, "POST", "batch?minorversion=75",
                         json=fixture("python-quickbooks-wire/batch.create.request.python-quickbooks-0.9.12.json")))
    (answer,) = answers.values()
    customer = answer["Customer"]
    invoice_body = fixture("python-quickbooks-wire/invoice.create.request.python-quickbooks-0.9.12.json")
    invoice_body["CustomerRef"]["value"] = customer["Id"]
    invoice_body["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = "1"
    invoice = raw(qbo, "POST", "invoice?minorversion=75&requestid=wire-1", json=invoice_body)
    assert invoice.status_code == 200, invoice.text
    payment_body = fixture("python-quickbooks-wire/payment.create.request.python-quickbooks-0.9.12.json")
    payment_body["CustomerRef"]["value"] = customer["Id"]
    for line in payment_body["Line"]:
        for link in line["LinkedTxn"]:
            link["TxnId"] = invoice.json()["Invoice"]["Id"]
    payment = raw(qbo, "POST", "payment?minorversion=75", json=payment_body)
    assert payment.status_code == 200, payment.text
    paid = raw(qbo, "GET", f"invoice/{invoice.json()['Invoice']['Id']}").json()["Invoice"]
    assert paid["Balance"] == invoice.json()["Invoice"]["TotalAmt"] - payment.json()["Payment"]["TotalAmt"]


def test_sdk_batch_create_of_a_30_item_chunk_is_one_call(qbo):
    customers = []
    for n in range(30):
        customer = Customer()
        customer.DisplayName = f"Chunk {n}"
        customers.append(customer)
    result = batch_create(customers, qb=client(qbo))
    assert len(result.successes) == 30 and not result.faults
    assert qbo.control("GET", "counters")["by_endpoint"]["POST /v3/company/{realm}/batch"]["total"] == 1


def test_batch_with_requestid_replays_only_when_bids_match(qbo):
    body = {"BatchItemRequest": [{"bId": "b1", "operation": "create", "Customer": {"DisplayName": "Batchy"}},
                                 {"bId": "b2", "Query": "select count(*) from Customer"}]}
    first = raw(qbo, "POST", "batch?requestid=batch-1", json=body)
    again = raw(qbo, "POST", "batch?requestid=batch-1", json=body)
    assert first.status_code == 200 and first.content == again.content
    answers = {item["bId"]: item for item in first.json()["BatchItemResponse"]}
    assert answers["b1"]["Customer"]["DisplayName"] == "Batchy"
    assert answers["b2"]["QueryResponse"] == {"totalCount": 0}  # items cannot see each other (notes §2.2)
    body["BatchItemRequest"][0]["bId"] = "b9"
    other = raw(qbo, "POST", "batch?requestid=batch-1", json=body)
    assert other.json()["BatchItemResponse"][0]["Fault"]["Error"][0]["code"] == "6240"


def test_batch_of_31_customers_takes_two_calls_with_per_item_fault(qbo):
    qb = client(qbo)
    new_customer(qb, "Cust 7")
    customers = []
    for n in range(31):
        customer = Customer()
        customer.DisplayName = f"Cust {n}"
        customers.append(customer)
    result = batch_create(customers, qb=qb)
    assert len(result.successes) == 30
    assert [f.Error[0].code for f in result.faults] == ["6240"]
    assert qbo.control("GET", "counters")["by_endpoint"]["POST /v3/company/{realm}/batch"]["total"] == 2
    too_many = raw(qbo, "POST", "batch", json={"BatchItemRequest": [
        {"bId": str(n), "Query": "select * from Item"} for n in range(31)]})
    assert too_many.status_code == 400


def test_batch_item_fault_6240_is_the_published_batch_fault(qbo):
    new_customer(client(qbo), "Smith Family Store")
    vendor = {"bId": "bid1", "operation": "create", "Vendor": {"DisplayName": "Smith Family Store"}}
    answers = by_bid(batch(qbo, [vendor]))
    published = fixture("intuit-docs/batch.response.json")["BatchItemResponse"][0]
    assert answers["bid1"] == published
