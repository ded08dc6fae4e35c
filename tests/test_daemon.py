"""``o2c daemon`` as a merchant runs it: it polls and books by itself, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

from connector.demo import write_config
from sandbox.seed import seed
from tests.conftest import ROOT


def start_daemon(config, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "sync.py", "daemon", "--config", str(config), "--worker-seconds", "0.5",
                             *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def counts(ledger_path) -> dict[str, int]:
    try:
        with sqlite3.connect(ledger_path, timeout=10) as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM steps WHERE step IN "
                                     "('hubspot.contact', 'quickbooks.customer', 'quickbooks.invoice')"
                                     " GROUP BY state"))
    except sqlite3.OperationalError:  # the daemon is still creating the ledger's tables
        return {}


def test_daemon_polls_and_books_without_being_asked(sandbox, tmp_path):
    config = write_config(tmp_path, seed(sandbox.urls, orders=20, seed_value=3))
    daemon = start_daemon(config, "--run-for", "60")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (tmp_path / "ledger.db").exists():
                state = counts(tmp_path / "ledger.db")
                if state and set(state) <= {"done", "skipped"} and sum(state.values()) >= 50:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the daemon did not book the orders: {counts(tmp_path / 'ledger.db')}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, out
    invoices = sandbox.state("quickbooks")["companies"]
    assert sum(len(c["Invoice"]) for c in invoices.values()) > 0


def test_sigterm_stops_taking_work_and_leaves_no_claim_behind(sandbox, tmp_path):
    config = write_config(tmp_path, seed(sandbox.urls, orders=40, seed_value=4))
    # Slow QuickBooks so that SIGTERM lands while steps are in flight.
    sandbox.control("quickbooks", "POST", "chaos", json={"faults": [{"path": "/v3/", "latency_ms": 150}]})
    daemon = start_daemon(config)
    while not (tmp_path / "ledger.db").exists() or not counts(tmp_path / "ledger.db").get("done"):
        assert daemon.poll() is None
        time.sleep(0.2)
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, out
    assert time.monotonic() - started < 45  # bounded: within the shutdown allowance
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        in_flight = conn.execute("SELECT COUNT(*) FROM steps WHERE state = 'in_flight'").fetchone()[0]
    assert in_flight == 0
