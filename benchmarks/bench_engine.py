"""Engine overhead (issue 9, part 2): the same kind of workload with no latency and no limits.

Emulator limits raised out of reach, no chaos latency, connector ``rate_scale: 1000``. Reports orders per
second end to end (pulls + booking, in benchmarks/drive.py's process), the connector's CPU milliseconds
per order (getrusage of that process), and the ten hottest functions of a cProfile of it (by own time).
Posting mode ``invoice`` here (the backfill benchmark uses ``sales_receipt``), so this run also gives the
QuickBooks calls per order with invoice + payment.

    python benchmarks/bench_engine.py [--orders 1000] [--posting invoice]
"""

from __future__ import annotations

import argparse
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_backfill import run_connector  # noqa: E402
from benchmarks.common import ROOT, save  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--posting", default="invoice", choices=["sales_receipt", "invoice"])
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "engine"))
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    prof = wd.parent / "engine.prof"
    run = run_connector(wd, args.orders, None, 0, args.posting, profile=prof)
    stats = pstats.Stats(str(prof))
    stats.sort_stats("tottime")
    hot = []
    # Time a thread spends blocked (joining its workers, waiting on a lock or a socket) is not work.
    waiting = ("acquire' of '_thread.lock", "recv_into", "time.sleep", "select.poll", "method 'poll'", "join")
    ranked = [kv for kv in sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)
              if not any(w in kv[0][2] for w in waiting)]
    for func, (cc, nc, tt, ct, callers) in ranked[:10]:
        hot.append({"function": f"{Path(func[0]).name}:{func[1]}({func[2]})", "calls": nc,
                    "own_s": round(tt, 3), "cumulative_s": round(ct, 3)})
    buf = io.StringIO()
    pstats.Stats(str(prof), stream=buf).sort_stats("cumulative").print_stats(15)
    orders = args.orders
    req = run["vendor_requests"]
    out = {
        "orders": orders, "posting": args.posting, "wall_s": run["wall"],
        "orders_per_s": orders / run["wall"], "cpu_ms_per_order": run["cpu"]["total"] * 1000 / orders,
        "cpu": run["cpu"], "phases": run["phases"], "per_order": {s: req[s] / orders for s in req},
        "qbo_units_per_order": run.get("budgets", {}).get("quickbooks", {}).get("units", 0) / orders,
        "status_429": run["status_429"], "hot": hot, "cumulative_top": buf.getvalue()[-6000:],
        "waiting_excluded": [{"function": f"{Path(f[0]).name}:{f[1]}({f[2]})", "own_s": round(v[2], 3)}
                             for f, v in stats.stats.items() if any(w in f[2] for w in waiting) and v[2] > 0.05],
        "profiled": True, "maxrss_mb": run["maxrss_mb"],
        "command": "python benchmarks/bench_engine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"engine: {orders} orders ({args.posting}), no latency, no limits: {out['orders_per_s']:.1f} orders/s, "
          f"{out['cpu_ms_per_order']:.2f} CPU ms/order in the connector (under cProfile); wall {run['wall']:.1f} s, "
          f"connector CPU {run['cpu']['total']:.1f} s")
    print(f"  calls/order { {k: round(v, 3) for k, v in out['per_order'].items()} }, QuickBooks units/order "
          f"{out['qbo_units_per_order']:.3f}")
    for h in hot:
        print(f"  {h['own_s']:>8.3f} s own {h['cumulative_s']:>8.3f} s cum {h['calls']:>9} calls  {h['function']}")
    save("engine", out)
    return out


if __name__ == "__main__":
    main()
