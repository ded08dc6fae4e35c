"""The webhook inbox: received deliveries, deduplicated, committed before the store gets its 2xx.

One row per accepted delivery in the ledger's ``inbox`` table (migration 5,
docs/ledger.md). A delivery is *accepted* when :func:`add` has committed it;
only then does the webhook server answer 200 (DESIGN.md guarantee 1), so a
kill -9 at any instant loses nothing the store believes delivered.

Dedupe keys (webhooks are at-least-once; duplicates are common, peers.md (c) 8):

* Shopify: ``X-Shopify-Webhook-Id``, "a unique composite key per delivery", the
  same on retries (notes/shopify.md §3).
* WooCommerce: its ``X-WC-Webhook-Delivery-ID`` repeats within a second
  (notes/woocommerce.md §3), so the key is topic + resource id + modified time +
  a hash of the body.

Webhook coverage (peers.md (c) 7, 9: subscriptions get deleted or disabled
silently) compares the orders the ledger holds with the orders some delivery
announced: an order known only from polling is a webhook that never came.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.ledger import Ledger, iso, utcnow


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, as the server understood it (signature already checked)."""

    store: str
    system: str
    topic: str
    dedupe_key: str
    resource_id: str | None
    source_updated_at: datetime | None
    body: str
    headers: dict


@dataclass(frozen=True)
class InboxRow:
    id: int
    store: str
    system: str
    topic: str
    resource_id: str | None
    source_updated_at: str | None
    body: str
    attempts: int


def body_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def woocommerce_key(topic: str, resource_id: str | None, modified: str | None, raw: bytes) -> str:
    """WooCommerce's delivery id repeats, so the content decides (notes/woocommerce.md §3)."""
    return f"{topic}|{resource_id}|{modified}|{body_hash(raw)[:32]}"


def add(ledger: Ledger, delivery: Delivery) -> tuple[int, bool]:
    """Commit one delivery; return ``(row id, True)`` if new, ``(row id, False)`` for a duplicate.

    The insert and the duplicate count happen in one committed transaction:
    when this returns, the row is on disk (WAL) and the caller may answer 2xx.
    """
    return add_many(ledger, [delivery])[0]


def add_many(ledger: Ledger, deliveries: list[Delivery]) -> list[tuple[int, bool]]:
    """Commit many deliveries in one transaction; return ``(row id, new)`` for each, in order.

    The webhook server's group commit (:mod:`connector.webhook_committer`). A
    delivery repeating an earlier one, in the inbox or earlier in this same list,
    is a duplicate of that row (its count goes up). All or nothing: if anything
    fails, even the ``COMMIT``, the transaction is rolled back, nothing of the
    list is stored, and the error is raised for the caller to answer 5xx.
    """
    now = iso(utcnow())
    conn = ledger.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [_insert(conn, delivery, now) for delivery in deliveries]
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (disk full, I/O error) can leave the transaction open: end it, so the
        # connection can take the next group (ledger.transaction() would only roll back on a body error).
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
    return results


def _insert(conn: sqlite3.Connection, delivery: Delivery, now: str) -> tuple[int, bool]:
    updated = iso(delivery.source_updated_at) if delivery.source_updated_at else None
    cursor = conn.execute(
        "INSERT INTO inbox (store, system, topic, dedupe_key, resource_id, source_updated_at, received_at,"
        " body, headers, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (store, dedupe_key) DO NOTHING",
        (delivery.store, delivery.system, delivery.topic, delivery.dedupe_key, delivery.resource_id, updated,
         now, delivery.body, json.dumps(delivery.headers), now))
    if cursor.rowcount == 1:
        return cursor.lastrowid, True
    conn.execute("UPDATE inbox SET duplicates = duplicates + 1 WHERE store = ? AND dedupe_key = ?",
                 (delivery.store, delivery.dedupe_key))
    row = conn.execute("SELECT id FROM inbox WHERE store = ? AND dedupe_key = ?",
                       (delivery.store, delivery.dedupe_key)).fetchone()
    return row[0], False


def pending(ledger: Ledger, *, limit: int = 1000, now: datetime | None = None) -> list[InboxRow]:
    """Unprocessed deliveries that are due, oldest first."""
    rows = ledger.conn.execute(
        "SELECT id, store, system, topic, resource_id, source_updated_at, body, attempts FROM inbox"
        " WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        " ORDER BY id LIMIT ?", (iso(now or utcnow()), limit)).fetchall()
    return [InboxRow(*row) for row in rows]


def mark_processed(ledger: Ledger, row_ids: list[int], outcome: str, error: str | None = None) -> None:
    """End deliveries with their outcome (inside the caller's transaction, or on its own)."""
    now = iso(utcnow())
    ledger.conn.executemany("UPDATE inbox SET processed_at = ?, outcome = ?, error = ? WHERE id = ?",
                            [(now, outcome, error, row_id) for row_id in row_ids])


def mark_failed(ledger: Ledger, row_ids: list[int], error: str, *, delay_seconds: float) -> None:
    """Count a failed attempt (the store could not be reached); try again after ``delay_seconds``."""
    retry_at = iso(utcnow() + timedelta(seconds=delay_seconds))
    ledger.conn.executemany(
        "UPDATE inbox SET attempts = attempts + 1, error = ?, next_attempt_at = ? WHERE id = ?",
        [(error, retry_at, row_id) for row_id in row_ids])


def counts(ledger: Ledger, store: str) -> dict[str, int]:
    """Deliveries of one store: ``received``, ``duplicates``, ``pending`` and one count per outcome."""
    result = {"received": 0, "duplicates": 0, "pending": 0}
    for outcome, n, dups in ledger.conn.execute(
            "SELECT outcome, COUNT(*), SUM(duplicates) FROM inbox WHERE store = ? GROUP BY outcome", (store,)):
        result["received"] += n
        result["duplicates"] += dups or 0
        result[outcome or "pending"] = result.get(outcome or "pending", 0) + n
    return result


@dataclass(frozen=True)
class Coverage:
    """How many of a store's orders some webhook announced (the rest came only by polling)."""

    store: str
    orders: int  # orders of this store in the ledger
    by_webhook: int  # ... of which at least one delivery announced
    first_webhook_at: str | None  # the store's first delivery
    poll_only_since: int  # orders changed since the first delivery that no delivery announced

    @property
    def poll_only(self) -> int:
        return self.orders - self.by_webhook


def coverage(ledger: Ledger, store: str) -> Coverage:
    """Webhook coverage of ``store``: orders seen by poll that never arrived by webhook."""
    conn = ledger.conn
    orders = conn.execute("SELECT COUNT(*) FROM orders WHERE store = ?", (store,)).fetchone()[0]
    announced = ("EXISTS (SELECT 1 FROM inbox i WHERE i.store = o.store AND i.resource_id = o.source_order_id)")
    by_webhook = conn.execute(f"SELECT COUNT(*) FROM orders o WHERE o.store = ? AND {announced}",
                              (store,)).fetchone()[0]
    first = conn.execute("SELECT MIN(received_at) FROM inbox WHERE store = ?", (store,)).fetchone()[0]
    since = 0
    if first:
        # An order changed after webhooks began yet never announced: the clearest sign of a lost
        # or disabled subscription (Shopify deletes failing ones; WooCommerce disables them).
        since = conn.execute(
            f"SELECT COUNT(*) FROM orders o WHERE o.store = ? AND o.last_changed_at >= ? AND NOT {announced}",
            (store, first)).fetchone()[0]
    return Coverage(store, orders, by_webhook, first, since)
