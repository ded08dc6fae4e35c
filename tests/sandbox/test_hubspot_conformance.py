"""Conformance: every published HubSpot body the emulator can produce, matched for shape.

"Shape" = the fixture's keys and JSON types, recursively; extra keys in the
emulator's answer are allowed, values are not compared (ids, timestamps and
correlationIds differ). Bodies are read raw over loopback HTTP (the SDK would
turn them into models); the fixtures' own request bodies drive the emulator
where one is published. Fixtures: ``tests/fixtures/hubspot/`` (origins in its
SOURCES.md). Not covered: ``errors.400.validation.generic.json`` (the docs'
generic example with ``errors[].in``, which no emulated rule answers) and
``errors.spec_example.json`` (the spec's placeholder).
"""

from __future__ import annotations

import httpx
import pytest

# Helpers of the emulator tests; its server fixtures are re-exported (tests/sandbox has no conftest).
import test_hubspot_emulator as base
from test_hubspot_emulator import TOKEN, control, fixture

_own_server, hs_url = base._own_server, base.hs_url

AUTH = {"Authorization": f"Bearer {TOKEN}"}
OBJECTS = "/crm/v3/objects"


# --- the shape comparer ------------------------------------------------------------
def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int in Python, not in JSON
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape_mismatches(expected, actual, path: str = "$") -> list[str]:
    """Where ``actual`` lacks a key of ``expected`` or holds another JSON type.

    Array items are compared position by position while the fixture has items,
    then against the fixture's first item; an empty fixture array accepts any items.
    """
    if json_type(expected) != json_type(actual):
        return [f"{path}: {json_type(actual)} where the fixture has {json_type(expected)}"]
    problems = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += shape_mismatches(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and expected:
        if not actual:
            problems.append(f"{path}: empty array where the fixture has items")
        for i, item in enumerate(actual):
            problems += shape_mismatches(expected[i] if i < len(expected) else expected[0], item, f"{path}[{i}]")
    return problems


def assert_shape(name: str, actual) -> None:
    problems = shape_mismatches(fixture(name), actual)
    assert not problems, f"{name}: " + "; ".join(problems)


def test_shape_comparer_allows_extra_keys_and_flags_missing_keys_and_types():
    published = {"id": "1", "archived": False, "n": 1, "properties": {"email": "a"}, "results": [{"x": "y"}]}
    assert shape_mismatches(published, {**published, "extra": [1]}) == []
    assert shape_mismatches(published, {**published, "archived": 0}) == [
        "$.archived: number where the fixture has boolean"]
    assert shape_mismatches(published, {**published, "properties": {"email": None}}) == [
        "$.properties.email: null where the fixture has string"]
    assert shape_mismatches(published, {**published, "results": [{"x": "y"}, {}]}) == ["$.results[1].x: missing"]
    assert shape_mismatches(published, {k: v for k, v in published.items() if k != "n"}) == ["$.n: missing"]


# --- driving the emulator over raw HTTP ----------------------------------------------
@pytest.fixture
def http(hs_url):
    with httpx.Client(base_url=hs_url, headers=AUTH, timeout=10) as client:
        yield client


def call(http: httpx.Client, method: str, path: str, body=None, status: int = 200) -> dict:
    response = http.request(method, path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def make_contact(http, email: str = "ada@example.com", **props) -> str:
    props = {"email": email, "firstname": "Ada", "lastname": "Lovelace", **props}
    return call(http, "POST", f"{OBJECTS}/contacts", {"properties": props}, 201)["id"]


def make_deal(http) -> str:
    body = {"properties": {"dealname": "Order #1001", "pipeline": "default", "dealstage": "closedwon"}}
    return call(http, "POST", f"{OBJECTS}/deals", body, 201)["id"]


# --- contacts ----------------------------------------------------------------------------
def test_contact_create_201(http):
    answer = call(http, "POST", f"{OBJECTS}/contacts", fixture("contacts.create.request.json"), 201)
    assert_shape("contacts.create.response.201.json", answer)


def test_contact_batch_create_201(http):
    body = fixture("contacts.batch_create.request.json")
    for item, last in zip(body["inputs"], ("Lovelace", "Builder")):
        item["properties"]["lastname"] = last  # the published answer shows a lastname its request lacks
    answer = call(http, "POST", f"{OBJECTS}/contacts/batch/create", body, 201)
    assert_shape("contacts.batch_create.response.201.json", answer)


def test_contact_batch_upsert_200_new_and_existing(http):
    make_contact(http, "bob@example.com", firstname="Bob", lastname="Builder")
    answer = call(http, "POST", f"{OBJECTS}/contacts/batch/upsert", fixture("contacts.batch_upsert.request.json"))
    assert_shape("contacts.batch_upsert.response.200.json", answer)
    assert [r["new"] for r in answer["results"]] == [True, False]


def test_contact_batch_upsert_207_with_a_bad_input(http):
    good, bad = fixture("contacts.batch_upsert.request.json")["inputs"]
    bad["properties"]["shoe_size"] = "9"
    inputs = [dict(good, objectWriteTraceId="o-1"), dict(bad, objectWriteTraceId="o-2")]
    answer = call(http, "POST", f"{OBJECTS}/contacts/batch/upsert", {"inputs": inputs}, 207)
    assert_shape("contacts.batch_upsert.response.207.json", answer)


def test_contact_batch_read_by_email_207(http):
    make_contact(http)
    answer = call(http, "POST", f"{OBJECTS}/contacts/batch/read",
                  fixture("contacts.batch_read_by_email.request.json"), 207)
    assert_shape("contacts.batch_read_by_email.response.207.json", answer)


def test_contact_search_200(http):
    make_contact(http)
    answer = call(http, "POST", f"{OBJECTS}/contacts/search", fixture("contacts.search_by_email.request.json"))
    assert_shape("contacts.search.response.200.json", answer)
    assert "paging" not in answer


def test_contact_search_200_paged(http):
    for name in ("ada", "bob", "cy"):
        make_contact(http, f"{name}@example.com")
    answer = call(http, "POST", f"{OBJECTS}/contacts/search", {"limit": 1, "after": "0"})
    assert_shape("contacts.search.response.200.paged.json", answer)
    assert answer["total"] == 3 and answer["paging"]["next"]["after"] == "1"


# --- deals and associations ----------------------------------------------------------
def test_deal_create_with_contact_201(http):
    body = fixture("deals.create_with_contact.request.json")
    body["associations"][0]["to"]["id"] = make_contact(http)
    answer = call(http, "POST", f"{OBJECTS}/deals", body, 201)
    assert_shape("deals.create.response.201.json", answer)


def test_associations_v4_batch_create_201(http):
    body = fixture("associations_v4.batch_create.contacts_deals.request.json")
    body["inputs"][0]["from"]["id"], body["inputs"][0]["to"]["id"] = make_contact(http), make_deal(http)
    answer = call(http, "POST", "/crm/v4/associations/contacts/deals/batch/create", body, 201)
    assert_shape("associations_v4.batch_create.response.201.json", answer)


def test_associations_v4_batch_associate_default_200(http):
    item = call(http, "POST", f"{OBJECTS}/line_items", {"properties": {"name": "Shipping", "price": "5"}}, 201)
    body = fixture("associations_v4.batch_associate_default.deals_line_items.request.json")
    body["inputs"][0]["from"]["id"], body["inputs"][0]["to"]["id"] = make_deal(http), item["id"]
    answer = call(http, "POST", "/crm/v4/associations/deals/line_items/batch/associate/default", body)
    assert_shape("associations_v4.batch_associate_default.response.200.json", answer)


# --- error bodies ----------------------------------------------------------------------
def _too_large(http, url):
    inputs = [{"idProperty": "email", "id": f"c{i}@example.com", "properties": {}} for i in range(101)]
    return http.post(f"{OBJECTS}/contacts/batch/upsert", json={"inputs": inputs})


def _unknown_property(http, url):
    return http.post(f"{OBJECTS}/contacts", json={"properties": {"email": "a@example.com", "shoe_size": "9"}})


def _non_unique(http, url):
    return http.post(f"{OBJECTS}/contacts/batch/upsert",
                     json={"inputs": [{"idProperty": "firstname", "id": "Ada", "properties": {}}]})


def _conflict(http, url):
    make_contact(http)
    return http.post(f"{OBJECTS}/contacts", json={"properties": {"email": "ada@example.com"}})


def _rolling(http, url):
    control(url, "POST", "config", json={"ten_second_limit": 1})
    http.get(f"{OBJECTS}/contacts")
    return http.get(f"{OBJECTS}/contacts")


def _daily(http, url):
    control(url, "POST", "config", json={"daily_limit": 1})
    http.get(f"{OBJECTS}/contacts")
    return http.get(f"{OBJECTS}/contacts")


@pytest.mark.parametrize("name, status, trigger", [
    ("errors.400.batch_too_large.json", 400, _too_large),
    ("errors.400.property_doesnt_exist.json", 400, _unknown_property),
    ("errors.400.non_unique_id_property.json", 400, _non_unique),
    ("contacts.create.response.409.json", 409, _conflict),
    ("errors.429.ten_secondly_rolling.json", 429, _rolling),
    ("errors.429.daily.json", 429, _daily),
])
def test_error_bodies(http, hs_url, name, status, trigger):
    response = trigger(http, hs_url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    assert_shape(name, response.json())
    # 429 bodies carry errorType/policyName and no category (notes §4).
    assert ("category" in response.json()) == (status != 429)
