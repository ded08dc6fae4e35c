"""Job locks: a scheduled job runs on one node at a time, and a crashed node does not keep it forever.

On a SQLite file (a ``job_locks`` row with a renewed lease) and on a fresh PostgreSQL database (a
session advisory lock; skipped with the reason when no server is reachable, failed instead when
``O2C_REQUIRE_POSTGRES=1``). Holders that crash are real processes killed with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from connector.daemon import Daemon, _extra_jobs
from connector.job_locks import advisory_key, job_lock, waiting_lock
from connector.ledger import Ledger
from tests.postgres_support import fresh_database
from tests.test_status import make_settings

SPAWN = multiprocessing.get_context("spawn")


def hold_until_killed(where: str, name: str, lease_seconds: float, ready: str) -> None:
    """A node that takes the lock and then hangs, until it is killed."""
    ledger = Ledger(where)
    with job_lock(ledger, name, lease_seconds=lease_seconds) as held:
        Path(ready).write_text("held" if held else "not held")
        time.sleep(600)


def start_holder(where: str, name: str, tmp_path, lease_seconds: float = 60.0):
    ready = tmp_path / "holder-ready"
    proc = SPAWN.Process(target=hold_until_killed, args=(where, name, lease_seconds, str(ready)))
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.is_alive() and time.monotonic() < deadline, "the holder process did not start"
        time.sleep(0.05)
    assert ready.read_text() == "held"
    return proc


def kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)


def can_take(ledger: Ledger, name: str) -> bool:
    with job_lock(ledger, name) as held:
        return held


def test_only_one_holder_at_a_time_and_the_lock_is_free_again_after(where):
    first, second = Ledger(where), Ledger(where)
    with job_lock(first, "poll:main-shop") as held:
        assert held
        assert not can_take(second, "poll:main-shop")
        assert not can_take(first, "poll:main-shop")  # not even the same connection twice
        assert can_take(second, "poll:woo_site")  # another job is another lock
    assert can_take(second, "poll:main-shop")
    assert can_take(first, "poll:main-shop")
    first.close()
    second.close()


def test_a_job_that_fails_still_releases_its_lock(where):
    first, second = Ledger(where), Ledger(where)
    with pytest.raises(RuntimeError):
        with job_lock(first, "reconcile") as held:
            assert held
            raise RuntimeError("the store is down")
    assert can_take(second, "reconcile")
    first.close()
    second.close()


def test_a_waiting_lock_gives_up_after_its_timeout_and_takes_the_lock_once_it_is_free(where):
    holder, waiter = Ledger(where), Ledger(where)
    try:
        with job_lock(holder, "quickbooks-customers:1") as held:
            assert held
            with waiting_lock(waiter, "quickbooks-customers:1", timeout=0.3) as got:
                assert not got  # another node holds it the whole time
        with waiting_lock(waiter, "quickbooks-customers:1", timeout=5) as got:
            assert got
            assert not can_take(holder, "quickbooks-customers:1")
        assert can_take(holder, "quickbooks-customers:1")
    finally:
        holder.close()
        waiter.close()


def test_threads_on_their_own_connections_take_a_waiting_lock_one_at_a_time(where):
    # The read-modify-write below loses updates unless the lock keeps the threads apart.
    inside, most, total = [0], [0], [0]
    guard = threading.Lock()

    def work() -> None:
        ledger = Ledger(where)
        try:
            for _ in range(5):
                with waiting_lock(ledger, "one-at-a-time", timeout=30) as got:
                    assert got
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    seen = total[0]
                    time.sleep(0.01)
                    total[0] = seen + 1
                    with guard:
                        inside[0] -= 1
        finally:
            ledger.close()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (most[0], total[0]) == (1, 20)


def test_postgres_frees_the_lock_of_a_node_that_died(tmp_path):
    with fresh_database() as url:
        ledger = Ledger(url)
        holder = start_holder(url, "reconcile", tmp_path)
        try:
            assert not can_take(ledger, "reconcile")
        finally:
            kill(holder)
        deadline = time.monotonic() + 15  # the server notices the closed connection at once, or nearly
        while not can_take(ledger, "reconcile"):
            assert time.monotonic() < deadline, "the dead node's lock was never freed"
            time.sleep(0.1)
        ledger.close()


def test_sqlite_lease_is_renewed_while_held_and_runs_out_when_the_holder_dies(tmp_path):
    where = str(tmp_path / "ledger.db")
    ledger = Ledger(where)
    holder = start_holder(where, "inbox", tmp_path, lease_seconds=2.0)
    try:
        time.sleep(4.5)  # more than two lease lengths: only renewal keeps it
        assert not can_take(ledger, "inbox")
    finally:
        kill(holder)
    assert not can_take(ledger, "inbox")  # the lease still runs for a moment
    time.sleep(2.2)
    assert can_take(ledger, "inbox")
    ledger.close()


def test_advisory_keys_are_stable_and_fit_a_bigint():
    assert advisory_key("poll:main-shop") == advisory_key("poll:main-shop")
    assert advisory_key("poll:main-shop") != advisory_key("poll:woo_site")
    assert all(-2**63 <= advisory_key(n) < 2**63 for n in ("a", "quickbooks-token:123", "x" * 500))
    assert advisory_key("reconcile") == -4444706015105917840  # never changes between versions: nodes must agree


# -- the daemon ------------------------------------------------------------------------------------

def test_a_daemon_skips_a_job_another_daemon_on_the_ledger_is_running(tmp_path, where):
    settings = make_settings(tmp_path).model_copy(update={"ledger": where})
    other_node = Ledger(where)
    daemon = Daemon(settings)
    (inbox, health) = (job["func"] for job in _extra_jobs(daemon))
    with job_lock(other_node, "poll:main-shop"), job_lock(other_node, "inbox"), \
            job_lock(other_node, "webhook-health"), job_lock(other_node, "reconcile"):
        daemon.poll_store("main-shop")  # would reach for https://main.example.com if it ran
        inbox()
        health()
        daemon.reconcile()
    assert daemon.state.skipped == {"poll:main-shop": 1, "inbox": 1, "webhook-health": 1, "reconcile": 1}
    assert other_node.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0  # none of them ran
    other_node.close()


def test_a_daemon_without_worker_schedules_everything_but_the_worker_tick(tmp_path):
    settings = make_settings(tmp_path)
    with_worker, without = Daemon(settings), Daemon(settings, run_worker=False)
    with_worker.schedule()
    without.schedule()
    jobs = {job.id for job in with_worker.scheduler.get_jobs()}
    assert "work" in jobs and {"poll:main-shop", "poll:woo_site", "tokens", "inbox"} <= jobs
    assert {job.id for job in without.scheduler.get_jobs()} == jobs - {"work"}
