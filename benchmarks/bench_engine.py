"""Engine overhead (issue 9, part 2): the same kind of workload with no latency and no limits.

Emulator limits raised out of reach, no chaos latency, connector ``rate_scale: 1000``. Reports orders per
second end to end (pulls + booking, in benchmarks/drive.py's process), the connector's CPU milliseconds
per order (getrusage of that process), and its ten hottest functions, from py-spy's samples of the same
run (benchmarks/sampling.py: a sampler leaves the process at full speed, so the figures are the engine's
own and not a profiler's). Posting mode ``invoice`` here (the backfill benchmark uses ``sales_receipt``),
so this run also gives the QuickBooks calls per order with invoice + payment.

    python benchmarks/bench_engine.py [--orders 1000] [--posting invoice]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_backfill import run_connector  # noqa: E402
from benchmarks.common import ROOT, save  # noqa: E402
from benchmarks.sampling import hot_functions  # noqa: E402
from benchmarks.sampling import problem as sampling_problem  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--posting", default="invoice", choices=["sales_receipt", "invoice"])
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "engine"))
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    raw = wd.parent / "engine-samples.txt"
    raw.unlink(missing_ok=True)
    run = run_connector(wd, args.orders, None, 0, args.posting, samples=raw)
    if run["sampled"] and raw.exists():
        profile = hot_functions(raw)
    else:
        profile = {"missing": sampling_problem() or "py-spy wrote no samples"}
    orders = args.orders
    req = run["vendor_requests"]
    out = {
        "orders": orders, "posting": args.posting, "wall_s": run["wall"],
        "orders_per_s": orders / run["wall"], "cpu_ms_per_order": run["cpu"]["total"] * 1000 / orders,
        "cpu": run["cpu"], "phases": run["phases"], "per_order": {s: req[s] / orders for s in req},
        "qbo_units_per_order": run.get("budgets", {}).get("quickbooks", {}).get("units", 0) / orders,
        "status_429": run["status_429"], "profile": profile, "maxrss_mb": run["maxrss_mb"],
        "command": "python benchmarks/bench_engine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"engine: {orders} orders ({args.posting}), no latency, no limits: {out['orders_per_s']:.1f} orders/s, "
          f"{out['cpu_ms_per_order']:.2f} CPU ms/order in the connector; wall {run['wall']:.1f} s, "
          f"connector CPU {run['cpu']['total']:.1f} s")
    print(f"  calls/order { {k: round(v, 3) for k, v in out['per_order'].items()} }, QuickBooks units/order "
          f"{out['qbo_units_per_order']:.3f}")
    if "missing" in profile:
        print(f"  no profile: {profile['missing']}")
    for h in profile.get("own", []):
        print(f"  {h['share']:>6.1%} of busy samples  {h['function']}")
    save("engine", out)
    return out


if __name__ == "__main__":
    main()
