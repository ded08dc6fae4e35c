"""Workers in several processes on one ledger: every due step claimed exactly once, leases, fencing, dependencies.

Each test runs on a SQLite file and on a fresh PostgreSQL database (tests/postgres_support.py: skipped
with the reason when no server is reachable, failed instead when ``O2C_REQUIRE_POSTGRES=1``). The
workers are real processes (multiprocessing, spawn), as on several machines: no shared memory, one
ledger connection each.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path


from connector.composition import build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import pull_store
from connector.ledger import Ledger, utcnow
from sandbox.seed import seed
from tests.postgres_support import fresh_database

SPAWN = multiprocessing.get_context("spawn")
CONTACT, DEAL = "hubspot.contact", "hubspot.deal"


def add_orders(ledger: Ledger, count: int, *, deal: bool = True, start: int = 1) -> list[str]:
    """``count`` orders, each with a contact step and (``deal``) a deal step that waits for it."""
    moment = "2026-01-01T00:00:00+00:00"
    keys = [f"shop:{n}" for n in range(start, start + count)]
    with ledger.transaction():
        ledger.conn.executemany(
            "INSERT INTO orders (order_key, store, system, source_order_id, name, currency, total, source_created_at,"
            " source_updated_at, content_hash, snapshot, balance_difference, first_seen_at, last_changed_at)"
            " VALUES (?, 'shop', 'shopify', ?, ?, 'USD', '10.00', ?, ?, 'h', '{}', '0.00', ?, ?)",
            [(key, key[5:], f"#{key[5:]}", moment, moment, moment, moment) for key in keys])
        steps = [(key, CONTACT, "") for key in keys] + ([(key, DEAL, CONTACT) for key in keys] if deal else [])
        ledger.conn.executemany(
            "INSERT INTO steps (order_key, step, depends_on, planned_hash, created_at, updated_at, next_attempt_at)"
            " VALUES (?, ?, ?, 'h', ?, ?, ?)", [(*s, moment, moment, moment) for s in steps])
    return keys


def step_row(ledger: Ledger, step_id: int) -> dict:
    cursor = ledger.conn.execute("SELECT state, attempts, external_id, claim_token FROM steps WHERE id = ?",
                                 (step_id,))
    return dict(zip(("state", "attempts", "external_id", "claim_token"), cursor.fetchone()))


# -- many processes, one queue ----------------------------------------------------------------------

def claim_until_empty(where: str, out: str, start, batch: int) -> None:
    """One worker process: claim contacts and deals until every step is done; write what it took."""
    ledger = Ledger(where)
    claimed, too_early = [], []
    start.wait(120)  # a barrier: every worker has its ledger open before any claims
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        took = 0
        for kind in (CONTACT, DEAL):
            rows = ledger.claim_due(kind, limit=batch, lease_seconds=300)
            for row in rows:
                if kind == DEAL:  # claimable only once its contact has ended
                    (contact,) = ledger.conn.execute("SELECT state FROM steps WHERE order_key = ? AND step = ?",
                                                     (row.order_key, CONTACT)).fetchone()
                    if contact != "done":
                        too_early.append(row.id)
                claimed.append([row.id, row.attempts])
                ledger.finish_step(row.id, "done", external_id=f"pid{os.getpid()}", claim=row.claim_token)
            took += len(rows)
            if rows:
                time.sleep(0.005)  # the batch's calls to the target: SQLite's lock has no queue, idle time shares it
        if not took:
            if not ledger.conn.execute("SELECT COUNT(*) FROM steps WHERE state != 'done'").fetchone()[0]:
                break
            time.sleep(0.01)  # the rest waits for contacts another worker holds
    ledger.close()
    Path(out).write_text(json.dumps({"claimed": claimed, "too_early": too_early}))


def test_workers_in_several_processes_claim_every_step_exactly_once(where, tmp_path):
    ledger = Ledger(where)
    add_orders(ledger, 1000)  # 2,000 steps: 1,000 contacts, 1,000 deals waiting for them
    all_ids = {i for (i,) in ledger.conn.execute("SELECT id FROM steps")}
    assert len(all_ids) == 2000
    workers = 4
    start = SPAWN.Barrier(workers)
    outs = [str(tmp_path / f"worker{n}.json") for n in range(workers)]
    procs = [SPAWN.Process(target=claim_until_empty, args=(where, out, start, 7)) for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(240)
        assert proc.exitcode == 0, "a worker process failed (its traceback is in the captured output)"

    results = [json.loads(Path(out).read_text()) for out in outs]
    claims = Counter(step_id for result in results for step_id, _ in result["claimed"])
    assert {i for i, n in claims.items() if n > 1} == set(), "a step was claimed by two workers"
    assert set(claims) == all_ids
    assert all(attempt == 1 for result in results for _, attempt in result["claimed"])
    assert [i for result in results for i in result["too_early"]] == [], "a deal ran before its contact ended"
    assert sum(1 for result in results if result["claimed"]) >= 2, "the workers did not share the queue"
    states = ledger.conn.execute("SELECT state, attempts, claim_token, COUNT(*) FROM steps"
                                 " GROUP BY state, attempts, claim_token").fetchall()
    assert states == [("done", 1, None, 2000)]
    ledger.close()


def test_a_postgres_claim_neither_waits_for_another_claim_nor_takes_the_writer_lock(tmp_path):
    with fresh_database() as url:
        ledger, other = Ledger(url), Ledger(url)
        add_orders(ledger, 6, deal=False)
        ids = [i for (i,) in ledger.conn.execute("SELECT id FROM steps ORDER BY priority, id")]
        # Another worker in the middle of its claim (rows locked), inside the global writer lock.
        other.conn.execute("BEGIN IMMEDIATE")
        other.conn.execute("SELECT id FROM steps ORDER BY priority, id LIMIT 2 FOR UPDATE")
        taken: list = []
        claimer = threading.Thread(target=lambda: taken.extend(ledger.claim_due(CONTACT, limit=2)))
        claimer.start()
        claimer.join(10)
        blocked = claimer.is_alive()
        other.conn.execute("ROLLBACK")
        claimer.join(10)
        assert not blocked, "the claim waited for rows (or the writer lock) another worker held"
        assert [row.id for row in taken] == ids[2:4]  # the held rows are skipped, the next ones taken
        ledger.close()
        other.close()


# -- leases and fencing ---------------------------------------------------------------------------

def test_an_expired_lease_is_taken_over_and_the_old_owners_late_finish_is_dropped(where):
    first, second = Ledger(where), Ledger(where)
    add_orders(first, 1, deal=False)
    (mine,) = first.claim_due(CONTACT, limit=10, lease_seconds=60)
    assert (mine.state, mine.attempts) == ("in_flight", 1) and mine.claim_token
    assert second.claim_due(CONTACT, limit=10) == []  # leased: nobody else may take it
    (theirs,) = second.claim_due(CONTACT, limit=10, lease_seconds=60, now=utcnow() + timedelta(seconds=120))
    assert theirs.id == mine.id and theirs.attempts == 2 and theirs.claim_token != mine.claim_token

    # The first worker was only slow: its result arrives after the takeover and must not land.
    assert first.finish_step(mine.id, "done", external_id="from-first", claim=mine.claim_token) is False
    assert first.release([mine.id], "paused", None, claim=mine.claim_token) == 0
    assert step_row(second, mine.id) == {"state": "in_flight", "attempts": 2, "external_id": None,
                                         "claim_token": theirs.claim_token}
    assert second.finish_step(theirs.id, "done", external_id="from-second", claim=theirs.claim_token) is True
    assert step_row(second, mine.id)["external_id"] == "from-second"
    dropped = second.conn.execute("SELECT step, detail FROM events WHERE kind = 'claim' AND outcome = 'stale_dropped'"
                                  ).fetchall()
    assert len(dropped) == 2 and all(step == CONTACT and "lease ran out" in detail for step, detail in dropped)
    first.close()
    second.close()


def test_a_late_finish_is_dropped_even_when_a_later_claim_reached_the_same_attempt_number(where):
    first, second = Ledger(where), Ledger(where)
    (key,) = add_orders(first, 1, deal=False)
    (stale,) = first.claim_due(CONTACT, limit=1, lease_seconds=60)
    later = utcnow() + timedelta(seconds=120)
    (taken,) = second.claim_due(CONTACT, limit=1, lease_seconds=60, now=later)
    second.finish_step(taken.id, "skipped", error="no email", claim=taken.claim_token)
    assert second.retry_skipped(key, [CONTACT]) == 1  # the order changed: attempts start again at 0
    (current,) = second.claim_due(CONTACT, limit=1, lease_seconds=600)
    assert current.attempts == stale.attempts == 1  # an attempt number alone could not tell them apart
    assert first.finish_step(stale.id, "dead", error="HTTP 400", claim=stale.claim_token) is False
    assert step_row(second, stale.id)["state"] == "in_flight"
    assert second.finish_step(current.id, "done", claim=current.claim_token) is True
    first.close()
    second.close()


def test_release_gives_back_an_own_claim_uncounted(where):
    ledger = Ledger(where)
    add_orders(ledger, 2, deal=False)
    rows = ledger.claim_due(CONTACT, limit=5)
    assert ledger.release([r.id for r in rows], "QuickBooks needs reconnecting", "reconnect",
                          claim=rows[0].claim_token) == 2
    again = ledger.claim_due(CONTACT, limit=5)
    assert [r.id for r in again] == [r.id for r in rows] and all(r.attempts == 1 for r in again)
    ledger.close()


# -- what is due ----------------------------------------------------------------------------------

def test_claims_respect_dependencies_retry_times_kinds_and_priority(where):
    ledger = Ledger(where)
    (one, two) = add_orders(ledger, 2)
    ledger.plan_step(one, "hubspot.deal_sync:1", ("hubspot.deal", "quickbooks.invoice"), "h")  # invoice never planned
    assert ledger.claim_due(DEAL, limit=10) == []  # both wait for their contact

    contacts = ledger.claim_due(CONTACT, limit=10)
    assert [r.order_key for r in contacts] == [one, two]
    ledger.finish_step(contacts[0].id, "done", claim=contacts[0].claim_token)
    ledger.finish_step(contacts[1].id, "failed", error="HTTP 503", retry_at=utcnow() + timedelta(minutes=5),
                       claim=contacts[1].claim_token)
    assert ledger.claim_due(CONTACT, limit=10) == []  # failed, not yet due
    deals = ledger.claim_due(DEAL, limit=10)  # "hubspot.deal" is not "hubspot.deal_sync:1"
    assert [(r.order_key, r.step) for r in deals] == [(one, DEAL)]
    ledger.finish_step(deals[0].id, "done", claim=deals[0].claim_token)
    assert ledger.claim_due("hubspot.deal_sync", limit=10) == []  # a dependency never planned keeps it waiting

    (retry,) = ledger.claim_due(CONTACT, limit=10, now=utcnow() + timedelta(minutes=6))
    assert (retry.order_key, retry.attempts) == (two, 2)
    ledger.finish_step(retry.id, "skipped", error="no email", claim=retry.claim_token)  # skipped ends well too
    assert [r.order_key for r in ledger.claim_due(DEAL, limit=10)] == [two]

    (three, four) = add_orders(ledger, 2, deal=False, start=3)
    ledger.raise_priority(four, 0)  # a webhook announced it
    assert [r.order_key for r in ledger.claim_due(CONTACT, limit=1)] == [four]
    ledger.close()


# -- the worker process, end to end ------------------------------------------------------------------

def run_worker_process(config: str, ledger_url: str, log_path: str) -> None:
    import logging
    import sys

    from connector.worker_process import run_worker
    logging.basicConfig(filename=log_path, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_config(config).model_copy(update={"ledger": ledger_url})
    sys.exit(run_worker(settings, run_for=240, idle_seconds=0.2))


def test_two_worker_processes_book_every_order_once_and_stop_on_sigterm(sandbox, tmp_path, where):
    config = write_config(tmp_path, seed(sandbox.urls, orders=20, seed_value=11))
    settings = load_config(config).model_copy(update={"ledger": where})
    ledger = Ledger(settings.ledger_url)
    for source, store in build_sources(settings):
        assert pull_store(source, store, ledger).error is None
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    procs = [SPAWN.Process(target=run_worker_process, args=(str(config), settings.ledger_url, str(log)))
             for log in logs]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            open_steps = ledger.conn.execute(
                "SELECT COUNT(*) FROM steps WHERE state IN ('pending', 'in_flight', 'failed')").fetchone()[0]
            if not open_steps:
                break
            assert all(proc.is_alive() for proc in procs), "\n".join(log.read_text() for log in logs)
            time.sleep(0.5)
        else:
            raise AssertionError("the workers did not finish: " + "\n".join(log.read_text() for log in logs))
    finally:
        for proc in procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0], "\n".join(log.read_text() for log in logs)
    assert all("worker stopped" in log.read_text() for log in logs)

    states = dict(ledger.conn.execute("SELECT state, COUNT(*) FROM steps GROUP BY state").fetchall())
    assert set(states) <= {"done", "skipped"}, states
    # Exactly one attempt per step: no step was run by both workers.
    attempts = Counter(ledger.conn.execute("SELECT order_key, step FROM events WHERE kind = 'attempt'").fetchall())
    assert {k for k, n in attempts.items() if n > 1} == set()
    assert len(attempts) == sum(states.values())
    assert ledger.conn.execute("SELECT COUNT(*) FROM steps WHERE attempts != 1").fetchone()[0] == 0
    company = next(iter(sandbox.state("quickbooks")["companies"].values()))
    documents = list(company["Invoice"].values() if isinstance(company["Invoice"], dict) else company["Invoice"])
    documents += list(company["SalesReceipt"].values() if isinstance(company["SalesReceipt"], dict)
                      else company["SalesReceipt"])
    booked = ledger.conn.execute("SELECT COUNT(*) FROM steps WHERE state = 'done' AND step IN"
                                 " ('quickbooks.invoice', 'quickbooks.sales_receipt')").fetchone()[0]
    assert len(documents) == booked > 0
    ledger.close()


def test_a_worker_with_nothing_to_do_idles_and_stops_after_run_for(tmp_path, caplog):
    import logging

    from connector.worker_process import run_worker
    from tests.test_status import make_settings
    caplog.set_level(logging.INFO, logger="o2c.worker")
    started = time.monotonic()
    assert run_worker(make_settings(tmp_path), run_for=1.0, idle_seconds=0.3) == 0
    assert 1.0 <= time.monotonic() - started < 10
    assert "worker stopped: 0 steps" in caplog.text
