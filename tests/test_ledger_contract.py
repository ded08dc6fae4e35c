"""The ledger contract, run against both backends: a SQLite file and a PostgreSQL database.

Every test takes ``ledger`` (or ``where``) and runs twice. PostgreSQL is found by
tests/postgres_support.py (``O2C_TEST_POSTGRES_URL``); each PostgreSQL test gets a fresh
database, dropped after. Without a server those runs skip, saying how to start one,
unless ``O2C_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pytest

from connector import findings, inbox, replay
from connector.engine import StorePull, record_page
from connector.ledger import IntegrityError, Ledger, utcnow
from connector.migrations import MIGRATIONS
from connector.model import Money, Refund
from connector.status import collect_status
from tests.postgres_support import fresh_database
from tests.test_status import make_settings
from tests.test_workers import Source, order

VERSIONS = [v for v, _, _ in MIGRATIONS]


@pytest.fixture
def ledger(where):
    opened = Ledger(where)
    yield opened
    opened.close()


def record(ledger: Ledger, orders, via: str = "poll") -> StorePull:
    result = StorePull("shop")
    with ledger.transaction():
        record_page(Source(), list(orders), ledger, result, via=via)
    return result


def delivery(dedupe: str, resource: str = "1", store: str = "shop") -> inbox.Delivery:
    return inbox.Delivery(store=store, system="shopify", topic="orders/updated", dedupe_key=dedupe,
                          resource_id=resource, source_updated_at=utcnow(), body='{"id": 1, "note": "50% off"}',
                          headers={"X-Shopify-Webhook-Id": dedupe})


# -- opening and migrating ------------------------------------------------------------------

def test_a_new_ledger_is_migrated_once_and_reopening_applies_nothing(where):
    first = Ledger(where)
    assert [v for (v,) in first.conn.execute("SELECT version FROM migrations ORDER BY version")] == VERSIONS
    first.close()
    again = Ledger(where)
    assert again.conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(VERSIONS)
    again.close()


def test_workers_opening_a_new_ledger_together_migrate_it_once(where):
    errors, ledgers = [], []

    def open_it():
        try:
            ledgers.append(Ledger(where))
        except Exception as exc:  # noqa: BLE001 - the assertion names it
            errors.append(exc)
    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    rows = ledgers[0].conn.execute("SELECT version, COUNT(*) FROM migrations GROUP BY version ORDER BY version")
    assert [tuple(r) for r in rows] == [(v, 1) for v in VERSIONS]
    for opened in ledgers:
        opened.close()


# -- orders ---------------------------------------------------------------------------------

def test_recording_an_order_says_new_changed_unchanged_or_stale(ledger):
    first = order(1)
    assert ledger.record_order(first).outcome == "new"
    assert ledger.record_order(first).outcome == "unchanged"
    later = dataclasses.replace(first, note="gift", updated_at=first.updated_at + timedelta(minutes=5))
    assert ledger.record_order(later).outcome == "changed"
    assert ledger.record_order(first).outcome == "stale"  # older: never overwrites the newer (guarantee 5)
    refunded = dataclasses.replace(later, refunds=(Refund("r1", later.updated_at, Money.of("5.00", "USD")),))
    assert ledger.record_order(refunded).outcome == "changed"
    assert ledger.record_order(later).outcome == "stale"  # same second, less money moved: the older read
    assert '"r1"' in ledger.order_snapshot("shop:1")
    row = ledger.conn.execute("SELECT name, total, currency, balance_difference FROM orders").fetchone()
    assert tuple(row) == ("#1", "20.00", "USD", "0.00")


def test_rejects_are_kept_until_the_order_maps(ledger):
    ledger.record_reject("shop", "9", ValueError("no SKU"), {"id": 9, "sku": None})
    ledger.record_reject("shop", "9", ValueError("still no SKU"), {"id": 9})
    assert [(r["order_key"], r["error"]) for r in ledger.rejects()] == [("shop:9", "still no SKU")]
    ledger.clear_reject("shop:9")
    assert ledger.rejects() == []


# -- steps: the queue -----------------------------------------------------------------------

def test_recording_plans_each_step_once_and_priority_follows_how_the_order_came(ledger):
    assert record(ledger, [order(1), order(2)], "backfill").new == 2
    record(ledger, [order(3)], "webhook")
    planned = ledger.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    assert planned > 0
    assert ledger.plan_step("shop:1", "hubspot.contact", (), "h") is False  # already there
    assert ledger.conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == planned
    assert [r.order_key for r in ledger.due_steps("hubspot.contact", limit=2)] == ["shop:3", "shop:1"]
    record(ledger, [order(2)], "webhook")  # unchanged, but announced: jumps the queue
    assert [r.order_key for r in ledger.due_steps("hubspot.contact")] == ["shop:2", "shop:3", "shop:1"]


def test_a_claim_holds_a_step_until_its_lease_runs_out(ledger):
    record(ledger, [order(1)])
    step = ledger.due_steps("hubspot.contact")[0]
    ledger.claim([step.id], lease_seconds=60)
    assert ledger.due_steps("hubspot.contact") == []
    after_lease = ledger.due_steps("hubspot.contact", now=utcnow() + timedelta(seconds=120))
    assert [(s.id, s.state, s.attempts) for s in after_lease] == [(step.id, "in_flight", 1)]
    ledger.release([step.id], "HubSpot paused", "reconnect")
    state, attempts = ledger.conn.execute("SELECT state, attempts FROM steps WHERE id = ?", (step.id,)).fetchone()
    assert (state, attempts) == ("pending", 0)


def test_a_step_waits_for_the_steps_it_depends_on_and_ends_visibly(ledger):
    record(ledger, [order(1)])
    assert ledger.due_steps("hubspot.deal") == []  # waits for the contact
    contact = ledger.due_steps("hubspot.contact")[0]
    ledger.claim([contact.id])
    ledger.finish_step(contact.id, "failed", error="HTTP 503", retry_at=utcnow() + timedelta(minutes=5))
    assert ledger.due_steps("hubspot.contact") == []
    assert [s.id for s in ledger.due_steps("hubspot.contact", now=utcnow() + timedelta(minutes=6))] == [contact.id]
    ledger.claim([contact.id])
    ledger.finish_step(contact.id, "done", external_id="c-1")
    assert [s.order_key for s in ledger.due_steps("hubspot.deal")] == ["shop:1"]
    deal = ledger.due_steps("hubspot.deal")[0]
    ledger.finish_step(deal.id, "dead", error="no pipeline", what_to_do="create the pipeline")
    assert ledger.step_counts()["hubspot.contact"] == {"done": 1}
    assert ledger.step_counts()["hubspot.deal"] == {"dead": 1}
    assert [(f["step"], f["state"], f["what_to_do"]) for f in ledger.failures()] == \
        [("hubspot.deal", "dead", "create the pipeline")]
    external, attempts = ledger.conn.execute("SELECT external_id, attempts FROM steps WHERE id = ?",
                                             (contact.id,)).fetchone()
    assert (external, attempts) == ("c-1", 2)


def test_replay_requeues_dead_steps_with_one_attempt_left_counted(ledger):
    record(ledger, [order(1)])
    contact = ledger.due_steps("hubspot.contact")[0]
    for _ in range(3):
        ledger.claim([contact.id])
    ledger.finish_step(contact.id, "dead", error="HTTP 400")
    chosen = replay.select(ledger, replay.Selection(states=("dead",), system="hubspot"))
    assert [(s["step"], s["attempts"]) for s in chosen] == [("hubspot.contact", 3)]
    assert replay.requeue(ledger, chosen) == 1
    assert tuple(ledger.conn.execute("SELECT state, attempts FROM steps WHERE id = ?", (contact.id,)).fetchone()) \
        == ("pending", 1)


def test_retry_skipped_puts_skipped_steps_back(ledger):
    record(ledger, [order(1)])
    contact = ledger.due_steps("hubspot.contact")[0]
    ledger.finish_step(contact.id, "skipped", error="no email")
    assert ledger.retry_skipped("shop:1", ["hubspot.contact"]) == 1
    assert ledger.retry_skipped("shop:1", []) == 0


# -- bindings, cursors, tokens, backfills ------------------------------------------------------

def test_a_binding_is_found_again_and_rebinding_replaces_it(ledger):
    assert ledger.binding("quickbooks", "customer", "email:a@b.com") is None
    ledger.bind("quickbooks", "customer", "email:a@b.com", "58", {"SyncToken": "0"})
    assert ledger.binding("quickbooks", "customer", "email:a@b.com") == "58"
    assert ledger.binding_details("quickbooks", "customer", "email:a@b.com") == {"SyncToken": "0"}
    ledger.bind("quickbooks", "customer", "email:a@b.com", "59")
    assert ledger.binding("quickbooks", "customer", "email:a@b.com") == "59"
    assert ledger.binding_details("quickbooks", "customer", "email:a@b.com") is None


def test_cursor_tokens_and_reconnect_flag(ledger):
    assert ledger.cursor("shop") is None
    ledger.set_cursor("shop", "2026-11-01T00:00:00+00:00")
    ledger.set_cursor("shop", "2026-11-02T00:00:00+00:00")
    assert ledger.cursor("shop") == "2026-11-02T00:00:00+00:00"
    ledger.mark_reconnect("quickbooks", "123", "invalid_grant")
    assert ledger.needs_reconnect("quickbooks", "123") == "invalid_grant"
    ledger.save_token("quickbooks", "123", "refresh-2", "access-2", utcnow() + timedelta(hours=1))
    assert ledger.needs_reconnect("quickbooks", "123") is None
    assert ledger.token("quickbooks", "123")["refresh_token"] == "refresh-2"


def test_a_backfill_is_resumed_until_done(ledger):
    run = ledger.open_backfill("shop", "2026-01-01", "2026-02-01")
    assert (run["status"], run["orders_done"]) == ("started", 0)
    ledger.update_backfill(run["id"], status="running", orders_done=250, operation_id="gid://op/1")
    again = ledger.open_backfill("shop", "2026-01-01", "2026-02-01")
    assert (again["id"], again["orders_done"], again["operation_id"]) == (run["id"], 250, "gid://op/1")
    ledger.update_backfill(run["id"], status="done")
    assert ledger.open_backfill("shop", "2026-01-01", "2026-02-01")["id"] != run["id"]


# -- inbox, events, findings ----------------------------------------------------------------------

def test_inbox_stores_each_delivery_once_and_counts_duplicates(ledger):
    first_id, new = inbox.add(ledger, delivery("d1", "1"))
    assert new is True and isinstance(first_id, int)
    assert inbox.add(ledger, delivery("d1", "1")) == (first_id, False)
    results = inbox.add_many(ledger, [delivery("d2", "2"), delivery("d2", "2"), delivery("d1", "1")])
    assert [n for _, n in results] == [True, False, False]
    assert results[1][0] == results[0][0] and results[2][0] == first_id
    assert not ledger.conn.in_transaction
    pending = inbox.pending(ledger)
    assert [(r.resource_id, r.body) for r in pending] == [("1", '{"id": 1, "note": "50% off"}'),
                                                          ("2", '{"id": 1, "note": "50% off"}')]
    inbox.mark_failed(ledger, [pending[1].id], "store down", delay_seconds=60)
    inbox.mark_processed(ledger, [pending[0].id], "new")
    assert inbox.pending(ledger) == []
    assert inbox.counts(ledger, "shop") == {"received": 2, "duplicates": 3, "pending": 1, "new": 1}
    record(ledger, [order(1), order(5)])
    coverage = inbox.coverage(ledger, "shop")
    assert (coverage.orders, coverage.by_webhook, coverage.poll_only) == (2, 1, 1)


def test_a_group_commit_that_fails_stores_nothing(ledger):
    bad = dataclasses.replace(delivery("d9"), body=None)  # NOT NULL body: the whole group is refused
    with pytest.raises(IntegrityError):
        inbox.add_many(ledger, [delivery("d8"), bad])
    assert not ledger.conn.in_transaction
    assert ledger.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 0
    assert inbox.add(ledger, delivery("d8"))[1] is True  # the connection takes the next group


def test_events_are_recorded_whole_and_redacted(ledger):
    ledger.record_event("attempt", "done", order_key="shop:1", step="quickbooks.invoice", request_id="r-1",
                        payload_hash="abcd", response="Invoice 1 TotalAmt 20.00", duration_ms=12,
                        detail="Authorization: Bearer secret-token-123")
    row = ledger.conn.execute("SELECT system, response, detail, duration_ms FROM events").fetchone()
    assert row[0] == "quickbooks" and row[1] == "Invoice 1 TotalAmt 20.00" and row[3] == 12
    assert "secret-token-123" not in row[2]


def test_findings_are_updated_in_place_and_closed_when_gone(ledger):
    now = utcnow()
    run = findings.start_run(ledger, "shop", now - timedelta(days=1), now, None, fix=False)
    found = findings.Finding("shop:1", "quickbooks", "amount_differs", "quickbooks.invoice", "differs",
                             "review it", safe=False, figures={"store": "20.00", "quickbooks": "21.00"})
    findings.record(ledger, run, "shop", [found], {"shop:1"})
    findings.finish_run(ledger, run, {"checked": 1})
    assert findings.last_run(ledger, "shop")["id"] == run
    again = findings.start_run(ledger, "shop", now, now + timedelta(hours=1), None, fix=False)
    findings.record(ledger, again, "shop", [dataclasses.replace(found)], {"shop:1"})
    rows = findings.rows(ledger, store="shop")
    assert [(r["kind"], r["status"], r["run_id"]) for r in rows] == [("amount_differs", "open", again)]
    assert rows[0]["detail"]["quickbooks"] == "21.00" and rows[0]["safe"] is False
    closed = findings.record(ledger, again, "shop", [], {"shop:1"})
    assert [c["kind"] for c in closed] == ["amount_differs"]
    assert findings.accept(ledger, [rows[0]["id"]]) == 0  # already fixed: nothing to accept


# -- status --------------------------------------------------------------------------------------

def test_status_counts_the_queue_stores_and_tokens(ledger, tmp_path):
    settings = make_settings(tmp_path)
    record(ledger, [order(1), order(2)])
    contact = ledger.due_steps("hubspot.contact")[0]
    ledger.finish_step(contact.id, "dead", error="HTTP 400", what_to_do="fix the email")
    ledger.record_event("pull", "ok", detail="main-shop 2 new")
    inbox.add(ledger, delivery("d1", "1", store="main-shop"))
    status = collect_status(settings, ledger)
    hubspot = status["queue"]["systems"]["hubspot"]
    assert hubspot["kinds"]["hubspot.contact"]["counts"]["dead"] == 1
    assert hubspot["kinds"]["hubspot.contact"]["counts"]["pending"] == 1
    assert hubspot["kinds"]["hubspot.deal"]["blocked"] == 1  # the deal waits on the dead contact
    assert [p["state"] for p in status["problems"]] == ["dead"]
    main_shop = status["stores"][0]
    assert main_shop["last_poll_at"] is not None
    assert "password" not in status["ledger"]


# -- transactions ---------------------------------------------------------------------------------

def test_a_transaction_is_all_or_nothing_and_autocommit_otherwise(ledger):
    with pytest.raises(RuntimeError):
        with ledger.transaction():
            ledger.set_cursor("shop", "a")
            raise RuntimeError("crash")
    assert ledger.cursor("shop") is None and not ledger.conn.in_transaction
    ledger.set_cursor("shop", "b")  # no transaction open: committed at once
    assert not ledger.conn.in_transaction
    with ledger.transaction():
        with pytest.raises(Exception):
            ledger.conn.execute("BEGIN IMMEDIATE")  # no nesting, as on SQLite


def test_writers_that_begin_immediate_take_turns(where):
    first, second = Ledger(where), Ledger(where)
    order_of = []
    first.conn.execute("BEGIN IMMEDIATE")

    def other():
        with second.transaction():
            order_of.append("second")
    thread = threading.Thread(target=other)
    thread.start()
    time.sleep(0.5)
    order_of.append("first")
    first.conn.execute("COMMIT")
    thread.join(30)
    assert order_of == ["first", "second"]
    first.close()
    second.close()


def test_a_broken_constraint_raises_the_same_error_on_both(ledger):
    record(ledger, [order(1)])
    with pytest.raises(IntegrityError):
        ledger.conn.execute("INSERT INTO steps (order_key, step, planned_hash, created_at, updated_at)"
                            " VALUES ('shop:1', 'hubspot.contact', 'h', 'x', 'x')")
    with pytest.raises(IntegrityError):
        ledger.conn.execute("UPDATE steps SET state = 'lost'")


# -- end to end ----------------------------------------------------------------------------------

def ledger_contents(ledger: Ledger) -> dict:
    """What a sync leaves in the ledger, without what differs run to run (times, generated ids).

    The sandbox makes up payment and refund ids afresh on each seed: those steps are compared by kind.
    """
    def named(step):
        return step.split(":")[0] if step and step.startswith(("quickbooks.payment:", "quickbooks.refund:")) else step

    def rows(sql, step_at=None):
        found = []
        for row in ledger.conn.execute(sql):
            row = [int(v) if isinstance(v, bool) else v for v in row]  # SQLite says 1/0, PostgreSQL True/False
            if step_at is not None:
                row[step_at] = named(row[step_at])
            found.append(tuple(row))
        return sorted(found, key=repr)
    return {
        "orders": rows("SELECT order_key, name, currency, total, balance_difference FROM orders"),
        "steps": rows("SELECT order_key, step, state, attempts, error IS NULL, external_id IS NULL FROM steps", 1),
        "bindings": rows("SELECT system, kind, CASE WHEN kind = 'payment' THEN substr(canonical_key, 1,"
                         " instr(canonical_key, '|')) ELSE canonical_key END FROM bindings"),
        "events": rows("SELECT kind, outcome, step FROM events", 2),
        "cursors": rows("SELECT store FROM cursors"),
    }


def test_a_sync_of_sandbox_orders_leaves_the_same_ledger_on_postgresql_as_on_sqlite(sandbox, tmp_path, monkeypatch):
    from connector.composition import build_runners, build_sources
    from connector.config import load_config
    from connector.demo import write_config
    from connector.engine import sync_pass
    from connector.rate_budget import reset_budgets
    from sandbox.seed import seed

    monkeypatch.delenv("O2C_DEMO_SHOPIFY_TOKEN", raising=False)

    def sync(where: str, folder) -> tuple[dict, dict]:
        sandbox.reset()
        reset_budgets()
        folder.mkdir()
        settings = load_config(write_config(folder, seed(sandbox.urls, orders=8, seed_value=5)))
        settings = settings.model_copy(update={"ledger": where})
        ledger = Ledger(settings.ledger_url)
        try:
            report = sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
            assert [p.error for p in report.pulls] == [None, None]
            return ledger_contents(ledger), ledger.step_counts()
        finally:
            ledger.close()

    on_sqlite, counts = sync(str(tmp_path / "ledger.db"), tmp_path / "sqlite")
    assert len(on_sqlite["orders"]) == 8
    assert all(states.keys() <= {"done", "skipped"} for states in counts.values()), counts
    with fresh_database() as url:
        on_postgres, _ = sync(url, tmp_path / "postgresql")
    for table in on_sqlite:
        assert (table, on_postgres[table]) == (table, on_sqlite[table])
