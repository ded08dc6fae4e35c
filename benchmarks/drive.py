"""The connector side of a benchmark, in its own process (so its CPU time and RSS are its own).

Backfills the Shopify store through the bulk export (``o2c backfill``'s path), pulls the WooCommerce
site page by page (``o2c sync``'s path), then runs every due step against HubSpot and QuickBooks
(``run_all_targets``, one worker thread per target). Prints one JSON line: phase wall times, CPU
seconds, peak RSS, the PassReport's calls per system and step outcomes.

    python benchmarks/drive.py --config var/x/config.yaml [--profile out.prof] [--no-book] [--only shopify]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.backfill import backfill_store  # noqa: E402
from connector.composition import build_sources, run_all_targets  # noqa: E402
from connector.config import load_config  # noqa: E402
from connector.engine import pull_store  # noqa: E402
from connector.ledger import Ledger  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--profile")
    ap.add_argument("--no-book", action="store_true")
    ap.add_argument("--only", choices=["shopify", "woocommerce"])
    args = ap.parse_args()

    settings = load_config(Path(args.config))
    out: dict = {"phases": {}, "cpu": {}}
    prof = cProfile.Profile() if args.profile else None
    thread_profiles: list[cProfile.Profile] = []
    if prof:
        # cProfile sees only the thread that enables it; the booking runs in one worker thread per
        # target system (connector/workers.py), so every thread started from here gets a profiler too.
        import threading
        original_run = threading.Thread.run

        def profiled_run(self):
            p = cProfile.Profile()
            thread_profiles.append(p)
            p.enable()
            try:
                original_run(self)
            finally:
                p.disable()
        threading.Thread.run = profiled_run
    t_all, c_all = time.perf_counter(), cpu()
    if prof:
        prof.enable()
    ledger = Ledger(settings.ledger_path)
    source_calls = {}
    fetched = {}
    for source, store in build_sources(settings):
        if args.only and source.system != args.only:
            continue
        t0, c0 = time.perf_counter(), cpu()
        if source.system == "shopify":
            res = backfill_store(source, store, ledger, datetime(1900, 1, 1, tzinfo=timezone.utc),
                                 workdir=settings.ledger_path.parent / "backfills", poll_seconds=0.2)
            pull = res.pull
        else:
            pull = pull_store(source, store, ledger)
        if pull.error:
            raise SystemExit(f"pull of {store.name} failed: {pull.error}")
        out["phases"][f"pull_{source.system}"] = time.perf_counter() - t0
        out["cpu"][f"pull_{source.system}"] = cpu() - c0
        source_calls[source.system] = source.calls
        fetched[source.system] = pull.fetched
    ledger.close()
    if not args.no_book:
        t0, c0 = time.perf_counter(), cpu()
        report = run_all_targets(settings)
        out["phases"]["book"] = time.perf_counter() - t0
        out["cpu"]["book"] = cpu() - c0
        out["calls"] = dict(report.calls)
        out["outcomes"] = report.outcomes
        out["created"] = report.created
        out["paused"] = report.paused
    if prof:
        prof.disable()
        import pstats
        stats = pstats.Stats(prof)
        for p in thread_profiles:
            try:
                stats.add(p)
            except TypeError:
                pass
        stats.dump_stats(args.profile)
    out["wall"] = time.perf_counter() - t_all
    out["cpu"]["total"] = cpu() - c_all
    out["source_calls"] = source_calls
    out["fetched"] = fetched
    from connector.rate_budget import all_budgets
    out["budgets"] = {f"{k[0]}": b.snapshot() for k, b in all_budgets().items()}
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
