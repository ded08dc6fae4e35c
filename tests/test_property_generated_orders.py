"""Property: every order the sandbox generator makes, from either store, maps to a balanced
canonical order whose totals equal the store's.

Hypothesis draws generator seeds and batch sizes; each example seeds the
sandbox over HTTP, reads the orders back through the official SDKs exactly
as a sync does, and compares. Shrinking then points at the smallest batch
that breaks the rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.shopify import ShopifySource
from adapters.woocommerce import WooCommerceSource
from connector.config import load_config
from connector.demo import write_config
from connector.model import balance_difference
from sandbox.generator import generate_orders
from sandbox.seed import CREDENTIALS, SHOP, SITE, seed

PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)


def read_all(source) -> list[dict]:
    until = datetime.now(timezone.utc) + timedelta(days=30)  # generated changes may lie in the near future
    return [o for page in source.fetch_changed(PAST, until) for o in page]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed_value=st.integers(min_value=0, max_value=10**6), count=st.integers(min_value=1, max_value=24))
def test_every_generated_order_maps_balanced_with_the_stores_totals(sandbox, tmp_path, seed_value, count):
    sandbox.reset()
    credentials = seed(sandbox.urls, orders=0)
    start = datetime.now(timezone.utc) - timedelta(days=200)
    specs = generate_orders(seed_value, count, start=start, first_number=3001)
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders", timeout=120,
               json={"credentials": CREDENTIALS["shopify"], "orders": specs}).raise_for_status()
    httpx.post(f"{sandbox.urls['woocommerce']}/_sandbox/sites/{SITE}/orders", timeout=120,
               json={"credentials": CREDENTIALS["woocommerce"], "orders": specs}).raise_for_status()
    settings_ = load_config(write_config(tmp_path, credentials))
    shop_source = ShopifySource(settings_.stores[0])
    woo_source = WooCommerceSource(settings_.stores[1])

    shop_orders = read_all(shop_source)
    assert len(shop_orders) == count
    for payload in shop_orders:
        order = shop_source.to_order(payload)  # raises MappingError if it does not balance
        assert balance_difference(order).is_zero()
        store_total = Decimal(payload["totalPriceSet"]["shopMoney"]["amount"])
        assert order.total.amount == store_total
        assert order.tax_total.amount == Decimal(payload["totalTaxSet"]["shopMoney"]["amount"])
        assert order.shipping_total.amount == Decimal(payload["totalShippingPriceSet"]["shopMoney"]["amount"])

    woo_orders = read_all(woo_source)
    assert len(woo_orders) == count
    for payload in woo_orders:
        order = woo_source.to_order(payload)
        assert balance_difference(order).is_zero()
        assert order.total.amount == Decimal(payload["total"])
        assert order.tax_total.amount == Decimal(payload["total_tax"])
        assert order.discount_total.amount == Decimal(payload["discount_total"])
