"""The canonical model: Decimal money with a currency, and the balance rule to the cent."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connector.model import Customer, Discount, Line, Money, Order, ShippingLine, TaxLine, balance_difference
from connector.snapshot import content_hash, from_json, to_json

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def usd(value: str) -> Money:
    return Money.of(value, "USD")


def order(total: str = "54.12", **changes) -> Order:
    base = dict(
        store="s", system="shopify", source_order_id="1", name="#1001", currency="USD", created_at=NOW,
        updated_at=NOW, customer=Customer(email="ada@example.com", first_name="Ada", last_name="Lovelace"),
        lines=(
            Line("1", "MUG", "Mug", 2, usd("16.50"), discounts=(Discount(usd("3.30")),),
                 tax_lines=(TaxLine("State", Decimal("0.0825"), usd("2.45")),)),
            Line("2", "CAP", "Cap", 1, usd("19.99"), tax_lines=(TaxLine("State", Decimal("0.0825"), usd("1.65")),)),
        ),
        shipping_lines=(ShippingLine("Standard", usd("5.00"), tax_lines=(TaxLine("State", Decimal("0.0825"),
                                                                                 usd("0.41")),)),),
        total=usd(total),
    )
    base.update(changes)
    return Order(**base)


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money(19.99, "USD")
    with pytest.raises(ValueError):
        usd("1.00") + Money.of("1.00", "EUR")
    with pytest.raises(ValueError):
        Money.of("1.00", "usd")
    assert (usd("0.10") + usd("0.20")).amount == Decimal("0.30")


def test_order_that_adds_up_balances_to_the_cent():
    # 33.00 + 19.99 - 3.30 + 5.00 + (2.45 + 1.65 + 0.41) = 59.20
    assert balance_difference(order("59.20")).is_zero()


def test_one_cent_off_is_reported_not_hidden():
    assert balance_difference(order("59.21")).amount == Decimal("-0.01")


def test_tax_inclusive_prices_do_not_add_tax_again():
    assert balance_difference(order("54.69", taxes_included=True)).is_zero()


def test_snapshot_round_trips_exactly_and_hash_follows_content():
    original = order("59.20")
    again = from_json(to_json(original))
    assert again == original
    assert content_hash(again) == content_hash(original)
    assert content_hash(order("59.21")) != content_hash(original)
