"""A bulk backfill killed halfway resumes where it stopped and completes, with nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx

from connector.demo import write_config
from sandbox.generator import generate_orders
from sandbox.seed import CREDENTIALS, SHOP, seed
from tests.conftest import ROOT

ORDERS = 5000


def seed_history(sandbox, tmp_path):
    credentials = seed(sandbox.urls, orders=0)
    start = datetime.now(timezone.utc) - timedelta(days=800)  # ~3 h apart on average: all in the past
    orders = generate_orders(5, ORDERS, first_number=20001, start=start)
    httpx.post(f"{sandbox.urls['shopify']}/_sandbox/shops/{SHOP}/orders", timeout=300,
               json={"credentials": CREDENTIALS["shopify"], "orders": orders}).raise_for_status()
    return write_config(tmp_path, credentials)


def backfill_command(config):
    return [sys.executable, "sync.py", "backfill", "--config", str(config), "--store", "demo-shop",
            "--since", "2020-01-01", "--no-book", "--quiet"]


def orders_done(ledger_path) -> int:
    if not ledger_path.exists():
        return 0
    with sqlite3.connect(ledger_path, timeout=5) as conn:
        try:
            row = conn.execute("SELECT MAX(orders_done) FROM backfills").fetchone()
        except sqlite3.OperationalError:
            return 0
    return row[0] or 0


def test_backfill_killed_halfway_resumes_and_completes_without_a_second_export(sandbox, tmp_path):
    config = seed_history(sandbox, tmp_path)
    ledger_path = tmp_path / "ledger.db"
    first = subprocess.Popen(backfill_command(config), cwd=ROOT, env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while orders_done(ledger_path) < ORDERS // 4:
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the backfill did not get going"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = orders_done(ledger_path)
    assert 0 < killed_at < ORDERS

    second = subprocess.run(backfill_command(config), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed" in second.stdout

    with sqlite3.connect(ledger_path) as conn:
        jobs = conn.execute("SELECT operation_id, status, orders_done FROM backfills").fetchall()
        stored = conn.execute("SELECT COUNT(*), COUNT(DISTINCT order_key) FROM orders").fetchone()
        steps = conn.execute("SELECT COUNT(*) FROM steps WHERE step = 'quickbooks.customer'").fetchone()[0]
    assert len(jobs) == 1 and jobs[0][1] == "done"  # one export, resumed, not started again
    assert jobs[0][2] == ORDERS
    assert stored == (ORDERS, ORDERS)
    assert steps == ORDERS  # planned once per order, even for the page that was redone
    assert len(sandbox.state("shopify")["shops"][SHOP]["bulk_operations"]) == 1  # the store saw one export
