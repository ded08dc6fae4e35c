"""``make bench``: run the four benchmarks and write benchmarks/RESULTS.md with the machine's description.

Defaults are chosen to finish within 15 minutes on a 2-core machine (see RESULTS.md for why the sizes are
what they are). Each benchmark also runs alone; its command is written next to its figures.
Raw figures: benchmarks/results/*.json.

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench_backfill, bench_engine, bench_memory, bench_webhooks  # noqa: E402
from benchmarks.common import BENCH, machine  # noqa: E402


def goal(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=800)
    ap.add_argument("--rate-scale", type=float, default=1.5)
    ap.add_argument("--naive-orders", type=int, default=64)
    ap.add_argument("--engine-orders", type=int, default=1000)
    ap.add_argument("--webhooks", type=int, default=5000)
    ap.add_argument("--memory-sizes", default="10000,50000")
    args = ap.parse_args()
    info = machine()
    t0 = time.perf_counter()
    timings = {}

    def timed(name, fn, argv):
        print(f"\n=== {name}: {' '.join(argv)}", flush=True)
        t = time.perf_counter()
        try:
            result = fn(argv)
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            print(f"{name} failed: {exc}", flush=True)
            result = {"error": str(exc)[-3000:]}
        timings[name] = time.perf_counter() - t
        return result

    bf = timed("backfill", bench_backfill.main, ["--orders", str(args.orders), "--rate-scale", str(args.rate_scale),
                                                 "--naive-orders", str(args.naive_orders)])
    en = timed("engine", bench_engine.main, ["--orders", str(args.engine_orders)])
    wh = timed("webhooks", lambda a: _webhooks(a), ["--total", str(args.webhooks)])
    me = timed("memory", bench_memory.main, ["--sizes", args.memory_sizes])
    total = time.perf_counter() - t0
    (BENCH / "results").mkdir(exist_ok=True)
    import json
    (BENCH / "results" / "run_all.json").write_text(json.dumps({"timings": timings, "total_s": total}, indent=2))
    write_results(info, bf, en, wh, me, timings, total, args)
    print(f"\nmake bench took {total / 60:.1f} min; wrote {BENCH / 'RESULTS.md'}")


def _webhooks(argv):
    saved = sys.argv
    sys.argv = ["bench_webhooks.py", *argv]
    try:
        return bench_webhooks.main()
    finally:
        sys.argv = saved


def write_results(info, bf, en, wh, me, timings, total, args) -> None:
    L = []
    w = L.append
    w("# Benchmark results\n")
    w("Written by `make bench` (`benchmarks/run_all.py`); raw figures in `benchmarks/results/*.json`. "
      "Each section names the command that reproduces it (run from the repository root with the venv's python).\n")
    w("## Machine\n")
    for k in ("cpu", "cores", "ram", "os", "python", "date", "commit"):
        w(f"- {k}: {info[k]}")
    w(f"- `make bench` wall time: {total / 60:.1f} min "
      f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    w("- Everything ran on this one machine at once: the four emulators (one process, one asyncio loop), the "
      "connector process and the load generator; other work on the machine (e.g. a test suite) shares the 2 "
      "cores and is not excluded.\n")

    w("## 1. Backfill at the limits\n")
    if "error" in bf:
        w(f"Failed: `{bf['error']}`\n")
    else:
        s, n = bf["summary"], bf["naive"]
        w(f"Command: `{bf['command']}`\n")
        w(f"How: sandbox with the vendors' default limits x {s['rate_scale']} (Shopify bucket, HubSpot 100/10 s and "
          f"search 5/s, QuickBooks 500/min, 40 batch/min, 10 concurrent) and a 50 ms chaos latency rule on every "
          f"vendor route; connector `limits: {{rate_scale: {s['rate_scale']}}}`, posting `{s['posting']}`. "
          f"{s['orders']} orders, half Shopify (bulk backfill), half WooCommerce (paged pull), the generator's "
          f"full variety; then every step booked (benchmarks/drive.py). Calls and 429s are the emulators' "
          f"`/_sandbox/counters`; QuickBooks units (a batch counts per item) from the connector's rate budget.\n")
        w(f"**Size: {s['orders']} orders, not 10,000.** The QuickBooks emulator answers a customer lookup by "
          f"email and a `DocNumber IN (...)` query by scanning every object, so its cost per query grows with the "
          f"company and a 10,000-order run is bound by the emulator's CPU (3,000 orders with no limits did not "
          f"finish in 4 minutes; 1,000 took 30 s) rather than by the limits being measured. The ratios below do "
          f"not depend on the size.\n")
        ratio = s["ratio_to_rate_floor"]
        w("| figure | value | goal |")
        w("|---|---|---|")
        w(f"| wall time (pull + book) | {s['wall_s']:.1f} s (booking {s['book_s']:.1f} s) | |")
        w(f"| floor from the limits (QuickBooks {s['qbo_floor']['units']} units at "
          f"{s['qbo_floor']['limit']}/60 s; HubSpot {s['hubspot_floor']['units']} calls at "
          f"{s['hubspot_floor']['limit']}/10 s) | {s['rate_floor_s']:.1f} s at the plain rate; "
          f"{s['floor_s']:.1f} s counting the rolling window's first free burst | |")
        w(f"| wall / floor | {ratio:.2f}x (plain rate) | within 1.15x: {goal(ratio <= 1.15)} |")
        w(f"| 429 answers received | {sum(s['status_429'].values())} ({s['status_429']}) | close to zero: "
          f"{goal(sum(s['status_429'].values()) <= max(2, s['orders'] // 1000))} |")
        qb = s["qbo_units_per_order"]
        w(f"| QuickBooks calls per order, sales receipts | {s['per_order']['quickbooks']:.3f} HTTP requests, "
          f"{qb:.3f} rate units | <= 1.2: {goal(qb <= 1.2)} |")
        if "error" not in en:
            w(f"| QuickBooks calls per order, invoice + payment (from §2's run) | "
              f"{en['per_order']['quickbooks']:.3f} HTTP requests, {en['qbo_units_per_order']:.3f} rate units | "
              f"<= 2.2: {goal(en['qbo_units_per_order'] <= 2.2)} |")
        w(f"| HubSpot contact calls per order | {s['hubspot_contact_calls_per_order']:.3f} | <= 0.05: "
          f"{goal(s['hubspot_contact_calls_per_order'] <= 0.05)} |")
        w(f"| HubSpot calls per order, all (contacts, deals, line items, associations) | "
          f"{s['per_order']['hubspot']:.3f} | |")
        w(f"| Shopify calls per Shopify order | {s['shopify_per_shopify_order']:.4f} | <= 0.03: "
          f"{goal(s['shopify_per_shopify_order'] <= 0.03)} |")
        w(f"| WooCommerce calls per WooCommerce order | {s['woocommerce_per_woo_order']:.4f} | |")
        if n:
            w(f"| workflow-tool baseline (benchmarks/naive.py), calls per order | HubSpot "
              f"{n['per_order']['hubspot']:.2f}, QuickBooks {n['per_order']['quickbooks']:.2f} | |")
            w(f"| baseline wall time | {n['wall_s']:.1f} s for a sample of {n['sample_orders']} orders "
              f"({n['seconds_per_order']:.2f} s/order, 429s {n['client_429']}); {n['extrapolated_wall_s']:.0f} s "
              f"extrapolated to {s['orders']} orders | |")
            w(f"| baseline / connector wall time | {n['connector_to_naive_wall_ratio']:.1f}x | |")
        w("")
        w("Why the goals are or are not met:\n")
        qb_budget = bf["run"].get("budgets", {}).get("quickbooks", {})
        goal_floor = 1.2 * s["orders"] / (s["qbo_floor"]["limit"] / 60.0)
        w(f"- Wall time against the floor: the floor is computed from the QuickBooks units the connector "
          f"actually spent ({s['qbo_units']}, {s['qbo_units_per_order']:.2f} per order; QuickBooks counts every "
          f"batch item) and HubSpot's calls; QuickBooks is the binding system. The QuickBooks budget waited "
          f"{qb_budget.get('waited_seconds', 0):.0f} s for slots ({qb_budget.get('waits', 0)} waits, at most "
          f"{qb_budget.get('max_in_flight', 0)} in flight), i.e. the run sat at the limit without a 429. "
          f"Measured against the calls the goal allows instead (1.2 QuickBooks units per order: "
          f"{goal_floor:.0f} s), the wall time is {s['wall_s'] / goal_floor:.1f}x: the excess calls, not "
          f"pacing, are what cost time.")
        w(f"- QuickBooks calls per order (goal 1.2 with sales receipts; also not met with invoices, see §2): "
          f"the `quickbooks.customer` step looks each new shopper up one at a time "
          f"(`adapters/quickbooks_customers.py` `_lookup`: a query by email, then one by display name), about "
          f"1.3 queries per order, not batched with `IN (...)` as items and documents are, and not cached "
          f"across runs for shoppers seen for the first time. On top, every batch item (customer create, "
          f"receipt or invoice, payment, refund, void) counts as one unit of the 500/min. Requests by endpoint: "
          f"{ {k: v.get('total') for k, v in bf['run']['counters_after']['quickbooks'].get('by_endpoint', {}).items()} }.")
        w(f"- Baseline: the naive client is sequential and pays the 50 ms latency on every call, and is not "
          f"paced (its 429s are counted above); its time for the whole workload is extrapolated as "
          f"max(sequential time per order x orders, rate floors of its calls). It leaves out refunds, voids and "
          f"HubSpot line items, so its call count is a lower bound.\n")

    w("## 2. Engine overhead\n")
    if "error" in en:
        w(f"Failed: `{en['error']}`\n")
    else:
        w(f"Command: `{en['command']}`\n")
        w(f"How: {en['orders']} orders (half per store, full variety), posting `{en['posting']}`, emulator limits "
          f"raised out of reach, no latency, connector `rate_scale: 1000`; the connector process is profiled with "
          f"cProfile (which slows it; the CPU figure includes that overhead).\n")
        w("| figure | value |")
        w("|---|---|")
        w(f"| orders per second end to end | {en['orders_per_s']:.1f} |")
        w(f"| connector CPU ms per order (under cProfile) | {en['cpu_ms_per_order']:.2f} |")
        w(f"| wall time | {en['wall_s']:.1f} s (phases { {k: round(v, 1) for k, v in en['phases'].items()} }) |")
        w(f"| connector CPU | {en['cpu']['total']:.1f} s |")
        w(f"| calls per order | { {k: round(v, 3) for k, v in en['per_order'].items()} } |")
        w("")
        w(f"The wall time is well above the connector's CPU time: the rest is spent waiting for the emulators "
          f"(the QuickBooks emulator's query scans, see §1) on a machine with 2 cores shared by emulators, "
          f"connector and whatever else runs. Orders per second end to end is therefore a floor for the engine, "
          f"not its ceiling; CPU ms per order is the engine's own cost.\n")
        w("Ten hottest functions (own time):\n")
        w("| own s | cumulative s | calls | function |")
        w("|---|---|---|---|")
        for h in en["hot"]:
            w(f"| {h['own_s']} | {h['cumulative_s']} | {h['calls']} | `{h['function']}` |")
        w("")

    w("## 3. Webhook intake\n")
    if "error" in wh:
        w(f"Failed: `{wh['error']}`\n")
    else:
        w(f"Command: `python benchmarks/bench_webhooks.py --total {wh['total']}`\n")
        w("How: `o2c webhooks serve` in its own process; this process sends signed Shopify `orders/updated` "
          "webhooks (base64 HMAC-SHA256, distinct X-Shopify-Webhook-Id) over loopback with httpx/asyncio, open "
          "loop at each offered rate; latency is from sending to the 2xx answer.\n")
        w("| offered /s | accepted /s | accepted | p50 ms | p99 ms | statuses |")
        w("|---|---|---|---|---|---|")
        for s in wh["steps"]:
            w(f"| {s['offered_per_s']:.0f} | {s['accepted_per_s']} | {s['accepted']} | {s['p50_ms']} | "
              f"{s['p99_ms']} | {s['statuses']} |")
        best = max(s["accepted_per_s"] for s in wh["steps"])
        p99_ok = [s for s in wh["steps"] if s["p99_ms"] < 50]
        w("")
        w(f"Inbox: {wh['accepted_total']} deliveries answered 2xx, {wh['inbox_rows']} rows in the ledger's inbox, "
          f"{wh['missing_from_inbox']} accepted webhook ids missing.\n")
        w(f"Goal (>= 1,000/s with p99 < 50 ms): {goal(best >= 1000 and bool(p99_ok) and max(s['accepted_per_s'] for s in p99_ok) >= 1000)}. "
          f"Best accepted rate {best:.0f}/s. Why: every delivery is committed before its 200 "
          f"(connector/webhook_server.py `WebhookApp.commit`) on one SQLite connection under one lock with "
          f"`PRAGMA synchronous=FULL`, so each delivery is a separate transaction with its own fsync and they "
          f"are serialised; the server is one uvicorn worker, and on 2 cores the load generator and the "
          f"server compete for CPU. Queueing behind that serial commit is what makes p50/p99 grow once the "
          f"offered rate passes it.\n")

    w("## 4. Memory\n")
    if "error" in me:
        w(f"Failed: `{me['error']}`\n")
    else:
        w(f"Command: `{me['command']}`\n")
        w("How: a fresh sandbox per size with all orders in the Shopify shop (full variety); the connector "
          "backfills through the bulk export (download the JSONL, commit page by page, plan steps), no booking; "
          "peak RSS is `ru_maxrss` of the connector process only (not the emulators).\n")
        w("| orders | peak RSS MB | wall s | ledger MB |")
        w("|---|---|---|---|")
        for r in me["sizes"]:
            w(f"| {r['orders']} | {r['maxrss_mb']} | {r['wall_s']} | {r['ledger_mb']} |")
        rss = [r["maxrss_mb"] for r in me["sizes"]]
        flat = len(rss) < 2 or rss[-1] <= rss[0] * 1.25
        w("")
        w(f"Goal (< 300 MB and flat as the count grows): {goal(max(rss) < 300 and flat)}.\n")
        if len(rss) >= 2 and not flat:
            a, b = me["sizes"][0], me["sizes"][-1]
            per = (b["maxrss_mb"] - a["maxrss_mb"]) * 1024 / (b["orders"] - a["orders"])
            w(f"Peak RSS grows about {per:.1f} KB per order backfilled, so it is not flat; at 100,000 orders it "
              f"would be about {a['maxrss_mb'] + per * (100000 - a['orders']) / 1024:.0f} MB by that slope. The "
              f"download (`ShopifyBulk.download`) and the JSONL reassembly (`adapters/shopify_bulk.py` "
              f"`reassemble`, a temporary SQLite index) both stream, so the growth is elsewhere on the commit "
              f"path (per-order state kept for the whole run, or SQLite page caches); it was not profiled further "
              f"in this session (next step: tracemalloc snapshots at 10k and 50k in benchmarks/drive.py).\n")
        w("Sizes: 100,000 orders was not in the default run because seeding and backfilling it takes about "
          "8 minutes on this machine (10,000 took 45 s, growing linearly), which with the other benchmarks "
          "would exceed 15 minutes; run `python benchmarks/bench_memory.py --sizes 10000,100000` for it.\n")
    (BENCH / "RESULTS.md").write_text("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
