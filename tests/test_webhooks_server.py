"""Every answer of the webhook server, over real HTTP on a loopback port (DESIGN.md guarantees 1, 7).

The stores here are placeholders: nothing is fetched; what matters is the
answer and what the inbox holds afterwards, read with a separate connection.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connector.config import load_config
from webhook_support import (PLACEHOLDER, SHOP, SHOP_SECRET, SITE, WOO_SECRET, WOO_SIGNING, free_port,
                             inbox_rows, sign, start_server, wait_for, write_webhook_config)

ROOT = Path(__file__).resolve().parent.parent
ORDER_ID = "820982911946154508"  # over 2^53: must stay exact


def shopify_body(updated_at: str = "2026-11-20T10:00:00-05:00", order_id: str = ORDER_ID) -> bytes:
    return json.dumps({"id": int(order_id), "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                       "name": "#9999", "updated_at": updated_at}, separators=(",", ":")).encode()


def shopify_headers(raw: bytes, webhook_id: str = "wh-1", topic: str = "orders/updated",
                    secret: str = SHOP_SECRET) -> dict:
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(secret, raw),
            "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Shop-Domain": f"{SHOP}.myshopify.com",
            "X-Shopify-Event-Id": "ev-1"}


def woo_body(modified: str = "2026-11-20T15:00:00", order_id: int = 5001) -> bytes:
    return json.dumps({"id": order_id, "status": "processing", "date_modified_gmt": modified}).encode()


def woo_headers(raw: bytes, delivery_id: str = "d1", topic: str = "order.updated") -> dict:
    resource, event = topic.split(".")
    return {"Content-Type": "application/json", "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event, "X-WC-Webhook-Signature": sign(WOO_SIGNING, raw),
            "X-WC-Webhook-ID": "7", "X-WC-Webhook-Delivery-ID": delivery_id}


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = start_server(tmp_path, PLACEHOLDER, monkeypatch, max_body_bytes=4096)
    yield srv
    srv.stop()


def test_signed_shopify_delivery_is_committed_before_the_200(server):
    raw = shopify_body()
    response = httpx.post(server.url("shopify", SHOP), content=raw, headers=shopify_headers(raw))
    assert response.status_code == 200
    # Read with a connection of our own, right after the answer: the row is already on disk.
    rows = inbox_rows(server.settings.ledger_path)
    assert len(rows) == 1
    row = rows[0]
    assert (row["store"], row["system"], row["topic"], row["resource_id"]) == \
        (SHOP, "shopify", "orders/updated", ORDER_ID)
    assert row["source_updated_at"].startswith("2026-11-20T15:00:00")  # -05:00 read as UTC
    assert row["body"].encode() == raw and row["processed_at"] is None
    assert "X-Shopify-Hmac-Sha256" not in json.loads(row["headers"])


def test_forged_signature_gets_401_and_a_log_line_without_the_secret(server, caplog):
    raw = shopify_body()
    caplog.set_level(logging.WARNING, logger="o2c.webhooks")
    forged = shopify_headers(raw, secret="not-the-secret")
    assert httpx.post(server.url("shopify", SHOP), content=raw, headers=forged).status_code == 401
    unsigned = {k: v for k, v in shopify_headers(raw).items() if k != "X-Shopify-Hmac-Sha256"}
    assert httpx.post(server.url("shopify", SHOP), content=raw, headers=unsigned).status_code == 401
    tampered = shopify_headers(raw)
    assert httpx.post(server.url("shopify", SHOP), content=raw.replace(b"9999", b"9998"),
                      headers=tampered).status_code == 401
    woo_raw = woo_body()
    forged_woo = {**woo_headers(woo_raw), "X-WC-Webhook-Signature": sign(WOO_SECRET, woo_raw)}  # not decoded
    assert httpx.post(server.url("woocommerce", SITE), content=woo_raw, headers=forged_woo).status_code == 401
    wait_for(lambda: len([r for r in caplog.records if "401" in r.getMessage()]) >= 4, 5, "log lines")
    lines = [r.getMessage() for r in caplog.records if "401" in r.getMessage()]
    assert any(SHOP in line and "signature does not match" in line for line in lines)
    assert any(SHOP in line and "no X-Shopify-Hmac-Sha256 header" in line for line in lines)
    assert any(SITE in line for line in lines)
    assert not any(SHOP_SECRET in line or WOO_SIGNING in line for line in lines)
    assert inbox_rows(server.settings.ledger_path) == []


def test_store_without_a_webhook_secret_refuses_everything(tmp_path, monkeypatch):
    config = write_webhook_config(tmp_path, PLACEHOLDER, monkeypatch, port=free_port())
    config.write_text(config.read_text().replace("    webhook_secret: ${O2C_TEST_SHOP_HOOK_SECRET}\n", ""))
    from webhook_support import Server
    srv = Server(load_config(config))
    try:
        raw = shopify_body()
        assert httpx.post(srv.url("shopify", SHOP), content=raw, headers=shopify_headers(raw)).status_code == 401
    finally:
        srv.stop()


def test_malformed_json_gets_400_and_nothing_is_stored(server):
    for raw in (b'{"id": 1,', b"[1, 2]", b"\xff\xfe{}"):
        response = httpx.post(server.url("shopify", SHOP), content=raw, headers=shopify_headers(raw))
        assert response.status_code == 400, raw
    raw = woo_body()
    no_topic = {k: v for k, v in woo_headers(raw).items() if k != "X-WC-Webhook-Topic"}
    assert httpx.post(server.url("woocommerce", SITE), content=raw, headers=no_topic).status_code == 400
    assert inbox_rows(server.settings.ledger_path) == []


def test_oversized_body_gets_413_by_header_and_while_streaming(server):
    raw = json.dumps({"id": 1, "note": "x" * 5000}).encode()  # the fixture's limit is 4096 bytes
    assert httpx.post(server.url("shopify", SHOP), content=raw, headers=shopify_headers(raw)).status_code == 413

    def chunks():  # no Content-Length: chunked transfer, caught while reading
        for _ in range(10):
            yield b"x" * 1000
    headers = {k: v for k, v in shopify_headers(raw).items()}
    assert httpx.post(server.url("shopify", SHOP), content=chunks(), headers=headers).status_code == 413
    assert inbox_rows(server.settings.ledger_path) == []


def test_duplicate_shopify_delivery_is_answered_200_and_stored_once(server):
    raw = shopify_body()
    first = httpx.post(server.url("shopify", SHOP), content=raw, headers=shopify_headers(raw, "wh-same"))
    again = httpx.post(server.url("shopify", SHOP), content=raw, headers=shopify_headers(raw, "wh-same"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"inbox_id": first.json()["inbox_id"], "duplicate": True}
    other = httpx.post(server.url("shopify", SHOP), content=raw, headers=shopify_headers(raw, "wh-other"))
    assert other.status_code == 200 and not other.json()["duplicate"]  # another delivery of the same event
    rows = inbox_rows(server.settings.ledger_path)
    assert [(r["dedupe_key"], r["duplicates"]) for r in rows] == [("webhook-id|wh-same", 1), ("webhook-id|wh-other", 0)]


def test_woocommerce_duplicates_are_found_by_content_not_by_delivery_id(server):
    raw = woo_body()
    url = server.url("woocommerce", SITE)
    # WooCommerce's delivery id differs between sends of the same content ...
    assert httpx.post(url, content=raw, headers=woo_headers(raw, "d1")).status_code == 200
    assert httpx.post(url, content=raw, headers=woo_headers(raw, "d2")).status_code == 200
    # ... and repeats within a second for different content (notes/woocommerce.md §3).
    newer = woo_body(modified="2026-11-20T15:00:01")
    assert httpx.post(url, content=newer, headers=woo_headers(newer, "d1")).status_code == 200
    rows = inbox_rows(server.settings.ledger_path)
    assert [(r["resource_id"], r["source_updated_at"][:19], r["duplicates"]) for r in rows] == \
        [("5001", "2026-11-20T15:00:00", 1), ("5001", "2026-11-20T15:00:01", 0)]


def test_woocommerce_creation_ping_gets_exactly_200_and_touches_nothing(server):
    response = httpx.post(server.url("woocommerce", SITE), content=b"webhook_id=42",
                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                   "User-Agent": "WooCommerce/8.9.3 Hookshot (WordPress/6.5.3)"})
    assert response.status_code == 200
    assert inbox_rows(server.settings.ledger_path) == []
    # A ping-looking body on the Shopify route is just unsigned.
    assert httpx.post(server.url("shopify", SHOP), content=b"webhook_id=42").status_code == 401


def test_unknown_store_or_wrong_system_gets_404(server):
    raw = shopify_body()
    assert httpx.post(server.url("shopify", "nope"), content=raw, headers=shopify_headers(raw)).status_code == 404
    assert httpx.post(server.url("shopify", SITE), content=raw, headers=shopify_headers(raw)).status_code == 404
    assert httpx.post(server.url("magento", SHOP), content=raw, headers=shopify_headers(raw)).status_code == 404
    assert httpx.get(server.url("shopify", SHOP)).status_code == 405


def test_acknowledged_delivery_survives_kill_9_of_the_server(tmp_path, monkeypatch):
    port = free_port()
    config = write_webhook_config(tmp_path, PLACEHOLDER, monkeypatch, port=port)
    proc = subprocess.Popen([sys.executable, "sync.py", "webhooks", "serve", "--config", str(config)], cwd=ROOT,
                            env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/webhooks/shopify/{SHOP}"

        def up():
            try:
                return httpx.post(url, content=b"").status_code == 401
            except httpx.TransportError:
                return False
        wait_for(up, 20, "the served webhook server")
        acknowledged = []
        for n in range(20):
            raw = shopify_body(order_id=str(1000 + n))
            if httpx.post(url, content=raw, headers=shopify_headers(raw, f"wh-{n}")).status_code == 200:
                acknowledged.append(f"webhook-id|wh-{n}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    ledger_path = load_config(config).ledger_path
    assert len(acknowledged) == 20
    assert [r["dedupe_key"] for r in inbox_rows(ledger_path)] == acknowledged


def test_webhook_secret_in_clear_is_refused_by_the_config(tmp_path, monkeypatch):
    from connector.errors import ConfigError
    config = write_webhook_config(tmp_path, PLACEHOLDER, monkeypatch, port=free_port())
    config.write_text(config.read_text().replace("${O2C_TEST_SHOP_HOOK_SECRET}", "shpss_in_clear"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "webhook_secret" in str(caught.value) and "shpss_in_clear" not in str(caught.value)
