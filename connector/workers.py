"""Run the due steps of each target system at the same time, in worker threads of their own.

Any number of these may run at once on one ledger, in other processes (``o2c
worker``, connector/worker_process.py) or on other machines against one
PostgreSQL ledger: every batch is taken with an atomic claim
(``Ledger.claim_due``), so no two workers hold the same step.

HubSpot and QuickBooks have separate rate limits, so a slow QuickBooks batch
must not hold up HubSpot: each system gets its own threads (``queue.threads``,
several batches of one system in flight at once), each with its own ledger
connection (SQLite connections are not shared across threads; WAL lets the
writers take turns) and its own runner. The concurrency cap per (system,
account) is the rate budget's (``connector.rate_budget``), which every thread of the process
shares, so a webhook intake or a replay running beside the worker cannot
push a system over its limit either.

A step of one system may wait for another's (``hubspot.deal_sync`` waits
for the QuickBooks invoice), so a thread that finds nothing due looks again
whenever another thread gets something done, until none of them finds
anything (``run_targets``).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from connector.engine import PassReport, Progress, run_due_steps
from connector.ledger import Ledger
from connector.protocols import StepRunner

LOG = logging.getLogger("o2c.workers")

RunnerFactory = Callable[[Ledger, str], StepRunner]  # (its own ledger connection, system) -> runner


def run_targets(open_ledger: Callable[[], Ledger], build_runner: RunnerFactory, systems: list[str], *,
                progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                threads: dict[str, int] | None = None, **queue) -> PassReport:
    """Run every due step of ``systems`` until none is due and no thread is still working.

    ``threads`` (``queue.threads``) says how many batches of one system may be in flight at once
    (default one): QuickBooks answers a 30-item batch in a fraction of a second plus the network's
    latency, so one batch at a time leaves most of its 500-a-minute allowance unused while the
    budget's concurrency cap (10 per realm) would allow more. Each thread claims its own batches
    (``Ledger.claim_due`` is atomic), so they never share a step. ``queue`` (``backoff``,
    ``lease_seconds``) goes to :func:`connector.engine.run_due_steps`.

    Each thread works on its own, with its own ledger connection and runner for the whole pass. One
    that finds nothing due waits until another thread gets something done (which may make its steps
    due: ``hubspot.deal_sync`` waits for the QuickBooks documents) and looks again; the pass ends when
    every thread has looked since the last progress anywhere and found nothing. Threads used to run in
    rounds that all joined: HubSpot, done in seconds, waited for QuickBooks' round, which on a backlog
    lasts minutes, so the deals' write-backs all came at the end (the 10,000-order benchmark's last
    30 seconds were HubSpot alone).
    """
    threads = threads or {}
    parts = [(system, n, PassReport()) for system in systems for n in range(max(1, threads.get(system, 1)))]
    quiet = _Quiet(len(parts))
    running = [threading.Thread(target=_run_system, name=f"worker:{system}:{n}",
                                args=(open_ledger, build_runner, system, report, progress, should_stop, queue,
                                      quiet))
               for system, n, report in parts]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    total = PassReport()
    for _system, _n, report in parts:
        _merge(total, report)
    return total


class _Quiet:
    """Tells the threads of a pass when all of them are out of work.

    ``progress`` counts the looks that got something done, in any thread. A thread that found nothing
    reports the count it saw before it looked; the pass is over when every thread has reported, each after the latest
    progress. A thread that stopped for good (paused, told to stop) counts as having looked.
    """

    def __init__(self, threads: int):
        self._cond = threading.Condition()
        self._threads = threads
        self._progress = 0
        self._looked: dict[int, float] = {}  # thread -> progress count it had seen when it found nothing
        self.over = False

    def seen(self) -> int:
        with self._cond:
            return self._progress

    def worked(self) -> None:
        with self._cond:
            self._progress += 1
            self._looked.pop(threading.get_ident(), None)
            self._cond.notify_all()

    def found_nothing(self, seen: int, wait: float) -> bool:
        """Report an empty look (after ``seen`` progress); True when the pass is over. Otherwise waits
        up to ``wait`` seconds for another thread's progress before the caller looks again."""
        with self._cond:
            self._looked[threading.get_ident()] = seen
            if self._all_looked():
                self.over = True
                self._cond.notify_all()
                return True
            if seen == self._progress:
                self._cond.wait(wait)
            return self.over

    def gone(self) -> None:
        """This thread stops for good; it no longer holds the pass open."""
        with self._cond:
            self._looked[threading.get_ident()] = float("inf")
            if self._all_looked():
                self.over = True
            self._cond.notify_all()

    def _all_looked(self) -> bool:
        return len(self._looked) == self._threads and all(v >= self._progress for v in self._looked.values())


def _run_system(open_ledger, build_runner, system: str, report: PassReport, progress, should_stop,
                queue: dict, quiet: _Quiet) -> None:
    ledger = None
    try:
        # Opened inside the try: a ledger that cannot be reached (PostgreSQL restarting) pauses this
        # system for the pass, with the reason, instead of killing the thread with a bare traceback.
        ledger = open_ledger()
        runner = build_runner(ledger, system)
        before = runner.calls  # a factory may hand back a runner that has already worked
        while not quiet.over and system not in report.paused and not (should_stop and should_stop()):
            seen, done = quiet.seen(), _count(report)
            run_due_steps(ledger, [runner], report, progress=progress, should_stop=should_stop, **queue)
            if _count(report) > done:
                quiet.worked()
            elif quiet.found_nothing(seen, wait=IDLE_LOOK_SECONDS):
                break
        report.calls[system] = report.calls.get(system, 0) + runner.calls - before
    except Exception as exc:  # a bug or outage in one system's worker must not stop the other's
        LOG.exception("%s worker stopped", system)
        report.paused[system] = f"worker error: {exc}"
    finally:
        quiet.gone()
        if ledger is not None:
            ledger.close()


# A thread with nothing due looks again after another thread's progress, or after this long at most
# (a step may also come due by its own retry time, but a pass does not wait for those: the next does).
IDLE_LOOK_SECONDS = 1.0


def _count(report: PassReport) -> int:
    return sum(n for states in report.outcomes.values() for n in states.values())


def _merge(total: PassReport, part: PassReport) -> None:
    for step, states in part.outcomes.items():
        into = total.outcomes.setdefault(step, {})
        for state, n in states.items():
            into[state] = into.get(state, 0) + n
    for step, n in part.created.items():
        total.created[step] = total.created.get(step, 0) + n
    for system, n in part.calls.items():
        total.calls[system] = total.calls.get(system, 0) + n
    total.paused.update(part.paused)
