"""``connector.field_diff`` (flatten and compare) and the dry run's write-capturing targets, without I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.dry_run import CapturingHubSpot, CapturingQuickBooks, Recorder, WouldSend
from connector.errors import PermanentError, StepError
from connector.field_diff import CHANGED, NEW, SAME, diff, equal, flatten, summary


def statuses(result) -> dict[str, str]:
    return {row.path: row.status for row in result.rows}


def test_flatten_names_nested_dicts_and_lists_by_dotted_paths():
    body = {"DocNumber": "DS-1",
            "Line": [{"Amount": Decimal("10.00"), "SalesItemLineDetail": {"ItemRef": {"value": "5"}}}, {"Amount": 5}],
            "CustomerRef": {"value": "1"}, "Empty": [], "None": {}}
    assert flatten(body) == {
        "DocNumber": "DS-1",
        "Line[0].Amount": Decimal("10.00"),
        "Line[0].SalesItemLineDetail.ItemRef.value": "5",
        "Line[1].Amount": 5,
        "CustomerRef.value": "1",
        "Empty": [],
        "None": {},
    }


@pytest.mark.parametrize("sent, current", [
    ("10.0", "10.00"), (Decimal("10.0"), "10.00"), (10, "10.00"), (Decimal("25.00"), 25.0), ("25", "25.00"),
    (True, "true"), (False, "false"), ("2026-11-01T10:00:00.000Z", "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00Z", "2026-11-01T11:00:00+01:00"), (None, ""), ("", None), ("abc", "abc"),
])
def test_equal_compares_the_way_targets_store_values(sent, current):
    assert equal(sent, current)


@pytest.mark.parametrize("sent, current", [
    ("10.00", "10.01"), ("01234", "1234"), ("x", None), ("true", "false"), ("2026-11-01T10:00:00Z", "2026-11-02"),
    ("Abc", "abc"),
])
def test_unequal_values(sent, current):
    assert not equal(sent, current)


def test_diff_marks_same_changed_and_new_and_ignores_what_only_the_target_holds():
    sent = {"Id": "7", "SyncToken": "0", "sparse": True,
            "Line": [{"Amount": Decimal("10.0"), "ItemRef": {"value": "5"}},
                     {"Amount": "5.00", "ItemRef": {"value": "2"}}],
            "PrivateNote": "new note"}
    current = {"Id": "7", "SyncToken": "3", "MetaData": {"CreateTime": "2026-11-01"}, "domain": "QBO",
               "Line": [{"Amount": 10.00, "ItemRef": {"value": "9"}, "Id": "1"}], "TotalAmt": "10.00"}
    result = diff(sent, current, skip=("sparse",))
    assert statuses(result) == {
        "Id": SAME, "SyncToken": CHANGED, "Line[0].Amount": SAME, "Line[0].ItemRef.value": CHANGED,
        "Line[1].Amount": NEW, "Line[1].ItemRef.value": NEW, "PrivateNote": NEW,
    }
    changed = {row.path: (row.sent, row.current) for row in result.differing}
    assert changed["Line[0].ItemRef.value"] == ("5", "9") and changed["Line[1].Amount"] == ("5.00", None)
    assert result.untouched == 4  # MetaData.CreateTime, domain, Line[0].Id, TotalAmt
    assert summary(result) == "2 changed, 3 new, 2 same"


def test_a_create_against_nothing_is_all_new():
    result = diff({"properties": {"amount": "30.00", "dealname": "#1001"}}, None)
    assert [(r.path, r.sent, r.current, r.status) for r in result.rows] == [
        ("properties.amount", "30.00", None, NEW), ("properties.dealname", "#1001", None, NEW)]
    assert result.untouched == 0 and summary(result) == "2 new"


def test_a_sent_blank_where_the_target_holds_nothing_is_the_same():
    assert statuses(diff({"a": None, "b": ""}, {"a": None})) == {"a": SAME, "b": SAME}
    assert summary(diff({}, None)) == "nothing to compare"


# -- the capturing targets ---------------------------------------------------------------------

class FakeQuickBooks:
    def __init__(self):
        self.sent = []

    def find_by_doc_number(self, entity, number):
        return {"Id": "70", "DocNumber": number, "TotalAmt": 1} if number == "DS-2" else None

    def read(self, entity, object_id):
        return {"Id": object_id, "SyncToken": "2", "DocNumber": "DS-2", "Active": False}

    def create(self, *args, **kwargs):  # must never be reached
        self.sent.append(args)

    def update(self, *args, **kwargs):
        self.sent.append(args)

    def batch(self, *args, **kwargs):
        self.sent.append(args)

    def delete(self, *args, **kwargs):
        self.sent.append(args)


def test_quickbooks_writes_are_captured_per_item_and_never_sent():
    fake, recorder = FakeQuickBooks(), Recorder()
    target = CapturingQuickBooks(fake, recorder)
    results = target.batch([("b0", "Invoice", {"DocNumber": "DS-1"}), ("b1", "Invoice", {"DocNumber": "DS-2"})], "r")
    assert all(isinstance(r, WouldSend) for r in results.values())
    assert results["b0"].write.summary == "would create Invoice DS-1" and results["b0"].write.current is None
    assert results["b1"].write.target_id == "70" and "already holds Invoice DS-2" in results["b1"].write.summary
    item = target.create("Item", {"Name": "GHOST-1", "Type": "NonInventory"}, "r")
    assert item["Id"] == "(new Item GHOST-1)"  # the document that needs it goes on, with a placeholder
    with pytest.raises(WouldSend) as void:
        target.update("Invoice", {"Id": "70", "SyncToken": "2", "sparse": True}, "r", void=True)
    assert void.value.write.summary == "would void Invoice DS-2 (Id 70)"
    assert statuses(void.value.write.diff) == {"Id": SAME, "SyncToken": SAME}
    with pytest.raises(StepError, match="not known to be a read"):
        target.delete("Invoice", "70")
    assert fake.sent == []
    assert [w.operation for w in recorder.writes] == ["create", "create", "create", "void"]


class FakeHubSpot:
    calls = 3

    def __init__(self):
        self.sent = []

    def read_by_property(self, object_type, id_property, values, properties):
        return {"shop:1": {"id": "11", "properties": {"o2c_order_key": "shop:1", "amount": "25",
                                                       "hs_lastmodifieddate": "x"}}}

    def upsert(self, *args):
        self.sent.append(args)

    def archive(self, *args):
        self.sent.append(args)


def test_hubspot_writes_are_captured_with_real_or_placeholder_ids_and_never_sent():
    fake, recorder = FakeHubSpot(), Recorder()
    target = CapturingHubSpot(fake, recorder)
    records = {"shop:1": {"o2c_order_key": "shop:1", "amount": "30.00"},
               "shop:2": {"o2c_order_key": "shop:2", "amount": "5.00"}}
    results = target.upsert("deals", records, "o2c_order_key")
    assert (results["shop:1"].object_id, results["shop:1"].created) == ("11", False)
    assert (results["shop:2"].object_id, results["shop:2"].created) == ("(new deals shop:2)", True)
    first, second = recorder.writes
    assert first.summary == "would update deal 11 (o2c_order_key shop:1)"
    assert statuses(first.diff) == {"properties.o2c_order_key": SAME, "properties.amount": CHANGED}
    assert first.diff.untouched == 0  # HubSpot's own properties are not compared
    assert second.summary == "would create deal shop:2"
    missing = target.update("deals", {"shop:3": {"amount": "1.00"}}, "o2c_order_key")["shop:3"]
    assert isinstance(missing.error, PermanentError)
    assert target.associate("deals", "line_items", 19, [("11", "21"), ("11", "21")]) == {("11", "21"): None}
    target.ensure_property("deals", "o2c_qbo_balance", "QuickBooks balance", number=True)
    assert target.calls == 3  # reads pass through
    with pytest.raises(StepError):
        target.archive("deals", ["11"])
    assert fake.sent == []
    assert [w.operation for w in recorder.writes] == ["upsert", "upsert", "update", "associate", "ensure_property"]
