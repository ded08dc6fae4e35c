"""Rate budgets shared through the ledger (connector/rate_budget_shared.py, connector/rate_slots.py).

Several real processes (multiprocessing, spawn), each with its own budget, share one ledger: a
SQLite file, then a fresh PostgreSQL database (tests/postgres_support.py; skipped without a server
unless O2C_REQUIRE_POSTGRES=1). What they were granted is read back from ``rate_slots`` and
checked against the limits the way a vendor would count: no rolling window holds more than the
limit, however the vendor stamps each request between its grant and its end.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from connector import rate_budget_shared
from connector.ledger import Ledger
from connector.rate_budget import Limits, RateLimited, Window, budget_for, reset_budgets
from connector.rate_budget_shared import (
    SharedGate,
    fits,
    judge,
    share_budgets,
    share_budgets_as_configured,
    sharing,
)
from connector.rate_slots import Slot, SlotTable
from tests.postgres_support import fresh_database

BUDGET = ("bench", "acct")  # budget_for("bench", "acct") is named "bench:acct"
NAME = "bench:acct"


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """The ledger the processes share: a SQLite file's path, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        path = str(tmp_path / "ledger.db")
        Ledger(path).close()
        yield path
    else:
        with fresh_database() as url:
            Ledger(url).close()
            yield url


@pytest.fixture(autouse=True)
def _not_shared_after():
    reset_budgets()
    yield
    share_budgets(None)
    reset_budgets()


def rows_of(where: str) -> list[tuple]:
    """(granted_at, ended_at, lease_until, cost, holder) of every slot taken, by grant time."""
    ledger = Ledger(where)
    try:
        return ledger.conn.execute("SELECT granted_at, ended_at, lease_until, cost, holder FROM rate_slots"
                                   " WHERE budget = ? AND hint = 0 ORDER BY granted_at", (NAME,)).fetchall()
    finally:
        ledger.close()


# -- the processes -------------------------------------------------------------------------------
def hammer(where: str, limits: Limits, per_thread: int, threads: int, hold: float, ready, go, results) -> None:
    """A worker process: share budgets through ``where``, then ``threads`` threads send ``per_thread`` each."""
    try:
        rate_budget_shared.KEEP_AFTER_WINDOW_SECONDS = 3600  # keep every row, for rows_of()
        share_budgets(where)
        budget = budget_for(*BUDGET, limits)
        ready.put(os.getpid())
        go.wait(60)
        errors: list[str] = []

        def send():
            try:
                for _ in range(per_thread):
                    with budget.slot():
                        time.sleep(hold)  # the request
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                errors.append(repr(exc))
        workers = [threading.Thread(target=send) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results.put((os.getpid(), budget.snapshot()["requests"], errors))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        ready.put(os.getpid())
        results.put((os.getpid(), 0, [repr(exc)]))


def hold_and_die(where: str, lease: float, taken) -> None:
    """A worker that takes the only slot and dies without giving it back (kill -9 style)."""
    share_budgets(where, lease_seconds=lease)
    budget_for(*BUDGET, Limits((Window(100, 1.0),), max_concurrent=1)).acquire()
    taken.set()
    os._exit(1)


def pause_everyone(where: str, seconds: float) -> None:
    """A worker that got a 429 and pauses the budget."""
    share_budgets(where)
    budget_for(*BUDGET, Limits((Window(100, 1.0),))).penalise(seconds)


def run_hammers(where: str, limits: Limits, processes: int, threads: int, per_thread: int, hold: float):
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=hammer, args=(where, limits, per_thread, threads, hold, ready, go, results))
             for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        go.set()
        outcome = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return outcome


# -- what a vendor would see --------------------------------------------------------------------------
def most_in_any_window(grants: list[float], seconds: float) -> int:
    """The most grants inside any rolling window of ``seconds`` (half-open, as the vendors count)."""
    best, start = 0, 0
    for end, moment in enumerate(grants):
        while grants[start] <= moment - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def most_a_vendor_could_count(rows, seconds: float) -> int:
    """The most units a vendor could count in one window, stamping each request anywhere between
    its grant and its end: at each grant, every request granted so far that had not left the
    window (in flight, or ended less than ``seconds`` before)."""
    best = 0
    for granted, _, _, _, _ in rows:
        best = max(best, sum(cost for g, ended, _, cost, _ in rows
                             if g <= granted and (ended is None or ended > granted - seconds)))
    return best


def most_in_flight(rows) -> int:
    return max(sum(1 for g, ended, _, _, _ in rows if g <= granted and (ended is None or ended > granted))
               for granted, _, _, _, _ in rows)


# -- the tests ---------------------------------------------------------------------------------------
def test_processes_sharing_a_ledger_stay_under_the_window_and_the_cap_together_and_near_the_limit(where):
    window = Window(50, 2.0)
    limits = Limits((window,), max_concurrent=3)
    processes, threads, per_thread = 3, 2, 25  # 150 requests: three windows' worth
    outcome = run_hammers(where, limits, processes, threads, per_thread, hold=0.01)
    assert [errors for _, _, errors in outcome] == [[]] * processes
    assert sum(sent for _, sent, _ in outcome) == processes * threads * per_thread

    rows = rows_of(where)
    assert len(rows) == processes * threads * per_thread
    assert len({holder for *_, holder in rows}) == processes  # they all took part
    assert all(ended is not None for _, ended, _, _, _ in rows)
    grants = [granted for granted, *_ in rows]
    assert most_in_any_window(grants, window.seconds) <= window.limit
    assert most_a_vendor_could_count(rows, window.seconds) <= window.limit
    assert most_in_flight(rows) <= 3
    # Near the limit, not serialised to nothing: each window filled, 150 requests in about two
    # windows after the first (a unit leaves the window one window after its request ended).
    assert most_in_any_window(grants, window.seconds) >= window.limit - 2
    assert grants[-1] - grants[0] < 3 * window.seconds


def shared_clock(where: str) -> tuple[float, float | None, int]:
    """(now on the shared clock, the budget's pause, requests in flight), as a grant would see them."""
    table = SlotTable(where)
    try:
        with table.locked(NAME) as rows:
            usage = rows.usage((1.0,))
        return usage.now, usage.blocked_until, usage.in_flight
    finally:
        table.close()


def test_a_crashed_holders_slot_comes_back_when_its_lease_runs_out(where):
    lease = 3.0
    ctx = multiprocessing.get_context("spawn")
    taken = ctx.Event()
    crashed = ctx.Process(target=hold_and_die, args=(where, lease, taken))
    crashed.start()
    assert taken.wait(60)
    crashed.join(30)
    assert crashed.exitcode == 1

    share_budgets(where)
    budget = budget_for(*BUDGET, Limits((Window(100, 1.0),), max_concurrent=1))
    now, _, in_flight = shared_clock(where)
    (dead_granted, dead_ended, dead_lease, _, _), = rows_of(where)
    assert dead_ended is None and dead_lease == pytest.approx(dead_granted + lease)
    assert in_flight == 1 and dead_lease - now > 0.2, "the worker took too long to start and die: no lease left"
    with budget.slot():  # waits for the dead holder's lease, then goes
        pass
    _, (granted, *_) = rows_of(where)
    assert dead_lease <= granted < dead_lease + 1.0
    assert budget.snapshot()["shared"]["polls"] > 0


def test_a_penalty_in_one_process_stops_the_others(where):
    ctx = multiprocessing.get_context("spawn")
    share_budgets(where)
    budget = budget_for(*BUDGET, Limits((Window(100, 1.0),)))
    with budget.slot():  # goes at once: nothing pauses it yet
        pass
    other = ctx.Process(target=pause_everyone, args=(where, 3.0))
    other.start()
    other.join(60)
    assert other.exitcode == 0
    now, blocked_until, _ = shared_clock(where)
    assert blocked_until - now > 0.2, "the other process took too long: its pause is already over"

    with budget.slot():
        pass
    assert budget.snapshot()["shared"]["waits"] == 1  # it waited for the other process's pause ...
    assert rows_of(where)[-1][0] >= blocked_until  # ... until it was over on the shared clock


def test_a_shared_wait_longer_than_max_wait_is_handed_to_the_ledger_and_gives_the_slot_back(where):
    share_budgets(where)
    budget = budget_for(*BUDGET, Limits((Window(100, 1.0),), max_concurrent=2, max_wait=30))
    table = SlotTable(where)  # another process's 429 with a long Retry-After
    table.block(NAME, 3600)
    table.close()
    with pytest.raises(RateLimited) as raised:
        budget.acquire()
    assert raised.value.retry_after > 3000
    stats = budget.snapshot()
    assert stats["refused"] == 1 and stats["in_flight"] == 0 and stats["requests"] == 0


def test_the_vendors_count_reaches_the_other_processes_as_a_hint(where):
    share_budgets(where)
    window = Window(100, 10.0)
    budget = budget_for(*BUDGET, Limits((window,)))
    for _ in range(10):
        with budget.slot():
            pass
    budget.observe(remaining=50, window_ms=10_000)  # 100 - 10 ours - 50 left: 40 spent by another app
    budget.observe(remaining=0, window_ms=10_000)  # said again at once: not asked of the ledger again
    assert budget.snapshot()["corrections"] == 1

    # What any process now reads: 50 of 100 used in the first window.
    table = SlotTable(where)
    with table.locked(NAME) as rows:
        usage = rows.usage((window.seconds,))
        assert usage.used == (50,) and usage.in_flight == 0
        assert fits(usage, 50, Limits((window,))) and not fits(usage, 51, Limits((window,)))
        assert sum(s.cost for s in rows.live(window.seconds) if s.hint) == 40
    table.close()


def test_budgets_made_before_sharing_share_from_their_next_request_and_stop_when_told(where):
    budget = budget_for(*BUDGET, Limits((Window(100, 1.0),)))
    assert budget.gate is None and sharing() is None
    assert share_budgets(where)
    assert isinstance(budget.gate, SharedGate) and sharing() is not None
    with budget.slot():
        pass
    assert len(rows_of(where)) == 1
    assert not share_budgets(None)
    assert budget.gate is None
    with budget.slot():
        pass
    assert len(rows_of(where)) == 1  # not shared any more


def test_the_configuration_shares_budgets_by_default_and_not_when_told(tmp_path):
    from types import SimpleNamespace

    from connector.config import LimitSettings
    path = str(tmp_path / "ledger.db")
    assert share_budgets_as_configured(SimpleNamespace(ledger_url=path, limits=LimitSettings()))
    assert sharing() == path
    assert budget_for(*BUDGET, Limits((Window(100, 1.0),))).gate.lease_seconds == 180
    off = LimitSettings.model_validate({"shared": False, "slot_lease_seconds": 60})
    assert not share_budgets_as_configured(SimpleNamespace(ledger_url=path, limits=off))
    assert sharing() is None and budget_for(*BUDGET, Limits((Window(100, 1.0),))).gate is None
    with pytest.raises(ValueError):
        LimitSettings.model_validate({"slot_lease_seconds": 1})


def test_a_slot_whose_ledger_went_away_still_releases_without_raising(tmp_path):
    path = str(tmp_path / "ledger.db")
    share_budgets(path)
    budget = budget_for(*BUDGET, Limits((Window(100, 1.0),)))
    ticket = budget.acquire()
    budget.gate.table.close()  # e.g. the PostgreSQL server went away
    budget.release(ticket)  # the request happened: its end is not an error
    assert budget.snapshot()["shared"]["release_failures"] == 1 and budget.snapshot()["in_flight"] == 0


# -- the rule itself ----------------------------------------------------------------------------------
def test_the_sums_count_a_dead_holder_as_ended_at_its_lease_and_hints_in_the_first_window_only(where):
    table = SlotTable(where)
    minute, second = Window(5, 60.0), Window(2, 1.0)
    limits = Limits((minute, second), max_concurrent=1)
    with table.locked(NAME) as rows:
        now = rows.now
        insert = ("INSERT INTO rate_slots (budget, cost, granted_at, ended_at, lease_until, holder, hint)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?)")
        rows.conn.execute(insert, (NAME, 1, now - 20, None, now - 10, "dead:1", 0))  # its lease ran out 10 s ago
        rows.conn.execute(insert, (NAME, 3, now, now, now, "vendor", 1))  # someone else spent 3
        rows.conn.execute(insert, (NAME, 1, now - 200, now - 190, now, "old:1", 0))  # left every window
        usage = rows.usage((minute.seconds, second.seconds))
        assert usage.in_flight == 0  # the dead holder's slot is free again ...
        assert usage.used == (4, 0)  # ... its unit counts in the minute (ended at its lease), the hint too
        assert fits(usage, 1, limits) and not fits(usage, 2, limits)
        wait = judge(rows.live(minute.seconds), usage.now, 2, limits, usage.blocked_until).wait
        assert wait == pytest.approx(50.0, abs=0.5)  # the dead row leaves the minute at its lease + 60
        rows.grant(1, 30.0, "me:1")
        usage = rows.usage((minute.seconds, second.seconds))
        assert usage.in_flight == 1 and usage.used == (5, 1) and not fits(usage, 1, limits)
    table.close()


def test_judge_waits_for_the_oldest_units_to_leave_or_for_a_release():
    window = Window(3, 10.0)
    limits = Limits((window,), max_concurrent=2)
    now = 1000.0
    ended = [Slot(1, ended=now - 8, lease_until=now, hint=False), Slot(1, ended=now - 2, lease_until=now, hint=False)]
    flying = Slot(1, ended=None, lease_until=now + 100, hint=False)
    assert judge(ended + [flying], now, 1, limits, None).wait == pytest.approx(2.0, abs=0.01)  # the oldest leaves
    assert judge(ended + [flying], now, 2, limits, None).wait == pytest.approx(8.0, abs=0.01)  # both must leave
    assert judge([flying, flying], now, 1, limits, None).wait is None  # the cap: only a release helps
    assert judge([flying] * 3, now, 1, Limits((window,)), None).wait is None  # in flight fills the window
    assert judge([], now, 1, limits, now + 7).wait == pytest.approx(7.0, abs=0.01)  # a 429 pause
    assert judge([], now, 1, limits, None).wait == 0.0


def test_rows_that_left_every_window_are_deleted_in_batches_not_on_every_grant(tmp_path):
    path = str(tmp_path / "ledger.db")
    share_budgets(path)
    budget = budget_for(*BUDGET, Limits((Window(100, 0.2),)))
    for _ in range(5):
        with budget.slot():
            pass
    assert len(rows_of(path)) == 5  # the first grant pruned (nothing); the next prune is a second later
    time.sleep(0.2 + rate_budget_shared.KEEP_AFTER_WINDOW_SECONDS + 0.1)
    with budget.slot():
        pass
    assert len(rows_of(path)) == 1 and budget.snapshot()["shared"]["pruned"] == 5


# -- against the emulator: what QuickBooks would have counted ------------------------------------------
def query_quickbooks(config_path: str, limits: dict, calls: int, ready, go, results) -> None:
    """A worker process on the same QuickBooks company: shares budgets through the config's ledger."""
    from adapters.quickbooks import QuickBooksTarget
    from connector.config import LimitSettings, load_config

    errors: list[str] = []
    settings = load_config(config_path)
    share_budgets(settings.ledger_url)
    ledger = Ledger(settings.ledger_url)
    try:
        target = QuickBooksTarget(settings.quickbooks, ledger, LimitSettings.model_validate(limits))
        ready.put(os.getpid())
        go.wait(60)
        for _ in range(calls):
            try:
                target.query("SELECT * FROM Item MAXRESULTS 1")
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                errors.append(repr(exc))
        results.put((os.getpid(), target.calls, errors))
    finally:
        ledger.close()


def test_three_worker_processes_on_one_company_never_pass_the_emulators_limits_together(sandbox, tmp_path):
    from adapters.quickbooks import QuickBooksTarget
    from connector.config import load_config
    from connector.demo import write_config
    from sandbox.seed import REALM, seed

    config_path = write_config(tmp_path, seed(sandbox.urls, orders=2, seed_value=3))
    settings = load_config(config_path)
    # The emulator: 5 requests per second and 2 at a time for the company's app, each taking 30 ms.
    sandbox.control("quickbooks", "POST", "options",
                    json={"requests_per_second": 5, "max_concurrent": 2, "latency_ms": 30})
    limits = {"quickbooks": {"requests_per_second": 5, "max_concurrent": 2, "requests_per_minute": 500}}
    ledger = Ledger(settings.ledger_url)  # the access token once, first: the workers only make API calls
    QuickBooksTarget(settings.quickbooks, ledger).vault.access_token()
    ledger.close()

    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    processes, calls = 3, 6
    procs = [ctx.Process(target=query_quickbooks, args=(str(config_path), limits, calls, ready, go, results))
             for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        go.set()
        outcome = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
    assert [(sent, errors) for _, sent, errors in outcome] == [(calls, [])] * processes

    realm = sandbox.control("quickbooks", "GET", "traffic")["accounts"][REALM]
    assert realm["throttled"] == 0 and realm["requests"] == processes * calls
    per_second = next(v for k, v in realm["limits"].items() if k.startswith("requests_per_second:"))
    assert per_second["max_offered_in_window"] <= per_second["limit"] == 5
    assert per_second["max_offered_in_window"] >= 4  # and they ran near it
    assert realm["concurrent"]["max_offered"] <= realm["concurrent"]["limit"] == 2
