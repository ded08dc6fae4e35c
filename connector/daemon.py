"""``o2c daemon``: the connector left running.

APScheduler runs the jobs, each coalesced with one instance at a time (a
slow run is never stacked on itself): poll each store on its interval, a
worker tick that runs due steps (one thread per target system,
``connector.workers``), a token refresh ahead of expiry and, every
``reconcile_hours``, the reconciler (safe fixes are queued for the worker). With a
``webhooks:`` section the daemon serves the webhook server in the same
process, processes its inbox on a short tick and, when
``webhooks.public_base_url`` is set, checks and repairs the stores'
subscriptions every ``webhooks.health_seconds``.

Each job opens its own ledger connection: SQLite connections are not shared
across threads, and WAL lets readers and one writer go on together.

Several daemons may share one ledger (several machines on PostgreSQL, or
several processes on one SQLite file). Every scheduled job except the worker
tick runs under a job lock (:mod:`connector.job_locks`): a daemon that finds
a job running elsewhere skips that run (logged at debug level and counted in
``DaemonState.skipped``). The worker tick is never locked: any number of
workers share the queue through atomic claims. ``run_worker=False`` leaves
the worker tick out altogether, for a daemon beside separate ``o2c worker``
processes (connector/worker_process.py).

SIGTERM or SIGINT: stop taking work (the scheduler stops scheduling, the
worker tick stops claiming), let running jobs finish or release their
claims, and exit 0 within ``shutdown_seconds``. A claim not released (a
kill -9) comes back when its lease expires.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from apscheduler.schedulers.background import BackgroundScheduler

from connector.composition import build_sources, run_all_targets
from connector.engine import pull_store
from connector.job_locks import job_lock
from connector.ledger import Ledger

LOG = logging.getLogger("o2c.daemon")


@dataclass
class DaemonState:
    """What the daemon did, for its log lines and ``o2c status``."""

    stopping: threading.Event = field(default_factory=threading.Event)
    passes: int = 0
    last_poll: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # job -> runs skipped: another node was running it


class Daemon:
    def __init__(self, settings, *, worker_seconds: float = 5.0, shutdown_seconds: float = 30.0,
                 run_worker: bool = True):
        self.settings = settings
        self.worker_seconds = worker_seconds
        self.shutdown_seconds = shutdown_seconds
        self.run_worker = run_worker  # False: due steps are left to `o2c worker` processes
        self.state = DaemonState()
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                          "misfire_grace_time": 60})

    @contextmanager
    def exclusive(self, job: str) -> Iterator[Ledger | None]:
        """A ledger connection of the job's own, holding the job lock ``job``; None when another node has it."""
        ledger = Ledger(self.settings.ledger_url)
        try:
            with job_lock(ledger, job) as held:
                if not held:
                    self.state.skipped[job] = self.state.skipped.get(job, 0) + 1
                    LOG.debug("%s: skipped, another daemon on this ledger is running it", job)
                yield ledger if held else None
        finally:
            ledger.close()

    # -- jobs -------------------------------------------------------------------------------
    def poll_store(self, store_name: str) -> None:
        if self.state.stopping.is_set():
            return
        with self.exclusive(f"poll:{store_name}") as ledger:
            if ledger is not None:
                self._poll(store_name, ledger)

    def _poll(self, store_name: str, ledger: Ledger) -> None:
        (source, store), = build_sources(self.settings, store_name)
        result = pull_store(source, store, ledger)
        if result.error:
            LOG.warning("poll %s failed: %s", store_name, result.error)
        else:
            LOG.info("poll %s: %d orders (%d new, %d changed)", store_name, result.fetched, result.new,
                     result.changed)

    def work(self) -> None:
        """Run due steps until none is due or a stop is asked for (never locked: workers share by claiming)."""
        if self.state.stopping.is_set():
            return
        report = run_all_targets(self.settings, should_stop=self.state.stopping.is_set)
        self.state.passes += 1
        for system, why in report.paused.items():
            LOG.warning("%s paused: %s", system, why)

    def refresh_tokens(self) -> None:
        from adapters.quickbooks_auth import TokenVault
        with self.exclusive("tokens") as ledger:
            if ledger is None:
                return
            try:
                TokenVault(self.settings.quickbooks, ledger).access_token()
            except Exception as exc:  # the worker will meet and report the same problem
                LOG.warning("QuickBooks token refresh: %s", exc)

    def reconcile(self) -> None:
        """Compare stores, ledger and books; queue the safe fixes for the worker (connector.reconcile)."""
        from connector.reconcile import run_scheduled
        if self.state.stopping.is_set():
            return
        # run_scheduled opens ledgers of its own; this connection only holds the lock.
        with self.exclusive("reconcile") as held:
            if held is None:
                return
            try:
                run_scheduled(self.settings)
            except Exception as exc:  # reported by `o2c status` and the next run; the daemon goes on
                LOG.warning("reconcile failed: %s", exc)

    # -- life cycle ---------------------------------------------------------------------------
    def schedule(self) -> None:
        for store in self.settings.stores:
            self.scheduler.add_job(self.poll_store, "interval", args=[store.name], id=f"poll:{store.name}",
                                   seconds=store.poll_seconds, next_run_time=_now())
        if self.run_worker:
            self.scheduler.add_job(self.work, "interval", id="work", seconds=self.worker_seconds,
                                   next_run_time=_now())
        self.scheduler.add_job(self.refresh_tokens, "interval", id="tokens", minutes=30, next_run_time=_now())
        if self.settings.reconcile_hours:
            # First run after one interval: a daemon restarted often must not reconcile at every start.
            self.scheduler.add_job(self.reconcile, "interval", id="reconcile", hours=self.settings.reconcile_hours)
        for extra in _extra_jobs(self):
            self.scheduler.add_job(**extra)

    def stop(self, *_args) -> None:
        if not self.state.stopping.is_set():
            LOG.info("stopping: no new work; running jobs finish or release their claims")
            self.state.stopping.set()

    def run(self, *, run_for: float | None = None) -> int:
        """Run until SIGTERM/SIGINT (or ``run_for`` seconds); return the exit code."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        Ledger(self.settings.ledger_url).close()  # create and migrate once, before the jobs open it together
        self.schedule()
        self.scheduler.start()
        LOG.info("daemon started: %d store(s), ledger %s%s", len(self.settings.stores), self.settings.ledger_shown,
                 "" if self.run_worker else " (no worker: due steps are left to `o2c worker`)")
        server = _start_webhook_server(self)
        dashboard = _start_dashboard_server(self)
        deadline = time.monotonic() + run_for if run_for else None
        while not self.state.stopping.wait(0.2):
            if deadline and time.monotonic() > deadline:
                self.stop()
        for running in (server, dashboard):
            if running is not None:
                running.should_exit = True
        # Jobs see `stopping` between steps; wait for them, but not forever.
        stopper = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        stopper.start()
        stopper.join(self.shutdown_seconds)
        if stopper.is_alive():
            # A job is stuck (a hung vendor call): exit anyway, within the bound. Its open transaction
            # rolls back and its claims come back when their lease expires.
            LOG.warning("jobs still running after %ss; exiting without them", self.shutdown_seconds)
            logging.shutdown()
            os._exit(0)
        LOG.info("daemon stopped")
        return 0


def _now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)


def _extra_jobs(daemon: Daemon) -> list[dict]:
    """Jobs of optional parts (the webhook inbox), when that part is installed."""
    try:
        from connector.intake import process_inbox
    except ImportError:
        return []

    from connector.webhook_health import repair_all

    def on_ledger(work, name: str):
        """A job that runs ``work(settings, ledger)`` on a connection of its own holding the job lock
        ``name``, unless stopping or another daemon on the ledger is running it."""
        def job() -> None:
            if daemon.state.stopping.is_set():
                return
            with daemon.exclusive(name) as ledger:
                if ledger is not None:
                    work(daemon.settings, ledger)
        return job

    # The inbox is locked as a whole: two nodes would fetch the same announced orders twice (recording
    # them is idempotent, the store's rate limit is not).
    process, webhook_health = on_ledger(process_inbox, "inbox"), on_ledger(repair_all, "webhook-health")

    jobs = [{"func": process, "trigger": "interval", "id": "inbox", "seconds": 2, "next_run_time": _now()}]
    hooks = getattr(daemon.settings, "webhooks", None)
    if hooks is not None and hooks.public_base_url:
        jobs.append({"func": webhook_health, "trigger": "interval", "id": "webhook-health",
                     "seconds": hooks.health_seconds, "next_run_time": _now()})
    return jobs


def _start_webhook_server(daemon: Daemon):
    """Serve webhooks in a thread of this process, bound as configured (127.0.0.1 by default)."""
    try:
        from connector.webhook_server import create_webhook_app
    except ImportError:
        return None
    import uvicorn
    hooks = getattr(daemon.settings, "webhooks", None)
    if hooks is None:
        return None
    config = uvicorn.Config(create_webhook_app(daemon.settings, daemon.settings.ledger_url), host=hooks.host,
                            port=hooks.port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the daemon owns SIGTERM/SIGINT
    threading.Thread(target=server.run, name="webhooks", daemon=True).start()
    return server


def _start_dashboard_server(daemon: Daemon):
    """Serve the admin dashboard in a thread of this process when a ``dashboard:`` section exists."""
    if getattr(daemon.settings, "dashboard", None) is None:
        return None
    from connector.dashboard import dashboard_server
    server = dashboard_server(daemon.settings)
    server.install_signal_handlers = lambda: None  # the daemon owns SIGTERM/SIGINT
    threading.Thread(target=server.run, name="dashboard", daemon=True).start()
    return server
