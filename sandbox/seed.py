"""Seed a running sandbox with two stores, a HubSpot account and a QuickBooks company.

Everything goes through the emulators' control APIs over HTTP. Returns (and
``python -m sandbox seed --out FILE`` writes) the test credentials a
connector config needs. They are sandbox-only values, not secrets.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx

from sandbox.generator import PRODUCTS, generate_orders

SHOP = "demo-shop"
SITE = "demo-woo"
REALM = "9341453050500001"
BULK_SKUS = [f"BULK-{i:03d}" for i in range(120)]  # the generator's "many_lines" case sells these
CREDENTIALS = {
    "shopify": {"access_token": "shpat_sandbox_demo_token"},
    "woocommerce": {"consumer_key": "ck_sandbox_demo_key", "consumer_secret": "cs_sandbox_demo_secret"},
    "hubspot": {"access_token": "pat-sandbox-demo-token"},
    "quickbooks": {"client_id": "sandbox-demo-client", "client_secret": "sandbox-demo-secret",
                   "refresh_token": "sandbox-demo-refresh-0"},
}


def _post(client: httpx.Client, url: str, body: dict) -> dict:
    response = client.post(url, json=body)
    response.raise_for_status()
    return response.json()


def seed(urls: dict[str, str], *, orders: int = 100, seed_value: int = 7,
         start: datetime | None = None) -> dict:
    """Seed ``orders`` orders (half per store) and return the credentials, with base URLs."""
    start = start or (datetime.now(timezone.utc) - timedelta(days=20)).replace(microsecond=0)
    shop_count = orders // 2
    with httpx.Client(timeout=60) as client:
        _post(client, f"{urls['shopify']}/_sandbox/shops/{SHOP}/orders", {
            "credentials": CREDENTIALS["shopify"],
            "orders": generate_orders(seed_value, shop_count, start=start, first_number=1001),
        })
        _post(client, f"{urls['woocommerce']}/_sandbox/sites/{SITE}/orders", {
            "credentials": CREDENTIALS["woocommerce"],
            "orders": generate_orders(seed_value + 1, orders - shop_count, start=start, first_number=5001,
                                      gateways=("stripe", "paypal", "bacs")),
        })
        _post(client, f"{urls['hubspot']}/_sandbox/config", CREDENTIALS["hubspot"])
        # A US company that also takes euros (the generator's multi-currency orders).
        _post(client, f"{urls['quickbooks']}/_sandbox/companies/{REALM}",
              {"settings": {"home_currency": "USD", "currencies": ["USD", "EUR"]}})
        # The merchant's product catalogue: one item per SKU the stores sell.
        _post(client, f"{urls['quickbooks']}/_sandbox/companies/{REALM}/seed", {
            "Item": [{"Name": sku, "Sku": sku, "Description": title, "Type": "NonInventory",
                      "UnitPrice": price, "IncomeAccountRef": {"value": "2"}} for sku, title, price in PRODUCTS]
            + [{"Name": sku, "Sku": sku, "Type": "NonInventory", "IncomeAccountRef": {"value": "2"}}
               for sku in BULK_SKUS],
        })
        _post(client, f"{urls['quickbooks']}/_sandbox/oauth/clients",
              {**CREDENTIALS["quickbooks"], "realm_id": REALM})
    return {
        "shopify": {**CREDENTIALS["shopify"], "shop": SHOP, "shop_url": f"{urls['shopify']}/shop/{SHOP}"},
        "woocommerce": {**CREDENTIALS["woocommerce"], "site": SITE, "url": f"{urls['woocommerce']}/site/{SITE}"},
        "hubspot": {**CREDENTIALS["hubspot"], "host": urls["hubspot"]},
        "quickbooks": {**CREDENTIALS["quickbooks"], "realm_id": REALM, "api_url": f"{urls['quickbooks']}/v3",
                       "discovery_url": f"{urls['quickbooks']}/.well-known/openid_sandbox_configuration/"},
    }


def generate_shopify_orders(shopify_url: str, count: int, *, seed_value: int = 7, start: datetime | None = None,
                            first_number: int = 1001, variety: bool = True, client: httpx.Client | None = None) -> int:
    """Have the Shopify emulator generate and render ``count`` orders itself (the seed's shop).

    The same orders as posting ``generate_orders(seed_value, count, start=start, first_number=first_number,
    variety=variety)`` to ``/_sandbox/shops/<shop>/orders``, without building the specs here or sending
    them: seeding 100,000 orders for a benchmark holds none of them in this process.
    """
    body = {"credentials": CREDENTIALS["shopify"], "seed": seed_value, "count": count, "first_number": first_number,
            "variety": variety}
    if start is not None:
        body["start"] = start.isoformat()
    own = client is None
    client = client or httpx.Client(timeout=None)
    try:
        return int(_post(client, f"{shopify_url}/_sandbox/shops/{SHOP}/orders/generate", body)["created"])
    finally:
        if own:
            client.close()


def main(args) -> None:
    urls = json.loads(open(args.urls_file, encoding="utf-8").read())["urls"]
    credentials = seed(urls, orders=args.orders, seed_value=args.seed)
    text = json.dumps(credentials, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
