"""Backfill at the vendors' limits (issue 9, part 1), and the workflow-tool baseline.

Sandbox: the vendors' default limits (Shopify cost bucket 2000/100 per s, HubSpot 100 per 10 s and
search 5/s, QuickBooks 500 per minute, 40 batch requests per minute and 10 concurrent), each times
``--rate-scale``, and 50 ms latency on every vendor call (a shared chaos rule). The connector gets
``limits: {rate_scale: same}``. Orders: half Shopify (bulk export backfill), half WooCommerce (pages),
the generator's full variety. Counts come from the emulators' ``/_sandbox/counters`` (what the vendor saw).

Floor: for each target limit, the least time it allows for the requests the run needed
(non-429 requests counted by the emulator): QuickBooks units / (500 x scale per 60 s), QuickBooks batch
requests / (40 x scale per 60 s), HubSpot requests / (100 x scale per 10 s), taking the rolling window's first free burst into account
(``(ceil(n / limit) - 1) x window``) and, as the plain rate bound, ``n / rate``. The slowest limit sets it.

Baseline: benchmarks/naive.py on a sample of the same orders (``--naive-orders``), sequential, with the
same limits and latency; its wall time for the whole workload is extrapolated from the sample.

    python benchmarks/bench_backfill.py [--orders 1000] [--rate-scale 2] [--posting sales_receipt]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (HUBSPOT_PER_10S, PY, QBO_BATCH_PER_MINUTE, QBO_PER_MINUTE,  # noqa: E402
                               ROOT, Sandbox, diff_counters, run_json, sandbox_options, save, seed, status_429,
                               write_config)
from benchmarks.sampling import sampled  # noqa: E402


def floor_seconds(units: int, limit: int, window: float) -> dict:
    burst = max(0, math.ceil(units / limit) - 1) * window if units else 0.0
    rate = units / (limit / window) if units else 0.0
    return {"units": units, "limit": limit, "window_s": window, "rolling_floor_s": burst, "rate_floor_s": rate}


def qbo_units(counters: dict) -> int:
    """QuickBooks units the realm's 500/min counted: one per plain request, one per batch item.
    The emulator's ``requests`` counts HTTP requests; ``writes`` / by_endpoint give the batch items."""
    return counters["quickbooks"]["requests"]


def run_connector(workdir: Path, orders: int, scale: float | None, latency: int, posting: str,
                  samples: Path | None = None) -> dict:
    """Seed a fresh sandbox with ``orders`` and run benchmarks/drive.py against it.

    ``samples`` runs the connector under py-spy (benchmarks/sampling.py: full speed;
    ``run["sampled"]`` says whether it could)."""
    shutil.rmtree(workdir, ignore_errors=True)
    with Sandbox(workdir, sandbox_options(scale, latency)) as sb:
        t = time.perf_counter()
        credentials = seed(sb, orders)
        seeded = time.perf_counter() - t
        config = write_config(workdir, credentials, rate_scale=scale, posting=posting)
        before = sb.counters()
        args = ["benchmarks/drive.py", "--config", str(config)]
        command = sampled([PY, *args], samples) if samples else None
        out = run_json(args, env=dict(os.environ), command=command)
        out["sampled"] = bool(command)
        after = sb.counters()
    calls = diff_counters(after, before)
    out.update({"orders": orders, "seed_s": seeded, "vendor_requests": calls, "status_429": status_429(after),
                "counters_after": {s: after[s] for s in ("hubspot", "quickbooks")}, "posting": posting,
                "rate_scale": scale, "latency_ms": latency})
    return out


def batch_items(counters_qbo: dict) -> int:
    return int(counters_qbo.get("batch_items", 0))


def run_naive(workdir: Path, orders: int, sample: int, scale: float, latency: int, posting: str) -> dict:
    from benchmarks.naive import Naive
    from sandbox.generator import generate_orders
    shutil.rmtree(workdir, ignore_errors=True)
    with Sandbox(workdir, sandbox_options(scale, latency)) as sb:
        credentials = seed(sb, 0)
        start = datetime.now(timezone.utc) - timedelta(days=30)
        half = sample // 2
        specs = (generate_orders(7, half, start=start, first_number=1001)
                 + generate_orders(8, sample - half, start=start, first_number=5001,
                                   gateways=("stripe", "paypal", "bacs")))
        naive = Naive(credentials, posting)
        before = sb.counters()
        t = time.perf_counter()
        for n, spec in enumerate(specs):
            naive.book(spec, n)
        wall = time.perf_counter() - t
        after = sb.counters()
    calls = diff_counters(after, before)
    per_order = {s: calls[s] / sample for s in ("hubspot", "quickbooks")}
    # Whole workload: sequential latency-bound time, or the limits' floor for its calls, whichever is longer.
    seq = wall / sample * orders
    qb = floor_seconds(round(per_order["quickbooks"] * orders), int(QBO_PER_MINUTE * scale), 60.0)
    hs = floor_seconds(round(per_order["hubspot"] * orders), int(HUBSPOT_PER_10S * scale), 10.0)
    extrapolated = max(seq, qb["rate_floor_s"], hs["rate_floor_s"])
    return {"sample_orders": sample, "wall_s": wall, "vendor_requests": calls, "per_order": per_order,
            "status_429": status_429(after), "client_429": naive.throttled, "errors": naive.errors,
            "seconds_per_order": wall / sample, "extrapolated_wall_s": extrapolated,
            "extrapolated_from": "max(sequential time per order x orders, QuickBooks and HubSpot rate floors)"}


def summarise(run: dict) -> dict:
    orders = run["orders"]
    scale = run["rate_scale"]
    req = run["vendor_requests"]
    # QuickBooks' 500/min counts one per batch item: the connector's own budget counted the units it
    # sent (RateBudget.snapshot); the emulator's request count is the floor's lower bound otherwise.
    qbo = max(req["quickbooks"] - run["status_429"]["quickbooks"],
              int(run.get("budgets", {}).get("quickbooks", {}).get("units", 0)))
    hs = req["hubspot"] - run["status_429"]["hubspot"]
    batches = sum(st.get("total", 0) for ep, st in run["counters_after"]["quickbooks"].get("by_endpoint", {}).items()
                  if ep.endswith("/batch"))
    qb_floor = floor_seconds(qbo, int(QBO_PER_MINUTE * scale), 60.0)
    qb_batch_floor = floor_seconds(batches, int(QBO_BATCH_PER_MINUTE * scale), 60.0)
    hs_floor = floor_seconds(hs, int(HUBSPOT_PER_10S * scale), 10.0)
    floors = {"quickbooks units": qb_floor, "quickbooks batch requests": qb_batch_floor, "hubspot": hs_floor}
    floor = max(f["rolling_floor_s"] for f in floors.values())
    rate_floor = max(f["rate_floor_s"] for f in floors.values())
    binding = max(floors, key=lambda k: floors[k]["rate_floor_s"])
    hubspot_contacts = sum(v for ep, st in run["counters_after"]["hubspot"].get("by_endpoint", {}).items()
                           if "/contacts" in ep and "associations" not in ep for v in st.values())
    return {
        "orders": orders, "rate_scale": scale, "posting": run["posting"],
        "wall_s": run["wall"], "book_s": run["phases"].get("book"),
        "floor_s": floor, "rate_floor_s": rate_floor, "qbo_floor": qb_floor, "hubspot_floor": hs_floor,
        "qbo_batch_floor": qb_batch_floor, "binding_limit": binding,
        "ratio_to_floor": run["wall"] / floor if floor else None,
        "ratio_to_rate_floor": run["wall"] / rate_floor if rate_floor else None,
        "status_429": run["status_429"],
        "per_order": {s: req[s] / orders for s in req},
        "qbo_units": qbo, "qbo_units_per_order": qbo / orders,
        "hubspot_contact_calls_per_order": hubspot_contacts / orders,
        "shopify_per_shopify_order": req["shopify"] / (orders // 2),
        "woocommerce_per_woo_order": req["woocommerce"] / (orders - orders // 2),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=800)
    ap.add_argument("--rate-scale", type=float, default=1.5)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--posting", default="sales_receipt", choices=["sales_receipt", "invoice"])
    ap.add_argument("--naive-orders", type=int, default=64)
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "backfill"))
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    run = run_connector(wd / "connector", args.orders, args.rate_scale, args.latency_ms, args.posting)
    s = summarise(run)
    print(f"connector: {args.orders} orders, rate_scale {args.rate_scale}, {args.latency_ms} ms latency, "
          f"posting {args.posting}")
    print(f"  wall {s['wall_s']:.1f} s (book {s['book_s']:.1f} s); floor {s['floor_s']:.1f} s rolling-window, "
          f"{s['rate_floor_s']:.1f} s plain rate; ratio {s['ratio_to_floor'] or 0:.2f}x / "
          f"{s['ratio_to_rate_floor'] or 0:.2f}x")
    print(f"  429s {s['status_429']}; calls/order {{k: round(v, 3) for k, v in s['per_order'].items()}}".replace(
        "{k: round(v, 3) for k, v in s['per_order'].items()}", str({k: round(v, 3) for k, v in s["per_order"].items()})))
    print(f"  HubSpot contact calls/order {s['hubspot_contact_calls_per_order']:.3f}; "
          f"Shopify calls per Shopify order {s['shopify_per_shopify_order']:.4f}")
    naive = None
    if args.naive_orders:
        naive = run_naive(wd / "naive", args.orders, args.naive_orders, args.rate_scale, args.latency_ms,
                          args.posting)
        naive["connector_to_naive_wall_ratio"] = naive["extrapolated_wall_s"] / s["wall_s"]
        print(f"naive workflow client: {args.naive_orders} orders in {naive['wall_s']:.1f} s, calls/order "
              f"{ {k: round(v, 2) for k, v in naive['per_order'].items()} }, 429s {naive['client_429']}; "
              f"extrapolated to {args.orders}: {naive['extrapolated_wall_s']:.0f} s = "
              f"{naive['connector_to_naive_wall_ratio']:.1f}x the connector's wall time")
    out = {"summary": s, "run": run, "naive": naive, "command": "python benchmarks/bench_backfill.py " + " ".join(
        argv if argv is not None else sys.argv[1:])}
    save(f"backfill-{args.posting}", out)
    return out


if __name__ == "__main__":
    main()
