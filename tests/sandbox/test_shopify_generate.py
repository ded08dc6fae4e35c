"""The Shopify emulator's generate route seeds the very orders that posting the generator's specs does."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from sandbox.generator import generate_orders, iter_orders
from sandbox.seed import CREDENTIALS, SHOP, generate_shopify_orders

START = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_iter_orders_is_generate_orders_one_at_a_time():
    assert list(iter_orders(3, 40, start=START, first_number=7001)) == generate_orders(3, 40, start=START,
                                                                                          first_number=7001)


def test_generate_route_gives_the_same_orders_as_posting_the_specs(sandbox):
    count = 520  # more than one slice of the route (500 orders per hold of the store lock)
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders", timeout=120, json={
        "credentials": CREDENTIALS["shopify"],
        "orders": generate_orders(11, count, start=START, first_number=3001)}).raise_for_status()
    posted = sandbox.state("shopify")["shops"][SHOP]["orders"]
    sandbox.reset()
    assert generate_shopify_orders(sandbox.urls["shopify"], count, seed_value=11, start=START,
                                   first_number=3001) == count
    generated = sandbox.state("shopify")["shops"][SHOP]["orders"]
    assert len(generated) == count
    assert generated == posted


def test_generate_route_refuses_a_request_without_a_count(sandbox):
    response = httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders/generate",
                          json={"credentials": CREDENTIALS["shopify"]})
    assert response.status_code == 422
