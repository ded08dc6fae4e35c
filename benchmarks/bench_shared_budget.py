"""What sharing a rate budget through the ledger costs per request (issue 10).

One process, one thread, takes and gives back slots as fast as it can on a budget whose limits
never bind, so what is measured is the bookkeeping alone: in-process only, then shared through a
SQLite ledger file, then through a PostgreSQL database. Each shared request is two short
statements (a grant transaction and a release ``UPDATE``).

A grant sums every row that can still count in the window, so the cost grows with how full
the window is: each case starts a 60-second window already holding 0, 100 or 500 ended requests
(500: QuickBooks' minute at full speed) and adds its own ``--count`` on top.

    python benchmarks/bench_shared_budget.py [--count 300] [--postgres postgresql://postgres@127.0.0.1:5432/test]

PostgreSQL: a database is created on that server for the run and dropped after (the user must
be allowed to CREATE DATABASE); ``--postgres ''`` skips it. Prints one line per case and writes
nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.ledger import Ledger
from connector.rate_budget import Limits, Window, budget_for, reset_budgets
from connector.rate_budget_shared import share_budgets
from connector.rate_slots import SlotTable

UNBOUNDED = 10**9
WINDOW = Window(UNBOUNDED, 60.0)  # never binds: only the bookkeeping is measured
FILLS = (0, 100, 500)  # ended requests already in the window


def measure(count: int, window: Window, prefill: int, ledger: str | None) -> float:
    """Seconds per acquire + release, over ``count`` of them."""
    reset_budgets()
    share_budgets(ledger)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    if ledger is not None and prefill:
        table = SlotTable(ledger)
        with table.locked(f"{name}:acct") as rows:
            for _ in range(prefill):  # ended just now: they count for the whole window
                rows.conn.execute("INSERT INTO rate_slots (budget, cost, granted_at, ended_at, lease_until, holder)"
                                  " VALUES (?, 1, ?, ?, ?, 'bench')", (rows.budget, rows.now, rows.now, rows.now))
        table.close()
    budget = budget_for(name, "acct", Limits((window,), max_concurrent=UNBOUNDED))
    for _ in range(20):  # warm up: connection, statement caches
        budget.release(budget.acquire())
    started = time.perf_counter()
    for _ in range(count):
        budget.release(budget.acquire())
    elapsed = time.perf_counter() - started
    share_budgets(None)
    return elapsed / count


@contextmanager
def postgres_database(server: str):
    import psycopg
    admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    name = f"o2c_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def report(label: str, seconds: float) -> None:
    print(f"{label:<34} {seconds * 1e6:9.0f} us per acquire+release   {1 / seconds:9.0f} per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("O2C_TEST_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    report("in-process only", measure(args.count, WINDOW, 0, None))
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "ledger.db")
        Ledger(path).close()
        for fill in FILLS:
            report(f"shared, SQLite, {fill} in window", measure(args.count, WINDOW, fill, path))
    if args.postgres:
        with postgres_database(args.postgres) as url:
            Ledger(url).close()
            for fill in FILLS:
                report(f"shared, PostgreSQL, {fill} in window", measure(args.count, WINDOW, fill, url))
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
