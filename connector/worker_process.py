"""``o2c worker``: a process that only runs due steps, as many of them beside each other as you like.

A daemon started with ``--no-worker`` keeps polling, serving webhooks and
reconciling; these processes (on the same machine or others sharing a
PostgreSQL ledger) do the target writes. They share the queue through atomic
claims (``Ledger.claim_due``): no two take the same step, and a step whose
worker died comes back when its lease runs out.

The loop: one pass over every target (:func:`connector.composition.run_all_targets`,
one thread per target system), again at once while passes find work, a pause of
``idle_seconds`` when one did nothing. SIGTERM or SIGINT stops it like the
daemon: nothing more is claimed, the batch in hand is finished and recorded,
exit 0 (within :data:`SHUTDOWN_SECONDS`; a call that hangs past it is abandoned,
its steps come back when their leases run out).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from connector.composition import run_all_targets
from connector.ledger import Ledger

LOG = logging.getLogger("o2c.worker")

SHUTDOWN_SECONDS = 30.0  # after a signal, how long the batch in hand may take before the process exits anyway
ERROR_PAUSE_SECONDS = 5.0  # the wait after a pass that failed as a whole (the ledger unreachable, say)


def run_worker(settings, *, run_for: float | None = None, idle_seconds: float = 1.0) -> int:
    """Run due steps until SIGTERM/SIGINT (or ``run_for`` seconds); return the exit code (0).

    Signals are handled only when called from the main thread (Python delivers them there).
    """
    stopping = threading.Event()
    finished = threading.Event()

    def stop(signum, _frame) -> None:
        if stopping.is_set():
            return
        LOG.info("%s: no new claims; finishing the batch in hand", signal.Signals(signum).name)
        stopping.set()
        threading.Thread(target=_exit_if_stuck, args=(finished,), name="worker-shutdown", daemon=True).start()

    previous = _install(stop)
    try:
        Ledger(settings.ledger_url).close()  # create and migrate once, before the target threads open it together
        LOG.info("worker started: ledger %s, pid %d", settings.ledger_shown, os.getpid())
        deadline = time.monotonic() + run_for if run_for is not None else None

        def should_stop() -> bool:  # asked between batches: a long backlog does not outlive run_for
            return stopping.is_set() or (deadline is not None and time.monotonic() >= deadline)

        passes, steps, last_paused = 0, 0, {}
        while not stopping.is_set():
            ran, last_paused = _one_pass(settings, should_stop, stopping, last_paused)
            passes, steps = passes + 1, steps + ran
            remaining = deadline - time.monotonic() if deadline is not None else None
            if remaining is not None and remaining <= 0:
                break
            if ran == 0:
                wait = idle_seconds if remaining is None else min(idle_seconds, remaining)
                stopping.wait(wait)
        LOG.info("worker stopped: %d steps in %d passes", steps, passes)
        return 0
    finally:
        finished.set()
        _restore(previous)


def _one_pass(settings, should_stop, stopping: threading.Event,
              last_paused: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Run every due step once over; how many attempts ended, and what is paused now (logged when it changes)."""
    started = time.monotonic()
    try:
        report = run_all_targets(settings, should_stop=should_stop)
    except Exception:  # noqa: BLE001 - one failed pass must not end the worker; the next may succeed
        LOG.exception("worker pass failed; trying again in %ss", ERROR_PAUSE_SECONDS)
        stopping.wait(ERROR_PAUSE_SECONDS)
        return 0, last_paused
    ran = sum(n for states in report.outcomes.values() for n in states.values())
    if ran:
        by_state: dict[str, int] = {}
        for states in report.outcomes.values():
            for state, n in states.items():
                by_state[state] = by_state.get(state, 0) + n
        LOG.info("pass: %d steps in %.1fs (%s)", ran, time.monotonic() - started,
                 ", ".join(f"{n} {state}" for state, n in sorted(by_state.items())))
    for system, why in report.paused.items():
        if last_paused.get(system) != why:  # once per reason, not once per idle second
            LOG.warning("%s paused: %s", system, why)
    return ran, dict(report.paused)


def _exit_if_stuck(finished: threading.Event) -> None:
    """After a stop signal: exit anyway when the batch in hand outlasts the allowance (a hung vendor call)."""
    if not finished.wait(SHUTDOWN_SECONDS):
        LOG.warning("the batch in hand still runs after %ss; exiting without it (its steps come back when "
                    "their leases run out)", SHUTDOWN_SECONDS)
        logging.shutdown()
        os._exit(0)


def _install(handler) -> dict | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(previous: dict | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)
