"""Conformance: every published QuickBooks payload the emulator can produce, matched for shape.

Each published response in ``tests/fixtures/quickbooks/`` (copies of ``shared/fixtures/quickbooks``)
is compared with the emulator's answer to the same request: every key of the published JSON
must exist in ours with the same JSON type (objects and arrays recursively; for an array each
published element must match some element of ours), extra keys allowed. To give the emulator
the same data, the published object itself is sent as the request, its references remapped to
this company's ids — so the test also proves the published objects are accepted as input.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import httpx
import pytest
from test_quickbooks_emulator import FIXTURES, REALM, connect, fixture, raw


@pytest.fixture
def qbo(sandbox):
    return connect(sandbox)


# Keys the notes allow the emulator to omit: ``LineEx`` NameValue blobs on payment lines ("emulator may
# omit; parser must ignore", notes §1.4); ``id_token`` only comes with the openid scope (notes §4).
OMITTABLE = {"LineEx", "id_token"}


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape_errors(published, ours, path: str = "$") -> list[str]:
    """Where ``ours`` lacks a key of ``published`` or holds another JSON type there."""
    if json_type(published) != json_type(ours):
        return [f"{path}: published {json_type(published)}, ours {json_type(ours)}"]
    errors: list[str] = []
    if isinstance(published, dict):
        for key, value in published.items():
            if key in OMITTABLE:
                continue
            if key not in ours:
                errors.append(f"{path}.{key}: missing")
            else:
                errors += shape_errors(value, ours[key], f"{path}.{key}")
    elif isinstance(published, list):
        for index, element in enumerate(published):
            candidates = [shape_errors(element, mine, f"{path}[{index}]") for mine in ours]
            if not candidates:
                errors.append(f"{path}[{index}]: ours is empty")
            elif all(candidates):
                errors += min(candidates, key=len)
    return errors


def assert_shape(published, ours) -> None:
    errors = shape_errors(published, ours)
    assert not errors, "\n".join(errors)


def xml_shape_errors(published: ET.Element, ours: ET.Element, path: str = "") -> list[str]:
    """XML variant: same tags (namespace included), attribute names and child structure."""
    path = f"{path}/{published.tag}"
    if published.tag != ours.tag:
        return [f"{path}: ours is {ours.tag}"]
    errors = [f"{path}@{name}: missing" for name in published.attrib if name not in ours.attrib]
    for child in published:
        match = ours.find(child.tag)
        errors += [f"{path}/{child.tag}: missing"] if match is None else xml_shape_errors(child, match, path)
    return errors


def test_shape_comparer_catches_missing_keys_and_wrong_types():
    assert shape_errors({"a": 1, "b": [{"c": "x"}]}, {"a": 2.5, "b": [{"c": "y", "d": 1}], "e": None}) == []
    assert shape_errors({"a": "1"}, {"a": 1}) == ["$.a: published string, ours number"]
    assert shape_errors({"b": [{"c": "x"}]}, {"b": [{"d": 1}]}) == ["$.b[0].c: missing"]
    assert shape_errors({"a": {"z": True}}, {}) == ["$.a: missing"]


# -- building this company's copies of the published objects -------------------------------------

class Company:
    """Remaps the published sample company's references to objects created here."""

    ACCOUNTS = {"IncomeAccountRef": "2", "AssetAccountRef": "7", "ExpenseAccountRef": "8",
                "DepositToAccountRef": "5", "DiscountAccountRef": "4"}  # seeded chart (store.SEED)

    def __init__(self, server):
        self.server = server
        self.customers: dict[str, str] = {}
        self.items: dict[str, str] = {"Services": "1", "Shipping": "2"}  # seeded
        self.invoices: dict[str, str] = {}

    def post(self, path: str, body: dict, status: int = 200) -> dict:
        response = raw(self.server, "POST", path, json=body)
        assert response.status_code == status, response.text
        return response.json()

    def customer(self, ref: dict) -> str:
        name = ref.get("name") or f"Customer {ref['value']}"
        if name not in self.customers:
            self.customers[name] = self.post("customer", {"DisplayName": name})["Customer"]["Id"]
        return self.customers[name]

    def item(self, ref: dict) -> str:
        name = ref.get("name") or f"Item {ref['value']}"
        if name not in self.items:
            self.items[name] = self.post("item", {"Name": name, "Type": "Service",
                                                  "IncomeAccountRef": {"value": "1"}})["Item"]["Id"]
        return self.items[name]

    def remap(self, value):
        """A deep copy of a published object with its references pointing at this company."""
        if isinstance(value, list):
            return [self.remap(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            if key == "CustomerRef":
                item = {"value": self.customer(item)}
            elif key == "ItemRef":
                item = {"value": self.item(item)}
            elif key == "PaymentMethodRef":
                item = {"value": "2"}  # seeded "Check", as in the samples
            elif key in self.ACCOUNTS:
                item = {"value": self.ACCOUNTS[key]}
            out[key] = self.remap(item)
        return out

    def create(self, entity: str, published: dict) -> dict:
        body = {k: v for k, v in self.remap(published).items() if k not in ("Id", "SyncToken")}
        return self.post(entity.lower(), body)[entity]


@pytest.fixture
def company(qbo) -> Company:
    return Company(qbo)


def read(server, entity: str, object_id: str) -> dict:
    response = raw(server, "GET", f"{entity.lower()}/{object_id}")
    assert response.status_code == 200, response.text
    return response.json()


# -- entities: read, create, void, delete, query -------------------------------------------------

@pytest.mark.parametrize("name, entity", [
    ("customer.read.response.json", "Customer"),
    ("item.inventory.read.response.json", "Item"),
    ("item.category.read.response.json", "Item"),
    ("invoice.read.response.json", "Invoice"),
    ("creditmemo.read.response.json", "CreditMemo"),
    ("salesreceipt.read.response.json", "SalesReceipt"),
    ("refundreceipt.read.response.json", "RefundReceipt"),
])
def test_read_response_shape(qbo, company, name, entity):
    published = fixture(f"intuit-docs/{name}")
    created = company.create(entity, published[entity])
    assert_shape(published, read(qbo, entity, created["Id"]))


@pytest.mark.parametrize("name, entity", [
    ("customer.entity.pipedream-test-event.json", "Customer"),
    ("invoice.entity.pipedream-test-event.json", "Invoice"),
])
def test_bare_entity_shape(qbo, company, name, entity):
    published = fixture(f"intuit-docs/{name}")
    created = company.create(entity, published)
    assert_shape(published, read(qbo, entity, created["Id"])[entity])


def test_payment_read_shape(qbo, company):
    published = fixture("intuit-docs/payment.read.response.json")
    invoice = company.create("Invoice", {"CustomerRef": published["Payment"]["CustomerRef"], "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 71.0, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    body = copy.deepcopy(published["Payment"])
    body["Line"][0]["LinkedTxn"][0]["TxnId"] = invoice["Id"]
    body["DepositToAccountRef"] = {"value": "3"}  # Undeposited Funds, the published default
    created = company.create("Payment", body)
    assert_shape(published, read(qbo, "Payment", created["Id"]))


@pytest.mark.parametrize("prefix", ["invoice", "creditmemo", "salesreceipt", "refundreceipt"])
def test_create_response_shape(company, prefix):
    request = fixture(f"intuit-docs/{prefix}.create.request.json")
    published = fixture(f"intuit-docs/{prefix}.create.response.json")
    entity = next(iter(published))
    # Company data the answer carries but the request did not (copied from the customer record and
    # the company's custom-field setup in QBO): sent along, as this emulator does not invent it.
    for key in ("CustomerRef", "BillAddr", "ShipAddr", "BillEmail", "CustomField", "PaymentRefNum",
                "ProjectRef"):
        if key in published[entity] and key not in request:
            request[key] = published[entity][key]
    ours = company.post(prefix, company.remap(request))
    assert_shape(published, ours)


@pytest.mark.parametrize("prefix, entity", [
    ("invoice", "Invoice"), ("creditmemo", "CreditMemo"), ("salesreceipt", "SalesReceipt"),
    ("refundreceipt", "RefundReceipt"), ("payment", "Payment"),
])
def test_delete_response_shape(company, prefix, entity):
    published = fixture(f"intuit-docs/{prefix}.delete.response.json")
    if entity == "Payment":
        created = company.create("Payment", {"CustomerRef": {"name": "Payer"}, "TotalAmt": 5})
    else:
        created = company.create(entity, fixture(f"intuit-docs/{prefix}.create.request.json")
                                 | {"CustomerRef": {"name": "Deleter"}})
    ours = company.post(f"{prefix}?operation=delete", {"Id": created["Id"], "SyncToken": created["SyncToken"]})
    assert ours[entity] == {"status": "Deleted", "domain": "QBO", "Id": created["Id"]}
    assert_shape(published, ours)


def test_void_response_shapes(company):
    # Company and item data the published invoice carried (payment options, terms, item description).
    request = fixture("intuit-docs/invoice.create.request.json") | {
        "AllowOnlineACHPayment": False, "AllowOnlineCreditCardPayment": False, "SalesTermRef": {"value": "3"}}
    request["Line"][0]["Description"] = "Sod"
    invoice = company.create("Invoice", request)
    voided = company.post("invoice?operation=void", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    assert_shape(fixture("intuit-docs/invoice.void.response.json"), voided)
    receipt = company.create("SalesReceipt", fixture("intuit-docs/salesreceipt.create.request.json"))
    body = fixture("intuit-docs/salesreceipt.void.request.json") | {"Id": receipt["Id"], "SyncToken": "0"}
    voided = company.post("salesreceipt?operation=update&include=void", body)
    assert_shape(fixture("intuit-docs/salesreceipt.void.response.json"), voided)
    assert voided["SalesReceipt"]["PrivateNote"] == "Voided" and voided["SalesReceipt"]["TotalAmt"] == 0


@pytest.mark.parametrize("name, sql", [
    ("invoice.query.response.json", "select * from Invoice"),
    ("creditmemo.query.response.json", "select * from CreditMemo"),
    ("paymentmethod.query.response.json", "select * from PaymentMethod"),
    ("taxcode.query.response.json", "select * from TaxCode"),
])
def test_query_response_shape(qbo, company, name, sql):
    published = fixture(f"intuit-docs/{name}")
    entity = next(key for key in published["QueryResponse"] if key[0].isupper())
    if entity in ("Invoice", "CreditMemo"):
        for row in published["QueryResponse"][entity]:
            company.create(entity, row)
    response = raw(qbo, "POST", "query", content=sql, headers={"Content-Type": "application/text"})
    assert_shape(published, response.json())


def test_batch_response_shape(qbo, company):
    """The published batch (6240, 610, 5010 faults and a query) replayed against this company."""
    company.customer({"name": "Smith Family Store"})  # so creating the Vendor collides (6240)
    receipt = company.create("SalesReceipt", fixture("intuit-docs/salesreceipt.read.response.json")["SalesReceipt"])
    company.post("salesreceipt", {"Id": receipt["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "x"})
    request = fixture("intuit-docs/batch.request.json")
    request["BatchItemRequest"][1]["Invoice"]["Id"] = "129"  # does not exist here either (610)
    request["BatchItemRequest"][2]["SalesReceipt"]["Id"] = receipt["Id"]  # SyncToken "0" is now stale
    ours = company.post("batch", request)
    assert_shape(fixture("intuit-docs/batch.response.json"), ours)
    codes = {item["bId"]: item.get("Fault", {}).get("Error", [{}])[0].get("code") for item in ours["BatchItemResponse"]}
    assert codes == {"bid1": "6240", "bid2": "610", "bid3": "5010", "bid4": None}


def test_cdc_response_shape(qbo, company):
    for name in ("Customer 63", "Customer 99"):
        company.customer({"name": name})
    estimates = [company.create("Estimate", {"CustomerRef": {"name": "Customer 63"}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 1.0, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
        for _ in range(3)]
    company.post("estimate?operation=delete", {"Id": estimates[2]["Id"], "SyncToken": "0"})
    since = qbo.control("POST", "clock", json={"advance_seconds": 0})["now"][:10]
    ours = raw(qbo, "GET", "cdc", params={"entities": "Customer,Estimate", "changedSince": since}).json()
    assert_shape(fixture("intuit-docs/cdc.response.json"), ours)
    assert ours["CDCResponse"][0]["QueryResponse"][1]["Estimate"][-1]["status"] == "Deleted"


# -- faults and OAuth --------------------------------------------------------------------------

def test_stale_object_error_list_shape(company):
    customer = company.post("customer", {"DisplayName": "Stale Stan"})["Customer"]
    company.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "a"})
    stale = company.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "b"}, 400)
    assert_shape(fixture("errors/fault.5010.stale-object.error-list.json"), stale["Fault"]["Error"])


def test_auth_fault_shapes_json_and_xml(qbo):
    unknown = raw(qbo, "GET", "item/1", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    assert_shape(fixture("errors/fault.401.authentication.lowercase.json"), unknown.json())
    qbo.control("POST", "companies/other", json={"access_token": "other-token"})
    forbidden = raw(qbo, "GET", "item/1", headers={"Authorization": "Bearer other-token"})
    assert forbidden.status_code == 403
    assert_shape(fixture("errors/fault.403.authorization.lowercase.json"), forbidden.json())
    qbo.control("POST", "options", json={"auth_fault_format": "xml"})
    as_xml = raw(qbo, "GET", "item/1", headers={"Authorization": "Bearer nope"})
    assert as_xml.status_code == 401
    published = ET.parse(FIXTURES / "errors/fault.401.authentication.xml").getroot()
    assert xml_shape_errors(published, ET.fromstring(as_xml.content)) == []


def test_throttle_and_query_validation_xml_shapes(qbo):
    query_error = raw(qbo, "GET", "query", params={"query": "select * from Item startposition 0"},
                      headers={"Accept": "application/xml"})
    assert query_error.status_code == 400
    published = ET.parse(FIXTURES / "errors/quickbooks-ruby.query_validation_error.xml").getroot()
    ours = ET.fromstring(query_error.content)
    assert xml_shape_errors(published, ours) == []
    assert ours.find("{*}Fault/{*}Error/{*}Detail").text == published.find("{*}Fault/{*}Error/{*}Detail").text
    qbo.control("POST", "options", json={"requests_per_minute": 1})
    raw(qbo, "GET", "item/1")
    throttled = raw(qbo, "GET", "item/1")
    assert throttled.status_code == 429
    published = ET.parse(FIXTURES / "errors/quickbooks-ruby.too_many_requests_error.xml").getroot()
    assert xml_shape_errors(published, ET.fromstring(throttled.content)) == []


def test_token_success_and_failure_shapes(qbo):
    qbo.control("POST", "oauth/clients", json={"client_id": "cid", "client_secret": "sec", "realm_id": REALM,
                                               "refresh_token": "RT-1"})
    url = f"{qbo.url}/oauth2/v1/tokens/bearer"
    ok = httpx.post(url, auth=("cid", "sec"), data={"grant_type": "refresh_token", "refresh_token": "RT-1"})
    assert_shape(fixture("oauth/token.success.dotnet-sdk-test.json"), ok.json())
    bad = httpx.post(url, auth=("cid", "sec"), data={"grant_type": "refresh_token", "refresh_token": "nope"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert_shape(fixture("oauth/token.failure.dotnet-sdk-test.json"), bad.json())


def test_fixture_copies_are_byte_identical_to_shared():
    shared = FIXTURES.parents[3] / "shared" / "fixtures" / "quickbooks"
    if not shared.is_dir():
        pytest.skip("shared fixtures not checked out next to the repo")
    for path in FIXTURES.rglob("*"):
        if path.is_file() and path.name != "SOURCES.md":
            assert path.read_bytes() == (shared / path.relative_to(FIXTURES)).read_bytes(), path
    assert json.loads((FIXTURES / "intuit-docs/batch.request.json").read_text())["BatchItemRequest"]


def test_published_update_and_create_requests_are_accepted(company):
    """Sparse updates of SalesReceipt/RefundReceipt, the full Invoice update, an unapplied Payment, an Item."""
    receipt = company.create("SalesReceipt", fixture("intuit-docs/salesreceipt.create.request.json"))
    refund = company.create("RefundReceipt", fixture("intuit-docs/refundreceipt.create.request.json"))
    invoice = company.create("Invoice", fixture("intuit-docs/invoice.full-update.request.json"))
    for prefix, created in (("salesreceipt", receipt), ("refundreceipt", refund)):
        body = fixture(f"intuit-docs/{prefix}.sparse-update.request.json") | {"Id": created["Id"], "SyncToken": "0"}
        entity = next(k for k in ("SalesReceipt", "RefundReceipt") if k.lower() == prefix)
        updated = company.post(prefix, body)[entity]
        assert updated["SyncToken"] == "1" and updated["TotalAmt"] == created["TotalAmt"]
        changed = next(k for k in body if k not in ("Id", "SyncToken", "sparse"))
        assert updated[changed] == body[changed]
    full = company.remap(fixture("intuit-docs/invoice.full-update.request.json"))
    full.update(Id=invoice["Id"], SyncToken="0", DocNumber="1070")
    full.pop("ProjectRef")  # omitted writable fields become NULL on a full update (notes §1.6)
    updated = company.post("invoice", full)["Invoice"]
    assert (updated["SyncToken"], updated["TotalAmt"], "ProjectRef" in updated) == ("1", 150.0, False)
    payment = company.post("payment", company.remap(fixture("intuit-docs/payment.create.unapplied.request.json")))
    assert payment["Payment"]["UnappliedAmt"] == payment["Payment"]["TotalAmt"]
    item = company.post("item", fixture("intuit-docs/item.service.create.request.json"))["Item"]
    assert (item["Type"], item["IncomeAccountRef"]["value"]) == ("Service", "1")


@pytest.mark.parametrize("name", ["quickbooks-ruby.customer_duplicate_error.xml",
                                  "fault.6240.duplicate-name.php-sdk-issue.xml"])
def test_duplicate_name_xml_shape_for_an_xml_client(qbo, name):
    xml = {"Accept": "application/xml"}
    assert raw(qbo, "POST", "customer", json={"DisplayName": "Twin"}, headers=xml).status_code == 200
    again = raw(qbo, "POST", "customer", json={"DisplayName": "Twin"}, headers=xml)
    assert again.status_code == 400
    published = ET.parse(FIXTURES / "errors" / name).getroot()
    assert xml_shape_errors(published, ET.fromstring(again.content)) == []


def test_injected_server_error_xml_shape(qbo):
    qbo.control("POST", "faults", json={"faults": [{"path_contains": "/item", "status": 500, "format": "xml"}]})
    failed = raw(qbo, "GET", "item/1")
    assert failed.status_code == 500
    published = ET.parse(FIXTURES / "errors/quickbooks-ruby.generic_error.xml").getroot()
    assert xml_shape_errors(published, ET.fromstring(failed.content)) == []
