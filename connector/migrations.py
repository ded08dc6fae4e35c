"""Ordered schema migrations for the ledger (SQLite dialect; PostgreSQL translates them), recorded in the database.

Each migration runs once, inside a transaction, and is recorded in
``migrations`` with its version and name. Never edit a released migration:
add a new one. The schema is described for humans in docs/ledger.md.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial ledger", """
        CREATE TABLE orders (
            order_key TEXT PRIMARY KEY,           -- '<store>:<source_order_id>'
            store TEXT NOT NULL,
            system TEXT NOT NULL,
            source_order_id TEXT NOT NULL,
            name TEXT NOT NULL,
            currency TEXT NOT NULL,
            total TEXT NOT NULL,                  -- Decimal as text, never REAL
            source_created_at TEXT NOT NULL,
            source_updated_at TEXT NOT NULL,      -- guards against going backwards (guarantee 5)
            content_hash TEXT NOT NULL,
            snapshot TEXT NOT NULL,               -- canonical JSON of the order
            balance_difference TEXT NOT NULL,     -- '0.00' when the order balances
            first_seen_at TEXT NOT NULL,
            last_changed_at TEXT NOT NULL
        );
        CREATE INDEX orders_store ON orders(store, source_updated_at);

        CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            order_key TEXT NOT NULL REFERENCES orders(order_key),
            step TEXT NOT NULL,                   -- e.g. 'quickbooks.invoice'
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending','in_flight','done','failed','dead','skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            depends_on TEXT NOT NULL DEFAULT '',  -- comma list of this order's steps that must end first
            planned_hash TEXT NOT NULL,           -- order content hash the step was planned for
            lease_until TEXT,                     -- in_flight claims expire; a crashed worker's steps come back
            request_id TEXT,                      -- deterministic QuickBooks requestid
            external_id TEXT,                     -- what the step created or found
            error TEXT,
            what_to_do TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (order_key, step)
        );
        CREATE INDEX steps_due ON steps(state, next_attempt_at);

        CREATE TABLE bindings (
            system TEXT NOT NULL,                 -- hubspot | quickbooks
            kind TEXT NOT NULL,                   -- contact | customer | item | invoice | payment ...
            canonical_key TEXT NOT NULL,
            external_id TEXT NOT NULL,
            details TEXT,                         -- JSON: doc number, sync token, ...
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (system, kind, canonical_key)
        );

        CREATE TABLE cursors (
            store TEXT PRIMARY KEY,
            value TEXT NOT NULL,                  -- ISO-8601 UTC
            updated_at TEXT NOT NULL
        );

        CREATE TABLE tokens (
            system TEXT NOT NULL,
            account TEXT NOT NULL,
            refresh_token TEXT NOT NULL,
            access_token TEXT,
            access_expires_at TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (system, account)
        );

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            order_key TEXT,
            step TEXT,
            kind TEXT NOT NULL,                   -- attempt | pull | plan | note
            outcome TEXT NOT NULL,                -- ok | failed | dead | skipped | unchanged
            request_id TEXT,
            payload_hash TEXT,
            detail TEXT,
            duration_ms INTEGER
        );
        CREATE INDEX events_order ON events(order_key, at);

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            summary TEXT
        );
    """),
    (2, "intake rejects", """
        -- Orders a store sent that could not be turned into a balanced canonical order.
        -- The cursor still moves on; the reject stays visible until the order maps cleanly.
        CREATE TABLE rejects (
            order_key TEXT PRIMARY KEY,
            store TEXT NOT NULL,
            source_order_id TEXT NOT NULL,
            error TEXT NOT NULL,
            what_to_do TEXT,
            payload TEXT NOT NULL,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL
        );
    """),
    (3, "backfills", """
        -- One row per backfill run; it is what lets a killed backfill resume where it stopped.
        CREATE TABLE backfills (
            id INTEGER PRIMARY KEY,
            store TEXT NOT NULL,
            since TEXT NOT NULL,
            until TEXT NOT NULL,
            operation_id TEXT,                    -- the store's bulk operation, once started
            file TEXT,                            -- the downloaded result, once complete
            status TEXT NOT NULL,                 -- started | running | downloaded | done | failed
            orders_done INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
    """),
    (4, "reconnect flag", """
        -- Set when the system refused the refresh token (QuickBooks invalid_grant): its steps
        -- pause until a person reconnects, instead of burning retries.
        ALTER TABLE tokens ADD COLUMN needs_reconnect TEXT;
    """),
    (5, "webhook inbox", """
        -- One row per accepted webhook delivery, committed before the 2xx answer (guarantee 1).
        -- connector/inbox.py writes it, connector/intake.py processes it (docs/webhooks.md).
        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY,
            store TEXT NOT NULL,
            system TEXT NOT NULL,                 -- shopify | woocommerce
            topic TEXT NOT NULL,                  -- orders/updated, order.updated, ...
            dedupe_key TEXT NOT NULL,             -- X-Shopify-Webhook-Id; WooCommerce: topic, id, modified, body hash
            resource_id TEXT,                     -- the source_order_id announced
            source_updated_at TEXT,               -- ISO-8601 UTC, when the body carries it
            received_at TEXT NOT NULL,
            body TEXT NOT NULL,                   -- the raw body as received
            headers TEXT,                         -- JSON of the delivery's identifying headers
            duplicates INTEGER NOT NULL DEFAULT 0, -- same delivery received again (answered 200, not stored)
            attempts INTEGER NOT NULL DEFAULT 0,  -- processing attempts that failed to reach the store
            next_attempt_at TEXT,
            error TEXT,
            processed_at TEXT,
            outcome TEXT,                         -- new | changed | unchanged | stale | rejected | not_found
                                                  -- | failed | deleted | ignored
            UNIQUE (store, dedupe_key)
        );
        CREATE INDEX inbox_pending ON inbox(processed_at, store);
        CREATE INDEX inbox_resource ON inbox(store, resource_id);
    """),
    (6, "held and mismatch states", """
        -- Two more ends of a step: 'held' (a person edited the document in the target; the connector
        -- will not overwrite it) and 'mismatch' (booked, but the target's total or tax differs from
        -- the store's; both figures are in the error). SQLite cannot alter a CHECK: rebuild the table.
        CREATE TABLE steps_new (
            id INTEGER PRIMARY KEY,
            order_key TEXT NOT NULL REFERENCES orders(order_key),
            step TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending','in_flight','done','failed','dead','skipped','held','mismatch')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            depends_on TEXT NOT NULL DEFAULT '',
            planned_hash TEXT NOT NULL,
            lease_until TEXT,
            request_id TEXT,
            external_id TEXT,
            error TEXT,
            what_to_do TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (order_key, step)
        );
        INSERT INTO steps_new SELECT id, order_key, step, state, attempts, next_attempt_at, depends_on, planned_hash,
            lease_until, request_id, external_id, error, what_to_do, created_at, updated_at FROM steps;
        DROP TABLE steps;
        ALTER TABLE steps_new RENAME TO steps;
        CREATE INDEX steps_due ON steps(state, next_attempt_at);
    """),
    (7, "step priority", """
        -- Webhook-announced orders go before a backfill's thousands: workers take due steps by
        -- priority (0 webhook, 5 poll, 9 backfill), then in the order they were planned.
        ALTER TABLE steps ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;
        CREATE INDEX steps_priority ON steps(priority, id);
    """),
    (8, "event responses", """
        -- Every attempt recorded fully: what the target answered (a short summary such as
        -- 'Invoice 145 DocNumber SH-1001 TotalAmt 12.50' or 'HTTP 400 6240 Duplicate Name Exists'; never a
        -- body, never a credential), the error when the attempt failed (no longer only mixed into detail),
        -- and the system it went to. payload_hash (migration 1) now holds a hash of the body sent.
        ALTER TABLE events ADD COLUMN response TEXT;
        ALTER TABLE events ADD COLUMN error TEXT;
        ALTER TABLE events ADD COLUMN system TEXT;
        UPDATE events SET system = substr(step, 1, instr(step, '.') - 1) WHERE instr(step, '.') > 1;
        UPDATE events SET error = detail WHERE kind = 'attempt' AND outcome IN ('failed', 'dead', 'held');
        CREATE INDEX IF NOT EXISTS events_order ON events(order_key, at);
    """),
    (9, "reconcile findings", """
        -- `o2c reconcile` (connector/reconcile.py, docs/reconcile.md): one row per run and store, and
        -- what each run found where the store, the ledger and the targets disagree. A finding seen
        -- again is updated (last_seen_at, run_id), never duplicated; one no longer seen is closed.
        CREATE TABLE reconcile_runs (
            id INTEGER PRIMARY KEY,
            store TEXT NOT NULL,
            since TEXT NOT NULL,                  -- the store window compared, [since, until) UTC
            until TEXT NOT NULL,
            cdc_since TEXT,                       -- QuickBooks change data capture asked from here
            fix INTEGER NOT NULL DEFAULT 0,       -- 1: safe fixes were re-queued (--fix)
            started_at TEXT NOT NULL,
            finished_at TEXT,
            counts TEXT,                          -- JSON: orders checked, findings per kind, requeued, fixed
            error TEXT                            -- why the run stopped early (nothing was closed)
        );
        CREATE INDEX reconcile_runs_store ON reconcile_runs(store, id);

        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES reconcile_runs(id),  -- the last run that saw (or closed) it
            store TEXT NOT NULL,
            order_key TEXT NOT NULL,
            system TEXT NOT NULL,                 -- where the drift is: shopify | woocommerce | quickbooks | hubspot
            kind TEXT NOT NULL,                   -- never_synced | behind_store | voided_in_target | ...
            subject TEXT NOT NULL DEFAULT '',     -- the step concerned, e.g. quickbooks.payment:123
            detail TEXT NOT NULL,                 -- JSON: a one-line text and both figures
            proposed_action TEXT NOT NULL,
            safe INTEGER NOT NULL CHECK (safe IN (0, 1)),  -- 1: --fix may repair it through the normal steps
            status TEXT NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'fixed', 'requeued', 'accepted')),
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            closed_at TEXT                        -- when it was last found gone (status fixed)
        );
        CREATE INDEX findings_store_status ON findings(store, status);
        CREATE INDEX findings_order ON findings(order_key);
    """),
    (10, "claim tokens and job locks", """
        -- Several workers on one ledger (issue 10). A claim stamps its steps with a fresh token; a
        -- worker whose lease ran out and whose step was taken over finishes nothing (its UPDATE names
        -- the token it holds). NULL while the step is not in flight.
        ALTER TABLE steps ADD COLUMN claim_token TEXT;
        -- Scheduled jobs (poll a store, reconcile, ...) that must run on one node at a time, for a
        -- SQLite ledger shared by several processes (PostgreSQL uses advisory locks instead). A holder
        -- renews its lease while the job runs; a crashed holder's lease runs out. See connector/job_locks.py.
        CREATE TABLE job_locks (
            name TEXT PRIMARY KEY,                -- e.g. 'poll:main-shop'
            holder TEXT NOT NULL,                 -- host:pid:random of the process holding it
            lease_until TEXT NOT NULL,            -- another node may take it after this (UTC ISO)
            taken_at TEXT NOT NULL
        );
    """),
    (11, "shared rate budgets", """
        -- Rate budgets shared by every process on this ledger (connector/rate_slots.py,
        -- connector/rate_budget_shared.py, docs/operations.md "Rate limits"): one row per request that
        -- was given a slot, kept while it can still count in a window, so that N workers together stay
        -- under each vendor's limit. Times are float seconds since the epoch on ONE clock: PostgreSQL's
        -- clock_timestamp(), or the host's for a SQLite file.
        CREATE TABLE rate_slots (
            id INTEGER PRIMARY KEY,
            budget TEXT NOT NULL,                 -- e.g. 'quickbooks:9341453000000000'
            cost INTEGER NOT NULL,                -- units: a QuickBooks batch counts one per item
            granted_at REAL NOT NULL,
            ended_at REAL,                        -- NULL while in flight; counts in a window until ended_at + window
            lease_until REAL NOT NULL,            -- still in flight after this: its holder died; counted as ended then
            holder TEXT NOT NULL,                 -- host:pid that took it; 'vendor' for a hint
            hint INTEGER NOT NULL DEFAULT 0       -- 1: the vendor said others spent this much (first window only)
        );
        CREATE INDEX rate_slots_budget ON rate_slots(budget, ended_at);
        -- After a 429: nobody, in any process, sends on the budget before blocked_until.
        CREATE TABLE rate_blocks (
            budget TEXT PRIMARY KEY,
            blocked_until REAL NOT NULL
        );
    """),
    (12, "open steps index", """
        -- Workers claim due steps of one kind in queue order (connector/ledger_claims.py). Only the open
        -- steps can be due, and once a ledger has booked its history nearly all steps are done: an index
        -- of the open ones alone keeps a claim (and an idle worker's every poll) to the steps that matter.
        -- The condition must stay word for word the claim query's, or SQLite will not use it.
        CREATE INDEX steps_open ON steps(step, priority, id) WHERE state IN ('pending', 'failed', 'in_flight');
    """),
]


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                 " applied_at TEXT NOT NULL)")
    return {row[0] for row in conn.execute("SELECT version FROM migrations")}


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now.

    A ledger already up to date is only read, so workers opening it together do not contend.
    A PostgreSQL ledger's connection (:mod:`connector.ledger_postgres`) migrates through
    :mod:`connector.migrations_postgres`.
    """
    if getattr(conn, "backend", "sqlite") == "postgresql":
        from connector.migrations_postgres import migrate_postgres

        return migrate_postgres(conn)
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='migrations'").fetchone()
    if exists and {v for v, _, _ in MIGRATIONS} <= {r[0] for r in conn.execute("SELECT version FROM migrations")}:
        return []
    done = applied_versions(conn)
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        # executescript commits first; wrap the script so it applies whole or not at all, and take the
        # write lock at once (IMMEDIATE) so two processes opening a new ledger take turns.
        try:
            conn.executescript("BEGIN IMMEDIATE;\n" + sql + f"""
                INSERT INTO migrations (version, name, applied_at)
                VALUES ({version}, '{name}', '{datetime.now(timezone.utc).isoformat()}');
                COMMIT;""")
        except sqlite3.Error:
            # Never leave the script's transaction open: it would hold the write lock for good.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if version in applied_versions(conn):
                continue  # another connection applied it while we waited for the lock
            raise
        applied.append(version)
    return applied
