"""The HubSpot emulator's indexes give the answers a full scan gives.

``sandbox/hubspot`` looks records up by unique property (upsert, batch read/update by
``idProperty``, the 409 conflict check), by search ``EQ``/``IN`` filters and by
association source through indexes kept current on every write. Each test here
runs a sequence of writes and compares every indexed lookup with a brute-force
scan of the same store (the code the indexes replaced), then checks end to end over
HTTP that the emulator still follows HubSpot's rules (``shared/notes/hubspot.md``
§2.1, §2.3). The emulator has no merge or GDPR-delete endpoint, so neither is covered.
"""

from __future__ import annotations

import random

import pytest
from starlette.testclient import TestClient

from sandbox.hubspot import batch
from sandbox.hubspot import search as search_mod
from sandbox.hubspot.app import create_app
from sandbox.hubspot.associations import AssociationStore
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.objects import ObjectStore, fold, unique_key
from sandbox.hubspot.pipelines import Pipelines
from sandbox.hubspot.properties import PropertyRegistry

TOKEN = "pat-sandbox"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --- brute-force references (the scans the indexes replaced) ----------------------------
def scan_unique(store: ObjectStore, object_type: str, prop: str, value):
    if value is None:
        return None
    key = unique_key(prop, str(value))
    for record in store.records[object_type].values():
        stored = record.properties.get(prop)
        if not record.archived and stored is not None and unique_key(prop, stored) == key:
            return record
    return None


def scan_targets(assocs: AssociationStore, from_type: str, from_id: str, to_type: str):
    return [(k[3], v) for k, v in assocs.edges.items() if k[:3] == (from_type, from_id, to_type)]


def scan_search(store: ObjectStore, object_type: str, body: dict, monkeypatch) -> dict:
    with monkeypatch.context() as patch:
        patch.setattr(search_mod, "_candidates", lambda *args: None)
        return search_mod.search(store, object_type, body)


def scan_page(store: ObjectStore, object_type: str, archived: bool, after: int, limit: int):
    records = [r for r in store.records[object_type].values() if r.archived == archived]
    return records[after:after + limit], after + limit < len(records)


def fresh_index(store: ObjectStore, object_type: str, prop: str) -> dict:
    index = {}
    for record in store.records[object_type].values():
        value = record.properties.get(prop)
        if not record.archived and value is not None:
            index.setdefault(fold(value), {})[record.id] = record
    return index


def outcome(call):
    """``(status, body)`` of a store/batch call, with the per-call noise taken out."""
    try:
        result = call()
    except HubSpotError as error:
        return error.status, {k: v for k, v in error.body.items() if k != "correlationId"}
    return result


def make_store():
    registry = PropertyRegistry()
    store = ObjectStore(registry, "12345678", pipelines=Pipelines("2026-01-01T00:00:00.000Z"))
    return registry, store, AssociationStore(store)


def unique_property(registry: PropertyRegistry, object_type: str, name: str) -> None:
    registry.create(object_type, {"name": name, "label": name, "type": "string", "fieldType": "text",
                                  "groupName": "sandbox", "hasUniqueValue": True}, "2026-01-01T00:00:00.000Z")


EMAILS = ["ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com", "eve@example.com"]
KEYS = ["K1", "k1", "K2", "K3", "k3 "]  # a custom unique property compares exactly, search folds case
PHONES = ["+1 555 0100", "+1 555 0101", None]


def variants(email: str) -> list[str]:
    return [email, email.upper(), f"  {email.title()} "]


def check_everything(store: ObjectStore, monkeypatch) -> None:
    """Every indexed lookup equals the scan; every built index equals one rebuilt from scratch."""
    for value in [v for e in EMAILS for v in variants(e)] + ["nobody@example.com", ""]:
        assert store.find_unique("contacts", "email", value) is scan_unique(store, "contacts", "email", value)
    for value in KEYS + ["K9", "", None]:
        assert store.find_unique("contacts", "shop_key", value) is scan_unique(store, "contacts", "shop_key", value)
    for (object_type, prop), index in store.indexes.items():
        assert index == fresh_index(store, object_type, prop), (object_type, prop)
    bodies = [
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": e.upper()}]}]}
        for e in EMAILS]
    bodies += [
        {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "EQ", "value": PHONES[0]}]}],
         "sorts": ["createdate"], "limit": 1},
        {"filterGroups": [{"filters": [{"propertyName": "shop_key", "operator": "IN", "values": ["k1", "K3"]}]}],
         "limit": 2},
        {"filterGroups": [{"filters": [{"propertyName": "shop_key", "operator": "EQ", "value": "K1"},
                                       {"propertyName": "phone", "operator": "HAS_PROPERTY"}]},
                          {"filters": [{"propertyName": "email", "operator": "IN", "values": EMAILS[:2]}]}],
         "properties": ["email", "shop_key", "phone"]},
        {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "NEQ", "value": PHONES[1]}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "shop_key", "operator": "IN", "values": ["K2", None]}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": EMAILS[2]},
                                       {"propertyName": "phone", "operator": "BOGUS"}]}]},
        # A scan meets the bad operator on the first record: a 400 even though no email matches.
        {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "BOGUS"},
                                       {"propertyName": "email", "operator": "EQ", "value": "nobody@example.com"}]}]},
        {"query": "example", "limit": 3, "after": "1"},
    ]
    for body in bodies:
        indexed = outcome(lambda: search_mod.search(store, "contacts", body))
        scanned = outcome(lambda: scan_search(store, "contacts", body, monkeypatch))
        assert indexed == scanned, body
    for archived in (False, True):
        for after, limit in ((0, 3), (2, 100), (5, 2), (-2, 10)):
            assert store.page("contacts", archived, after, limit) == scan_page(store, "contacts", archived,
                                                                               after, limit)


def upsert_body(rng: random.Random, traced: bool) -> dict:
    inputs = []
    for n in range(rng.randint(1, 4)):
        props = {"firstname": rng.choice(["Ada", "Bob", "Cy"])}
        if rng.random() < 0.5:
            props["shop_key"] = rng.choice(KEYS)
        if rng.random() < 0.5:
            props["phone"] = rng.choice(PHONES)
        if rng.random() < 0.7:
            item = {"idProperty": "email", "id": rng.choice(variants(rng.choice(EMAILS))), "properties": props}
        else:
            props.pop("shop_key", None)
            item = {"idProperty": "shop_key", "id": rng.choice(KEYS), "properties": props}
        if traced:
            item["objectWriteTraceId"] = f"t{n}"
        inputs.append(item)
    return {"inputs": inputs}


@pytest.mark.parametrize("seed", range(12))
def test_indexed_lookups_equal_a_scan_through_random_writes(seed, monkeypatch):
    rng = random.Random(seed)
    registry, store, assocs = make_store()
    for step in range(160):
        if step == 20:
            # A unique property created after records exist: its index is built from them.
            unique_property(registry, "contacts", "shop_key")
        roll = rng.random()
        live = [r for r in store.records["contacts"].values() if not r.archived]
        if roll < 0.25:
            props = {"email": rng.choice(variants(rng.choice(EMAILS))), "phone": rng.choice(PHONES)}
            if step >= 20 and rng.random() < 0.5:
                props["shop_key"] = rng.choice(KEYS)
            outcome(lambda: store.create("contacts", props))
        elif roll < 0.45 and step >= 20:
            outcome(lambda: batch.batch_upsert(store, "contacts", upsert_body(rng, rng.random() < 0.5)))
        elif roll < 0.65 and live:
            # Updates that move unique values (and may leave two records on one value when
            # two inputs of a batch take the same one: the first created must win lookups).
            inputs = []
            for n, record in enumerate(rng.sample(live, min(len(live), rng.randint(1, 3)))):
                props = {rng.choice(["email", "phone"] + (["shop_key"] * (step >= 20))): None}
                name = next(iter(props))
                props[name] = rng.choice({"email": EMAILS + [None], "phone": PHONES,
                                          "shop_key": KEYS + [None]}[name])
                by_email = record.properties.get("email") and rng.random() < 0.5
                inputs.append({"id": record.properties["email"] if by_email else record.id,
                               "idProperty": "email" if by_email else None, "properties": props,
                               "objectWriteTraceId": f"u{n}"})
            if rng.random() < 0.3:
                for item in inputs:
                    item.pop("objectWriteTraceId")
            outcome(lambda: batch.batch_update(store, "contacts", {"inputs": inputs}))
        elif roll < 0.75 and live:
            record = rng.choice(live)
            outcome(lambda: store.update("contacts", record, {"email": rng.choice(variants(rng.choice(EMAILS)))}))
        elif live:
            ids = [r.id for r in rng.sample(live, min(len(live), 2))]
            batch.batch_archive(store, assocs, "contacts", {"inputs": [{"id": i} for i in ids]})
        if step >= 20:
            check_everything(store, monkeypatch)
    assert store.indexes  # the lookups above went through indexes


def test_a_changed_unique_value_no_longer_finds_the_record(monkeypatch):
    registry, store, _ = make_store()
    unique_property(registry, "deals", "order_key")
    deal = store.create("deals", {"dealname": "#1", "order_key": "shop-1"})
    assert store.find_unique("deals", "order_key", "shop-1") is deal
    store.update("deals", deal, {"order_key": "shop-1b"})
    assert store.find_unique("deals", "order_key", "shop-1") is None
    assert store.find_unique("deals", "order_key", "shop-1b") is deal
    assert store.find_unique("deals", "order_key", "SHOP-1B") is None  # only email folds case
    other = store.create("deals", {"dealname": "#2", "order_key": "shop-1"})  # the old value is free again
    store.archive("deals", deal)
    assert store.find_unique("deals", "order_key", "shop-1b") is None
    assert store.find_unique("deals", "order_key", "shop-1") is other
    store.create("deals", {"dealname": "#3", "order_key": "shop-1b"})  # archived values do not conflict
    for (object_type, prop), index in store.indexes.items():
        assert index == fresh_index(store, object_type, prop)


def test_contact_email_index_is_case_insensitive_and_409_names_the_holder():
    _, store, _ = make_store()
    ada = store.create("contacts", {"email": " Ada@Example.COM "})
    assert ada.properties["email"] == "ada@example.com"
    assert store.find_unique("contacts", "email", "ADA@example.com") is ada
    status, body = outcome(lambda: store.create("contacts", {"email": "ada@EXAMPLE.com"}))
    assert (status, body["category"]) == (409, "CONFLICT")
    assert body["message"] == f"Contact already exists. Existing ID: {ada.id}"
    status, body = outcome(lambda: batch.batch_create(store, AssociationStore(store), "contacts", {"inputs": [
        {"properties": {"email": "new@example.com"}}, {"properties": {"email": "ADA@example.com"}}]}))
    assert status == 409 and body["message"].endswith(f"Existing ID: {ada.id}")
    assert scan_unique(store, "contacts", "email", "new@example.com") is None  # nothing of the batch written


@pytest.mark.parametrize("seed", range(6))
def test_association_targets_equal_a_scan(seed):
    rng = random.Random(seed)
    _, store, assocs = make_store()
    contacts = [store.create("contacts", {"email": f"c{n}@example.com"}).id for n in range(4)]
    deals = [store.create("deals", {"dealname": f"d{n}"}).id for n in range(5)]
    items = [store.create("line_items", {"name": f"i{n}"}).id for n in range(6)]
    pairs = [("contacts", c, "deals", d, 4) for c in contacts for d in deals]
    pairs += [("deals", d, "contacts", c, 3) for c in contacts for d in deals]
    pairs += [("deals", d, "line_items", i, 19) for d in deals for i in items]
    pairs += [("line_items", i, "deals", d, 20) for d in deals for i in items]
    for _ in range(300):
        from_type, from_id, to_type, to_id, type_id = rng.choice(pairs)
        if rng.random() < 0.6:
            if assocs.other_parent(from_type, from_id, to_type, to_id) is None:
                assocs.add(from_type, from_id, to_type, to_id, type_id)
        elif rng.random() < 0.5:
            assocs.remove(from_type, from_id, to_type, to_id)
        else:
            assocs.batch_archive(from_type, to_type, {"inputs": [{"from": {"id": from_id}, "to": [{"id": to_id}]}]})
        for object_type, ids in (("contacts", contacts), ("deals", deals), ("line_items", items)):
            for object_id in ids:
                for to_type in ("contacts", "deals", "line_items"):
                    assert assocs.targets(object_type, object_id, to_type) == \
                        scan_targets(assocs, object_type, object_id, to_type)
        # Every line item under at most one deal (notes §2.3), as the index reports it.
        for item in items:
            assert len(assocs.targets("line_items", item, "deals")) <= 1
    read = assocs.batch_read("deals", "line_items", {"inputs": [{"id": d} for d in deals]})
    assert read[1]["results"] == [
        {"from": {"id": d}, "to": [{"toObjectId": t, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": x, "label": None} for x in sorted(types)]}
            for t, types in scan_targets(assocs, "deals", d, "line_items")]}
        for d in deals if scan_targets(assocs, "deals", d, "line_items")]


def test_lookups_do_not_scan_the_records(monkeypatch):
    """The per-item operations stay O(1) in company size: no call walks ``records``."""
    registry, store, assocs = make_store()
    unique_property(registry, "deals", "order_key")
    for n in range(300):
        contact = store.create("contacts", {"email": f"c{n}@example.com", "phone": f"+1 555 {n:04}"})
        deal = store.create("deals", {"dealname": f"#{n}", "order_key": f"k{n}"})
        assocs.add("deals", deal.id, "contacts", contact.id, 3)
    store.find_unique("contacts", "email", "x")  # build the indexes once
    store.find_unique("deals", "order_key", "x")
    search_mod.search(store, "contacts", {"filterGroups": [{"filters": [
        {"propertyName": "phone", "operator": "EQ", "value": "x"}]}]})

    def no_scan(*args):
        raise AssertionError("scanned every record")
    monkeypatch.setattr(store, "live", no_scan)
    monkeypatch.setattr(store, "records", {t: _NoIteration(v) for t, v in store.records.items()})
    monkeypatch.setattr(assocs, "edges", _NoIteration(assocs.edges))
    status, body = batch.batch_upsert(store, "deals", {"inputs": [
        {"idProperty": "order_key", "id": "k7", "properties": {"amount": "1"}},
        {"idProperty": "order_key", "id": "k999", "properties": {"amount": "2"}}]})
    assert status == 200 and [r["new"] for r in body["results"]] == [False, True]
    status, body = batch.batch_read(store, "contacts", {"idProperty": "email", "inputs": [{"id": "C5@example.com"}]})
    assert body["results"][0]["properties"]["email"] == "c5@example.com"
    answer = search_mod.search(store, "contacts", {"filterGroups": [{"filters": [
        {"propertyName": "phone", "operator": "EQ", "value": "+1 555 0042"}]}], "sorts": ["createdate"], "limit": 1})
    assert answer["total"] == 1 and answer["results"][0]["properties"]["email"] == "c42@example.com"
    deal = store.find_unique("deals", "order_key", "k3")
    assert [t for t, _ in assocs.targets("deals", deal.id, "contacts")] == [
        store.find_unique("contacts", "email", "c3@example.com").id]
    page, more = store.page("deals", False, 100, 10)
    assert [r.properties["dealname"] for r in page] == [f"#{n}" for n in range(100, 110)] and more


class _NoIteration(dict):
    """A dict that refuses to be walked (keyed access only)."""

    def values(self):
        raise AssertionError("scanned every record")

    items = keys = __iter__ = values


# --- end to end over HTTP -----------------------------------------------------------------
@pytest.fixture
def api():
    with TestClient(create_app({"ten_second_limit": 100000, "search_per_second": 100000})) as client:
        client.headers.update(AUTH)
        yield client


def _search(api, object_type: str, filters: list[dict], **extra) -> dict:
    response = api.post(f"/crm/v3/objects/{object_type}/search", json={"filterGroups": [{"filters": filters}],
                                                                       **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_http_email_change_then_upsert_read_and_search_follow_the_new_value(api):
    first = api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
        {"idProperty": "email", "id": "Ada@Example.com", "properties": {"firstname": "Ada"}}]}).json()["results"][0]
    assert first["new"] is True
    changed = api.patch("/crm/v3/objects/contacts/ada@example.com?idProperty=email",
                        json={"properties": {"email": "ada.l@example.com"}})
    assert changed.status_code == 200 and changed.json()["id"] == first["id"]
    assert api.get("/crm/v3/objects/contacts/ADA@example.com?idProperty=email").status_code == 404
    assert api.get("/crm/v3/objects/contacts/ada.l@example.com?idProperty=email").json()["id"] == first["id"]
    again = api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
        {"idProperty": "email", "id": "ada@example.com", "properties": {"firstname": "Other"}}]}).json()["results"][0]
    assert again["new"] is True and again["id"] != first["id"]
    read = api.post("/crm/v3/objects/contacts/batch/read", json={"idProperty": "email", "inputs": [
        {"id": "ADA@example.com"}, {"id": "ada.l@example.com"}, {"id": "gone@example.com"}], "properties": []})
    assert read.status_code == 207
    assert [r["id"] for r in read.json()["results"]] == [again["id"], first["id"]]
    assert read.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert read.json()["errors"][0]["context"] == {"ids": ["gone@example.com"]}
    found = _search(api, "contacts", [{"propertyName": "email", "operator": "IN",
                                       "values": ["ADA@example.com", "ada.l@example.com"]}])
    assert found["total"] == 2 and [r["id"] for r in found["results"]] == [first["id"], again["id"]]
    conflict = api.post("/crm/v3/objects/contacts", json={"properties": {"email": "ADA.L@example.com"}})
    assert conflict.status_code == 409
    assert conflict.json()["message"] == f"Contact already exists. Existing ID: {first['id']}"


def test_http_archive_frees_the_email_and_hides_the_record(api):
    made = api.post("/crm/v3/objects/contacts", json={"properties": {"email": "bob@example.com",
                                                                     "phone": "+1 555 0100"}}).json()
    assert api.delete(f"/crm/v3/objects/contacts/{made['id']}").status_code == 204
    assert _search(api, "contacts", [{"propertyName": "phone", "operator": "EQ", "value": "+1 555 0100"}]) == \
        {"total": 0, "results": []}
    read = api.post("/crm/v3/objects/contacts/batch/read", json={"idProperty": "email",
                                                                "inputs": [{"id": "bob@example.com"}]})
    assert read.status_code == 207 and read.json()["results"] == []
    again = api.post("/crm/v3/objects/contacts", json={"properties": {"email": "BOB@example.com"}})
    assert again.status_code == 201 and again.json()["id"] != made["id"]
    live = api.get("/crm/v3/objects/contacts?limit=10").json()
    archived = api.get("/crm/v3/objects/contacts?limit=10&archived=true").json()
    assert [r["id"] for r in live["results"]] == [again.json()["id"]]
    assert [r["id"] for r in archived["results"]] == [made["id"]] and archived["results"][0]["archived"] is True


def test_http_line_item_single_parent_follows_association_changes(api):
    deals = [api.post("/crm/v3/objects/deals", json={"properties": {"dealname": n}}).json()["id"] for n in "AB"]
    item = api.post("/crm/v3/objects/line_items", json={"properties": {"name": "T-shirt"}, "associations": [
        {"to": {"id": deals[0]}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                            "associationTypeId": 20}]}]}).json()["id"]
    refused = api.put(f"/crm/v4/objects/deals/{deals[1]}/associations/default/line_items/{item}")
    assert refused.status_code == 400 and refused.json()["context"] == {"lineItemId": [item], "dealId": [deals[0]]}
    listed = api.get(f"/crm/v4/objects/line_items/{item}/associations/deals").json()
    assert listed["results"] == [{"toObjectId": deals[0], "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 20, "label": None}]}]
    assert api.delete(f"/crm/v4/objects/deals/{deals[0]}/associations/line_items/{item}").status_code == 204
    assert api.get(f"/crm/v4/objects/line_items/{item}/associations/deals").json() == {"results": []}
    moved = api.put(f"/crm/v4/objects/deals/{deals[1]}/associations/default/line_items/{item}")
    assert moved.status_code == 200
    got = api.get(f"/crm/v3/objects/deals/{deals[1]}?associations=line_items").json()
    assert got["associations"] == {"line_items": {"results": [{"id": item, "type": "deal_to_line_item"}]}}
    read = api.post("/crm/v4/associations/deals/line_items/batch/read",
                    json={"inputs": [{"id": deals[0]}, {"id": deals[1]}]}).json()
    assert [r["from"]["id"] for r in read["results"]] == [deals[1]] and read["numErrors"] == 1
