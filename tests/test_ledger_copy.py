"""``o2c ledger copy``: a ledger moved SQLite -> PostgreSQL -> SQLite keeps every row and gives the same answers.

The ledger copied is a real one: a sync of sandbox orders (orders, steps, bindings, events, cursors,
tokens) plus a reject and a webhook delivery. PostgreSQL comes from tests/postgres_support.py; without a
server those tests skip (``O2C_REQUIRE_POSTGRES=1``: fail). docs/ledger.md "Moving a ledger".
"""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from connector import inbox
from connector.cli import main
from connector.ledger import Ledger, utcnow
from connector.ledger_copy import copy_ledger, verify_ledgers
from connector.status import collect_status
from tests.postgres_support import fresh_database



def schema_tables(tmp_path) -> set[str]:
    """Every table a new ledger has, but ``migrations`` (each ledger's own): what a copy must carry."""
    fresh = Ledger(tmp_path / "schema" / "ledger.db")
    try:
        return {name for (name,) in fresh.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if name != "migrations"}
    finally:
        fresh.close()


@pytest.fixture
def synced(sandbox, tmp_path, monkeypatch):
    """Settings after a sync of 6 sandbox orders into a SQLite file, plus a reject, a webhook delivery and a
    rate-budget slot."""
    from connector.composition import build_runners, build_sources
    from connector.config import load_config
    from connector.demo import write_config
    from connector.engine import sync_pass
    from sandbox.seed import seed

    monkeypatch.delenv("O2C_DEMO_SHOPIFY_TOKEN", raising=False)
    settings = load_config(write_config(tmp_path, seed(sandbox.urls, orders=6, seed_value=11)))
    ledger = Ledger(settings.ledger_url)
    try:
        report = sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
        assert [p.error for p in report.pulls] == [None, None]
        ledger.record_reject("demo-shop", "999", ValueError("no SKU 'MUG-9' in QuickBooks"), {"id": 999, "n": "ü"})
        inbox.add(ledger, inbox.Delivery(store="demo-shop", system="shopify", topic="orders/updated",
                                         dedupe_key="hook-1", resource_id="999", source_updated_at=utcnow(),
                                         body='{"id": 999, "note": "50% off"}', headers={"X-Shopify-Webhook-Id": "1"}))
        # A REAL column (rate budgets' times): floats must come back from PostgreSQL to the last bit.
        ledger.conn.execute("INSERT INTO rate_slots (budget, cost, granted_at, ended_at, lease_until, holder)"
                            " VALUES ('quickbooks:1', 3, 1764393600.1234567, NULL, 1764393720.5, 'host:1')")
    finally:
        ledger.close()
    return settings


def cli(*args: str):
    return CliRunner().invoke(main, ["ledger", "copy", *args])


def answers(settings, where: str, now) -> dict:
    """What `o2c status` and the ledger's own reads say about the ledger at ``where``."""
    ledger = Ledger(where)
    try:
        status = collect_status(settings.model_copy(update={"ledger": where}), ledger, now=now)
        del status["ledger"]  # the one answer that names the place
        return {"status": status, "counts": ledger.step_counts(), "failures": ledger.failures(),
                "rejects": ledger.rejects(), "cursors": [ledger.cursor(s.name) for s in settings.stores],
                "bindings": ledger.conn.execute("SELECT system, kind, canonical_key, external_id FROM bindings"
                                                " ORDER BY system, kind, canonical_key").fetchall()}
    finally:
        ledger.close()


def count(where: str, table: str) -> int:
    ledger = Ledger(where)
    try:
        return ledger.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        ledger.close()


def test_sqlite_to_postgresql_to_sqlite_keeps_every_row_and_gives_the_same_answers(synced, tmp_path):
    original, back = synced.ledger_url, str(tmp_path / "back" / "ledger.db")
    now = utcnow()
    with fresh_database() as url:
        there = cli(original, url)
        assert there.exit_code == 0, there.output
        assert "copied and verified" in there.output and "DIFFERS" not in there.output
        # Small batches: every table crosses several of them, both ways.
        returned = copy_ledger(url, f"sqlite:///{back}", batch_rows=7)
        on_postgres = answers(synced, url, now)
        # New rows on the copy get ids past the copied ones (the identity sequences moved on).
        copy = Ledger(url)
        try:
            largest = copy.conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
            copy.record_event("note", "ok", detail="after the move")
            assert copy.conn.execute("SELECT MAX(id) FROM events").fetchone()[0] == largest + 1
        finally:
            copy.close()
    assert returned.ok and returned.copied
    checks = {check.table: check for check in returned.tables}
    assert set(checks) == schema_tables(tmp_path) >= {"orders", "steps", "bindings", "events", "findings"}
    for table in ("orders", "steps", "bindings", "events", "cursors", "rejects", "inbox", "rate_slots"):
        assert checks[table].source_rows > 0, table
    assert checks["orders"].source_rows == 6
    # The same checksums on the way back as on the way there: computed alike on both backends.
    again = verify_ledgers(original, back)
    assert again.ok, [(c.table, c.difference) for c in again.tables if not c.ok]
    assert {c.table: c.source_checksum for c in again.tables} == {c.table: c.source_checksum for c in returned.tables}
    expected = answers(synced, original, now)
    assert expected["status"]["queue"]["systems"] and expected["bindings"]
    assert on_postgres == expected
    assert answers(synced, back, now) == expected


def test_a_tampered_copy_fails_verification_naming_the_table(synced, tmp_path):
    copy = tmp_path / "copy.db"
    assert cli(synced.ledger_url, str(copy)).exit_code == 0
    assert cli("--verify-only", synced.ledger_url, str(copy)).exit_code == 0
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE bindings SET external_id = external_id || '0' WHERE rowid = (SELECT MIN(rowid)"
                     " FROM bindings)")
        conn.execute("DELETE FROM events WHERE id = (SELECT MAX(id) FROM events)")
    conn.close()
    result = cli("--verify-only", synced.ledger_url, str(copy))
    assert result.exit_code == 1, result.output
    assert "verification failed" in result.output and "DIFFERS" in result.output
    assert "bindings (same number of rows, different content)" in result.output
    events = count(synced.ledger_url, "events")
    assert f"events ({events} rows in SOURCE, {events - 1} in DEST)" in result.output
    assert "orders (" not in result.output  # the untouched tables still agree


def test_a_source_written_to_during_the_copy_fails_verification(synced, tmp_path):
    written = []

    def a_daemon_still_running(message: str) -> None:
        if message.startswith("copying events") and not written:
            still_open = Ledger(synced.ledger_url)
            still_open.record_event("note", "ok", detail="booked while the copy ran")
            still_open.close()
            written.append(message)

    result = copy_ledger(synced.ledger_url, str(tmp_path / "copy.db"), batch_rows=5, progress=a_daemon_still_running)
    assert written and not result.ok
    assert result.changed_during_copy == ["events"]
    assert [c.table for c in result.tables if not c.ok] == ["events"]


def test_a_destination_that_already_holds_a_ledger_is_refused_and_left_alone(synced, tmp_path):
    with fresh_database() as url:
        assert cli(synced.ledger_url, url).exit_code == 0
        events = count(url, "events")
        refused = cli(synced.ledger_url, url)
        assert refused.exit_code == 2, refused.output
        assert "already holds a ledger (" in refused.output and "6 orders" in refused.output
        assert "a copy never overwrites one" in refused.output and "createdb" in refused.output
        assert count(url, "events") == events


def test_a_ledger_is_never_copied_onto_itself(synced, tmp_path):
    same = cli(synced.ledger_url, f"sqlite:///{synced.ledger_url}")
    assert same.exit_code == 2 and "SOURCE and DEST are the same ledger" in same.output
    with fresh_database() as url:
        assert cli(synced.ledger_url, url).exit_code == 0
        onto_itself = cli(url, url.replace("127.0.0.1", "localhost"))
    assert onto_itself.exit_code == 2 and "SOURCE and DEST are the same ledger" in onto_itself.output


def test_a_copy_that_fails_midway_leaves_the_destination_empty(synced, tmp_path):
    # SQLite keeps a NUL inside text; PostgreSQL refuses it, after the tables before `rejects` were copied.
    with sqlite3.connect(synced.ledger_url) as conn:
        conn.execute("UPDATE rejects SET error = 'broken' || char(0) || 'text'")
    conn.close()
    with fresh_database() as url:
        failed = cli(synced.ledger_url, url)
        assert failed.exit_code == 1, failed.output
        assert "copying table rejects failed" in failed.output
        assert "left as it was (the copy is one transaction)" in failed.output
        tables = schema_tables(tmp_path)
        assert {table: count(url, table) for table in tables} == dict.fromkeys(tables, 0)
        assert count(url, "migrations") > 0  # migrated, empty: ready for the copy once the cause is fixed


def test_a_missing_source_is_refused_without_creating_it(tmp_path):
    missing = tmp_path / "nowhere.db"
    result = cli(str(missing), str(tmp_path / "dest.db"))
    assert result.exit_code == 2 and "no such file" in result.output
    assert not missing.exists() and not (tmp_path / "dest.db").exists()


def test_a_url_from_the_environment_is_used_and_its_password_never_shown(synced, monkeypatch):
    with fresh_database() as url:
        with_password = url.replace("postgres@", "postgres:s3cret-pw@")  # trust auth: any password goes
        monkeypatch.setenv("O2C_TEST_COPY_URL", with_password)
        result = cli(synced.ledger_url, "${O2C_TEST_COPY_URL}")
        assert result.exit_code == 0, result.output
        assert "s3cret-pw" not in result.output and ":***@" in result.output
        refused = cli(synced.ledger_url, "${O2C_TEST_COPY_URL}")
        assert refused.exit_code == 2 and "s3cret-pw" not in refused.output
    unset = cli(synced.ledger_url, "${O2C_NOT_SET_ANYWHERE}")
    assert unset.exit_code == 2 and "O2C_NOT_SET_ANYWHERE" in unset.output and "not set" in unset.output
