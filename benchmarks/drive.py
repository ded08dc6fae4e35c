"""The connector side of a benchmark, in its own process (so its CPU time and RSS are its own).

Backfills the Shopify store through the bulk export (``o2c backfill``'s path) and pulls the WooCommerce
site page by page (``o2c sync``'s path) in one thread, while the main thread runs every due step against
HubSpot and QuickBooks (``run_all_targets``, one worker thread per target) as soon as it is planned, as
the daemon does: the targets' limits, not the pull, then set the wall time. Prints one JSON line: phase
wall times, CPU seconds, peak RSS, the PassReport's calls per system and step outcomes.

    python benchmarks/drive.py --config var/x/config.yaml [--profile out.prof] [--no-book] [--only shopify]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.backfill import backfill_store  # noqa: E402
from connector.composition import build_sources, run_all_targets  # noqa: E402
from connector.config import load_config  # noqa: E402
from connector.engine import PassReport, pull_store  # noqa: E402
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
    source_calls: dict = {}
    fetched: dict = {}
    pull_error: list[str] = []
    pulling = threading.Thread(target=pull_all, name="pull",
                               args=(settings, args.only, out, source_calls, fetched, pull_error))
    t0, c0 = time.perf_counter(), cpu()
    pulling.start()
    if not args.no_book:
        report = book_while_pulling(settings, pulling)
        out["calls"] = dict(report.calls)
        out["outcomes"] = report.outcomes
        out["created"] = report.created
        out["paused"] = report.paused
    pulling.join()
    if pull_error:
        raise SystemExit(pull_error[0])
    if not args.no_book:
        out["phases"]["book"] = time.perf_counter() - t0  # from the first pull to the last step booked
        out["cpu"]["pull_and_book"] = cpu() - c0
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


def pull_all(settings, only, out: dict, source_calls: dict, fetched: dict, errors: list[str]) -> None:
    """Pull every store into the ledger (its own connection), recording each pull's wall time."""
    ledger = Ledger(settings.ledger_path)
    try:
        for source, store in build_sources(settings):
            if only and source.system != only:
                continue
            t0 = time.perf_counter()
            if source.system == "shopify":
                res = backfill_store(source, store, ledger, datetime(1900, 1, 1, tzinfo=timezone.utc),
                                     workdir=settings.ledger_path.parent / "backfills", poll_seconds=0.2)
                pull = res.pull
            else:
                pull = pull_store(source, store, ledger)
            if pull.error:
                errors.append(f"pull of {store.name} failed: {pull.error}")
                return
            out["phases"][f"pull_{source.system}"] = time.perf_counter() - t0
            source_calls[source.system] = source.calls
            fetched[source.system] = pull.fetched
    except Exception as exc:  # noqa: BLE001 - reported by the main thread, which exits non-zero
        errors.append(f"pull failed: {exc!r}")
    finally:
        ledger.close()


def book_while_pulling(settings, pulling: threading.Thread) -> PassReport:
    """Run due steps until the pull has ended and a pass after it found nothing left to do."""
    total = PassReport()
    while True:
        pull_done = not pulling.is_alive()
        report = run_all_targets(settings)
        merge(total, report)
        ran = sum(n for states in report.outcomes.values() for n in states.values())
        if pull_done and not ran:
            return total
        if not ran:
            time.sleep(0.1)  # the pull has not planned anything new yet


def merge(total: PassReport, part: PassReport) -> None:
    for step, states in part.outcomes.items():
        into = total.outcomes.setdefault(step, {})
        for state, n in states.items():
            into[state] = into.get(state, 0) + n
    for field in ("created", "calls"):
        into = getattr(total, field)
        for key, n in getattr(part, field).items():
            into[key] = into.get(key, 0) + n
    total.paused.update(part.paused)


if __name__ == "__main__":
    sys.exit(main())
