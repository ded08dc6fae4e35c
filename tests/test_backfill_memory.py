"""A backfill's memory is bounded by its page, not by how many orders it takes in (issue 9, benchmark 4).

The real path (the Shopify emulator's bulk export, download, reassembly, page-by-page commits into a
ledger file, step planning) backfills 500 orders, then 2,000, under tracemalloc. Anything kept per order
for the whole run (the payloads, orders or snapshots, the planned steps, a list of results for a
summary) raises the larger run's peak by its size times 1,500 orders; anything kept past the run raises
what is still allocated at the end. Both are compared in bytes, never in time.

What else moves the peak, so what the bounds leave room for: the peak is one page of 250 orders being
committed (about 6 MB of parsed payloads here), so it depends on which page holds the most; the orders
are plain ones (``variety=False``: 1 to 4 lines each) so pages weigh about the same, and being seeded
they weigh the same on every run (the larger run's peak is ~100 KB above the smaller's, every time).
Python's free lists also keep a bounded number of freed tuples that tracemalloc still counts. SQLite's
page cache is C memory tracemalloc does not see; it is bounded by ``cache_size`` whatever the count
(benchmarks/bench_memory.py measures the process's RSS for that).
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import datetime, timedelta, timezone

from connector.backfill import backfill_store
from connector.composition import build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.ledger import Ledger
from connector.rate_budget import reset_budgets
from sandbox.seed import generate_shopify_orders, seed

SMALL, LARGE = 500, 2000
# A kept Order object is ~20 KB, a kept snapshot ~2 KB, a kept payload ~25 KB: over 1,500 more orders any
# of them is megabytes. 1 MB is ten times the seeded pages' own difference, and fails from ~700 bytes
# kept per order.
PEAK_SLACK = 1_000_000
# Still allocated once the backfill has returned (the ledger closed): a few KB either way.
RETAINED_SLACK = 50_000


def backfill(sandbox, workdir, count: int, *, traced: bool) -> tuple[int, int]:
    """Backfill ``count`` fresh orders into a fresh ledger; (peak, still allocated after) in bytes."""
    sandbox.reset()
    reset_budgets()
    credentials = seed(sandbox.urls, orders=0)
    start = (datetime.now(timezone.utc) - timedelta(hours=6 * count + 48)).replace(microsecond=0)
    generate_shopify_orders(sandbox.urls["shopify"], count, seed_value=count, start=start, first_number=1001,
                            variety=False)
    workdir.mkdir()
    settings = load_config(write_config(workdir, credentials))
    source, store = build_sources(settings, only="demo-shop")[0]
    ledger = Ledger(workdir / "ledger.db")
    gc.collect()
    if traced:
        tracemalloc.start()
    try:
        result = backfill_store(source, store, ledger, datetime(1900, 1, 1, tzinfo=timezone.utc),
                                workdir=workdir / "backfills", poll_seconds=0.05)
        ledger.close()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory() if traced else (0, 0)
    finally:
        tracemalloc.stop()
        ledger.close()
    assert result.pull.fetched == count and result.pull.new == count
    return peak, current


def test_backfill_memory_does_not_grow_with_the_order_count(sandbox, tmp_path):
    backfill(sandbox, tmp_path / "warm-up", 50, traced=False)  # imports, compiled queries, caches
    small_peak, small_left = backfill(sandbox, tmp_path / "small", SMALL, traced=True)
    large_peak, large_left = backfill(sandbox, tmp_path / "large", LARGE, traced=True)
    extra = LARGE - SMALL
    print(f"traced peak {small_peak} -> {large_peak} bytes ({(large_peak - small_peak) / extra:+.0f} per order); "
          f"still allocated after {small_left} -> {large_left}")
    assert large_peak - small_peak < PEAK_SLACK, (
        f"the backfill's peak grew {(large_peak - small_peak) / extra:.0f} bytes per order: something is kept "
        f"per order for the whole run")
    assert large_left - small_left < RETAINED_SLACK, (
        f"{large_left - small_left} more bytes stay allocated after backfilling {extra} more orders")
