"""``o2c status``: the queue, problems grouped with what to do, stores, tokens and alerts (docs/status.md).

A hand-built ledger pins every figure; a real sync against the sandbox checks the
same on what the connector writes, the CLI's ``--json`` and ``--check``, the
80-column layout, and that no secret ever shows.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, SecretStr
from rich.console import Console

from connector import inbox
from connector.cli import main
from connector.composition import build_runners, build_sources
from connector.config import Settings, load_config
from connector.demo import write_config
from connector.engine import pull_store, sync_pass
from connector.errors import MappingError, SourceError
from connector.ledger import Ledger, iso, utcnow
from connector.run import print_status
from connector.status import collect_status, normalise, quoted_values
from sandbox.generator import generate_orders
from sandbox.seed import REALM, SHOP, seed

SECRETS = {"shop": "shpat_status_test_token", "woo_key": "ck_status_test_key", "woo_secret": "cs_status_test_secret",
           "hubspot": "pat-na1-status-test-token", "qbo_id": "status-client-id", "qbo_secret": "status-client-secret",
           "qbo_refresh": "status-refresh-token", "hook": "status-webhook-secret"}


def make_settings(tmp_path) -> Settings:
    return Settings.model_validate({
        "ledger": str(tmp_path / "ledger.db"),
        "stores": [
            {"name": "main-shop", "system": "shopify", "shop_url": "https://main.example.com",
             "access_token": SECRETS["shop"], "webhook_secret": SECRETS["hook"]},
            {"name": "woo_site", "system": "woocommerce", "url": "https://woo.example.com",
             "consumer_key": SECRETS["woo_key"], "consumer_secret": SECRETS["woo_secret"], "poll_seconds": 600},
        ],
        "hubspot": {"access_token": SECRETS["hubspot"]},
        "quickbooks": {"realm_id": "123", "client_id": SECRETS["qbo_id"], "client_secret": SECRETS["qbo_secret"],
                       "refresh_token": SECRETS["qbo_refresh"]},
        "webhooks": {"public_base_url": "https://hooks.example.com"},
    })


def add_order(ledger: Ledger, store: str, source_id: str) -> str:
    key, moment = f"{store}:{source_id}", "2026-01-01T00:00:00+00:00"
    ledger.conn.execute(
        "INSERT INTO orders (order_key, store, system, source_order_id, name, currency, total, source_created_at,"
        " source_updated_at, content_hash, snapshot, balance_difference, first_seen_at, last_changed_at)"
        " VALUES (?, ?, 'shopify', ?, ?, 'USD', '10.00', ?, ?, 'h', '{}', '0.00', ?, ?)",
        (key, store, source_id, f"#{source_id}", moment, moment, moment, moment))
    return key


def add_step(ledger: Ledger, key: str, name: str, state: str, *, depends: tuple[str, ...] = (),
             error: str | None = None, what: str | None = None, retry_at: datetime | None = None) -> None:
    ledger.plan_step(key, name, depends, "h")
    step_id = ledger.conn.execute("SELECT id FROM steps WHERE order_key = ? AND step = ?", (key, name)).fetchone()[0]
    if state == "in_flight":
        ledger.claim([step_id])
    elif state != "pending":
        ledger.finish_step(step_id, state, error=error, what_to_do=what, retry_at=retry_at)


def sku_error(sku: str, title: str) -> tuple[str, str]:
    return (f"no QuickBooks item for SKU '{sku}' ({title})",
            f"create an item named '{sku}' in QuickBooks, map it under quickbooks.item_map, then replay")


class FailingSource:
    store = "woo_site"
    system = "woocommerce"

    def fetch_changed(self, since, until):
        raise SourceError("woo_site", "HTTP 401 Unauthorized: check consumer_key")
        yield  # pragma: no cover


def delivery(store: str, resource_id: str, key: str) -> inbox.Delivery:
    return inbox.Delivery(store, "shopify", "orders/updated", key, resource_id, None, "{}", {})


@pytest.fixture
def built(tmp_path):
    """A ledger with a step in every state, two stores (one late, one failing) and webhook traffic."""
    settings = make_settings(tmp_path)
    ledger = Ledger(settings.ledger_path)
    retry_soon = utcnow() + timedelta(minutes=5)
    o1, o2, o3, o4, o5, o6 = (add_order(ledger, "main-shop", str(n)) for n in range(1, 7))
    w7, w8 = add_order(ledger, "woo_site", "7"), add_order(ledger, "woo_site", "8")
    unavailable = "HubSpot is unavailable or rate limiting (contacts): HTTP 503"
    for key, state, retry in ((o1, "done", None), (o2, "done", None), (o3, "skipped", None),
                              (o6, "failed", retry_soon + timedelta(minutes=5)), (w7, "failed", retry_soon)):
        add_step(ledger, key, "hubspot.contact", state, retry_at=retry,
                 error=unavailable if state == "failed" else None)
    add_step(ledger, o1, "hubspot.deal", "done", depends=("hubspot.contact",))
    add_step(ledger, o2, "hubspot.deal", "pending", depends=("hubspot.contact",))
    for key in (o1, o2, o3, o5):
        add_step(ledger, key, "quickbooks.customer", "done")
    add_step(ledger, o4, "quickbooks.customer", "dead",
             error="QuickBooks says the name 'Ann Lee' is taken, but no customer has it (a vendor or employee does)",
             what="rename the vendor or employee in QuickBooks, or change quickbooks.display_name_template")
    add_step(ledger, o6, "quickbooks.customer", "in_flight")
    after_customer = ("quickbooks.customer",)
    add_step(ledger, o1, "quickbooks.invoice", "done", depends=after_customer)
    for key, (error, what) in ((o2, sku_error("SKU-1", "Blue cap")), (o3, sku_error("SKU-2", "Red cap 2"))):
        add_step(ledger, key, "quickbooks.invoice", "dead", depends=after_customer, error=error, what=what)
    add_step(ledger, w8, "quickbooks.invoice", "dead", error="QuickBooks refused the currency: GBP is not enabled",
             what="turn on multicurrency in QuickBooks, then replay")
    add_step(ledger, o4, "quickbooks.invoice", "pending", depends=after_customer)
    add_step(ledger, o5, "quickbooks.invoice", "held", depends=after_customer,
             error="Invoice SH-1005 was edited in QuickBooks after it was booked",
             what="review Invoice SH-1005 in QuickBooks and void it there if the order changed")
    add_step(ledger, o6, "quickbooks.invoice", "mismatch", error="total mismatch: store 10.00 [/b] QuickBooks 10.01",
             what="compare the document with the store's order")
    add_step(ledger, o1, "quickbooks.payment:11", "done", depends=("quickbooks.invoice",))
    add_step(ledger, o2, "quickbooks.payment:21", "pending", depends=("quickbooks.invoice",))
    add_step(ledger, o4, "quickbooks.payment:41", "pending", depends=("quickbooks.invoice",))
    ledger.record_reject("woo_site", "9", MappingError("order 9 does not balance by 0.01",
                                                       what_to_do="fix the order in the store"), {"id": 9})
    ledger.record_reject("woo_site", "10", MappingError("order 10 does not balance by 2.00",
                                                        what_to_do="fix the order in the store"), {"id": 10})

    # main-shop: its last good poll was 20 minutes ago (it polls every 5).
    ledger.set_cursor("main-shop", iso(utcnow() - timedelta(minutes=21)))
    ledger.record_event("pull", "ok", detail="main-shop 2026-01-01T00:00:00+00:00..x 3 orders")
    ledger.conn.execute("UPDATE events SET at = ? WHERE kind = 'pull'", (iso(utcnow() - timedelta(minutes=20)),))
    # woo_site: one good poll, then two that failed (recorded by the engine itself).
    ledger.record_event("pull", "ok", detail="woo_site 2026-01-01T00:00:00+00:00..x 1 orders")
    woo = settings.store("woo_site")
    for _ in range(2):
        assert pull_store(FailingSource(), woo, ledger).error == "woo_site: HTTP 401 Unauthorized: check consumer_key"
    # main-shop webhooks: one processed, one retrying (store unreachable), one failed; a subscription missing.
    done_id, _ = inbox.add(ledger, delivery("main-shop", "2", "d1"))
    inbox.mark_processed(ledger, [done_id], "changed")
    waiting_id, _ = inbox.add(ledger, delivery("main-shop", "3", "d2"))
    inbox.mark_failed(ledger, [waiting_id], "main-shop: connection refused", delay_seconds=30)
    failed_id, _ = inbox.add(ledger, delivery("main-shop", "4", "d3"))
    inbox.mark_processed(ledger, [failed_id], "failed", "the store refused order 4")
    inbox.add(ledger, delivery("main-shop", "4", "d3"))  # a duplicate delivery
    ledger.record_event("webhook_health", "failed", detail="main-shop: orders/updated missing")
    yield settings, ledger
    ledger.close()


def test_normalise_takes_out_what_varies_per_order_and_keeps_the_cause():
    assert normalise("QuickBooks has no Item named 'SKU-1'") == normalise("QuickBooks has no Item named 'SKU-2'") \
        == "QuickBooks has no Item named '…'"
    assert normalise("no QuickBooks item for SKU 'A' (Blue cap)") == normalise("no QuickBooks item for SKU 'B' (x 2)")
    assert normalise("review Invoice SH-1005 in QuickBooks") == "review Invoice # in QuickBooks"
    assert normalise("order 1001 (a@b.com) total 12.50.") == "order # (…) total #."
    assert normalise("mail jo@example.com failed") == "mail <email> failed"
    assert normalise("HubSpot refused deals (HTTP 400): bad") != normalise("HubSpot refused deals (HTTP 409): bad")
    assert normalise("refused (HTTP 400): x") == "refused (HTTP 400): x"
    assert normalise("QuickBooks refused (HTTP 400) at 2026-01-01T00:00:00Z") == "QuickBooks refused (HTTP 400) at #"
    assert normalise("could not reach Intuit's OAuth discovery document") == \
        "could not reach Intuit's OAuth discovery document"
    assert quoted_values("the name 'Ann Lee' is taken, SKU \"X-1\"") == ["Ann Lee", "X-1"]
    assert normalise(None) == ""


def test_queue_counts_every_state_per_target_and_kind(built):
    settings, ledger = built
    queue = collect_status(settings, ledger)["queue"]
    assert queue["states"] == ["pending", "in_flight", "failed", "dead", "held", "mismatch", "skipped", "done"]
    assert list(queue["systems"]) == ["hubspot", "quickbooks"]
    hubspot, quickbooks = queue["systems"]["hubspot"], queue["systems"]["quickbooks"]

    def counts(**non_zero):
        return {state: non_zero.get(state, 0) for state in queue["states"]}
    assert hubspot["counts"] == counts(pending=1, failed=2, skipped=1, done=3)
    assert hubspot["total"] == 7
    assert list(hubspot["kinds"]) == ["hubspot.contact", "hubspot.deal"]
    assert hubspot["kinds"]["hubspot.contact"]["counts"] == counts(failed=2, skipped=1, done=2)
    assert hubspot["kinds"]["hubspot.deal"]["counts"] == counts(pending=1, done=1)
    failed_retries = sorted(r[0] for r in ledger.conn.execute(
        "SELECT next_attempt_at FROM steps WHERE state = 'failed'"))
    assert hubspot["next_retry_at"] == failed_retries[0]
    assert hubspot["blocked"] == 0  # the pending deal waits on a contact that is done

    assert quickbooks["counts"] == counts(pending=3, in_flight=1, dead=4, held=1, mismatch=1, done=6)
    assert list(quickbooks["kinds"]) == ["quickbooks.customer", "quickbooks.invoice", "quickbooks.payment"]
    assert quickbooks["kinds"]["quickbooks.customer"]["counts"] == counts(in_flight=1, dead=1, done=4)
    assert quickbooks["kinds"]["quickbooks.invoice"]["counts"] == \
        counts(pending=1, dead=3, held=1, mismatch=1, done=1)
    assert quickbooks["kinds"]["quickbooks.payment"]["counts"] == counts(pending=2, done=1)  # payment:<id> counted
    # Blocked: main-shop:4's invoice waits on its dead customer, its payment on that invoice (transitively);
    # main-shop:2's payment waits on its dead invoice.
    assert {k: v["blocked"] for k, v in quickbooks["kinds"].items()} == \
        {"quickbooks.customer": 0, "quickbooks.invoice": 1, "quickbooks.payment": 2}
    assert quickbooks["blocked"] == 3
    assert quickbooks["next_retry_at"] is None and quickbooks["lease_expired"] == 0
    later = collect_status(settings, ledger, now=utcnow() + timedelta(hours=1))["queue"]["systems"]["quickbooks"]
    assert later["lease_expired"] == 1  # the claim ran out: its worker stopped

    # The same totals as the ledger's own count.
    by_kind = ledger.step_counts()
    for system in (hubspot, quickbooks):
        for kind, entry in system["kinds"].items():
            assert {s: n for s, n in entry["counts"].items() if n} == by_kind[kind]


def test_problems_are_grouped_by_cause_with_examples_what_to_do_and_the_replay_that_retries_them(built):
    settings, ledger = built
    status = collect_status(settings, ledger, config_path="cfg/o2c.yaml")
    summary = [(g["state"], g["step"], g["count"], g["examples"]) for g in status["problems"]]
    assert summary == [
        ("dead", "quickbooks.invoice", 2, ["main-shop:2", "main-shop:3"]),
        ("dead", "quickbooks.customer", 1, ["main-shop:4"]),
        ("dead", "quickbooks.invoice", 1, ["woo_site:8"]),
        ("held", "quickbooks.invoice", 1, ["main-shop:5"]),
        ("mismatch", "quickbooks.invoice", 1, ["main-shop:6"]),
        ("rejected", "intake", 2, ["woo_site:10", "woo_site:9"]),
    ]
    skus, customer, currency, held, mismatch, rejects = status["problems"]
    assert skus == {
        "state": "dead", "step": "quickbooks.invoice", "count": 2, "orders": 2,
        "error": "no QuickBooks item for SKU 'SKU-1' (Blue cap)",
        "pattern": "no QuickBooks item for SKU '…' (…)",
        # The two sentences name different SKUs: the group shows their shape, and the SKUs apart.
        "what_to_do": "create an item named '…' in QuickBooks, map it under quickbooks.item_map, then replay",
        "values": ["SKU-1", "SKU-2"], "more_values": 0, "examples": ["main-shop:2", "main-shop:3"],
        # Another dead invoice has another cause: the replay names this group's orders.
        "replay": "o2c replay --step quickbooks.invoice --state dead --order main-shop:2 --order main-shop:3"
                  " --config cfg/o2c.yaml",
        "replay_covers": 2,
    }
    assert customer["what_to_do"] == "rename the vendor or employee in QuickBooks, or change " \
                                     "quickbooks.display_name_template"
    assert customer["values"] == ["Ann Lee"]
    assert customer["replay"] == "o2c replay --step quickbooks.customer --state dead --config cfg/o2c.yaml"
    assert customer["replay_covers"] == 1
    assert currency["replay"] == "o2c replay --step quickbooks.invoice --state dead --order woo_site:8" \
                                 " --config cfg/o2c.yaml"
    assert held["what_to_do"] == "review Invoice SH-1005 in QuickBooks and void it there if the order changed"
    assert held["replay"] == "o2c replay --step quickbooks.invoice --state held --config cfg/o2c.yaml"
    assert mismatch["replay"] == "o2c replay --step quickbooks.invoice --state mismatch --config cfg/o2c.yaml"
    assert rejects["pattern"] == "order # does not balance by #"
    assert rejects["what_to_do"] == "fix the order in the store" and rejects["replay"] is None

    retrying, = status["retrying"]
    assert (retrying["step"], retrying["count"], retrying["examples"]) == \
        ("hubspot.contact", 2, ["main-shop:6", "woo_site:7"])
    assert retrying["next_retry_at"] == status["queue"]["systems"]["hubspot"]["next_retry_at"]

    # Without a config path, the commands are the short ones.
    plain = collect_status(settings, ledger)["problems"][1]
    assert plain["replay"] == "o2c replay --step quickbooks.customer --state dead"


def test_stores_show_the_last_poll_its_error_the_cursor_lag_and_webhooks(built):
    settings, ledger = built
    now = utcnow()
    main_shop, woo_site = collect_status(settings, ledger, now=now)["stores"]
    assert (main_shop["name"], main_shop["system"], main_shop["orders"], main_shop["rejects"]) == \
        ("main-shop", "shopify", 6, 0)
    assert 20 * 60 <= main_shop["last_poll_age_seconds"] <= 20 * 60 + 5
    assert 21 * 60 <= main_shop["cursor_lag_seconds"] <= 21 * 60 + 5
    assert main_shop["poll_late"] and main_shop["poll_late_after_seconds"] == 900
    assert main_shop["last_poll_error"] is None
    hooks = main_shop["webhooks"]
    assert hooks["enabled"] is True
    assert {k: hooks[k] for k in ("received", "duplicates", "pending", "pending_late", "retrying", "failed",
                                  "failed_recently")} == \
        {"received": 3, "duplicates": 1, "pending": 1, "pending_late": 0, "retrying": 1, "failed": 1,
         "failed_recently": 1}
    received = [r[0] for r in ledger.conn.execute("SELECT received_at FROM inbox ORDER BY id")]
    assert (hooks["first_received_at"], hooks["last_received_at"]) == (received[0], received[-1])
    assert hooks["last_processed_at"] is not None
    assert hooks["last_error"] == "the store refused order 4"
    assert hooks["outcomes"] == {"changed": 1, "failed": 1}
    assert hooks["coverage"] == {"orders": 6, "by_webhook": 3, "poll_only": 3, "poll_only_since_first_webhook": 0}
    assert hooks["subscriptions"]["outcome"] == "failed"
    assert hooks["subscriptions"]["detail"] == "orders/updated missing"

    assert (woo_site["orders"], woo_site["rejects"], woo_site["poll_late_after_seconds"]) == (2, 2, 1800)
    assert woo_site["cursor"] is None and woo_site["cursor_lag_seconds"] is None
    error = woo_site["last_poll_error"]
    assert error["error"] == "woo_site: HTTP 401 Unauthorized: check consumer_key" and error["failures"] == 2
    failed_at = [r[0] for r in ledger.conn.execute("SELECT at FROM events WHERE kind = 'pull' AND outcome = 'failed'"
                                                    " ORDER BY id")]
    assert (error["failing_since"], error["at"]) == (failed_at[0], failed_at[-1])
    assert woo_site["webhooks"]["enabled"] is False and woo_site["webhooks"]["received"] == 0

    # An hour on, the waiting delivery is late too (nothing processed the inbox).
    later = collect_status(settings, ledger, now=now + timedelta(hours=1))["stores"][0]
    assert later["webhooks"]["pending_late"] == 1


def test_quickbooks_token_health_from_missing_to_reconnect(built):
    settings, ledger = built
    now = utcnow()

    def tokens(at=now):
        return collect_status(settings, ledger, now=at, config_path="o2c.yaml")["tokens"]
    assert tokens()["hubspot"] == {"auth": "private app token", "status": "configured"}
    missing = tokens()["quickbooks"]
    assert (missing["status"], missing["stored"], missing["company"]) == ("not_connected", False, "123")
    assert "o2c sync --config o2c.yaml" in missing["what_to_do"]

    ledger.save_token("quickbooks", "123", "rt-stored-value", "at-stored-value", now + timedelta(minutes=40))
    ok = tokens()["quickbooks"]
    assert (ok["status"], ok["stored"], ok["access_token_valid"], ok["needs_reconnect"]) == ("ok", True, True, None)
    assert ok["refresh_token_age_days"] == 0.0
    assert ok["access_token_expires_at"] == iso(now + timedelta(minutes=40))
    renewed = datetime.fromisoformat(ok["refresh_token_renewed_at"])
    assert ok["refresh_token_expires_about"] == iso(renewed + timedelta(days=100))
    assert tokens(now + timedelta(hours=1))["quickbooks"]["access_token_valid"] is False

    assert tokens(now + timedelta(days=95))["quickbooks"]["status"] == "expiring"
    assert tokens(now + timedelta(days=95))["quickbooks"]["refresh_token_age_days"] == 95.0
    expired = tokens(now + timedelta(days=101))["quickbooks"]
    assert expired["status"] == "expired" and "o2c auth quickbooks --config o2c.yaml" in expired["what_to_do"]

    ledger.mark_reconnect("quickbooks", "123", "the refresh token was refused (invalid_grant)")
    reconnect = tokens()["quickbooks"]
    assert reconnect["status"] == "needs_reconnect"
    assert reconnect["needs_reconnect"] == "the refresh token was refused (invalid_grant)"
    assert reconnect["what_to_do"] == "reconnect with `o2c auth quickbooks --config o2c.yaml`"
    text = json.dumps(collect_status(settings, ledger))
    assert "rt-stored-value" not in text and "at-stored-value" not in text


def test_alerts_say_what_needs_a_person_and_what_to_do(built):
    settings, ledger = built
    status = collect_status(settings, ledger)
    since = status["stores"][1]["last_poll_error"]["failing_since"][:16].replace("T", " ")
    assert [(a["severity"], a["subject"], a["message"]) for a in status["alerts"]] == [
        ("warning", "quickbooks", "no QuickBooks token in the ledger yet: the next sync will try the refresh token "
                                  "from the configuration"),
        ("critical", "store main-shop", "main-shop: last good poll 20 min ago (it polls every 5 min)"),
        ("warning", "store main-shop", "main-shop: 1 webhook delivery waiting for the store to answer: connection "
                                       "refused"),
        ("warning", "store main-shop", "main-shop: 1 webhook delivery could not be processed in the last day: "
                                       "the store refused order 4"),
        ("warning", "store main-shop", "main-shop: webhook subscriptions are not all in place "
                                       "(orders/updated missing)"),
        ("critical", "store woo_site", f"woo_site: polling fails (2 times in a row since {since} UTC): "
                                       "HTTP 401 Unauthorized: check consumer_key"),
        ("critical", "steps", "4 dead steps (3 problems)"),
        ("warning", "steps", "1 step held for review (1 problem)"),
        ("warning", "steps", "1 step booked with a total mismatch (1 problem)"),
        ("warning", "intake", "2 orders that could not be read (1 problem)"),
    ]
    assert all(a["what_to_do"] for a in status["alerts"])
    assert status["alerts"][-4]["what_to_do"] == "fix the cause each problem names, then run its replay command"


def test_the_printed_status_fits_80_columns_and_shows_each_part(built):
    settings, ledger = built
    status = collect_status(settings, ledger)
    out = io.StringIO()
    assert print_status(settings, Console(file=out, width=80), status) is status
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for expected in ("Alerts (10)", "4 dead steps (3 problems)", "Steps by target and state", "quickbooks",
                     "Problems (6)", "values: SKU-1, SKU-2", "o2c replay --step quickbooks.customer --state dead",
                     "Retrying by themselves", "main-shop", "woo_site", "QuickBooks (company 123): not connected",
                     "HubSpot: private app token configured", "quickbooks: 3 pending step(s) wait on dead or held"):
        assert expected in text, expected
    assert "total mismatch: store 10.00 [/b] QuickBooks 10.01" in text  # printed as it is, never as markup


# -- against the sandbox ------------------------------------------------------------------------------------

def run_pass(settings):
    ledger = Ledger(settings.ledger_path)
    try:
        return sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    finally:
        ledger.close()


def add_shop_orders(sandbox, credentials, specs, *, touch: bool) -> list[str]:
    """Add orders to the Shopify shop; ``touch`` makes them changed just now (the next poll's window)."""
    url = f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}"
    httpx.post(f"{url}/orders", json={"credentials": credentials["shopify"], "orders": specs}).raise_for_status()
    ids = [o["legacyResourceId"] for o in sandbox.state("shopify")["shops"][SHOP]["orders"]][-len(specs):]
    if touch:
        moment = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat()
        for legacy_id in ids:
            httpx.post(f"{url}/orders/{legacy_id}/touch", json={"updated_at": moment}).raise_for_status()
    return [f"{SHOP}:{legacy_id}" for legacy_id in ids]


@pytest.fixture
def synced(sandbox, tmp_path, monkeypatch):
    """Four good orders synced; the config has webhook secrets and no fallback item for unknown SKUs."""
    credentials = seed(sandbox.urls, orders=0)
    start = datetime.now(timezone.utc) - timedelta(days=3)
    add_shop_orders(sandbox, credentials, generate_orders(3, 4, start=start, variety=False), touch=False)
    path = write_config(tmp_path, credentials)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["quickbooks"].pop("default_item")
    raw["webhooks"] = {"public_base_url": "https://hooks.example.com"}
    for store in raw["stores"]:
        store["webhook_secret"] = "${O2C_STATUS_TEST_HOOK}"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.setenv("O2C_STATUS_TEST_HOOK", "whsec-status-test-do-not-show")
    settings = load_config(path)
    report = run_pass(settings)
    assert [p.error for p in report.pulls] == [None, None]
    return settings, credentials, path


def secrets_of(settings) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, SecretStr):
            found.append(node.get_secret_value())
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
    walk(settings)
    ledger = Ledger(settings.ledger_path)
    try:
        for refresh, access in ledger.conn.execute("SELECT refresh_token, access_token FROM tokens"):
            found += [refresh, access]
    finally:
        ledger.close()
    return [s for s in found if s]


def test_status_after_a_real_sync_and_a_failing_order_from_cli_text_and_json(sandbox, synced):
    settings, credentials, path = synced
    runner = CliRunner()
    clean = runner.invoke(main, ["status", "--config", str(path), "--check", "--json"])
    assert clean.exit_code == 0, clean.output
    data = json.loads(clean.output)
    assert data["alerts"] == [] and data["problems"] == []
    assert data["tokens"]["quickbooks"]["status"] == "ok"
    assert [s["orders"] for s in data["stores"]] == [4, 0]
    assert runner.invoke(main, ["status", "--config", str(path), "--check"]).exit_code == 0

    # Two orders sell SKUs QuickBooks has no item for: their invoices die, grouped as one problem.
    bad = generate_orders(4, 2, start=datetime.now(timezone.utc) - timedelta(days=1), first_number=2001,
                          variety=False)
    bad[0]["lines"][0]["sku"], bad[1]["lines"][0]["sku"] = "NOPE-1", "NOPE-2"
    bad_keys = add_shop_orders(sandbox, credentials, bad, touch=True)
    report = run_pass(settings)
    assert sum(p.new for p in report.pulls) == 2
    ledger = Ledger(settings.ledger_path)
    try:
        inbox.add(ledger, delivery(SHOP, bad_keys[0].split(":")[1], "hook-1"))
        status = collect_status(settings, ledger, config_path=str(path))
        counts = ledger.step_counts()
        payments_after_dead = ledger.conn.execute(
            "SELECT COUNT(*) FROM steps WHERE state = 'pending' AND step LIKE 'quickbooks.payment:%'").fetchone()[0]
    finally:
        ledger.close()
    invoices = status["queue"]["systems"]["quickbooks"]["kinds"]["quickbooks.invoice"]["counts"]
    assert (invoices["done"], invoices["dead"]) == (4, 2)
    for system in status["queue"]["systems"].values():
        for kind, entry in system["kinds"].items():
            assert {s: n for s, n in entry["counts"].items() if n} == counts[kind]
    group, = status["problems"]
    assert (group["state"], group["step"], group["count"]) == ("dead", "quickbooks.invoice", 2)
    assert group["examples"] == sorted(bad_keys) and group["values"] == ["NOPE-1", "NOPE-2"]
    assert group["pattern"] == "no QuickBooks item for SKU '…' (…)"
    assert "create an item named '…' in QuickBooks" in group["what_to_do"]
    assert group["replay"] == f"o2c replay --step quickbooks.invoice --state dead --config {path}"
    assert group["replay_covers"] == 2
    assert status["queue"]["systems"]["quickbooks"]["kinds"].get("quickbooks.payment", {}).get("blocked", 0) == \
        payments_after_dead
    shop = status["stores"][0]
    assert shop["orders"] == 6 and shop["last_poll_error"] is None and not shop["poll_late"]
    assert shop["webhooks"]["received"] == 1 and shop["webhooks"]["pending"] == 1
    assert shop["webhooks"]["coverage"]["by_webhook"] == 1
    assert [a["message"] for a in status["alerts"]] == ["2 dead steps (1 problem)"]

    ledger = Ledger(settings.ledger_path)
    try:
        ledger.mark_reconnect("quickbooks", REALM, "the refresh token was refused (invalid_grant)")
    finally:
        ledger.close()
    plain = runner.invoke(main, ["status", "--config", str(path)])
    assert plain.exit_code == 0, plain.output  # without --check, alerts do not change the exit code
    checked = runner.invoke(main, ["status", "--config", str(path), "--check", "--json"])
    assert checked.exit_code == 1
    data = json.loads(checked.output)
    assert [a["subject"] for a in data["alerts"]] == ["quickbooks", "steps"]
    assert data["alerts"][0]["what_to_do"] == f"reconnect with `o2c auth quickbooks --config {path}`"
    assert "QuickBooks needs reconnecting" in plain.output and "NOPE-1, NOPE-2" in plain.output
    assert f"o2c replay --step quickbooks.invoice --state dead --config {path}" in " ".join(plain.output.split())

    secrets = secrets_of(settings)
    assert "whsec-status-test-do-not-show" in secrets and credentials["hubspot"]["access_token"] in secrets
    assert len(secrets) >= 9
    for output in (plain.output, checked.output, clean.output):
        for secret in secrets:
            assert secret not in output


def test_a_new_ledger_says_what_to_run_first(tmp_path):
    settings = make_settings(tmp_path)
    ledger = Ledger(settings.ledger_path)
    try:
        status = collect_status(settings, ledger)
    finally:
        ledger.close()
    assert all(n == 0 for system in status["queue"]["systems"].values() for n in system["counts"].values())
    assert status["problems"] == [] and status["retrying"] == []
    assert [(a["severity"], a["message"], a["what_to_do"]) for a in status["alerts"][1:]] == [
        ("warning", "main-shop has never been polled", "run `o2c sync` or start `o2c daemon`"),
        ("warning", "woo_site has never been polled", "run `o2c sync` or start `o2c daemon`"),
    ]
    assert status["alerts"][0]["subject"] == "quickbooks"
    assert json.loads(json.dumps(status)) == status
