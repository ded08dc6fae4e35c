"""Re-read given orders from their stores (``o2c replay --fresh``), through the normal intake."""

from __future__ import annotations

from collections import defaultdict

from connector.composition import build_sources
from connector.engine import StorePull, record_page
from connector.ledger import Ledger


def refetch_orders(settings, ledger: Ledger, order_keys: list[str]) -> list[StorePull]:
    """Fetch ``order_keys`` fresh, many per query, and record them (older snapshots never win)."""
    by_store: dict[str, list[str]] = defaultdict(list)
    for key in order_keys:
        store, _, source_id = key.partition(":")
        by_store[store].append(source_id)
    results = []
    for store, ids in by_store.items():
        (source, _), = build_sources(settings, store)
        result = StorePull(store)
        page = source.fetch_by_ids(ids)
        with ledger.transaction():
            record_page(source, page, ledger, result)
        results.append(result)
    return results
