"""The events table records every attempt fully: request id, payload hash, response, error, duration.

The sync passes run against the sandbox over loopback (nothing mocked); the
assertions read the ledger's ``events`` table (docs/ledger.md, migration 8).
"""

from __future__ import annotations

import re
import sqlite3
from decimal import Decimal

import pytest

import connector.migrations as migrations
from connector.composition import build_runners, build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import sync_pass
from connector.events import payload_hash, redact
from connector.ledger import Ledger
from connector.snapshot import from_json
from mappings.hubspot_contact import contact_key, contact_properties
from sandbox.seed import REALM, seed

ORDERS = 20
HASH = re.compile(r"^[0-9a-f]{16}$")
COLUMNS = "order_key, step, kind, outcome, request_id, payload_hash, response, error, detail, duration_ms, system"


@pytest.fixture
def settings(sandbox, tmp_path):
    credentials = seed(sandbox.urls, orders=ORDERS, seed_value=11)
    return load_config(write_config(tmp_path, credentials)), credentials


def run_pass(settings):
    ledger = Ledger(settings.ledger_path)
    try:
        sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    finally:
        ledger.close()


def attempts(settings, where: str = "1", *args) -> list[dict]:
    ledger = Ledger(settings.ledger_path)
    try:
        rows = ledger.conn.execute(f"SELECT {COLUMNS} FROM events WHERE kind = 'attempt' AND {where} ORDER BY id",
                                   args).fetchall()
    finally:
        ledger.close()
    return [dict(zip([c.strip() for c in COLUMNS.split(",")], row)) for row in rows]


def kind(step: str) -> str:
    return step.split(":", 1)[0]


def test_every_attempt_of_a_sync_records_request_id_payload_hash_response_and_duration(sandbox, settings):
    settings, credentials = settings
    run_pass(settings)
    events = attempts(settings)
    assert {kind(e["step"]) for e in events} >= {"hubspot.contact", "hubspot.deal", "quickbooks.customer",
                                                 "quickbooks.invoice", "quickbooks.payment"}
    for event in events:
        assert event["duration_ms"] is not None, event
        assert event["response"] or event["error"], event
        assert event["system"] == event["step"].split(".", 1)[0], event
        if event["system"] == "quickbooks":
            assert event["request_id"], event  # the step's deterministic requestid
        if event["payload_hash"] is not None:
            assert HASH.match(event["payload_hash"]), event
    by_kind: dict[str, list[dict]] = {}
    for event in events:
        by_kind.setdefault(kind(event["step"]), []).append(event)

    # Every create sent a body: its hash and a summary of what the target answered.
    for event in by_kind["quickbooks.invoice"]:
        assert event["outcome"] == "done" and event["payload_hash"], event
        assert re.match(r"^Invoice \d+ DocNumber \S+ TotalAmt [0-9.]+", event["response"]), event
    for event in by_kind["quickbooks.payment"]:
        assert event["payload_hash"] and re.match(r"^Payment \d+ TotalAmt [0-9.]+", event["response"]), event
    created = [e for e in by_kind["quickbooks.customer"] if e["payload_hash"]]
    assert created and all(re.match(r"^Customer \d+", e["response"]) for e in created)
    others = [e for e in by_kind["quickbooks.customer"] if not e["payload_hash"]]
    assert all(re.match(r"^(already bound|found existing|bound in this batch)", e["response"]) for e in others)
    for event in by_kind["hubspot.contact"]:
        assert event["payload_hash"] and re.match(r"^contact \d+ (created|updated)$", event["response"]), event
    for event in by_kind["hubspot.deal"]:
        assert event["payload_hash"], event
        assert re.match(r"^deal \d+ (created|updated), \d+ line items?, associations ok$", event["response"]), event
    for event in by_kind.get("quickbooks.void", []):
        assert event["payload_hash"] and event["response"].startswith("voided: Invoice "), event
    for event in by_kind.get("hubspot.deal_sync", []):
        assert event["outcome"] == "skipped" or event["response"].startswith("deal "), event

    # The hash is the hash of the body sent: for a contact, the shopper's newest order's properties.
    ledger = Ledger(settings.ledger_path)
    try:
        orders = [from_json(s) for (s,) in ledger.conn.execute("SELECT snapshot FROM orders")]
    finally:
        ledger.close()
    stage = settings.hubspot.lifecycle_stage
    for event in by_kind["hubspot.contact"]:
        order = next(o for o in orders if o.order_key == event["order_key"])
        shopper = [o for o in orders if contact_key(o) == contact_key(order)]
        assert event["payload_hash"] in {payload_hash(contact_properties(o, stage)) for o in shopper}

    # No credential reaches the events table, whatever column.
    ledger = Ledger(settings.ledger_path)
    try:
        texts = " ".join(str(v) for row in ledger.conn.execute("SELECT * FROM events") for v in row)
        tokens = [v for row in ledger.conn.execute("SELECT refresh_token, access_token FROM tokens") for v in row if v]
    finally:
        ledger.close()
    secrets = tokens + [v for system in credentials.values() for k, v in system.items()
                        if any(w in k for w in ("token", "secret", "key"))]
    assert secrets
    for secret in secrets:
        assert secret not in texts


def test_the_same_body_gives_the_same_hash_in_another_ledger(sandbox, settings):
    settings, _ = settings
    run_pass(settings)
    again = settings.model_copy(update={"ledger": settings.ledger + ".again"})
    run_pass(again)  # a second installation over the same stores and targets sends the same bodies

    def hashes(s):
        return {(e["order_key"], e["step"]): e["payload_hash"] for e in attempts(s, "payload_hash IS NOT NULL")
                if kind(e["step"]) in ("hubspot.contact", "hubspot.deal", "quickbooks.invoice")}
    first, second = hashes(settings), hashes(again)
    assert first and first.keys() == second.keys()
    assert first == second

    # Canonical: key order does not matter, the exact decimal text does.
    assert payload_hash({"b": Decimal("12.50"), "a": [1, {"y": 2, "x": 1}]}) == \
        payload_hash({"a": [1, {"x": 1, "y": 2}], "b": Decimal("12.50")})
    assert payload_hash({"a": Decimal("12.50")}) != payload_hash({"a": Decimal("12.5")})
    assert payload_hash({"a": Decimal("12.50")}) == payload_hash({"a": "12.50"})
    assert payload_hash(None) is None


def test_a_dead_step_records_the_error_and_no_response(sandbox, settings):
    settings, credentials = settings
    # The company knows no item for the orders' SKUs, and no fallback item is configured.
    sandbox.control("quickbooks", "POST", "reset")
    sandbox.control("quickbooks", "POST", f"companies/{REALM}",
                    json={"settings": {"home_currency": "USD", "currencies": ["USD", "EUR"]}})
    sandbox.control("quickbooks", "POST", "oauth/clients", json={
        "client_id": credentials["quickbooks"]["client_id"],
        "client_secret": credentials["quickbooks"]["client_secret"],
        "refresh_token": credentials["quickbooks"]["refresh_token"], "realm_id": REALM})
    strict = settings.model_copy(update={"quickbooks": settings.quickbooks.model_copy(update={"default_item": None})})
    run_pass(strict)
    dead = attempts(strict, "step = 'quickbooks.invoice' AND outcome = 'dead'")
    assert dead
    for event in dead:
        assert "SKU" in event["error"] and event["detail"] == event["error"]
        assert event["response"] is None and event["payload_hash"] is None  # nothing was sent
        assert event["request_id"] and event["duration_ms"] is not None


def test_a_refused_write_records_the_error_the_answer_and_the_hash_of_what_was_sent(sandbox, settings):
    settings, _ = settings
    sandbox.control("quickbooks", "POST", "chaos", json={"faults": [{"path": "/batch", "status": 400}],
                                                         "replace": True})
    try:
        run_pass(settings)
    finally:
        sandbox.control("quickbooks", "DELETE", "chaos")
    failed = attempts(settings, "step = 'quickbooks.customer' AND payload_hash IS NOT NULL")
    assert failed
    for event in failed:
        assert event["outcome"] == "failed" and event["error"], event
        assert event["response"].startswith("HTTP 400"), event  # what QuickBooks answered, apart from our error
        assert HASH.match(event["payload_hash"]) and event["request_id"], event


def test_secrets_are_blanked_in_event_text(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        ledger.record_event("attempt", "failed", step="quickbooks.invoice",
                            response="HTTP 401 echoed Authorization: Bearer eyJhbGciOi.secretpart",
                            error='refused {"access_token": "at-123456789", "refresh_token": "rt-987654321"}',
                            detail="sent with X-Shopify-Access-Token: shpat_abcdef123456 and key ck_0123456789abcdef")
        row = ledger.conn.execute("SELECT response, error, detail, system FROM events").fetchone()
    finally:
        ledger.close()
    text = " ".join(row[:3])
    for secret in ("eyJhbGciOi", "secretpart", "at-123456789", "rt-987654321", "shpat_abcdef123456",
                   "ck_0123456789abcdef"):
        assert secret not in text
    assert row[0].startswith("HTTP 401") and row[3] == "quickbooks"
    assert redact("Invoice 145 DocNumber SH-1001 TotalAmt 12.50 SyncToken 3") == \
        "Invoice 145 DocNumber SH-1001 TotalAmt 12.50 SyncToken 3"


def _ledger_at(path, versions: set[int], monkeypatch) -> None:
    """A ledger file migrated only to ``versions`` (as an older release left it)."""
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", [m for m in migrations.MIGRATIONS if m[0] in versions])
        Ledger(path).close()


def test_the_migration_applies_to_a_ledger_made_at_version_6(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    _ledger_at(path, {1, 2, 3, 4, 5, 6}, monkeypatch)
    conn = sqlite3.connect(path)
    assert "response" not in {r[1] for r in conn.execute("PRAGMA table_info(events)")}
    conn.execute("INSERT INTO events (at, order_key, step, kind, outcome, detail) VALUES"
                 " ('2025-01-01T00:00:00+00:00', 's:1', 'quickbooks.invoice', 'attempt', 'failed', 'QuickBooks down')")
    conn.execute("INSERT INTO events (at, kind, outcome, detail) VALUES ('2025-01-01T00:00:01+00:00', 'pull', 'ok',"
                 " 'shop 3 orders')")
    conn.commit()
    conn.close()

    ledger = Ledger(path)  # opening it applies 7 and 8
    try:
        versions = [r[0] for r in ledger.conn.execute("SELECT version FROM migrations ORDER BY version")]
        assert versions == [v for v, _, _ in migrations.MIGRATIONS] and 8 in versions
        assert {"response", "error", "system"} <= {r[1] for r in ledger.conn.execute("PRAGMA table_info(events)")}
        old = ledger.conn.execute("SELECT kind, system, error, response FROM events ORDER BY id").fetchall()
        assert old == [("attempt", "quickbooks", "QuickBooks down", None), ("pull", None, None, None)]
        indexes = {r[1]: r for r in ledger.conn.execute("PRAGMA index_list(events)")}
        assert [r[2] for r in ledger.conn.execute("PRAGMA index_info(events_order)")] == ["order_key", "at"]
        assert "events_order" in indexes
        ledger.record_event("attempt", "done", order_key="s:1", step="hubspot.contact", payload_hash="0" * 16,
                            response="contact 1 created", duration_ms=3)
        assert ledger.conn.execute("SELECT system, response, error FROM events WHERE step = 'hubspot.contact'"
                                   ).fetchone() == ("hubspot", "contact 1 created", None)
    finally:
        ledger.close()
    assert migrations.migrate(sqlite3.connect(path)) == []  # up to date: nothing applied again


def test_a_ledger_migrated_past_a_gap_takes_the_missing_version_later(tmp_path, monkeypatch):
    # A release that shipped 8 before 7 existed: adding 7 later applies it alone, and 8 is not run twice.
    path = tmp_path / "gap.db"
    _ledger_at(path, {1, 2, 3, 4, 5, 6, 8}, monkeypatch)
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT version FROM migrations ORDER BY version")] == [1, 2, 3, 4, 5, 6, 8]
    later = [v for v, _, _ in migrations.MIGRATIONS if v not in {1, 2, 3, 4, 5, 6, 8}]
    assert later[0] == 7 and migrations.migrate(conn) == later  # 7 and whatever came after 8; 8 not again
    assert migrations.migrate(conn) == []
    conn.close()
