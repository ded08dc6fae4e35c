"""The declarative Mapper toolkit: direct pairs, decorated mappings, children, finalize, errors."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from connector.errors import MappingError
from mappings.mapper import Mapper, mapping, read


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int


class ItemMapper(Mapper):
    target = Item
    direct = (("sku", "sku"), ("qty", "quantity", int))

    def skip(self, record: dict) -> bool:
        return record.get("kind") == "gift_card"


class OrderMapper(Mapper):
    direct = (
        ("number", "name", lambda number: f"#{number}"),
        ("customer.email?", "email"),
        ("total", "total", "amount"),  # a method name: the converter needs the mapper's options
    )
    children = (("items", "items", ItemMapper),)

    def amount(self, value: str) -> Decimal:
        return Decimal(value) * self.scale

    @mapping
    def identity(self, record: dict) -> dict:
        return {"store": self.store, "key": f"{self.store}:{record['id']}"}

    def finalize(self, record: dict, fields: dict) -> dict:
        fields["count"] = sum(item.quantity for item in fields["items"])
        return fields


RECORD = {"id": 7, "number": 1001, "customer": {"email": "a@example.com"}, "total": "9.50",
          "items": [{"sku": "A", "qty": "2"}, {"sku": "CARD", "qty": "1", "kind": "gift_card"}, {"sku": "B", "qty": 3}]}


def map_record(record: dict = RECORD) -> dict:
    return OrderMapper(store="shop", scale=Decimal(2)).map(record)


def test_direct_pairs_copy_and_convert_source_fields():
    fields = map_record()
    assert fields["name"] == "#1001"
    assert fields["email"] == "a@example.com"
    assert fields["total"] == Decimal("19.00")


def test_optional_path_gives_none_when_a_parent_is_missing_or_null():
    assert map_record({**RECORD, "customer": None})["email"] is None
    assert map_record({k: v for k, v in RECORD.items() if k != "customer"})["email"] is None
    assert read({"a": {"b": {"c": 1}}}, "a.b.c") == 1


def test_decorated_mapping_returns_several_fields_using_the_options():
    fields = map_record()
    assert fields["store"] == "shop" and fields["key"] == "shop:7"


def test_children_become_target_dataclasses_and_skipped_ones_are_left_out():
    assert map_record()["items"] == (Item("A", 2), Item("B", 3))
    assert map_record({**RECORD, "items": None})["items"] == ()


def test_finalize_sees_the_mapped_children():
    assert map_record()["count"] == 5


def test_mappings_run_in_definition_order_and_subclasses_inherit_them():
    class Base(Mapper):
        @mapping
        def first(self, record):
            return {"seen": ["first"]}

    class Child(Base):
        @mapping
        def second(self, record):
            return {"seen": ["first", "second"]}

    assert Child().map({})["seen"] == ["first", "second"]


def test_record_missing_a_required_field_is_a_mapping_error_naming_the_field():
    with pytest.raises(MappingError) as caught:
        map_record({k: v for k, v in RECORD.items() if k != "number"})
    assert "'number'" in str(caught.value) and "missing" in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)


def test_child_missing_a_required_field_is_reported_by_the_outermost_mapper():
    with pytest.raises(MappingError) as caught:
        map_record({**RECORD, "items": [{"qty": 1}]})
    assert "OrderMapper" in str(caught.value) and "'sku'" in str(caught.value)


def test_error_hook_names_the_record():
    class NamedOrderMapper(OrderMapper):
        def error(self, record, exc):
            return MappingError(f"order {record.get('id')} is missing {exc}", system="test")

    with pytest.raises(MappingError, match=r"order 7 is missing 'total'") as caught:
        NamedOrderMapper(store="s", scale=1).map({k: v for k, v in RECORD.items() if k != "total"})
    assert caught.value.system == "test"


def test_exceptions_outside_catch_propagate_unchanged():
    with pytest.raises(TypeError):
        map_record({**RECORD, "total": None})  # Decimal(None): a TypeError, and only KeyError is caught by default
