"""The QuickBooks emulator, driven by the official SDKs over loopback (python-quickbooks 0.9.12,
intuit-oauth 1.2.6) exactly as the notes' offline recipe does (shared/notes/quickbooks.md §5.1).

All tests use the shared ``sandbox`` fixture (``python -m sandbox serve``, reset before each
test); emulator options are changed per test through ``POST /_sandbox/options``. This file holds
the shared helpers and the end-to-end flows; ``test_quickbooks_rules.py`` (each rule and its exact
fault), ``test_quickbooks_entities.py`` (list entities, tax, receipts), ``test_quickbooks_batch.py``
and ``test_quickbooks_conformance.py`` (published payload shapes) import them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import AuthorizationException, QuickbooksException, ValidationException
from quickbooks.objects.base import Ref
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine

REALM = "9341453000000000"
TOKEN = "fake-token"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "quickbooks"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class Remote:
    """Handle on a running QuickBooks emulator: base URL and control-API calls."""

    def __init__(self, url: str):
        self.url = url

    def control(self, method: str, path: str, **kwargs):
        response = httpx.request(method, f"{self.url}/_sandbox/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()


def connect(sandbox) -> Remote:
    """The shared sandbox's (already reset) QuickBooks emulator, one company with token ``TOKEN``.

    The other ``test_quickbooks_*.py`` files import this (and the helpers below) and declare the
    same three-line ``qbo`` fixture.
    """
    remote = Remote(sandbox.url("quickbooks"))
    remote.control("POST", f"companies/{REALM}", json={"access_token": TOKEN})
    return remote


@pytest.fixture
def qbo(sandbox) -> Remote:
    return connect(sandbox)


def client(server: Remote, token: str = TOKEN, realm: str = REALM) -> QuickBooks:
    """python-quickbooks pointed at the emulator, only the base URL changed (notes §5.1)."""
    qb = QuickBooks(company_id=realm, minorversion=75)
    qb.api_url_v3 = qb.sandbox_api_url_v3 = f"{server.url}/v3"
    session = requests.Session()
    session.access_token = token
    qb.session = session
    return qb


def raw(server: Remote, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{server.url}/v3/company/{REALM}/{path}", headers=headers, timeout=10, **kwargs)


def new_customer(qb, name: str) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    return customer.save(qb=qb)


def new_item(qb, name: str) -> Item:
    item = Item()
    item.Name = name
    item.Type = "Service"
    item.IncomeAccountRef = Ref()
    item.IncomeAccountRef.value = "1"
    return item.save(qb=qb)


def new_invoice(qb, customer_id: str, item_id: str, doc_number: str, qty=2, price=20.0, amount=40.0,
                request_id: str | None = None) -> Invoice:
    invoice = Invoice()
    invoice.DocNumber = doc_number
    invoice.CustomerRef = Ref()
    invoice.CustomerRef.value = customer_id
    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Ref()
    line.SalesItemLineDetail.ItemRef.value = item_id
    line.SalesItemLineDetail.Qty = qty
    line.SalesItemLineDetail.UnitPrice = price
    invoice.Line.append(line)
    return invoice.save(qb=qb, request_id=request_id)


def pay(qb, invoice: Invoice, amount) -> Payment:
    payment = Payment()
    payment.TotalAmt = amount
    payment.CustomerRef = invoice.CustomerRef
    line = PaymentLine()
    line.Amount = amount
    line.LinkedTxn.append(invoice.to_linked_txn())
    payment.Line.append(line)
    return payment.save(qb=qb)


# -- happy path ------------------------------------------------------------------------------

def test_customer_item_invoice_payment_through_sdk_lowers_invoice_balance(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Amy's Bird Sanctuary")
    item = new_item(qb, "Widget")
    invoice = new_invoice(qb, customer.Id, item.Id, "SHOP-1001")
    assert (invoice.TotalAmt, invoice.Balance, invoice.SyncToken) == (40.0, 40.0, "0")
    assert invoice.Line[-1].DetailType == "SubTotalLineDetail"

    payment = pay(qb, invoice, 25.5)
    assert payment.UnappliedAmt == 0

    reread = Invoice.get(invoice.Id, qb=qb)
    assert reread.Balance == 14.5
    assert reread.SyncToken == "1"
    assert [(link.TxnId, link.TxnType) for link in reread.LinkedTxn] == [(payment.Id, "Payment")]
    state = qbo.control("GET", "state")["companies"][REALM]
    assert [c["Balance"] for c in state["Customer"]] == [14.5]
    assert len(state["Payment"]) == 1


def test_amounts_are_exact_numbers_on_the_wire(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Decimal Dan")
    item = new_item(qb, "Gadget")
    body = {"CustomerRef": {"value": customer.Id},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 59.97,
                      "SalesItemLineDetail": {"ItemRef": {"value": item.Id}, "Qty": 3, "UnitPrice": 19.99}},
                     {"DetailType": "DiscountLineDetail", "Amount": "0.10", "DiscountLineDetail": {}}],
            "TxnTaxDetail": {"TotalTax": 4.8}}
    response = raw(qbo, "POST", "invoice?minorversion=75", content=json.dumps(body))
    assert response.status_code == 200
    assert response.headers["intuit_tid"]
    assert '"TotalAmt":64.67' in response.text  # 59.97 - 0.10 + 4.8, no float drift
    parsed = json.loads(response.text, parse_float=Decimal)
    assert parsed["Invoice"]["Balance"] == Decimal("64.67")
    assert "time" in parsed


def test_new_objects_with_python_quickbooks_blank_defaults_are_accepted(qbo):
    """The captured wire body (``"DueDate": ""``, ``"TotalAmt": ""``...) is a valid create."""
    qb = client(qbo)
    customer = new_customer(qb, "Blank Betty")
    item = new_item(qb, "Thing")
    body = fixture("python-quickbooks-wire/invoice.create.request.python-quickbooks-0.9.12.json")
    body["CustomerRef"]["value"] = customer.Id
    body["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = item.Id
    response = raw(qbo, "POST", "invoice", content=json.dumps(body))
    assert response.status_code == 200, response.text
    invoice = response.json()["Invoice"]
    assert invoice["DueDate"] and invoice["TxnDate"] and invoice["TotalAmt"] == 40.0


def test_published_request_bodies_are_accepted_and_answered_in_the_published_shape(qbo):
    """Intuit's own samples (ids remapped to this company's) create; responses carry the sample's keys."""
    customer = raw(qbo, "POST", "customer", json={"DisplayName": "Amy's Bird Sanctuary"}).json()["Customer"]
    invoice = raw(qbo, "POST", "invoice", json=fixture("intuit-docs/invoice.create.request.json"))
    assert invoice.status_code == 200, invoice.text
    published = fixture("intuit-docs/invoice.create.response.json")
    optional = {"ProjectRef", "ShipAddr", "BillAddr", "CustomField"}  # company data this emulator does not invent
    assert set(published["Invoice"]) - optional <= set(invoice.json()["Invoice"])
    assert set(published) == set(invoice.json())
    assert invoice.json()["Invoice"]["Line"][-1] == {"DetailType": "SubTotalLineDetail", "Amount": 100.0,
                                                     "SubTotalLineDetail": {}}

    receipt = fixture("intuit-docs/salesreceipt.create.request.json")
    receipt["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = "1"
    memo = fixture("intuit-docs/creditmemo.create.request.json")
    memo["CustomerRef"]["value"] = customer["Id"]
    memo["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = "1"
    refund = fixture("intuit-docs/refundreceipt.create.request.json")
    refund["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = "1"
    refund["DepositToAccountRef"]["value"] = "5"  # the seeded "Checking" bank account
    for entity, body in (("salesreceipt", receipt), ("creditmemo", memo), ("refundreceipt", refund)):
        response = raw(qbo, "POST", entity, json=body)
        assert response.status_code == 200, (entity, response.text)
    payment = fixture("intuit-docs/payment.create.linked-to-invoice.request.json")
    payment["CustomerRef"]["value"] = customer["Id"]
    payment["Line"][0]["LinkedTxn"][0]["TxnId"] = invoice.json()["Invoice"]["Id"]
    assert raw(qbo, "POST", "payment", json=payment).status_code == 200
    sparse = fixture("intuit-docs/invoice.sparse-update.request.json")
    sparse["Id"] = invoice.json()["Invoice"]["Id"]
    sparse["SyncToken"] = "1"  # the payment bumped it
    updated = raw(qbo, "POST", "invoice", json=sparse).json()["Invoice"]
    assert (updated["DueDate"], updated["Balance"], updated["SyncToken"]) == ("2015-09-30", 75.0, "2")


def test_discovery_document_has_the_published_keys_and_points_here(qbo):
    document = httpx.get(f"{qbo.url}/.well-known/openid_sandbox_configuration/").json()
    assert set(document) == set(fixture("oauth/discovery.production.json"))
    assert document["token_endpoint"] == f"{qbo.url}/oauth2/v1/tokens/bearer"


# -- requestid -------------------------------------------------------------------------------

def test_requestid_replay_returns_original_response_and_creates_nothing(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Replay Rob")
    first = new_invoice(qb, customer.Id, "1", "SHOP-2001", request_id="shopify-2001-create")
    second = new_invoice(qb, customer.Id, "1", "SHOP-2001", request_id="shopify-2001-create")
    assert second.Id == first.Id
    body = json.dumps({"CustomerRef": {"value": customer.Id},
                       "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5.0,
                                 "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    a = raw(qbo, "POST", "invoice?requestid=rid-2", content=body)
    b = raw(qbo, "POST", "invoice?requestid=rid-2", content=body)
    assert a.content == b.content and a.headers["intuit_tid"] != b.headers["intuit_tid"]
    assert len(qbo.control("GET", "state")["companies"][REALM]["Invoice"]) == 2
    counters = qbo.control("GET", "counters")
    assert counters["replays"] == 2
    assert counters["writes"] == 3  # customer + two invoices


# -- query -----------------------------------------------------------------------------------

def test_query_by_docnumber_count_and_maxresults_limit(qbo):
    qb = client(qbo)
    customer = new_customer(qb, "Query Quinn")
    for number in ("SHOP-1", "SHOP-2", "O'NEIL-3"):
        new_invoice(qb, customer.Id, "1", number)
    found = Invoice.filter(DocNumber="SHOP-2", qb=qb)
    assert [i.DocNumber for i in found] == ["SHOP-2"]
    assert [i.DocNumber for i in Invoice.filter(DocNumber="o'neil-3", qb=qb)] == ["O'NEIL-3"]
    assert Invoice.count(qb=qb) == 3
    assert Invoice.count("DocNumber LIKE 'SHOP%'", qb=qb) == 2
    assert Invoice.filter(DocNumber="nope", qb=qb) == []
    with pytest.raises(ValidationException):
        Invoice.where("", max_results=1001, qb=qb)
    page = Invoice.where("TotalAmt >= '40.00'", order_by="DocNumber DESC", start_position=2,
                         max_results=1, qb=qb)
    assert [i.DocNumber for i in page] == ["SHOP-1"]


def test_query_get_form_shapes_and_errors(qbo):
    empty = raw(qbo, "GET", "query", params={"query": "select * from Invoice", "minorversion": "75"})
    assert set(empty.json()) == {"QueryResponse", "time"} and empty.json()["QueryResponse"] == {}
    items = raw(qbo, "GET", "query", params={"query": "SELECT *, Sku FROM Item WHERE Name IN ('Shipping', 'x')"})
    assert [i["Name"] for i in items.json()["QueryResponse"]["Item"]] == ["Shipping"]
    assert items.json()["QueryResponse"]["startPosition"] == 1
    dotted = raw(qbo, "GET", "query", params={
        "query": "SELECT * FROM Account WHERE MetaData.LastUpdatedTime > '2000-01-01T00:00:00-07:00' MAXRESULTS 2"})
    assert len(dotted.json()["QueryResponse"]["Account"]) == 2
    for bad in ("SELECT * FROM Invoice WHERE DocNumber = '1' OR DocNumber = '2'",
                "DELETE FROM Invoice", "SELECT * FROM Invoice WHERE Id > '3'", "SELECT * FROM Nothing"):
        response = raw(qbo, "GET", "query", params={"query": bad})
        assert response.status_code == 400, bad
        assert response.json()["Fault"]["Error"][0]["code"] in ("4000", "4001")


# -- auth and OAuth ----------------------------------------------------------------------------

def test_company_info_and_preferences_are_readable(qbo):
    info = CompanyInfo.get(REALM, qb=client(qbo))
    assert info.Country == "US"
    qbo.control("POST", f"companies/{REALM}", json={"settings": {"currencies": ["USD", "EUR"]}})
    prefs = raw(qbo, "GET", "preferences").json()["Preferences"]
    assert prefs["CurrencyPrefs"] == {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}}
    customer = raw(qbo, "POST", "customer", json={"DisplayName": "Euro Eva"}).json()["Customer"]
    invoice = raw(qbo, "POST", "invoice", json={
        "CustomerRef": {"value": customer["Id"]}, "CurrencyRef": {"value": "EUR"}, "ExchangeRate": 1.1,
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 10.0,
                  "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    assert '"HomeTotalAmt":11.00' in invoice.text and '"HomeBalance":11.00' in invoice.text


def test_unknown_bearer_token_gets_401_and_other_company_403(qbo):
    with pytest.raises(AuthorizationException) as caught:
        Invoice.all(qb=client(qbo, token="wrong"))
    assert caught.value.error_code == 401
    qbo.control("POST", "companies/other", json={"access_token": "other-token"})
    response = httpx.get(f"{qbo.url}/v3/company/{REALM}/item/1", headers={"Authorization": "Bearer other-token"})
    assert response.status_code == 403 and response.json()["fault"]["error"][0]["code"] == "3100"
    qbo.control("POST", "companies/other", json={"access_token": TOKEN})  # one token, two companies
    assert Item.count(qb=client(qbo, realm="other")) == Item.count(qb=client(qbo)) == 2


def test_refresh_token_rotates_through_intuitlib_and_old_one_dies_after_grace(qbo):
    registered = qbo.control("POST", "oauth/clients", json={
        "client_id": "cid", "client_secret": "secret", "realm_id": "4620816365000000000", "refresh_token": "RT-0"})
    assert registered["refresh_token"] == "RT-0"
    auth = AuthClient("cid", "secret", "http://localhost/callback",
                      environment=f"{qbo.url}/.well-known/openid_sandbox_configuration/")
    assert auth.token_endpoint == f"{qbo.url}/oauth2/v1/tokens/bearer"
    auth.refresh(refresh_token="RT-0")
    first_rt, first_at = auth.refresh_token, auth.access_token
    assert first_rt != "RT-0" and auth.expires_in == 3600 and auth.x_refresh_token_expires_in == 8726400
    # The new access token works for the auto-created company.
    assert Item.count(qb=client(qbo, token=first_at, realm="4620816365000000000")) == 2
    auth.refresh(refresh_token=first_rt)
    assert auth.refresh_token not in (first_rt, "RT-0")
    auth.refresh(refresh_token="RT-0")  # still inside the 24 h grace
    qbo.control("POST", "clock", json={"advance_seconds": 86_401})
    with pytest.raises(AuthClientError) as caught:
        auth.refresh(refresh_token="RT-0")
    assert caught.value.status_code == 400 and b"invalid_grant" in caught.value.content
    with pytest.raises(AuthorizationException):  # access tokens are 1 h
        Item.count(qb=client(qbo, token=first_at, realm="4620816365000000000"))
    qbo.control("POST", "options", json={"refresh_grace_seconds": 0})
    latest = auth.refresh_token
    auth.refresh(refresh_token=latest)
    with pytest.raises(AuthClientError):  # no grace: the replaced token dies at once
        auth.refresh(refresh_token=latest)
    with pytest.raises(AuthClientError):
        AuthClient("cid", "bad", "http://localhost/callback",
                   environment=f"{qbo.url}/.well-known/openid_sandbox_configuration/").refresh(
            refresh_token=auth.refresh_token)


# -- updates, voids, deletes, batch, CDC --------------------------------------------------------

def test_sparse_update_bumps_synctoken_and_stale_token_is_5010(qbo):
    qb = client(qbo)
    invoice = new_invoice(qb, new_customer(qb, "Sparse Sam").Id, "1", "SP-1")
    updated = qb.update_object("Invoice", json.dumps(
        {"Id": invoice.Id, "SyncToken": "0", "sparse": True, "PrivateNote": "hello"}))["Invoice"]
    assert updated["SyncToken"] == "1" and updated["PrivateNote"] == "hello" and updated["TotalAmt"] == 40.0
    with pytest.raises(QuickbooksException) as caught:
        qb.update_object("Invoice", json.dumps({"Id": invoice.Id, "SyncToken": "0", "sparse": True}))
    assert caught.value.error_code == 5010


def test_full_update_through_sdk_save_recomputes_totals_and_keeps_payment_links(qbo):
    qb = client(qbo)
    invoice = new_invoice(qb, new_customer(qb, "Full Fran").Id, "1", "F-1")
    payment = pay(qb, invoice, 10)
    current = Invoice.get(invoice.Id, qb=qb)
    current.Line[0].Amount = 60.0
    current.Line[0].SalesItemLineDetail.UnitPrice = 30.0
    saved = current.save(qb=qb)  # full update echoes read-only TotalAmt/Balance/SubTotal line
    assert (saved.TotalAmt, saved.Balance, saved.SyncToken) == (60.0, 50.0, "2")
    assert [(link.TxnId, link.TxnType) for link in saved.LinkedTxn] == [(payment.Id, "Payment")]
    assert [line.DetailType for line in saved.Line].count("SubTotalLineDetail") == 1


def test_credit_memo_applied_by_payment_line_lowers_remaining_credit(qbo):
    customer = raw(qbo, "POST", "customer", json={"DisplayName": "Credit Cleo"}).json()["Customer"]
    line = {"DetailType": "SalesItemLineDetail", "Amount": 30.0, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
    invoice = raw(qbo, "POST", "invoice", json={"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    memo = raw(qbo, "POST", "creditmemo", json={"CustomerRef": {"value": customer["Id"]},
                                                "Line": [{**line, "Amount": 10.0}]}).json()["CreditMemo"]
    payment = raw(qbo, "POST", "payment", json={
        "CustomerRef": {"value": customer["Id"]}, "TotalAmt": 20.0,
        "Line": [{"Amount": 30.0, "LinkedTxn": [{"TxnId": invoice.json()["Invoice"]["Id"], "TxnType": "Invoice"}]},
                 {"Amount": 10.0, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]})
    assert payment.status_code == 200, payment.text
    state = qbo.control("GET", "state")["companies"][REALM]
    assert state["Invoice"][0]["Balance"] == 0 and state["CreditMemo"][0]["RemainingCredit"] == 0


def test_voiding_payment_restores_invoice_balance_then_invoice_void_and_delete(qbo):
    qb = client(qbo)
    invoice = new_invoice(qb, new_customer(qb, "Void Vera").Id, "1", "V-1")
    payment = pay(qb, invoice, 40.0)
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0
    payment.void(qb=qb)  # operation=update&include=void
    reread = Invoice.get(invoice.Id, qb=qb)
    assert reread.Balance == 40.0
    assert Customer.get(invoice.CustomerRef.value, qb=qb).Balance == 40.0
    reread.void(qb=qb)  # operation=void
    voided = Invoice.get(invoice.Id, qb=qb)
    assert voided.TotalAmt == 0 and voided.PrivateNote.startswith("Voided")
    assert Customer.get(invoice.CustomerRef.value, qb=qb).Balance == 0
    voided.delete(qb=qb)
    assert Invoice.count(qb=qb) == 0


def test_cdc_lists_changed_and_deleted_objects(qbo):
    qb = client(qbo)
    invoice = new_invoice(qb, new_customer(qb, "Cdc Carl").Id, "1", "C-1")
    Invoice.get(invoice.Id, qb=qb).delete(qb=qb)
    new_invoice(qb, "1", "1", "C-2")
    since = qbo.control("POST", "clock", json={"advance_seconds": 0})["now"][:10]
    result = change_data_capture([Invoice, Customer], since, qb=qb)
    assert [getattr(i, "status", None) for i in result.Invoice] == [None, "Deleted"]
    assert len(result.Customer) == 1
