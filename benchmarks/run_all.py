"""``make bench``: run the four benchmarks and write benchmarks/RESULTS.md with the machine's description.

Defaults are the issue's workloads (10,000 orders at the limits, 5,000 webhooks, 100,000 orders for memory)
with the vendors' limits multiplied by ``--rate-scale`` so the whole run finishes within 15 minutes on a
2-core machine; the figures it checks are ratios, which hold at any scale. Each benchmark also runs alone;
its command is written next to its figures in RESULTS.md. Raw figures: benchmarks/results/*.json.

    python benchmarks/run_all.py [--orders 10000] [--rate-scale 10] [--memory-sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench_backfill, bench_engine, bench_memory, bench_webhooks  # noqa: E402
from benchmarks.common import BENCH, machine  # noqa: E402
from benchmarks.results_md import write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=10000)
    ap.add_argument("--rate-scale", type=float, default=10.0)
    # The baseline is sequential (about 1 s per order at 50 ms per call): 32 orders give its calls per order
    # and its seconds per order, which the whole workload's figure is extrapolated from.
    ap.add_argument("--naive-orders", type=int, default=32)
    ap.add_argument("--engine-orders", type=int, default=1000)
    ap.add_argument("--webhooks", type=int, default=5000)
    ap.add_argument("--memory-sizes", default="10000,100000")
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
    write_results(info, bf, en, wh, me, timings, total)
    print(f"\nmake bench took {total / 60:.1f} min; wrote {BENCH / 'RESULTS.md'}")


def _webhooks(argv):
    saved = sys.argv
    sys.argv = ["bench_webhooks.py", *argv]
    try:
        return bench_webhooks.main()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
