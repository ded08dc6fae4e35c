"""In-memory state of the Shopify emulator: shops, their orders, buckets, counters.

One ``Store`` per app. Everything here is plain data so the control API can
dump it as JSON. Ids come from one deterministic counter per store that
starts just above 2^53: real Shopify ids are 64-bit ints that JavaScript and
``float`` cannot hold exactly (notes §3 "Large ints"), so a client that parses
them through a float breaks here as it would against Shopify.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from sandbox.shopify.cost import LeakyBucket
from sandbox.shopify.webhooks import snapshot

# Observed "Basic Shopify" bucket: 2000 points, 100/s (notes §2 table).
DEFAULT_BUCKET_SIZE = 2000.0
DEFAULT_RESTORE_RATE = 100.0
# Single query cap, regardless of plan (notes §2). Configurable for load tests only.
DEFAULT_MAX_QUERY_COST = 1000
ID_BASE = 2**53
# The app's client secret signs webhooks (notes §3 "HMAC check"); per shop, settable.
DEFAULT_API_SECRET = "shpss_sandbox_secret"
DEFAULT_SCOPES = ("read_orders", "read_all_orders")
READ_ALL_ORDERS_DAYS = 60  # without read_all_orders only the last 60 days are visible (notes §1)


@dataclass
class Shop:
    """One store: its token, its orders (rendered node dicts) and its cost bucket."""

    name: str
    token: str
    bucket: LeakyBucket
    orders: list[dict] = field(default_factory=list)
    by_id: dict[str, dict] = field(default_factory=dict)  # gid -> Order node
    customers: dict[str, dict] = field(default_factory=dict)  # identity key -> Customer node
    variants: dict[str, dict] = field(default_factory=dict)  # sku -> ProductVariant node
    bulk_operations: list[dict] = field(default_factory=list)
    bulk_results: dict[str, str] = field(default_factory=dict)  # bulk op gid -> JSONL text
    max_query_cost: int = DEFAULT_MAX_QUERY_COST
    bulk_seconds: float = 0.2  # how long a bulk operation stays RUNNING
    # Without the read_all_orders scope only the last 60 days of orders are visible (notes §1).
    visible_days: int | None = None
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    api_secret: str = DEFAULT_API_SECRET
    webhook_subscriptions: list[dict] = field(default_factory=list)  # webhooks.py; swapped, never mutated
    requests: int = 0  # GraphQL requests to this shop (GET /_sandbox/traffic)
    injected_throttles: int = 0  # THROTTLED or 429 answers the fault injector gave this shop
    timezone_offset: str = "-05:00"  # UTC offset of REST timestamps in webhook bodies (fixture's zone)

    def set_scopes(self, scopes: list[str]) -> None:
        """Grant ``scopes``; read_all_orders decides the 60-day window (notes §1)."""
        self.scopes = list(scopes)
        self.visible_days = None if "read_all_orders" in self.scopes else READ_ALL_ORDERS_DAYS


class Store:
    """All shops of one emulator plus request counters; reset wipes it all."""

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})
        self.lock = threading.Lock()
        # Told about order actions (webhooks.Events): order_created / order_changed.
        self.listener = None
        self.reset()

    def reset(self) -> None:
        self.shops: dict[str, Shop] = {}
        self._next_id = ID_BASE
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.throttled = 0
        self.cost_spent = 0.0

    def next_id(self) -> int:
        """Next numeric id (shared by every resource kind, like one global sequence)."""
        self._next_id += 1
        return self._next_id

    def shop(self, name: str) -> Shop | None:
        return self.shops.get(name)

    def ensure_shop(self, name: str, token: str | None) -> Shop:
        """Return the shop, creating it with ``token`` if new; a given token replaces the old."""
        shop = self.shops.get(name)
        if shop is None:
            shop = Shop(
                name=name,
                token=token or f"shpat_{name}",
                bucket=LeakyBucket(
                    float(self.options.get("bucket_size", DEFAULT_BUCKET_SIZE)),
                    float(self.options.get("restore_rate", DEFAULT_RESTORE_RATE)),
                ),
                max_query_cost=int(self.options.get("max_query_cost", DEFAULT_MAX_QUERY_COST)),
                bulk_seconds=float(self.options.get("bulk_seconds", 0.2)),
                api_secret=self.options.get("api_secret", DEFAULT_API_SECRET),
            )
            shop.set_scopes(self.options.get("scopes", DEFAULT_SCOPES))
            if self.options.get("visible_days") is not None:
                shop.visible_days = self.options["visible_days"]
            self.shops[name] = shop
        elif token:
            shop.token = token
        return shop

    def add_order(self, shop: Shop, node: dict) -> None:
        shop.orders.append(node)
        shop.by_id[node["id"]] = node
        for line in node["lineItems"]:
            shop.by_id[line["id"]] = line
        if self.listener is not None:
            self.listener.order_created(shop, node)

    @staticmethod
    def snapshot(order: dict) -> dict:
        """Take before changing ``order``; pass to ``order_changed`` afterwards."""
        return snapshot(order)

    def order_changed(self, shop: Shop, order: dict, before: dict) -> None:
        """An order was changed by a merchant action: tell the listener (webhook events)."""
        if self.listener is not None:
            self.listener.order_changed(shop, order, before)

    def find_order(self, shop: Shop, legacy_id: str) -> dict | None:
        return shop.by_id.get(f"gid://shopify/Order/{legacy_id}")

    def count(self, status: int) -> None:
        self.requests += 1
        self.by_status[str(status)] += 1

    def counters(self) -> dict:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "throttled": self.throttled,
            "cost_spent": self.cost_spent,
        }

    def traffic(self) -> dict:
        """``GET /_sandbox/traffic``: per shop, requests, throttled answers and the cost bucket's low-water
        mark. Shopify limits cost, not requests: a bucket that never ran dry throttled nobody."""
        accounts = {}
        for name, shop in sorted(self.shops.items()):
            bucket = shop.bucket
            accounts[name] = {"requests": shop.requests, "throttled": bucket.refused + shop.injected_throttles,
                              "bucket": {"size": bucket.size, "restore_rate": bucket.restore_rate,
                                         "min_available": round(bucket.lowest, 3)}}
        return {"accounts": accounts}

    def state(self) -> dict:
        return {
            "shops": {
                name: {
                    "orders": shop.orders,
                    "bulk_operations": shop.bulk_operations,
                    "webhook_subscriptions": shop.webhook_subscriptions,
                    "scopes": shop.scopes,
                    "throttle_status": shop.bucket.status(),
                }
                for name, shop in self.shops.items()
            }
        }
