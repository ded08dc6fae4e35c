"""In-memory state of the WooCommerce emulator: one WordPress install per site.

Each site has its own API keys, its own post-id sequence (orders and refunds
share it, as WP posts / HPOS order ids do), its own order-item-id sequence
(line, shipping, tax and coupon items share ``woocommerce_order_items``), and
stable ids for customers, products and tax rates, plus its webhooks and the
status each trashed order had before it was trashed.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sandbox.traffic import AccountTraffic


@dataclass
class Credential:
    consumer_key: str
    consumer_secret: str
    permissions: str = "read_write"   # read | write | read_write (notes §2 "Keys")
    user_id: int = 1
    nonces: dict = field(default_factory=dict)  # timestamp -> nonce, as WC stores them


def parse_offset(value) -> timedelta:
    """"+02:00" / "-05:30" / minutes as int -> timedelta."""
    if isinstance(value, (int, float)):
        return timedelta(minutes=int(value))
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", str(value or "+00:00"))
    if not match:
        raise ValueError(f"bad timezone offset {value!r}")
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


@dataclass
class Site:
    name: str
    tz_offset: timedelta = timedelta(0)
    wc_version: str = "8.9.3"
    credentials: dict[str, Credential] = field(default_factory=dict)
    orders: dict[int, dict] = field(default_factory=dict)
    refunds: dict[int, dict] = field(default_factory=dict)
    next_post_id: int = 100
    next_item_id: int = 1
    next_meta_id: int = 1
    customers: dict[str, int] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)
    tax_rates: dict[tuple, int] = field(default_factory=dict)
    # Webhooks live in their own table (wc_webhooks) with their own id sequence.
    webhooks: dict = field(default_factory=dict)          # id -> webhooks.Webhook
    next_webhook_id: int = 1
    trash_status: dict[int, str] = field(default_factory=dict)  # _wp_trash_meta_status per trashed order

    def post_id(self, wanted: int | None = None) -> int:
        """Next post id; honours ``wanted`` (the spec's order number) if it is still ahead."""
        pid = wanted if wanted and wanted >= self.next_post_id else self.next_post_id
        self.next_post_id = pid + 1
        return pid

    def item_id(self) -> int:
        self.next_item_id += 1
        return self.next_item_id - 1

    def meta_id(self) -> int:
        self.next_meta_id += 1
        return self.next_meta_id - 1

    def customer_id(self, email: str | None) -> int:
        # Guests (no email) are customer 0; user 1 is the admin who owns the keys.
        if not email:
            return 0
        return self.customers.setdefault(email.lower(), len(self.customers) + 2)

    def product_id(self, sku: str) -> int:
        return self.products.setdefault(sku, 10 + 3 * len(self.products))

    def tax_rate_id(self, key: tuple) -> int:
        return self.tax_rates.setdefault(key, len(self.tax_rates) + 1)


class Store:
    """All sites plus request counters; ``reset`` forgets everything."""

    def __init__(self, options: dict):
        self.options = options
        self.reset()

    def reset(self) -> None:
        self.sites: dict[str, Site] = {}
        self.counters: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.traffic: dict[str, AccountTraffic] = {}  # per site, for GET /_sandbox/traffic

    def site(self, name: str, create: bool = False) -> Site | None:
        if name not in self.sites and create:
            self.sites[name] = Site(
                name,
                tz_offset=parse_offset(self.options.get("timezone_offset", "+00:00")),
                wc_version=self.options.get("wc_version", "8.9.3"),
            )
        return self.sites.get(name)

    def count(self, endpoint: str, status: int) -> None:
        self.counters[endpoint][str(status)] += 1

    def count_site(self, site: str, status: int) -> None:
        """One wc/v3 request to ``site``. Core wc/v3 enforces no rate limit (notes §5), so the busiest
        second is metered with no limit beside it: for a client told to keep under one."""
        traffic = self.traffic.get(site)
        if traffic is None:
            traffic = self.traffic[site] = AccountTraffic()
        meter = traffic.limit("requests_per_second", 1.0)
        now = time.monotonic()
        meter.offered.add(now)
        meter.admitted.add(now)
        traffic.units += 1
        traffic.answered(status)
