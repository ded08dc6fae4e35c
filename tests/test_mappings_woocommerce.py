"""WooCommerce's published order examples map to balanced canonical orders."""

from __future__ import annotations

import json
from decimal import Decimal

from connector.model import FinancialStatus, balance_difference
from mappings.woocommerce_order import map_order
from tests.conftest import FIXTURES


def load(name: str):
    return json.loads((FIXTURES / "woocommerce" / name).read_text())


def test_docs_order_727_maps_to_a_balanced_paid_order():
    order = map_order(load("wcdocs_v3_order_727_create_and_retrieve_response.json"), "docs")
    assert order.order_key == "docs:727"
    assert order.total.amount == Decimal("29.35") and order.currency == "USD"
    assert order.financial_status is FinancialStatus.PAID
    assert order.customer.email == "john.doe@example.com"
    assert [(line.sku, line.quantity, line.gross.amount) for line in order.lines] == [
        (None, 2, Decimal("6.00")), ("Bar3", 1, Decimal("12.00"))]
    assert order.shipping_total.amount == Decimal("10.00")
    assert balance_difference(order).is_zero()


def test_every_order_of_the_docs_list_balances():
    for raw in load("wcdocs_v3_orders_list_response.json"):
        assert balance_difference(map_order(raw, "docs")).is_zero(), raw["id"]


def test_guest_order_captured_from_a_webhook_keeps_its_customer():
    order = map_order(load("pipedream_new-order-event_test-event.json"), "p")
    assert order.customer.email == "user@example.com"
    assert balance_difference(order).is_zero()
