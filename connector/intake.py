"""Process the webhook inbox: fetch the announced orders fresh and record them like a poll would.

A delivery only *announces* an order; the connector books from a fresh read
(docs/intake.md "One path for booking"). Per store, oldest first:

1. read the due, unprocessed deliveries;
2. skip what cannot change anything: topics that announce no order (``ignored``),
   WooCommerce ``order.deleted`` (``deleted``: the order went to the trash; nothing
   booked is undone, a person decides), and bodies older than the snapshot the
   ledger holds (``stale``: a late or out-of-order delivery never regresses an
   order, DESIGN.md guarantee 5);
3. fetch the remaining orders fresh, many per request (Shopify ``nodes(ids:)``
   sized by cost; WooCommerce ``include=`` 100 at a time);
4. record each through :func:`connector.engine.record_page` (which plans its
   steps) and mark its deliveries with the outcome, in one transaction per batch.

A store that cannot be reached leaves its deliveries pending with a growing
delay; the poll reconciles meanwhile. An order the store no longer returns is
``not_found``; one the adapter refuses for good (its error is not retryable) is ``failed``
with the error, and does not hold up the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from connector import inbox
from connector.engine import StorePull, record_page
from connector.errors import SourceError
from connector.ledger import Ledger

BATCH = 250  # orders recorded per transaction (the adapters size their own requests below this)
RETRY_DELAYS = (5, 30, 120, 600, 1800)  # seconds before a delivery is tried again after a store error
# WooCommerce topics whose body is the order itself (notes §3); order.deleted is settled apart.
WOO_ORDER_TOPICS = ("order.created", "order.updated", "order.restored")


@dataclass
class StoreIntake:
    """What processing did for one store's deliveries."""

    store: str
    outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> deliveries
    fetched: int = 0  # orders asked for fresh
    calls: int = 0  # requests to the store
    error: str | None = None

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _announces_order(row: inbox.InboxRow) -> bool:
    if row.resource_id is None:
        return False
    if row.system == "woocommerce":
        return row.topic in WOO_ORDER_TOPICS
    return row.topic.startswith(("orders/", "refunds/", "order_transactions/"))


def _held_updated_at(ledger: Ledger, store: str, source_order_id: str) -> datetime | None:
    row = ledger.conn.execute("SELECT source_updated_at FROM orders WHERE order_key = ?",
                              (f"{store}:{source_order_id}",)).fetchone()
    return _parse(row[0]) if row else None


def triage(ledger: Ledger, rows: list[inbox.InboxRow]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Split deliveries into ``{outcome: [row ids]}`` settled now and ``{order id: [row ids]}`` to fetch."""
    settled: dict[str, list[int]] = {}
    wanted: dict[str, list[int]] = {}
    for row in rows:
        if row.system == "woocommerce" and row.topic == "order.deleted":
            settled.setdefault("deleted", []).append(row.id)
            continue
        if not _announces_order(row):
            settled.setdefault("ignored", []).append(row.id)
            continue
        announced = _parse(row.source_updated_at)
        held = _held_updated_at(ledger, row.store, row.resource_id)
        # Strictly older only: both stores give whole seconds, so an equal time may hide a second
        # change in that second; fetching it costs a share of one batched request.
        if announced is not None and held is not None and announced < held:
            settled.setdefault("stale", []).append(row.id)
            continue
        wanted.setdefault(row.resource_id, []).append(row.id)
    return settled, wanted


def process_store(source, ledger: Ledger, rows: list[inbox.InboxRow]) -> StoreIntake:
    """Process one store's deliveries with its ``source`` (``fetch_by_ids`` and ``to_order``)."""
    result = StoreIntake(source.store)
    settled, wanted = triage(ledger, rows)
    with ledger.transaction():
        for outcome, ids in settled.items():
            inbox.mark_processed(ledger, ids, outcome)
            result.count(outcome, len(ids))
    attempts = {row.id: row.attempts for row in rows}
    calls_before = getattr(source, "calls", 0)
    order_ids = list(wanted)
    for start in range(0, len(order_ids), BATCH):
        chunk = order_ids[start:start + BATCH]
        try:
            _fetch_and_record(source, ledger, chunk, wanted, result)
        except SourceError as exc:  # the store is unreachable: keep the rest for later
            result.error = str(exc)
            failed = [row_id for oid in order_ids[start:] for row_id in wanted[oid]]
            delay = RETRY_DELAYS[min(max(attempts[i] for i in failed), len(RETRY_DELAYS) - 1)]
            with ledger.transaction():
                inbox.mark_failed(ledger, failed, str(exc), delay_seconds=delay)
            result.count("retry_later", len(failed))
            break
    result.calls = getattr(source, "calls", 0) - calls_before
    return result


def _fetch_and_record(source, ledger: Ledger, chunk: list[str], wanted: dict[str, list[int]],
                      result: StoreIntake) -> None:
    """Fetch ``chunk`` fresh and record it; a permanent error is narrowed down to its order."""
    try:
        payloads = source.fetch_by_ids(chunk)
    except SourceError as exc:
        if exc.retryable:
            raise
        if len(chunk) > 1:  # one order the adapter refuses (e.g. too many refunds) must not block the others
            for order_id in chunk:
                _fetch_and_record(source, ledger, [order_id], wanted, result)
            return
        with ledger.transaction():
            inbox.mark_processed(ledger, wanted[chunk[0]], "failed", str(exc))
        result.count("failed", len(wanted[chunk[0]]))
        return
    result.fetched += len(chunk)
    with ledger.transaction():
        seen = set()
        for payload in payloads:
            order_id = source.source_id(payload)
            if order_id not in wanted or order_id in seen:
                continue
            seen.add(order_id)
            one = StorePull(source.store)
            record_page(source, [payload], ledger, one, via="webhook")
            outcome = next(name for name in ("new", "changed", "unchanged", "stale", "rejected")
                           if getattr(one, name))
            inbox.mark_processed(ledger, wanted[order_id], outcome)
            result.count(outcome, len(wanted[order_id]))
        for order_id in chunk:
            if order_id not in seen:
                inbox.mark_processed(ledger, wanted[order_id], "not_found",
                                     "the store did not return this order (deleted, or not visible)")
                result.count("not_found", len(wanted[order_id]))


def process_inbox(settings, ledger: Ledger, *, sources: dict | None = None, limit: int = 1000) -> list[StoreIntake]:
    """Process every due delivery once, store by store; return what happened per store.

    ``sources`` maps store names to sources (tests pass counting ones); by default
    they are built from ``settings``, and only for stores with deliveries waiting.
    """
    rows = inbox.pending(ledger, limit=limit)
    by_store: dict[str, list[inbox.InboxRow]] = {}
    for row in rows:
        by_store.setdefault(row.store, []).append(row)
    results = []
    for store, store_rows in by_store.items():
        source = (sources or {}).get(store) or _build_source(settings, store)
        if source is None:  # the store was removed from the config since the delivery came
            with ledger.transaction():
                inbox.mark_processed(ledger, [r.id for r in store_rows], "ignored", "store no longer configured")
            continue
        results.append(process_store(source, ledger, store_rows))
    return results


def _build_source(settings, store: str):
    from connector.composition import build_sources  # the composition root knows the adapters
    built = build_sources(settings, store)
    return built[0][0] if built else None
