"""Shopify's published order payloads map to balanced canonical orders, field by field.

Webhook bodies (REST shape) go through the same money rules as GraphQL
nodes (mappings/shopify_rest_order.py restates them). The GraphQL examples
on shopify.dev select only a few fields; the ones without money cannot be
orders, and the mapper says which field is missing instead of guessing.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connector.errors import MappingError
from connector.model import FinancialStatus, FulfillmentStatus, balance_difference, require_balanced
from mappings.shopify_order import map_order
from mappings.shopify_rest_order import map_rest_order, to_graphql_shape
from tests.conftest import FIXTURES

ORDER_WEBHOOKS = ["orders_create", "orders_updated", "orders_paid", "orders_cancelled"]


def load(name: str):
    return json.loads((FIXTURES / "shopify" / name).read_text())


@pytest.mark.parametrize("topic", ORDER_WEBHOOKS)
def test_published_order_webhook_maps_to_a_balanced_order_field_by_field(topic):
    body = load(f"webhook_{topic}.2026-01.json")
    order = require_balanced(map_rest_order(body, "shop"))
    assert order.order_key == "shop:" + body["admin_graphql_api_id"].rsplit("/", 1)[-1]  # exact, not the rounded id
    assert order.name == body["name"] and order.currency == body["currency"] == "USD"
    assert order.total.amount == Decimal(body["total_price"])
    assert order.line_total.amount == Decimal(body["total_line_items_price"])
    assert order.discount_total.amount == Decimal(body["total_discounts"])
    assert order.shipping_total.amount == Decimal(body["total_shipping_price_set"]["shop_money"]["amount"])
    assert order.tax_total.amount == Decimal(body["total_tax"])
    assert [(line.sku, line.quantity, line.unit_price.amount) for line in order.lines] == [
        (item["sku"], item["quantity"], Decimal(item["price"])) for item in body["line_items"]]
    assert [line.source_line_id for line in order.lines] == [
        item["admin_graphql_api_id"].rsplit("/", 1)[-1] for item in body["line_items"]]
    assert order.customer.email == body["email"].lower()
    assert order.customer.first_name == body["customer"]["first_name"]
    assert order.billing_address.city == body["billing_address"]["city"]
    assert order.shipping_address.zip == body["shipping_address"]["zip"]
    assert order.created_at == datetime.fromisoformat(body["created_at"])
    assert order.financial_status is FinancialStatus(body["financial_status"])
    assert order.fulfillment_status is FulfillmentStatus.UNFULFILLED
    assert (order.cancelled_at is not None) == (body["cancelled_at"] is not None)
    assert balance_difference(order).is_zero()


def test_webhook_body_and_its_graphql_shape_give_the_same_order():
    body = load("webhook_orders_paid.2026-01.json")
    assert map_order(to_graphql_shape(body), "s") == map_rest_order(body, "s")


def test_order_level_discount_not_allocated_to_lines_is_kept_as_an_order_discount():
    order = map_rest_order(load("webhook_orders_create.2026-01.json"), "s")
    assert sum(line.discount_total.amount for line in order.lines) == 0
    assert [d.amount.amount for d in order.order_discounts] == [Decimal("20.00")]


@pytest.mark.parametrize("example", ["orders_list_cursor_pagination", "orders_updated_after_filter",
                                     "orders_financial_status_authorized", "orders_details"])
def test_graphql_examples_without_money_fields_are_refused_with_the_missing_field(example):
    data = load(f"graphql_{example}.example.json")
    edges = data["orders"].get("edges") or []
    node = edges[0]["node"] if edges else data["orders"]["nodes"][0]
    with pytest.raises(MappingError) as caught:
        map_order(node, "s")
    assert "missing" in str(caught.value)


def test_an_order_that_does_not_add_up_is_refused_with_the_difference():
    body = load("webhook_orders_create.2026-01.json")
    body = {**body, "total_price_set": {"shop_money": {"amount": "404.96", "currency_code": "USD"},
                                        "presentment_money": {"amount": "404.96", "currency_code": "USD"}}}
    with pytest.raises(MappingError) as caught:
        require_balanced(map_rest_order(body, "s"))
    assert "#9999" in str(caught.value) and "-0.01" in str(caught.value)
    assert caught.value.code == "unbalanced"


def test_dates_keep_their_instant():
    order = map_rest_order(load("webhook_orders_create.2026-01.json"), "s")
    assert order.created_at.tzinfo is not None
    assert order.created_at.astimezone(timezone.utc).tzinfo == timezone.utc
