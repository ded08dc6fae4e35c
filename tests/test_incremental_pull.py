"""Incremental pulls while the store keeps changing orders miss nothing and duplicate nothing.

Half-open windows, a safety lag behind "now" and an overlap (lookback) are
what make this hold; the test changes orders during the passes and then
compares every order's last change in the store with the ledger's.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

import httpx

from connector.composition import build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import pull_store
from connector.ledger import Ledger
from sandbox.seed import SHOP, SITE, seed

ORDERS = 80


def touch_orders(sandbox, stop: threading.Event, counts: dict) -> None:
    rng = random.Random(3)
    shop_ids = [o["legacyResourceId"] for o in sandbox.state("shopify")["shops"][SHOP]["orders"]]
    site_ids = [o["id"] for o in sandbox.state("woocommerce")["sites"][SITE]["orders"]]
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            client.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders/{rng.choice(shop_ids)}/touch",
                        json={"updated_at": now}).raise_for_status()
            client.post(f"{sandbox.urls['woocommerce']}/_sandbox/sites/{SITE}/orders/{rng.choice(site_ids)}/touch",
                        json={}).raise_for_status()
            counts["touches"] += 2
            time.sleep(0.01)


def test_pulls_during_concurrent_updates_end_with_every_latest_change_exactly_once(sandbox, tmp_path):
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=21)
    # A Plus-plan cost bucket, so several passes fit in the few seconds of concurrent changes.
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/config",
               json={"bucket_size": 20000, "restore_rate": 1000}, timeout=10).raise_for_status()
    path = write_config(tmp_path, credentials)
    path.write_text(path.read_text().replace("safety_lag_seconds: 0", "safety_lag_seconds: 2"))
    settings = load_config(path)
    ledger = Ledger(settings.ledger_path)
    sources = build_sources(settings)
    stop, counts = threading.Event(), {"touches": 0}
    toucher = threading.Thread(target=touch_orders, args=(sandbox, stop, counts))
    toucher.start()
    passes = 0
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            for source, store in sources:
                assert pull_store(source, store, ledger).error is None
            passes += 1
    finally:
        stop.set()
        toucher.join()
    time.sleep(3)  # past the safety lag: the last changes are now readable
    for source, store in sources:
        assert pull_store(source, store, ledger).error is None
    assert counts["touches"] > 50 and passes >= 2

    shop_latest = {f"demo-shop:{o['legacyResourceId']}": o["updatedAt"]
                   for o in sandbox.state("shopify")["shops"][SHOP]["orders"]}
    site_latest = {f"demo-woo:{o['id']}": o["date_modified_gmt"]
                   for o in sandbox.state("woocommerce")["sites"][SITE]["orders"]}
    held = {key: updated for key, updated in ledger.conn.execute(
        "SELECT order_key, source_updated_at FROM orders")}
    assert set(held) == set(shop_latest) | set(site_latest)  # nothing missed, nothing extra
    for key, updated in {**shop_latest, **site_latest}.items():
        store_time = datetime.fromisoformat(updated.replace("Z", "+00:00"))
        if store_time.tzinfo is None:
            store_time = store_time.replace(tzinfo=timezone.utc)
        assert datetime.fromisoformat(held[key]) == store_time, key
    ledger.close()
