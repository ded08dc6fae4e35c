"""Memory (issue 9, part 4): peak RSS of the connector process backfilling N Shopify orders.

Each size gets a fresh sandbox with all N orders in the Shopify shop (the bulk export path of
``o2c backfill``: start the export, download the JSONL, commit orders page by page into the ledger, plan
their steps). No limits, no latency, no booking (the steps are planned, not sent). The figure is
``ru_maxrss`` of benchmarks/drive.py's own process: the emulators' memory is not counted.

    python benchmarks/bench_memory.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, Sandbox, run_json, sandbox_options, save, seed, write_config  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "memory"))
    args = ap.parse_args(argv)
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        wd = Path(args.workdir) / str(n)
        shutil.rmtree(wd, ignore_errors=True)
        with Sandbox(wd, sandbox_options(None, 0)) as sb:
            t = time.perf_counter()
            credentials = seed(sb, n, shop_share=1.0, chunk=5000)
            seeded = time.perf_counter() - t
            config = write_config(wd, credentials, rate_scale=None)
            run = run_json(["benchmarks/drive.py", "--config", str(config), "--no-book", "--only", "shopify"],
                           env=dict(os.environ))
        ledger_mb = sum(p.stat().st_size for p in wd.glob("ledger.db*")) / 1024 / 1024
        row = {"orders": n, "fetched": run["fetched"].get("shopify"), "maxrss_mb": round(run["maxrss_mb"], 1),
               "wall_s": round(run["wall"], 1), "seed_s": round(seeded, 1), "ledger_mb": round(ledger_mb, 1)}
        results.append(row)
        print(f"memory: {n} orders backfilled (bulk), peak RSS {row['maxrss_mb']} MB, wall {row['wall_s']} s, "
              f"ledger {row['ledger_mb']} MB")
        shutil.rmtree(wd, ignore_errors=True)
    out = {"sizes": results, "command": "python benchmarks/bench_memory.py " + " ".join(
        argv if argv is not None else sys.argv[1:])}
    save("memory", out)
    return out


if __name__ == "__main__":
    main()
