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
for the QuickBooks invoice), so threads run in rounds until a round finds
nothing due.
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
                max_rounds: int = 20, threads: dict[str, int] | None = None, **queue) -> PassReport:
    """Run every due step of ``systems`` until a round leaves nothing done.

    ``threads`` (``queue.threads``) says how many batches of one system may be in flight at once
    (default one): QuickBooks answers a 30-item batch in a fraction of a second plus the network's
    latency, so one batch at a time leaves most of its 500-a-minute allowance unused while the
    budget's concurrency cap (10 per realm) would allow more. Each thread claims its own batches
    (``Ledger.claim_due`` is atomic), so they never share a step. ``queue`` (``backoff``,
    ``lease_seconds``) goes to :func:`connector.engine.run_due_steps`.
    """
    threads = threads or {}
    total = PassReport()
    active = list(systems)
    for _ in range(max_rounds):
        parts = [(system, n, PassReport()) for system in active for n in range(max(1, threads.get(system, 1)))]
        running = [threading.Thread(target=_run_system, name=f"worker:{system}:{n}",
                                    args=(open_ledger, build_runner, system, report, progress, should_stop, queue))
                   for system, n, report in parts]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
        ran = 0
        for _system, _n, report in parts:
            _merge(total, report)
            ran += sum(n for states in report.outcomes.values() for n in states.values())
        active = [s for s in active if s not in total.paused]
        if not ran or not active or (should_stop and should_stop()):
            break
    return total


def _run_system(open_ledger, build_runner, system: str, report: PassReport, progress, should_stop,
                queue: dict) -> None:
    ledger = None
    try:
        # Opened inside the try: a ledger that cannot be reached (PostgreSQL restarting) pauses this
        # system for the pass, with the reason, instead of killing the thread with a bare traceback.
        ledger = open_ledger()
        runner = build_runner(ledger, system)
        before = runner.calls  # a factory may hand back a runner that has already worked
        run_due_steps(ledger, [runner], report, progress=progress, should_stop=should_stop, **queue)
        report.calls[system] = report.calls.get(system, 0) + runner.calls - before
    except Exception as exc:  # a bug or outage in one system's worker must not stop the other's
        LOG.exception("%s worker stopped", system)
        report.paused[system] = f"worker error: {exc}"
    finally:
        if ledger is not None:
            ledger.close()


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
