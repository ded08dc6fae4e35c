"""The HubSpot emulator, driven by the official ``hubspot-api-client`` over loopback.

Each test names the vendor rule it checks (``shared/notes/hubspot.md``); error
bodies are compared with the published fixtures in ``tests/fixtures/hubspot/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from hubspot import HubSpot
from hubspot.crm import contacts as hs_contacts
from hubspot.crm import deals as hs_deals
from hubspot.crm import properties as hs_properties

from sandbox.hubspot.app import create_app

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "hubspot"
TOKEN = "pat-sandbox"
# The shared ``sandbox`` fixture needs all four emulators; HUBSPOT_OWN_SERVER=1 forces the private one.
ALL_EMULATORS = all((ROOT / "sandbox" / s / "app.py").exists()
                    for s in ("shopify", "woocommerce", "hubspot", "quickbooks")) \
    and not os.environ.get("HUBSPOT_OWN_SERVER")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def without(body: dict, *keys: str) -> dict:
    return {k: v for k, v in body.items() if k not in keys}


@contextlib.contextmanager
def serve(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def _own_server():
    """A private server, used until all four emulators exist for the shared ``sandbox`` fixture."""
    with serve(create_app({})) as url:
        yield url


@pytest.fixture
def hs_url(request) -> str:
    """Base URL of a freshly reset HubSpot emulator."""
    if ALL_EMULATORS:
        return request.getfixturevalue("sandbox").url("hubspot")
    url = request.getfixturevalue("_own_server")
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    return url


@pytest.fixture
def client(hs_url) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=hs_url)


def control(url: str, method: str, path: str, **kwargs):
    response = httpx.request(method, f"{url}/_sandbox/{path}", timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()


def upsert_contacts(client: HubSpot, *rows: tuple[str, dict], info: bool = False):
    body = hs_contacts.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        hs_contacts.SimplePublicObjectBatchInputUpsert(id=email, id_property="email", properties=props)
        for email, props in rows])
    if info:
        return client.crm.contacts.batch_api.upsert_with_http_info(body)
    return client.crm.contacts.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=body)


def error_of(call) -> tuple[int, dict, object]:
    """Run ``call``, expect an SDK exception, return (status, json body, headers)."""
    with pytest.raises(Exception) as info:
        call()
    exc = info.value
    assert hasattr(exc, "status"), exc
    return exc.status, json.loads(exc.body), exc.headers


# --- contacts: upsert by email ------------------------------------------------------
def test_upsert_twice_keeps_one_contact_per_email_new_then_not_new(client, hs_url):
    first = upsert_contacts(client, ("ada@example.com", {"firstname": "Ada"}))
    second = upsert_contacts(client, ("ada@example.com", {"firstname": "Ada", "lastname": "Lovelace"}))
    assert first.status == "COMPLETE" and first.results[0].new is True
    assert second.results[0].new is False
    assert second.results[0].id == first.results[0].id
    assert isinstance(first.results[0].id, str)
    contacts = control(hs_url, "GET", "state")["contacts"]
    assert len(contacts) == 1
    assert contacts[0]["properties"]["lastname"] == "Lovelace"


def test_upsert_body_has_the_published_shape(client, hs_url):
    response = httpx.post(f"{hs_url}/crm/v3/objects/contacts/batch/upsert",
                          headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"inputs": [{"idProperty": "email", "id": "ada@example.com",
                                            "properties": {"firstname": "Ada"}}]})
    published = fixture("contacts.batch_upsert.response.200.json")
    assert response.status_code == 200
    assert set(response.json()) == set(published)
    assert set(response.json()["results"][0]) == set(published["results"][0])
    assert set(response.json()["results"][0]["properties"]) == set(published["results"][0]["properties"])


def test_upsert_matches_email_case_insensitively(client, hs_url):
    first = upsert_contacts(client, ("Ada@Example.COM", {"firstname": "Ada"}))
    second = upsert_contacts(client, ("ada@example.com", {"phone": "+44 20 7946 0000"}))
    assert (first.results[0].new, second.results[0].new) == (True, False)
    assert first.results[0].id == second.results[0].id
    assert len(control(hs_url, "GET", "state")["contacts"]) == 1


def test_two_inputs_for_one_contact_reject_the_whole_batch(client, hs_url):
    status, body, _ = error_of(lambda: upsert_contacts(
        client, ("bob@example.com", {}), ("ada@example.com", {}), ("ADA@example.com", {"firstname": "A"})))
    assert status == 400
    assert without(body, "correlationId") == {
        "status": "error", "category": "VALIDATION_ERROR", "context": {"ids": ["ada@example.com"]},
        "message": "Duplicate IDs found in batch input: [ada@example.com]. IDs must be unique"}
    assert control(hs_url, "GET", "state")["contacts"] == []


def test_101_inputs_answer_the_batch_too_large_body(client, hs_url):
    rows = [(f"c{i}@example.com", {}) for i in range(101)]
    status, body, _ = error_of(lambda: upsert_contacts(client, *rows))
    assert status == 400
    assert without(body, "correlationId") == without(fixture("errors.400.batch_too_large.json"), "correlationId")
    assert len(upsert_contacts(client, *rows[:100]).results) == 100


def test_unknown_property_answers_property_doesnt_exist(client, hs_url):
    status, body, _ = error_of(lambda: upsert_contacts(client, ("ada@example.com", {"shoe_size": "42"})))
    assert status == 400
    expected = fixture("errors.400.property_doesnt_exist.json")
    assert without(body, "correlationId") == without(expected, "correlationId")
    assert control(hs_url, "GET", "state")["contacts"] == []


def test_number_property_value_is_a_validation_error(client):
    status, body, _ = error_of(lambda: upsert_contacts(client, ("ada@example.com", {"zip": 12345})))
    # Notes §2: values are strings (Prism refuses numbers); the wording is the emulator's.
    assert (status, without(body, "correlationId")) == (400, {
        "status": "error", "message": "Property values must be strings: zip", "category": "VALIDATION_ERROR",
        "context": {"properties": ["zip"]}})


def test_upsert_by_non_unique_property_is_rejected(client):
    body = hs_contacts.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        hs_contacts.SimplePublicObjectBatchInputUpsert(id="Ada", id_property="firstname", properties={})])
    status, answer, _ = error_of(lambda: client.crm.contacts.batch_api.upsert(body))
    expected = fixture("errors.400.non_unique_id_property.json")
    assert status == 400
    assert without(answer, "correlationId") == without(expected, "correlationId")


def test_upsert_with_trace_ids_reports_bad_inputs_as_207(client):
    body = hs_contacts.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        hs_contacts.SimplePublicObjectBatchInputUpsert(id="ada@example.com", id_property="email",
                                                       properties={"firstname": "Ada"}, object_write_trace_id="o-1"),
        hs_contacts.SimplePublicObjectBatchInputUpsert(id="bob@example.com", id_property="email",
                                                       properties={"shoe_size": "9"}, object_write_trace_id="o-2")])
    answer = client.crm.contacts.batch_api.upsert(body)
    assert answer.num_errors == 1
    assert [r.object_write_trace_id for r in answer.results] == ["o-1"]
    published = fixture("contacts.batch_upsert.response.207.json")["errors"][0]
    assert answer.errors[0].message == published["message"]
    assert answer.errors[0].context == {"objectWriteTraceId": ["o-2"]}


# --- contacts: create, read, search ------------------------------------------------------
def test_create_of_existing_email_conflicts_with_parseable_existing_id(client):
    created = client.crm.contacts.basic_api.create(
        hs_contacts.SimplePublicObjectInputForCreate(properties={"email": "ada@example.com"}))
    status, body, headers = error_of(lambda: client.crm.contacts.basic_api.create(
        hs_contacts.SimplePublicObjectInputForCreate(properties={"email": "ADA@example.com"})))
    assert status == 409
    assert set(body) == set(fixture("contacts.create.response.409.json"))
    assert body["category"] == "CONFLICT"
    assert re.search(r"Existing ID:\s*(\d+)", body["message"]).group(1) == created.id
    assert headers["Content-Type"] == "application/json;charset=utf-8"


def test_get_contact_by_email_id_property(client):
    created = upsert_contacts(client, ("ada@example.com", {"firstname": "Ada", "city": "London"}))
    found = client.crm.contacts.basic_api.get_by_id("ADA@example.com", id_property="email",
                                                    properties=["city", "firstname"])
    assert found.id == created.results[0].id
    # The requested properties plus the system ones (fixture contacts.batch_read_by_email.response.207.json).
    assert set(found.properties) == {"city", "firstname", "createdate", "hs_object_id", "lastmodifieddate"}
    assert (found.properties["city"], found.properties["firstname"]) == ("London", "Ada")
    status, body, _ = error_of(lambda: client.crm.contacts.basic_api.get_by_id("999999"))
    assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"


def test_batch_read_by_email_reports_missing_ids_as_207(client):
    upsert_contacts(client, ("ada@example.com", {"firstname": "Ada"}))
    answer = client.crm.contacts.batch_api.read(hs_contacts.BatchReadInputSimplePublicObjectId(
        id_property="email", inputs=[hs_contacts.SimplePublicObjectId(id="ada@example.com"),
                                     hs_contacts.SimplePublicObjectId(id="nobody@example.com")],
        properties=["email", "firstname"], properties_with_history=[]))
    published = fixture("contacts.batch_read_by_email.response.207.json")["errors"][0]
    assert [r.properties["email"] for r in answer.results] == ["ada@example.com"]
    assert answer.num_errors == 1
    error = answer.errors[0]
    assert (error.category, error.message, error.context) == (published["category"], published["message"],
                                                              published["context"])


def test_search_by_email_eq_and_in(client, hs_url):
    upsert_contacts(client, ("ada@example.com", {}), ("bob@example.com", {}), ("cy@example.com", {}))
    request = hs_contacts.PublicObjectSearchRequest(filter_groups=[hs_contacts.FilterGroup(filters=[
        hs_contacts.Filter(property_name="email", operator="EQ", value="Ada@example.com")])], limit=1)
    data, status, headers = client.crm.contacts.search_api.do_search_with_http_info(request)
    assert status == 200 and data.total == 1 and data.results[0].properties["email"] == "ada@example.com"
    # Notes §4: search answers carry none of the rate-limit headers.
    assert not [h for h in headers if h.lower().startswith("x-hubspot-ratelimit")]
    request = hs_contacts.PublicObjectSearchRequest(filter_groups=[hs_contacts.FilterGroup(filters=[
        hs_contacts.Filter(property_name="email", operator="IN", values=["bob@example.com", "cy@example.com"])])])
    assert client.crm.contacts.search_api.do_search(request).total == 2


# --- auth and rate limits --------------------------------------------------------------------
def test_wrong_or_missing_token_is_401_invalid_authentication(hs_url):
    bad = HubSpot(access_token="pat-wrong", host=hs_url)
    status, body, _ = error_of(lambda: bad.crm.contacts.basic_api.get_page())
    assert status == 401 and body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found")
    assert httpx.get(f"{hs_url}/crm/v3/objects/contacts").status_code == 401
    control(hs_url, "POST", "config", json={"access_token": "pat-wrong"})
    assert bad.crm.contacts.basic_api.get_page().results == []


def test_every_non_search_answer_carries_rate_limit_headers(client):
    expected = fixture("rate_limit_headers.example.json")
    _, status, headers = upsert_contacts(client, ("ada@example.com", {}), info=True)
    assert {k.lower() for k in expected if not k.startswith("_")} <= {k.lower() for k in headers}
    assert headers["X-HubSpot-RateLimit-Max"] == "100"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert int(headers["X-HubSpot-RateLimit-Daily-Remaining"]) == 250_000 - 1
    _, _, error_headers = error_of(lambda: upsert_contacts(client, ("ada@example.com", {"nope": "1"})))
    assert error_headers["X-HubSpot-RateLimit-Remaining"] == "98"


def test_exceeding_the_ten_second_window_answers_429_rolling(client, hs_url):
    control(hs_url, "POST", "config", json={"ten_second_limit": 3})
    for _ in range(3):
        upsert_contacts(client, ("ada@example.com", {}))
    status, body, headers = error_of(lambda: upsert_contacts(client, ("ada@example.com", {})))
    expected = fixture("errors.429.ten_secondly_rolling.json")
    assert status == 429
    assert without(body, "correlationId", "groupName") == without(expected, "correlationId", "groupName")
    assert body["groupName"].startswith("publicapi:hapikey-api-calls-ten-secondly:")
    assert headers["X-HubSpot-RateLimit-Max"] == "3"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "0"
    counters = control(hs_url, "GET", "counters")
    assert counters["rate_limited"] == 1
    assert counters["by_endpoint"]["POST /crm/v3/objects/contacts/batch/upsert"] == {"200": 3, "429": 1}


def test_exhausting_the_daily_limit_answers_429_daily(client, hs_url):
    control(hs_url, "POST", "config", json={"daily_limit": 2})
    upsert_contacts(client, ("ada@example.com", {}))
    upsert_contacts(client, ("ada@example.com", {}))
    status, body, _ = error_of(lambda: upsert_contacts(client, ("ada@example.com", {})))
    expected = fixture("errors.429.daily.json")
    assert status == 429
    assert without(body, "correlationId", "requestId") == without(expected, "correlationId", "requestId")


def test_reset_forgets_objects_counters_and_config(client, hs_url):
    control(hs_url, "POST", "config", json={"ten_second_limit": 1})
    upsert_contacts(client, ("ada@example.com", {}))
    control(hs_url, "POST", "reset")
    assert control(hs_url, "GET", "state")["contacts"] == []
    assert control(hs_url, "GET", "counters")["requests"] == 0
    assert control(hs_url, "GET", "config")["ten_second_limit"] == 100


# --- deals, line items, properties, associations -----------------------------------------
def create_order_key(client: HubSpot, object_type: str = "deals", unique: bool = True):
    return client.crm.properties.core_api.create(object_type, hs_properties.PropertyCreate(
        name="o2c_order_key", label="O2C order key", type="string", field_type="text",
        group_name="dealinformation", has_unique_value=unique))


def upsert_deals(client: HubSpot, *rows: tuple[str, dict]):
    body = hs_deals.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        hs_deals.SimplePublicObjectBatchInputUpsert(id=key, id_property="o2c_order_key", properties=props)
        for key, props in rows])
    return client.crm.deals.batch_api.upsert(body)


def test_unique_custom_property_makes_deal_upsert_idempotent(client, hs_url):
    created = create_order_key(client)
    assert created.has_unique_value is True
    assert client.crm.properties.core_api.get_by_name("deals", "o2c_order_key").name == "o2c_order_key"
    first = upsert_deals(client, ("shopify:1001", {"dealname": "Order #1001", "amount": "59.90"}))
    second = upsert_deals(client, ("shopify:1001", {"dealname": "Order #1001", "amount": "49.90"}))
    assert (first.results[0].new, second.results[0].new) == (True, False)
    deals = control(hs_url, "GET", "state")["deals"]
    assert len(deals) == 1 and deals[0]["properties"]["amount"] == "49.90"
    assert deals[0]["properties"]["o2c_order_key"] == "shopify:1001"
    assert control(hs_url, "GET", "state")["properties"]["deals"][0]["name"] == "o2c_order_key"


def test_upsert_by_a_property_without_unique_values_is_rejected(client):
    create_order_key(client, unique=False)
    status, body, _ = error_of(lambda: upsert_deals(client, ("shopify:1001", {})))
    assert status == 400 and "non-unique 0-3 property o2c_order_key" in body["message"]


def test_creating_an_existing_property_conflicts_and_unknown_property_is_404(client):
    create_order_key(client)
    status, body, _ = error_of(lambda: create_order_key(client))
    assert status == 409
    status, body, _ = error_of(lambda: client.crm.properties.core_api.get_by_name("deals", "nope"))
    assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"


def test_deal_created_with_contact_association_type_3(client, hs_url):
    contact_id = upsert_contacts(client, ("ada@example.com", {})).results[0].id
    body = fixture("deals.create_with_contact.request.json")
    body["associations"][0]["to"]["id"] = contact_id
    deal = client.crm.deals.basic_api.create(body)
    assert deal.properties["dealname"] == "Shopify order #1001"
    edges = control(hs_url, "GET", "state")["associations"]
    pairs = {(e["fromObjectType"], e["toObjectType"], e["types"][0]["associationTypeId"]) for e in edges}
    assert pairs == {("deals", "contacts", 3), ("contacts", "deals", 4)}
    read = client.crm.contacts.basic_api.get_by_id(contact_id, associations=["deals"])
    assert read.associations["deals"].results[0].id == deal.id


def test_create_with_association_to_missing_record_creates_nothing(client, hs_url):
    body = fixture("deals.create_with_contact.request.json")
    body["associations"][0]["to"]["id"] = "424242"
    status, _, _ = error_of(lambda: client.crm.deals.basic_api.create(body))
    assert status == 400 and control(hs_url, "GET", "state")["deals"] == []


def test_line_items_batch_created_against_a_deal_with_type_20(client, hs_url):
    deal = client.crm.deals.basic_api.create({"properties": {"dealname": "Order #1001"}})
    body = fixture("line_items.batch_create_with_deal.request.json")
    for item in body["inputs"]:
        item["associations"][0]["to"]["id"] = deal.id
    created = client.crm.line_items.batch_api.create(body)
    assert [r.properties["name"] for r in created.results] == ["T-shirt, blue, M", "Shipping"]
    listing = client.crm.associations.v4.basic_api.get_page("deals", deal.id, "line_items")
    assert sorted(r.to_object_id for r in listing.results) == sorted(r.id for r in created.results)
    assert {t.type_id for r in listing.results for t in r.association_types} == {19}


def test_batch_create_fails_whole_without_trace_ids_and_partially_with_them(client, hs_url):
    upsert_contacts(client, ("ada@example.com", {}))
    inputs = [{"properties": {"email": "bob@example.com"}}, {"properties": {"email": "ada@example.com"}}]
    status, body, _ = error_of(lambda: client.crm.contacts.batch_api.create({"inputs": inputs}))
    assert status == 409 and "Existing ID:" in body["message"]
    assert len(control(hs_url, "GET", "state")["contacts"]) == 1
    traced = [dict(i, objectWriteTraceId=f"o-{n}") for n, i in enumerate(inputs)]
    answer = client.crm.contacts.batch_api.create({"inputs": traced})
    assert answer.num_errors == 1 and answer.errors[0].category == "CONFLICT"
    assert answer.errors[0].context["objectWriteTraceId"] == ["o-1"]
    assert [r.properties["email"] for r in answer.results] == ["bob@example.com"]


def test_batch_update_by_email_needs_id_property(client, hs_url):
    upsert_contacts(client, ("ada@example.com", {}))
    answer = client.crm.contacts.batch_api.update({"inputs": [
        {"id": "ada@example.com", "idProperty": "email", "properties": {"lifecyclestage": "customer"}}]})
    assert answer.results[0].properties["lifecyclestage"] == "customer"
    # Notes §2.1 (#548): without idProperty the id is a record id, so nothing is updated.
    answer = client.crm.contacts.batch_api.update({"inputs": [
        {"id": "ada@example.com", "properties": {"lifecyclestage": "lead"}}]})
    assert answer.num_errors == 1 and answer.errors[0].category == "OBJECT_NOT_FOUND"


def test_associations_v4_batch_create_contact_to_deal_type_4(client):
    contact_id = upsert_contacts(client, ("ada@example.com", {})).results[0].id
    deal = client.crm.deals.basic_api.create({"properties": {"dealname": "Order #1001"}})
    body = {"inputs": [{"from": {"id": contact_id}, "to": {"id": deal.id},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]}]}
    answer = client.crm.associations.v4.batch_api.create("contacts", "deals", body)
    published = fixture("associations_v4.batch_create.response.201.json")["results"][0]
    assert answer.results[0].to_dict() == {"from_object_type_id": "0-1", "from_object_id": contact_id,
                                           "to_object_type_id": "0-3", "to_object_id": deal.id, "labels": []}
    assert (published["fromObjectTypeId"], published["toObjectTypeId"]) == ("0-1", "0-3")
    wrong = {"inputs": [dict(body["inputs"][0], types=[{"associationCategory": "HUBSPOT_DEFINED",
                                                        "associationTypeId": 3}])]}
    status, _, _ = error_of(lambda: client.crm.associations.v4.batch_api.create("contacts", "deals", wrong))
    assert status == 400


def test_associations_v4_associate_default_answers_both_directions(client, hs_url):
    deal = client.crm.deals.basic_api.create({"properties": {"dealname": "Order #1001"}})
    item = client.crm.line_items.basic_api.create({"properties": {"name": "Shipping", "price": "5.00"}})
    answer = client.crm.associations.v4.batch_api.create_default(
        "deals", "line_items", {"inputs": [{"from": {"id": deal.id}, "to": {"id": item.id}}]})
    published = fixture("associations_v4.batch_associate_default.response.200.json")
    assert [r.association_spec.association_type_id for r in answer.results] == \
        [r["associationSpec"]["associationTypeId"] for r in published["results"]] == [19, 20]
    read = client.crm.associations.v4.batch_api.get_page(
        "line_items", "deals", {"inputs": [{"id": item.id}, {"id": "999999"}]})
    assert read.results[0].to[0].to_object_id == deal.id and read.num_errors == 1


# --- prefixes and faults -------------------------------------------------------------------
def test_date_versioned_and_configured_prefixes_reach_the_same_objects():
    app = create_app({"prefixes": {"objects": ["/crm/v3/objects", "/crm/objects/2026-09"]}})
    with serve(app) as url, httpx.Client(base_url=url) as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        made = http.post("/crm/objects/2026-09/contacts", json={"properties": {"email": "a@example.com"}},
                         headers=auth)
        assert made.status_code == 201
        assert http.get(f"/crm/v3/objects/contacts/{made.json()['id']}", headers=auth).status_code == 200
        assert http.get("/crm/objects/2026-03/contacts", headers=auth).status_code == 404
        assert http.get(f"/crm/v3/objects/0-1/{made.json()['id']}", headers=auth).status_code == 200


def test_fault_after_apply_loses_the_answer_but_keeps_the_write(client, hs_url):
    control(hs_url, "POST", "faults", json={"faults": [
        {"endpoint": "contacts/batch/upsert", "status": 502, "after_apply": True}]})
    status, _, _ = error_of(lambda: upsert_contacts(client, ("ada@example.com", {})))
    assert status == 502
    assert upsert_contacts(client, ("ada@example.com", {})).results[0].new is False


def test_ten_second_window_rolls_so_a_client_that_waits_gets_through():
    from sandbox.hubspot.ratelimit import RateLimiter
    now = [100.0]
    limiter = RateLimiter(ten_second_limit=2, daily_limit=10, clock=lambda: now[0])
    assert [limiter.check("t"), limiter.check("t"), limiter.check("t")] == [None, None, "TEN_SECONDLY_ROLLING"]
    assert limiter.check("other-app") is None  # the burst limit is per app/token (notes §4)
    now[0] += 10.001
    assert limiter.check("t") is None
    assert limiter.headers("t")["X-HubSpot-RateLimit-Daily-Remaining"] == str(10 - 4)
