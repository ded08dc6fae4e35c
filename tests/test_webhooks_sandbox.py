"""Webhooks end to end on the sandbox: the emulators' real signed deliveries reach the server,
the inbox is processed by fetching fresh in batches, ``register``/``status`` keep the
subscriptions alive, and coverage counts orders that never came by webhook."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from click.testing import CliRunner

from adapters.woocommerce import WooCommerceSource
from connector import inbox
from connector.cli import main
from connector.composition import build_sources
from connector.engine import pull_store
from connector.errors import SourceError
from connector.intake import process_inbox
from connector.ledger import Ledger
from sandbox.seed import seed
from webhook_support import SHOP, SHOP_SECRET, SITE, WOO_SIGNING, inbox_rows, sign, start_server, wait_for

ORDERS = 16  # 8 per store


@pytest.fixture
def live(sandbox, tmp_path, monkeypatch):
    """A seeded sandbox, a config with webhook secrets, and the webhook server on a free port."""
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=5)
    server = start_server(tmp_path, credentials, monkeypatch)
    yield sandbox, server, server.settings
    server.stop()


def cli(settings_path, *args):
    return CliRunner().invoke(main, ["webhooks", *args, "--config", str(settings_path)])


def config_path(server):
    return server.settings.ledger_path.parent / "config.yaml"


def shop_ids(sandbox) -> list[str]:
    return sorted(o["legacyResourceId"] for o in sandbox.state("shopify")["shops"][SHOP]["orders"])


def site_ids(sandbox) -> list[int]:
    orders = sandbox.state("woocommerce")["sites"][SITE]["orders"]
    return sorted(o["id"] for o in (orders.values() if isinstance(orders, dict) else orders))


def touch_shop(sandbox, legacy_id: str, when: datetime) -> None:
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders/{legacy_id}/touch", timeout=30,
               json={"updated_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()


def touch_site(sandbox, order_id: int, when: datetime) -> None:
    httpx.post(f"{sandbox.urls['woocommerce']}/_sandbox/sites/{SITE}/orders/{order_id}/touch", timeout=30,
               json={"date_modified_gmt": when.strftime("%Y-%m-%dT%H:%M:%S")}).raise_for_status()


def register(server) -> None:
    result = cli(config_path(server), "register")
    assert result.exit_code == 0, result.output


class Counting:
    """Wraps a source: records each ``fetch_by_ids`` call and its ids."""

    def __init__(self, source):
        self.inner, self.batches = source, []

    def fetch_by_ids(self, ids):
        self.batches.append(list(ids))
        return self.inner.fetch_by_ids(ids)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def counting_sources(settings) -> dict:
    return {store.name: Counting(source) for source, store in build_sources(settings)}


def test_register_is_idempotent_and_status_repairs_deleted_and_disabled_subscriptions(live):
    sandbox, server, settings = live
    path = config_path(server)
    register(server)
    subs = sandbox.state("shopify")["shops"][SHOP]["webhook_subscriptions"]
    assert sorted(s["topic"] for s in subs) == sorted(
        ["ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_PAID", "ORDERS_CANCELLED", "REFUNDS_CREATE"])
    assert {s["uri"] for s in subs} == {server.url("shopify", SHOP)}
    hooks = sandbox.state("woocommerce")["sites"][SITE]["webhooks"]
    hooks = list(hooks.values()) if isinstance(hooks, dict) else hooks
    assert sorted(h["topic"] for h in hooks) == ["order.created", "order.deleted", "order.updated"]
    assert {h["status"] for h in hooks} == {"active"}
    # WooCommerce pinged each new webhook; the server answered exactly 200 and stored nothing.
    log = sandbox.control("woocommerce", "GET", f"sites/{SITE}/webhooks/deliveries")["deliveries"]
    pings = [e for e in log if e["kind"] == "ping"]
    assert len(pings) == 3 and all(e["status"] == 200 for e in pings)
    assert inbox_rows(settings.ledger_path) == []

    register(server)  # again: nothing new
    assert len(sandbox.state("shopify")["shops"][SHOP]["webhook_subscriptions"]) == 5
    ok = cli(path, "status")
    assert ok.exit_code == 0, ok.output

    # Shopify deletes failing subscriptions; WooCommerce disables failing webhooks (peers.md (c) 7, 9).
    gone = next(s for s in subs if s["topic"] == "ORDERS_PAID")
    sandbox.control("shopify", "DELETE", f"shops/{SHOP}/webhooks/{gone['legacyResourceId']}")
    woo = WooCommerceSource(settings.store(SITE))
    updated = next(h for h in hooks if h["topic"] == "order.updated")
    assert woo._api.put(f"webhooks/{updated['id']}", {"status": "disabled"}).status_code == 200
    broken = cli(path, "status")
    assert broken.exit_code == 1
    assert "ORDERS_PAID" in broken.output and "missing" in broken.output and "disabled" in broken.output

    repaired = cli(path, "register")
    assert repaired.exit_code == 0, repaired.output
    assert "created" in repaired.output and "re-enabled" in repaired.output
    assert cli(path, "status").exit_code == 0
    hooks = sandbox.state("woocommerce")["sites"][SITE]["webhooks"]
    hooks = list(hooks.values()) if isinstance(hooks, dict) else hooks
    assert {h["status"] for h in hooks} == {"active"} and len(hooks) == 3


def test_real_deliveries_are_accepted_then_fetched_fresh_in_batches_and_planned(live):
    sandbox, server, settings = live
    register(server)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    touched_shop, touched_site = shop_ids(sandbox)[:5], site_ids(sandbox)[:5]
    for legacy_id in touched_shop:
        touch_shop(sandbox, legacy_id, now)
    for order_id in touched_site:
        touch_site(sandbox, order_id, now)
    ledger_path = settings.ledger_path
    wait_for(lambda: {r["resource_id"] for r in inbox_rows(ledger_path, "store = ?", (SHOP,))} >= set(touched_shop),
             what="Shopify deliveries")
    wait_for(lambda: {r["resource_id"] for r in inbox_rows(ledger_path, "store = ?", (SITE,))}
             >= {str(i) for i in touched_site}, what="WooCommerce deliveries")
    # The stores saw 2xx for every delivery: signatures checked and rows committed.
    shop_log = sandbox.control("shopify", "GET", f"shops/{SHOP}/webhooks/deliveries")["deliveries"]
    assert shop_log and all(e["status"] == 200 for e in shop_log)
    site_log = sandbox.control("woocommerce", "GET", f"sites/{SITE}/webhooks/deliveries")["deliveries"]
    assert all(e["status"] == 200 for e in site_log if e["kind"] == "delivery")

    sources = counting_sources(settings)
    operations = {SHOP: [], SITE: []}
    shop_execute, site_get = sources[SHOP].inner._execute, sources[SITE].inner._get
    sources[SHOP].inner._execute = lambda q, v, op: operations[SHOP].append(op) or shop_execute(q, v, op)
    sources[SITE].inner._get = lambda endpoint, params: operations[SITE].append(endpoint) or site_get(endpoint, params)
    ledger = Ledger(ledger_path)
    try:
        results = {r.store: r for r in process_inbox(settings, ledger, sources=sources)}
        # One fresh fetch per store for all its announced orders, each order asked once.
        assert [sorted(b) for b in sources[SHOP].batches] == [sorted(touched_shop)]
        assert [sorted(b) for b in sources[SITE].batches] == [sorted(str(i) for i in touched_site)]
        assert results[SITE].outcomes.get("new") and results[SHOP].outcomes.get("new")
        assert not results[SHOP].error and not results[SITE].error
        keys = [f"{SHOP}:{i}" for i in touched_shop] + [f"{SITE}:{i}" for i in touched_site]
        held = {row[0] for row in ledger.conn.execute("SELECT order_key FROM orders")}
        assert set(keys) <= held
        planned = {row[0] for row in ledger.conn.execute("SELECT DISTINCT order_key FROM steps")}
        assert set(keys) <= planned  # record_page planned their steps
        assert inbox.pending(ledger) == []
        assert process_inbox(settings, ledger, sources=sources) == []  # nothing left
        # Counted at the wire: one OrdersById query (Shopify) and one GET orders?include= (WooCommerce).
        assert operations[SHOP].count("OrdersById") == 1
        assert operations[SITE].count("orders") == 1
    finally:
        ledger.close()


def test_out_of_order_delivery_never_regresses_the_order(live):
    sandbox, server, settings = live
    register(server)
    ledger_path = settings.ledger_path
    newer = datetime.now(timezone.utc).replace(microsecond=0)
    order_id, legacy = site_ids(sandbox)[0], shop_ids(sandbox)[0]
    touch_site(sandbox, order_id, newer)
    touch_shop(sandbox, legacy, newer)
    wait_for(lambda: inbox_rows(ledger_path, "resource_id = ?", (str(order_id),)), what="the newer delivery")
    wait_for(lambda: inbox_rows(ledger_path, "resource_id = ?", (legacy,)), what="the Shopify delivery")
    ledger = Ledger(ledger_path)
    try:
        process_inbox(settings, ledger)
        held = ledger.conn.execute("SELECT source_updated_at, content_hash FROM orders WHERE order_key = ?",
                                   (f"{SITE}:{order_id}",)).fetchone()
        assert held[0].startswith(newer.strftime("%Y-%m-%dT%H:%M:%S"))
        # Late deliveries of an older state of the same orders (WooCommerce and Shopify alike).
        older = (newer - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
        body = json.dumps({"id": order_id, "status": "pending", "date_modified_gmt": older}).encode()
        response = httpx.post(server.url("woocommerce", SITE), content=body, headers={
            "X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Signature": sign(WOO_SIGNING, body)})
        assert response.status_code == 200
        old_shop = json.dumps({"id": int(legacy), "admin_graphql_api_id": f"gid://shopify/Order/{legacy}",
                               "updated_at": older + "-00:00"}).encode()
        response = httpx.post(server.url("shopify", SHOP), content=old_shop, headers={
            "X-Shopify-Topic": "orders/updated", "X-Shopify-Hmac-Sha256": sign(SHOP_SECRET, old_shop),
            "X-Shopify-Webhook-Id": "late-one"})
        assert response.status_code == 200
        sources = counting_sources(settings)
        results = {r.store: r for r in process_inbox(settings, ledger, sources=sources)}
        assert results[SITE].outcomes == {"stale": 1} and results[SHOP].outcomes == {"stale": 1}
        assert sources[SITE].batches == [] and sources[SHOP].batches == []  # nothing fetched
        again = ledger.conn.execute("SELECT source_updated_at, content_hash FROM orders WHERE order_key = ?",
                                    (f"{SITE}:{order_id}",)).fetchone()
        assert again == held
    finally:
        ledger.close()


def test_trashed_woocommerce_order_is_recorded_as_deleted_without_booking_changes(live):
    sandbox, server, settings = live
    register(server)
    order_id = site_ids(sandbox)[1]
    httpx.delete(f"{sandbox.urls['woocommerce']}/_sandbox/sites/{SITE}/orders/{order_id}").raise_for_status()
    wait_for(lambda: inbox_rows(settings.ledger_path, "topic = 'order.deleted'"), what="order.deleted")
    ledger = Ledger(settings.ledger_path)
    try:
        steps_before = ledger.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        results = process_inbox(settings, ledger, sources=counting_sources(settings))
        assert results[0].outcomes == {"deleted": 1}
        assert ledger.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == steps_before
    finally:
        ledger.close()
    row, = inbox_rows(settings.ledger_path, "topic = 'order.deleted'")
    assert (row["resource_id"], row["outcome"]) == (str(order_id), "deleted") and row["processed_at"]


def test_coverage_counts_orders_that_came_by_poll_but_never_by_webhook(live):
    sandbox, server, settings = live
    ledger = Ledger(settings.ledger_path)
    try:
        for source, store in build_sources(settings):
            assert pull_store(source, store, ledger).error is None  # every order, by poll
        register(server)
        now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        for legacy_id in shop_ids(sandbox)[:3]:
            touch_shop(sandbox, legacy_id, now)
        wait_for(lambda: len({r["resource_id"] for r in inbox_rows(settings.ledger_path, "store = ?", (SHOP,))}) >= 3,
                 what="deliveries")
        process_inbox(settings, ledger)
        shop_cover, site_cover = inbox.coverage(ledger, SHOP), inbox.coverage(ledger, SITE)
        assert (shop_cover.orders, shop_cover.by_webhook, shop_cover.poll_only) == (ORDERS // 2, 3, ORDERS // 2 - 3)
        assert (site_cover.orders, site_cover.by_webhook, site_cover.first_webhook_at) == (ORDERS // 2, 0, None)
    finally:
        ledger.close()
    result = cli(config_path(server), "status")
    assert "Webhook coverage" in result.output
    coverage_table = result.output.split("Webhook coverage", 1)[1]
    line = next(l for l in coverage_table.splitlines() if f" {SHOP} " in l)
    assert [c.strip() for c in line.split("│")[1:5]] == [SHOP, str(ORDERS // 2), "3", str(ORDERS // 2 - 3)]


def test_store_that_cannot_be_reached_leaves_deliveries_pending_with_a_delay(live):
    sandbox, server, settings = live
    body = json.dumps({"id": 5001, "date_modified_gmt": "2026-11-20T15:00:00"}).encode()
    assert httpx.post(server.url("woocommerce", SITE), content=body, headers={
        "X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Signature": sign(WOO_SIGNING, body)}).status_code == 200

    class Down:
        store, calls = SITE, 0

        def fetch_by_ids(self, ids):
            raise SourceError(SITE, "WooCommerce did not answer in time")

    ledger = Ledger(settings.ledger_path)
    try:
        result, = process_inbox(settings, ledger, sources={SITE: Down()})
        assert result.outcomes == {"retry_later": 1} and "did not answer" in result.error
        assert inbox.pending(ledger) == []  # not due yet
        row, = inbox_rows(settings.ledger_path)
        assert row["attempts"] == 1 and row["processed_at"] is None and row["next_attempt_at"]
        later = datetime.now(timezone.utc) + timedelta(minutes=1)
        assert [r.id for r in inbox.pending(ledger, now=later)] == [row["id"]]
    finally:
        ledger.close()


def test_an_order_the_adapter_refuses_for_good_does_not_hold_up_the_others(live):
    sandbox, server, settings = live
    ids = [str(i) for i in site_ids(sandbox)[:3]]
    for order_id in ids:
        body = json.dumps({"id": int(order_id), "date_modified_gmt": "2026-11-20T15:00:00"}).encode()
        assert httpx.post(server.url("woocommerce", SITE), content=body, headers={
            "X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Signature": sign(WOO_SIGNING, body)}
        ).status_code == 200
    source = counting_sources(settings)[SITE]
    fetch = source.fetch_by_ids

    def refusing(batch):
        if ids[1] in batch:
            raise SourceError(SITE, "order has more refunds than are read", retryable=False)
        return fetch(batch)
    source.fetch_by_ids = refusing
    ledger = Ledger(settings.ledger_path)
    try:
        result, = process_inbox(settings, ledger, sources={SITE: source})
    finally:
        ledger.close()
    assert result.outcomes == {"new": 2, "failed": 1} and result.error is None
    outcomes = {r["resource_id"]: (r["outcome"], r["error"]) for r in inbox_rows(settings.ledger_path)}
    assert outcomes[ids[1]][0] == "failed" and "more refunds" in outcomes[ids[1]][1]
    assert outcomes[ids[0]][0] == outcomes[ids[2]][0] == "new"


def test_shopify_resending_a_delivery_with_the_same_webhook_id_is_stored_once(live):
    sandbox, server, settings = live
    register(server)
    sandbox.control("shopify", "POST", f"shops/{SHOP}/webhooks/config", json={"duplicate_rate": 1, "seed": 3})
    legacy = shop_ids(sandbox)[2]
    touch_shop(sandbox, legacy, datetime.now(timezone.utc).replace(microsecond=0))

    def resent():
        log = sandbox.control("shopify", "GET", f"shops/{SHOP}/webhooks/deliveries")["deliveries"]
        return [e for e in log if e["duplicate"] and e["status"] == 200]
    sent = wait_for(resent, what="a resent delivery")
    rows = inbox_rows(settings.ledger_path, "resource_id = ?", (legacy,))
    assert {r["dedupe_key"] for r in rows} >= {f"webhook-id|{e['webhook_id']}" for e in sent}
    assert len(rows) == len({r["dedupe_key"] for r in rows})  # one row per delivery ...
    assert sum(r["duplicates"] for r in rows) >= len(sent)  # ... and every resend counted, not stored


def test_the_daemons_health_check_recreates_and_reenables_and_records_what_it_did(live):
    from connector.webhook_health import repair_all
    sandbox, server, settings = live
    register(server)
    subs = sandbox.state("shopify")["shops"][SHOP]["webhook_subscriptions"]
    gone = next(s for s in subs if s["topic"] == "REFUNDS_CREATE")
    sandbox.control("shopify", "DELETE", f"shops/{SHOP}/webhooks/{gone['legacyResourceId']}")
    hooks = sandbox.state("woocommerce")["sites"][SITE]["webhooks"]
    hooks = list(hooks.values()) if isinstance(hooks, dict) else hooks
    created = next(h for h in hooks if h["topic"] == "order.created")
    woo = WooCommerceSource(settings.store(SITE))
    assert woo._api.put(f"webhooks/{created['id']}", {"status": "disabled"}).status_code == 200

    ledger = Ledger(settings.ledger_path)
    try:
        found = repair_all(settings, ledger)
        assert {r["topic"]: r["state"] for r in found[SHOP]}["REFUNDS_CREATE"] == "created"
        assert {r["topic"]: r["state"] for r in found[SITE]}["order.created"] == "re-enabled"
        again = repair_all(settings, ledger)  # nothing left to repair
        assert {r["state"] for rows in again.values() for r in rows} == {"ok"}
        events = ledger.conn.execute("SELECT outcome, detail FROM events WHERE kind = 'webhook_health'"
                                     " ORDER BY id").fetchall()
    finally:
        ledger.close()
    assert [e[0] for e in events] == ["repaired", "repaired", "ok", "ok"]
    assert "REFUNDS_CREATE created" in events[0][1] and "order.created re-enabled" in events[1][1]
    topics = sorted(s["topic"] for s in sandbox.state("shopify")["shops"][SHOP]["webhook_subscriptions"])
    assert topics == sorted(["ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_PAID", "ORDERS_CANCELLED", "REFUNDS_CREATE"])


def test_processing_the_inbox_by_hand_waits_for_a_daemon_doing_it_and_says_so(live, monkeypatch):
    from connector import cli_webhooks
    from connector.job_locks import job_lock
    from connector.ledger import Ledger
    _, server, settings = live
    monkeypatch.setattr(cli_webhooks, "INBOX_WAIT_SECONDS", 0.5)
    daemon = Ledger(settings.ledger_path)  # a daemon's inbox job, holding the lock on its own connection
    try:
        with job_lock(daemon, "inbox") as held:
            assert held
            busy = cli(config_path(server), "process")
        assert busy.exit_code == 2, busy.output
        said = " ".join(busy.output.split())  # the console wraps lines
        assert "processing the inbox" in said and "nothing was done here" in said, said
    finally:
        daemon.close()
    done = cli(config_path(server), "process")  # the daemon let go
    assert done.exit_code == 0, done.output
    assert "Inbox processed" in done.output
