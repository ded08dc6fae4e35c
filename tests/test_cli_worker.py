"""``o2c worker`` and ``o2c daemon --no-worker``: the two halves of a scale-out deployment, as a merchant starts them.

``o2c worker`` only runs due steps (no polls, no webhooks); ``o2c daemon --no-worker`` polls (and
serves webhooks) but books nothing, leaving the steps to the workers (docs/operations.md "Scaling out").
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import nullcontext

import pytest

from connector.composition import build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import pull_store
from connector.ledger import Ledger
from sandbox.seed import seed
from tests.conftest import ROOT
from tests.postgres_support import fresh_database


def o2c(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "sync.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def step_states(where: str) -> dict[str, int]:
    ledger = Ledger(where)
    try:
        return dict(ledger.conn.execute("SELECT state, COUNT(*) FROM steps GROUP BY state").fetchall())
    finally:
        ledger.close()


def count_rows(where: str, table: str) -> int:
    ledger = Ledger(where)
    try:
        return ledger.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        ledger.close()


def config_with_ledger(tmp_path, sandbox, where: str | None, orders: int):
    """The demo's config for the sandbox, seeded with ``orders``; the ledger at ``where`` (default: a file)."""
    path = write_config(tmp_path, seed(sandbox.urls, orders=orders, seed_value=21))
    if where is not None:
        path.write_text(path.read_text().replace("ledger: ledger.db", f"ledger: {where}"))
    return path


def test_worker_and_daemon_no_worker_explain_themselves():
    worker = o2c("worker", "--help")
    assert worker.returncode == 0, worker.stderr
    assert "o2c worker --config config.yaml" in worker.stdout and "--run-for" in worker.stdout
    assert "Run due steps only" in worker.stdout
    daemon = o2c("daemon", "--no-worker", "--help")
    assert daemon.returncode == 0, daemon.stderr
    assert "--no-worker" in daemon.stdout and "o2c daemon --config config.yaml --no-worker" in daemon.stdout
    listed = o2c("--help").stdout
    assert "o2c worker --config config.yaml" in listed and "o2c ledger copy" in listed


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_short_worker_run_books_the_due_steps(sandbox, tmp_path, backend):
    with fresh_database() if backend == "postgresql" else nullcontext() as url:
        config = config_with_ledger(tmp_path, sandbox, url, orders=4)
        settings = load_config(config)
        ledger = Ledger(settings.ledger_url)
        try:  # the orders come in (a poll), their steps wait in the ledger: nothing is booked yet
            for source, store in build_sources(settings):
                assert pull_store(source, store, ledger).error is None
        finally:
            ledger.close()
        assert set(step_states(settings.ledger_url)) == {"pending"}
        # Until every step has ended (a few rounds: deals wait for the books), then SIGTERM: exit 0.
        worker = subprocess.Popen([sys.executable, "sync.py", "worker", "--config", str(config), "--run-for", "120"],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 110
            while time.monotonic() < deadline and not set(step_states(settings.ledger_url)) <= {"done", "skipped"}:
                time.sleep(0.5)
        finally:
            worker.send_signal(signal.SIGTERM)
            out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, out
        states = step_states(settings.ledger_url)
        # The worker shares its rate budgets through the ledger on either backend: other processes
        # (a daemon, a replay) may be spending the same allowances.
        shared = count_rows(settings.ledger_url, "rate_slots")
    assert shared > 0, shared
    assert set(states) <= {"done", "skipped"} and states.get("done"), states
    company = next(iter(sandbox.state("quickbooks")["companies"].values()))
    booked = len(company.get("Invoice", {})) + len(company.get("SalesReceipt", {}))
    assert booked == 4
    assert len(sandbox.state("hubspot")["deals"]) == 4


def test_daemon_no_worker_polls_but_books_nothing(sandbox, tmp_path):
    config = config_with_ledger(tmp_path, sandbox, None, orders=4)
    # A worker tick every half second: without --no-worker these 5 s would book every order.
    run = o2c("daemon", "--config", str(config), "--no-worker", "--worker-seconds", "0.5", "--run-for", "5")
    assert run.returncode == 0, run.stdout + run.stderr
    states = step_states(str(tmp_path / "ledger.db"))
    assert states and set(states) == {"pending"}, states  # the orders came in; their steps wait for a worker
    company = next(iter(sandbox.state("quickbooks")["companies"].values()))
    assert not company.get("Invoice") and not company.get("SalesReceipt")

