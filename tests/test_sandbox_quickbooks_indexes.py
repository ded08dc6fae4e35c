"""QuickBooks emulator query indexes: the same answers as a scan, without scanning the company.

The lookups a connector makes per order (customer by email or display name, document by
DocNumber, payment by PaymentRefNum) are answered from indexes kept on every write
(sandbox/quickbooks/store.py), so a 10,000-order backfill is not bound by the emulator's CPU.
Each query here runs twice, once through the indexes and once with them switched off, and the
answers must be equal; a counter of examined objects shows the index is what answered.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox.quickbooks import batch, entities, query
from sandbox.quickbooks.store import Company
from sandbox.quickbooks.wire import Clock

QUERIES = [
    "SELECT * FROM Customer WHERE DisplayName = 'ada lovelace'",
    "SELECT * FROM Customer WHERE DisplayName = 'Ada Lovelace' AND Active IN (true, false)",
    "SELECT * FROM Customer WHERE DisplayName IN ('ADA LOVELACE', 'grace hopper', 'Nobody') "
    "AND Active IN (true, false)",
    "SELECT * FROM Customer WHERE DisplayName IN ('Ada Lovelace', 'Grace Hopper')",
    "SELECT * FROM Customer WHERE DisplayName = 'Alan Turing'",
    "SELECT * FROM Customer WHERE DisplayName = 'Alan Turing' AND Active = false",
    "SELECT * FROM Customer WHERE DisplayName = 'Ada L.'",
    "SELECT * FROM Customer WHERE DisplayName = 'Ada L.' AND Active IN (true, false)",
    "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'ADA@example.com' AND Active IN (true, false)",
    "SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('ada@example.com', 'alan@example.com', 'x@y.z')",
    "SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('ada@example.com', 'alan@example.com') "
    "AND Active IN (true, false)",
    "SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('shared@example.com') AND Active IN (true, false) "
    "ORDERBY DisplayName DESC",
    "SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('shared@example.com') AND Active IN (true, false) "
    "STARTPOSITION 2 MAXRESULTS 2",
    "SELECT COUNT(*) FROM Customer WHERE PrimaryEmailAddr = 'shared@example.com' AND Active IN (true, false)",
    "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'shared@example.com' AND DisplayName = 'Shared 2' "
    "AND Active IN (true, false)",
    "SELECT * FROM Vendor WHERE DisplayName = 'Edsger Dijkstra'",
    "SELECT * FROM Customer WHERE DisplayName = 'Edsger Dijkstra'",
    "SELECT * FROM Invoice WHERE DocNumber IN ('SH-1001', 'sh-1002', 'SH-9999')",
    "SELECT * FROM Invoice WHERE DocNumber = 'SH-1002'",
    "SELECT * FROM Invoice WHERE DocNumber = '2026-01-05'",
    "SELECT * FROM Invoice WHERE DocNumber IN ('2026-01-05T00:00:00', 'SH-1001')",
    "SELECT * FROM Invoice WHERE DocNumber = 1003",
    "SELECT * FROM SalesReceipt WHERE DocNumber IN ('SH-1001')",
    "SELECT * FROM Item WHERE Name IN ('Services', 'shipping')",
    "SELECT *, Sku FROM Item WHERE Sku IN ('MUG-1')",
    "SELECT * FROM TaxCode WHERE Name = 'TAX'",
]


def scan(company: Company, text: str, monkeypatch) -> dict:
    """The query's answer with the indexes switched off (every object of the entity examined)."""
    with monkeypatch.context() as patch:
        patch.setattr(query, "_candidates", lambda c, q: c.all(q.entity))
        return query.run(company, text)


def ids(answer: dict) -> list:
    rows = next((v for k, v in answer.items() if isinstance(v, list)), [])
    return [row["Id"] for row in rows] + [answer.get("totalCount"), answer.get("startPosition")]


@pytest.fixture
def company() -> Company:
    company = Company("1", Clock("-07:00"))
    for entity, rows in {"Account": [{"Name": "Sales", "AccountType": "Income"}],
                         "Item": [{"Name": "Services", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
                                  {"Name": "Shipping", "Type": "Service", "IncomeAccountRef": {"value": "1"}},
                                  {"Name": "Mug", "Sku": "MUG-1", "Type": "Service",
                                   "IncomeAccountRef": {"value": "1"}}]}.items():
        for row in rows:
            entities.create(company, entity, row)
    from sandbox.quickbooks import tax
    tax.seed(company)
    customers = [
        {"DisplayName": "Ada Lovelace", "PrimaryEmailAddr": {"Address": "Ada@Example.com"}},
        {"DisplayName": "Grace Hopper"},
        {"DisplayName": "Alan Turing", "PrimaryEmailAddr": {"Address": "alan@example.com"}, "Active": False},
        *({"DisplayName": f"Shared {n}", "PrimaryEmailAddr": {"Address": "shared@example.com"},
           "Active": n != 2} for n in range(4)),
    ]
    for row in customers:
        entities.create(company, "Customer", row)
    entities.create(company, "Vendor", {"DisplayName": "Edsger Dijkstra"})
    for number in ("SH-1001", "SH-1002", "SH-1002", "2026-01-05", "1003"):
        entities.create(company, "Invoice", {"CustomerRef": {"value": "1"}, "DocNumber": number, "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": Decimal("10"),
             "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": Decimal("10")}}]})
    return company


def assert_same_as_scan(company: Company, monkeypatch) -> None:
    for text in QUERIES:
        assert ids(query.run(company, text)) == ids(scan(company, text, monkeypatch)), text


def test_indexed_queries_answer_what_a_scan_answers(company, monkeypatch):
    assert_same_as_scan(company, monkeypatch)
    # Spot checks that the comparison is not vacuous.
    assert ids(query.run(company, QUERIES[2]))[:2] == ["1", "2"]
    assert ids(query.run(company, QUERIES[4])) == [None, None]  # inactive: hidden unless Active is named
    assert [c["Id"] for c in query.run(company, QUERIES[10])["Customer"]] == ["1", "3"]
    assert ids(query.run(company, QUERIES[17]))[:3] == ["1", "2", "3"]


def test_indexes_follow_updates_renames_and_deactivation(company, monkeypatch):
    ada = query.run(company, QUERIES[0])["Customer"][0]
    entities.update(company, "Customer", {"Id": ada["Id"], "SyncToken": ada["SyncToken"], "sparse": True,
                                          "DisplayName": "Ada L.", "PrimaryEmailAddr": {"Address": "x@y.z"}})
    alan = scan(company, QUERIES[5], monkeypatch)["Customer"][0]
    entities.update(company, "Customer", {"Id": alan["Id"], "SyncToken": alan["SyncToken"], "sparse": True,
                                          "Active": True})
    invoice = query.run(company, QUERIES[18])["Invoice"][0]
    entities.update(company, "Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True,
                                         "DocNumber": "SH-1001"})
    assert_same_as_scan(company, monkeypatch)
    assert query.run(company, QUERIES[0]) == {}  # the old name no longer finds Ada
    assert query.run(company, QUERIES[6])["Customer"][0]["Id"] == ada["Id"]
    assert query.run(company, "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'X@Y.Z'")["Customer"][0]["Id"] == \
        ada["Id"]
    assert query.run(company, QUERIES[4])["Customer"][0]["Id"] == alan["Id"]  # active again: listed
    assert [i["Id"] for i in query.run(company, QUERIES[17])["Invoice"]][:3] == ["1", "2", "3"]
    assert query.run(company, QUERIES[18])["Invoice"][0]["Id"] != invoice["Id"]


def test_objects_created_earlier_in_a_batch_stay_hidden_from_indexed_queries(company):
    answer, _ = batch.run(company, {"BatchItemRequest": [
        {"bId": "1", "operation": "create", "Customer": {"DisplayName": "New One",
                                                          "PrimaryEmailAddr": {"Address": "new@example.com"}}},
        {"bId": "2", "Query": "SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('new@example.com')"},
        {"bId": "3", "Query": "SELECT * FROM Customer WHERE DisplayName IN ('New One')"},
    ]})
    assert [item.get("QueryResponse") for item in answer["BatchItemResponse"][1:]] == [{}, {}]
    assert query.run(company, "SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('NEW@example.com')")["Customer"]


def test_a_lookup_examines_its_candidates_not_the_whole_company(company, monkeypatch):
    for n in range(2000):
        entities.create(company, "Customer", {"DisplayName": f"Shopper {n}",
                                              "PrimaryEmailAddr": {"Address": f"shopper{n}@example.com"}})
    examined = []
    real = query._matches
    monkeypatch.setattr(query, "_matches", lambda obj, cond, c: examined.append(obj["Id"]) or real(obj, cond, c))
    emails = ", ".join(f"'shopper{n}@example.com'" for n in range(0, 2000, 20))
    found = query.run(company, f"SELECT * FROM Customer WHERE PrimaryEmailAddr IN ({emails}) "
                               "AND Active IN (true, false) MAXRESULTS 1000")["Customer"]
    assert len(found) == 100 and len(set(examined)) == 100
    examined.clear()
    assert query.run(company, "SELECT * FROM Customer WHERE DisplayName = 'shopper 1999'")["Customer"]
    assert len(set(examined)) == 1
