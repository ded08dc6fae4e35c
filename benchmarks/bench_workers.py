"""Scale-out throughput: 1, 2 and 4 ``o2c worker`` processes on one PostgreSQL ledger (issue 10).

Each run starts from nothing: a fresh PostgreSQL database (``o2c_bench_workers``, dropped and created
again on the server of ``O2C_BENCH_POSTGRES_URL``, else ``O2C_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``), a fresh sandbox process, N orders seeded (half Shopify,
half WooCommerce, the generator's full variety), and every order pulled into the ledger BEFORE the
clock starts (Shopify through its bulk export, WooCommerce page by page, from this process), so only
booking is measured. Then K workers (``python sync.py worker --config ...``, each its own process, all
with the same config) are started and the clock runs until no step is pending, in flight or failed.
Posting is ``sales_receipt``.

Two modes:

- **engine-bound**: the emulators' limits raised out of reach, no latency, connector ``rate_scale:
  1000``. What the workers, the ledger and the machine can do. On a 2-core machine that also runs the
  emulators and PostgreSQL, going from 1 to 2 workers helps only while a core is left; beyond the core
  count the workers share the same CPUs (``machine busy`` near 100%) and throughput stays flat.
- **limit-bound**: the vendors' real limits (QuickBooks 500 units a minute per realm, a batch counting
  per item, 40 batch requests a minute, 10 at once; HubSpot 100 requests per 10 s; Shopify's bucket)
  times ``--rate-scale``, 50 ms latency on every vendor call, the connector's ``limits: {rate_scale}``
  the same. The limits, not the workers, set the pace: throughput stays at the floor whatever the
  worker count, which is the point: more workers never take more than the vendors allow (429s stay at
  0 and the sandbox's own count of units in any rolling window stays at or below each limit).

Floor (limit-bound): for each limit, the least time its rolling window allows for the units the run
spent, counted by the sandbox: with the window empty at the start, ``limit`` units may go at once, the
next ``limit`` one window later, and so on: ``(ceil(units / limit) - 1) x window`` (``rolling floor``).
The plain-rate bound ``units / (limit / window)`` (``rate floor``) is also given: a run shorter than a
few windows can beat it, since the first window's allowance comes free. The slowest limit sets each.
``wall / floor`` near 1 means the workers keep the binding limit busy.

Why the sizes: QuickBooks counts units in a ONE-MINUTE rolling window, so a run is limit-bound only when
it spends more than one window's allowance, i.e. lasts more than a minute. The limit-bound runs are sized
to spend more than one minute's allowance and less than two (``--limit-orders``, by default from
``--rate-scale``: 260 orders at the real limits), so the rolling floor is one window (60 s) and they
take a little over a minute each whatever the worker count. The engine-bound runs take 10-20 s each.
The defaults take about five minutes in all on a 2-core machine (the three limit-bound minutes cannot
be shortened without leaving the vendors' own windows).

Figures per run: wall time, orders per second, vendor requests per system (the emulators'
``/_sandbox/counters``), 429 answers, QuickBooks units, the sandbox's traffic report (most units seen in
any rolling window of each limit, against the limit, and most requests at once), CPU seconds of the
workers (summed), of the emulators and of the bench process, and how busy the whole machine was.

    python benchmarks/bench_workers.py [--orders 800] [--limit-orders N] [--workers 1,2,4]
                                       [--rate-scale 1] [--modes engine,limit]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (HUBSPOT_PER_10S, QBO_BATCH_PER_MINUTE, QBO_PER_MINUTE, ROOT,  # noqa: E402
                               Sandbox, machine, sandbox_options, save, seed, status_429)
from benchmarks.results_md import refresh_workers_section  # noqa: E402
from tests.scale_out_support import (LedgerWatch, all_final, ledger_progress, limit_rows, machine_busy,  # noqa: E402
                                     proc_cpu_seconds, query, start_node, stop_nodes, traffic,
                                     traffic_problems, write_node_config)

DATABASE = "o2c_bench_workers"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
LATENCY_MS = 50


# -- PostgreSQL -----------------------------------------------------------------------------------
def server_url() -> str:
    return os.environ.get("O2C_BENCH_POSTGRES_URL") or os.environ.get("O2C_TEST_POSTGRES_URL") or DEFAULT_SERVER


def fresh_database(name: str = DATABASE) -> str:
    """Drop and create ``name`` on the server; its URL."""
    import psycopg
    url = server_url()
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def drop_database(name: str = DATABASE) -> None:
    import psycopg
    with psycopg.connect(server_url(), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- one run ----------------------------------------------------------------------------------------
def pull_everything(config: Path, workdir: Path) -> dict:
    """Every order of both stores into the ledger, from this process (Shopify: bulk export; WooCommerce:
    pages), as ``o2c backfill --no-book`` and ``o2c sync``'s pull do; nothing is booked."""
    from connector.backfill import backfill_store
    from connector.composition import build_sources
    from connector.config import load_config
    from connector.engine import pull_store
    from connector.ledger import Ledger
    settings = load_config(config)
    ledger = Ledger(settings.ledger_url)
    fetched = {}
    try:
        for source, store in build_sources(settings):
            if source.system == "shopify":
                pull = backfill_store(source, store, ledger, datetime(1900, 1, 1, tzinfo=timezone.utc),
                                      workdir=workdir / "backfills", poll_seconds=0.2).pull
            else:
                pull = pull_store(source, store, ledger)
            if pull.error:
                raise RuntimeError(f"pull of {store.name} failed: {pull.error}")
            fetched[store.name] = pull.fetched
    finally:
        ledger.close()
    return fetched


def run_once(mode: str, workers: int, orders: int, rate_scale: float, workdir: Path, *,
             timeout: float = 900) -> dict:
    engine = mode == "engine"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    options = sandbox_options(None, 0) if engine else sandbox_options(rate_scale, LATENCY_MS)
    with Sandbox(workdir / "sandbox", options) as box:
        credentials = seed(box, orders)
        url = fresh_database()
        config = write_node_config(workdir / "config.yaml", credentials, url,
                                   rate_scale=1000.0 if engine else rate_scale)
        t = time.perf_counter()
        fetched = pull_everything(config, workdir)
        pull_s = time.perf_counter() - t
        steps = sum(ledger_progress(url)["steps"].values())
        before = box.counters()
        sandbox_cpu0 = proc_cpu_seconds(box.proc.pid) or 0.0
        busy0, total0 = machine_busy()
        self0 = _self_cpu()
        started = time.perf_counter()
        nodes = [start_node(f"worker-{i}", ["worker", "--idle-seconds", "0.2", "--config", str(config)], workdir)
                 for i in range(workers)]
        watch = LedgerWatch(url)
        try:
            while True:
                for node in nodes:
                    if not node.alive():
                        raise RuntimeError(f"{node.name} exited ({node.proc.returncode}):\n{node.output()}")
                progress = watch.progress()
                if all_final(progress):
                    break
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"not done after {timeout:.0f} s: {progress}")
                time.sleep(0.2)
            wall = time.perf_counter() - started
            busy1, total1 = machine_busy()
            worker_cpu = [node.cpu_seconds() or 0.0 for node in nodes]
            sandbox_cpu = (proc_cpu_seconds(box.proc.pid) or 0.0) - sandbox_cpu0
            self_cpu = _self_cpu() - self0
        finally:
            watch.close()
            codes = stop_nodes(nodes)
        after = box.counters()
        report = traffic(box.urls)
        states = dict(query(url, "SELECT state, COUNT(*) FROM steps GROUP BY state"))
    drop_database()
    calls = {s: after[s]["requests"] - before[s]["requests"] for s in after}
    cores = os.cpu_count() or 1
    run = {
        "mode": mode, "workers": workers, "orders": orders, "steps": steps, "step_states": states,
        "rate_scale": None if engine else rate_scale, "latency_ms": 0 if engine else LATENCY_MS,
        "pulled": fetched, "pull_s": round(pull_s, 2), "wall_s": round(wall, 2),
        "orders_per_s": round(orders / wall, 2), "steps_per_s": round(steps / wall, 2),
        "vendor_requests": calls, "status_429": status_429(after),
        "qbo_batch_requests": _batch_requests(after["quickbooks"]) - _batch_requests(before["quickbooks"]),
        "cpu_s": {"workers": round(sum(worker_cpu), 2), "per_worker": [round(c, 2) for c in worker_cpu],
                  "sandbox": round(sandbox_cpu, 2), "bench_process": round(self_cpu, 2)},
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1e-9, total1 - total0), 1),
        "cores": cores, "exit_codes": codes,
        "traffic": limit_rows(report),
        # The targets' limits (the connector's shared budgets); Shopify's bucket paced the pull, before the clock.
        "traffic_problems": traffic_problems({s: v for s, v in report.items() if s in ("quickbooks", "hubspot")}),
    }
    run["qbo_units"] = _qbo_units(run)
    if not engine:
        run.update(floors(run))
    return run


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _batch_requests(counters_qbo: dict) -> int:
    return sum(st.get("total", 0) for ep, st in counters_qbo.get("by_endpoint", {}).items() if ep.endswith("/batch"))


def _qbo_units(run: dict) -> int | None:
    """QuickBooks units the realm's per-minute limit counted (a batch item is one), from the sandbox's
    traffic report (``units`` of the realm)."""
    units = [row["units"] for row in run["traffic"] if row["system"] == "quickbooks" and row["units"] is not None]
    return int(max(units)) if units else None


def floor_seconds(units: int, limit: int, window: float) -> dict:
    rolling = max(0, math.ceil(units / limit) - 1) * window if units else 0.0
    rate = units / (limit / window) if units else 0.0
    return {"units": units, "limit": limit, "window_s": window, "rolling_floor_s": rolling, "rate_floor_s": rate}


def floors(run: dict) -> dict:
    scale = run["rate_scale"]
    qbo_units = run["qbo_units"]
    if qbo_units is None:  # no total from the sandbox: at least one per request
        qbo_units = run["vendor_requests"]["quickbooks"] - run["status_429"]["quickbooks"]
    limits = {
        "quickbooks units": floor_seconds(qbo_units, int(QBO_PER_MINUTE * scale), 60.0),
        "quickbooks batch requests": floor_seconds(run["qbo_batch_requests"], int(QBO_BATCH_PER_MINUTE * scale), 60.0),
        "hubspot requests": floor_seconds(run["vendor_requests"]["hubspot"] - run["status_429"]["hubspot"],
                                          int(HUBSPOT_PER_10S * scale), 10.0),
    }
    binding = max(limits, key=lambda k: (limits[k]["rolling_floor_s"], limits[k]["rate_floor_s"]))
    rolling = limits[binding]["rolling_floor_s"]
    rate = max(f["rate_floor_s"] for f in limits.values())
    return {"floors": limits, "binding_limit": binding, "floor_s": round(rolling, 2), "rate_floor_s": round(rate, 2),
            "wall_to_floor": round(run["wall_s"] / rolling, 3) if rolling else None,
            "wall_to_rate_floor": round(run["wall_s"] / rate, 3) if rate else None}


# -- the whole benchmark ------------------------------------------------------------------------------
def print_table(runs: list[dict]) -> None:
    head = (f"{'mode':<7} {'workers':>7} {'orders':>6} {'wall s':>7} {'orders/s':>8} {'x 1 worker':>10} "
            f"{'QBO req':>7} {'QBO units':>9} {'HS req':>6} {'429s':>4} {'worker CPU s':>12} {'sandbox CPU s':>13} "
            f"{'busy %':>6} {'floor s':>7} {'wall/floor':>10}")
    print(head)
    print("-" * len(head))
    base = {}
    for r in runs:
        base.setdefault(r["mode"], r["orders_per_s"])
        speedup = r["orders_per_s"] / base[r["mode"]] if base[r["mode"]] else 0
        floor = f"{r['floor_s']:.0f}" if r.get("floor_s") is not None else "-"
        ratio = f"{r['wall_to_floor']:.2f}" if r.get("wall_to_floor") else "-"
        units = r["qbo_units"] if r["qbo_units"] is not None else "?"
        print(f"{r['mode']:<7} {r['workers']:>7} {r['orders']:>6} {r['wall_s']:>7.1f} {r['orders_per_s']:>8.1f} "
              f"{speedup:>10.2f} {r['vendor_requests']['quickbooks']:>7} {units:>9} "
              f"{r['vendor_requests']['hubspot']:>6} {sum(r['status_429'].values()):>4} {r['cpu_s']['workers']:>12.1f} "
              f"{r['cpu_s']['sandbox']:>13.1f} {r['machine_busy_pct']:>6.0f} {floor:>7} {ratio:>10}")
    for r in runs:
        if r["traffic_problems"]:
            print(f"  {r['mode']} x{r['workers']}: LIMITS BROKEN: {r['traffic_problems']}")
    engine_runs = [r for r in runs if r["mode"] == "engine"]
    if engine_runs:
        one = engine_runs[0]["orders_per_s"]
        print(f"  engine-bound on {engine_runs[0]['cores']} cores: "
              + ", ".join(f"{r['workers']} worker(s) x{r['orders_per_s'] / one:.2f}" for r in engine_runs)
              + " the first run's orders/s")
    limit_runs = [r for r in runs if r["mode"] == "limit"]
    if limit_runs:
        rates = [r["orders_per_s"] for r in limit_runs]
        print(f"  limit-bound: {min(rates):.2f}..{max(rates):.2f} orders/s whatever the worker count; 429s "
              f"{sum(sum(r['status_429'].values()) for r in limit_runs)}; limits kept in every run: "
              f"{'yes' if not any(r['traffic_problems'] for r in limit_runs) else 'NO'}")
    for r in limit_runs:
        peaks = [f"{row['system']} {row['limit_name'].split(':')[0]} {row['max_offered']}/{row['limit']}"
                 for row in r["traffic"] if row["limit"] and row["system"] in ("quickbooks", "hubspot")]
        print(f"  limit-bound x{r['workers']}: most sent in any window (or at once) / limit: {'; '.join(peaks)}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=800, help="orders per engine-bound run")
    ap.add_argument("--limit-orders", type=int, default=None,
                    help="orders per limit-bound run (default: enough to spend about 1.3 one-minute QuickBooks "
                         "allowances at --rate-scale)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    ap.add_argument("--rate-scale", type=float, default=1.0, help="limit-bound: the vendors' limits times this")
    ap.add_argument("--modes", default="engine,limit", help="engine, limit or both")
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "workers"))
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    # Runs of a few hundred orders spend 2.2-2.8 QuickBooks units per order (sales receipts, batched; more
    # with more workers, whose batches are smaller): 1.3 minutes' allowance at 2.5, so every worker count
    # spends more than one window's and less than two (the floor is one window).
    limit_orders = args.limit_orders or max(50, int(1.3 * QBO_PER_MINUTE * args.rate_scale / 2.5))
    info = machine()
    started = time.perf_counter()
    runs = []
    for mode in modes:
        for k in counts:
            n = args.orders if mode == "engine" else limit_orders
            print(f"--- {mode}-bound, {k} worker(s), {n} orders", flush=True)
            run = run_once(mode, k, n, args.rate_scale, Path(args.workdir) / f"{mode}-{k}")
            print(f"    {run['wall_s']:.1f} s, {run['orders_per_s']:.1f} orders/s, 429s {run['status_429']}"
                  + (f", floor {run['floor_s']:.0f} s ({run['binding_limit']}), wall/floor {run['wall_to_floor']}"
                     if mode == "limit" else ""), flush=True)
            runs.append(run)
    total = time.perf_counter() - started
    print()
    print_table(runs)
    print(f"\nbench_workers took {total:.0f} s")
    summary = {}
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        if not mine:
            continue
        one = mine[0]["orders_per_s"]
        summary[mode] = {str(r["workers"]): {"orders_per_s": r["orders_per_s"], "wall_s": r["wall_s"],
                                             "speedup": round(r["orders_per_s"] / one, 2) if one else None,
                                             "status_429": sum(r["status_429"].values()),
                                             "wall_to_floor": r.get("wall_to_floor"),
                                             "limits_kept": not r["traffic_problems"]}
                         for r in mine}
    out = {"summary": summary, "runs": runs, "machine": info, "total_s": round(total, 1),
           "command": "python benchmarks/bench_workers.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    save("workers", out)
    refresh_workers_section(out)
    print(f"wrote {ROOT / 'benchmarks' / 'RESULTS.md'} section 5")
    return out


if __name__ == "__main__":
    main()
