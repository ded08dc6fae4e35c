"""The Shopify source against the sandbox: fetch by ids, refunds line by line, the 60-day
window, booking in presentment money, and webhook bodies equal to the GraphQL fetch."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from adapters.shopify import ShopifySource
from connector.config import load_config
from connector.demo import write_config
from connector.errors import SourceError
from connector.model import balance_difference
from mappings.shopify_rest_order import map_rest_order
from sandbox.generator import generate_orders
from sandbox.seed import CREDENTIALS, SHOP, seed

PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)


def soon() -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=30)


@pytest.fixture
def shop(sandbox, tmp_path):
    """A shop seeded with two generator rounds of every case (32 orders), and its source."""
    credentials = seed(sandbox.urls, orders=0)
    specs = generate_orders(8, 32, start=datetime.now(timezone.utc) - timedelta(days=20), first_number=7001)
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders", timeout=60,
               json={"credentials": CREDENTIALS["shopify"], "orders": specs}).raise_for_status()
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/config", timeout=10,
               json={"bucket_size": 20000, "restore_rate": 1000}).raise_for_status()
    config = write_config(tmp_path, credentials)
    return sandbox, config, specs


def source_for(config, book_in: str = "shop") -> ShopifySource:
    if book_in != "shop":
        text = config.read_text().replace("    system: shopify\n", f"    system: shopify\n    book_in: {book_in}\n")
        config.write_text(text)
    return ShopifySource(load_config(config).stores[0])


def test_orders_announced_by_webhooks_are_fetched_many_per_query(shop):
    sandbox, config, _ = shop
    source = source_for(config)
    everything = [o for page in source.fetch_changed(PAST, soon()) for o in page]
    wanted = [o["legacyResourceId"] for o in everything[:12]] + ["999999"]  # one the shop does not have
    batches = []
    execute = source._execute

    def recording(query, variables, operation):
        answer = execute(query, variables, operation)
        if operation == "OrdersById":
            batches.append(len(variables["ids"]))
        return answer

    source._execute = recording
    fetched = source.fetch_by_ids(wanted)
    assert sorted(o["legacyResourceId"] for o in fetched) == sorted(wanted[:12])
    assert sum(batches) == len(wanted)  # every id asked once
    assert max(batches) > 1 and len(batches) < len(wanted)  # many per query, sized by cost


def test_refunds_are_read_line_by_line(shop):
    sandbox, config, specs = shop
    source = source_for(config)
    orders = {o["name"]: o for page in source.fetch_changed(PAST, soon()) for o in page}
    refunded = [s for s in specs if s.get("refunds")]
    assert refunded
    for spec in refunded:
        order = source.to_order(orders[f"#{spec['number']}"])
        refund = order.refunds[0]
        wanted = spec["refunds"][0]["lines"]
        assert sum(line.quantity for line in refund.lines) == sum(w["quantity"] for w in wanted)
        assert {line.source_line_id for line in refund.lines} <= {line.source_line_id for line in order.lines}
        explained = sum((x.amount.amount + (x.tax.amount if x.tax else 0) for x in refund.lines), Decimal(0))
        assert explained <= refund.amount.amount
        assert refund.gateway is not None


def test_booking_in_presentment_money_keeps_the_shop_money_too(shop):
    sandbox, config, specs = shop
    source = source_for(config, book_in="presentment")
    orders = [source.to_order(o) for page in source.fetch_changed(PAST, soon()) for o in page]
    foreign = [o for o in orders if o.currency == "EUR"]
    assert foreign, "the generator's multi-currency case is in every 16 orders"
    for order in foreign:
        assert balance_difference(order).is_zero()
        assert order.booked_side == "presentment"
        assert order.other_money.side == "shop" and order.other_money.total.currency == "USD"
    assert all(o.other_money is None for o in orders if o.currency == "USD")


def test_history_older_than_60_days_without_read_all_orders_is_explained_not_empty(shop):
    sandbox, config, _ = shop
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/config", timeout=10,
               json={"scopes": ["read_orders"]}).raise_for_status()
    source = source_for(config)
    with pytest.raises(SourceError) as caught:
        list(source.fetch_changed(datetime.now(timezone.utc) - timedelta(days=400), soon()))
    assert "read_all_orders" in str(caught.value) and "60 days" in str(caught.value)
    recent = [o for page in source.fetch_changed(datetime.now(timezone.utc) - timedelta(days=30), soon())
              for o in page]
    assert recent  # a window inside the 60 days is read normally


def test_webhook_body_and_graphql_fetch_give_the_same_canonical_order(shop):
    sandbox, config, _ = shop
    base = f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}"
    # A receiver that is not there: deliveries fail, but the log keeps each body as sent.
    httpx.post(f"{base}/webhooks", json={"topic": "orders/updated", "address": "http://127.0.0.1:9/hooks"},
               timeout=10).raise_for_status()
    source = source_for(config)
    orders = [o for page in source.fetch_changed(PAST, soon()) for o in page]
    for node in orders[:16]:
        httpx.post(f"{base}/orders/{node['legacyResourceId']}/touch", timeout=10,
                   json={"updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()
    deadline = time.monotonic() + 20
    bodies = {}
    while len(bodies) < 16 and time.monotonic() < deadline:
        log = httpx.get(f"{base}/webhooks/deliveries", params={"topic": "orders/updated"}, timeout=10).json()
        bodies = {json.loads(d["body"])["admin_graphql_api_id"]: json.loads(d["body"]) for d in log["deliveries"]}
        time.sleep(0.2)
    assert len(bodies) == 16
    fetched = {o["id"]: o for o in source.fetch_by_ids(list(bodies))}
    for gid, body in bodies.items():
        from_webhook = map_rest_order(body, source.store)
        from_graphql = source.to_order(fetched[gid])
        # REST order bodies carry no transactions; refund details come from the GraphQL path only.
        same = [f for f in ("name", "currency", "total", "customer", "lines", "shipping_lines", "fee_lines",
                            "tax_lines", "taxes_included", "financial_status", "cancelled_at", "order_discounts")
                if getattr(from_webhook, f) != getattr(from_graphql, f)]
        assert not same, (gid, same)
        assert from_webhook.updated_at == from_graphql.updated_at
