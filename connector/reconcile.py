"""``o2c reconcile``: prove the books match the stores, per store and window (docs/reconcile.md).

Reads top to bottom as named steps, per store:
1. the window: since the store's last finished run (first run: the last 30 days) until now;
2. what changed in the targets since the last run (QuickBooks change data capture), as order keys;
3. the orders to check: the store's orders updated in the window (re-fetched), the ledger's, those
   the targets changed, and those with a finding still open (so each can close);
4. compare: store against ledger here (``never_synced``, ``behind_store``), ledger and store against
   each target in its checker (adapters/reconcile_*.py);
5. record the findings (a known one is updated, a gone one closed) and the run;
6. with ``fix``: repair the safe findings through the normal steps only (re-fetch the order, forget a
   binding that points at nothing, re-queue steps that probe the target first), run the due steps,
   and check those orders again, closing what is repaired.

Nothing a person did in QuickBooks is ever repaired here: it is reported with what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.errors import MappingError, SourceError, StepError
from connector.findings import (Finding, Fix, OrderState, StepState, finish_run, last_run, live_order_keys, mark,
                                record, rows, start_run)
from connector.ledger import Ledger, iso, utcnow
from connector.planner import steps_for
from connector.snapshot import content_hash, from_json

LOG = logging.getLogger("o2c.reconcile")
FIRST_WINDOW = timedelta(days=30)  # the first run of a store looks this far back
CDC_REACH = timedelta(days=30) - timedelta(minutes=10)  # QuickBooks CDC answers at most 30 days back (notes §2.3)


@dataclass
class StoreRun:
    run_id: int
    store: str
    since: str
    until: str
    cdc_since: str | None
    checked: int = 0
    counts: dict = field(default_factory=dict)
    error: str | None = None
    note: str | None = None
    found: list[Finding] = field(default_factory=list)


@dataclass
class ReconcileResult:
    runs: list[StoreRun] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)  # the findings these runs saw or closed (findings.rows)
    requeued: int = 0

    @property
    def open_unsafe(self) -> list[dict]:
        return [f for f in self.findings if f["status"] == "open" and not f["safe"]]

    @property
    def exit_code(self) -> int:
        """0 when nothing needs a person (no open report-only finding, no failed run); 1 otherwise."""
        return 1 if self.open_unsafe or any(run.error for run in self.runs) else 0

    def as_dict(self) -> dict:
        return {"runs": [{k: v for k, v in vars(run).items() if k != "found"} for run in self.runs],
                "findings": self.findings, "requeued": self.requeued, "exit_code": self.exit_code}


def build_checkers(settings, ledger: Ledger) -> list:
    """The targets' checkers (the reconciler's composition root: like connector.composition, for reads)."""
    from connector.composition import hubspot_target, quickbooks_target
    from adapters.reconcile_hubspot import HubSpotChecker
    from adapters.reconcile_quickbooks import QuickBooksChecker
    from connector.config import doc_prefix
    prefixes = {store.name: doc_prefix(store) for store in settings.stores}
    return [QuickBooksChecker(quickbooks_target(settings, ledger), ledger, prefixes),
            HubSpotChecker(hubspot_target(settings), ledger, settings.hubspot)]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def reconcile(settings, ledger: Ledger, *, store: str | None = None, since: datetime | None = None,
              until: datetime | None = None, fix: bool = False, run_steps: bool = True,
              checkers: list | None = None) -> ReconcileResult:
    """Compare each store (or just ``store``) with the ledger and the targets; record what differs.

    Args:
        since, until: the store window (UTC); by default since the store's last run (first run: 30 days).
        fix: re-queue the safe findings' repairs through the normal steps.
        run_steps: with ``fix``, also run the due steps now and check the repaired orders again
            (the daemon leaves them to its workers).
    """
    from connector.composition import build_sources
    result = ReconcileResult()
    checkers = checkers if checkers is not None else build_checkers(settings, ledger)
    for source, store_settings in build_sources(settings, store):
        run = _run_store(settings, ledger, source, store_settings, checkers, since, until, fix)
        result.runs.append(run)
        if fix and not run.error:
            try:
                run.counts["requeued"] = _apply_fixes(settings, ledger, store_settings, run.found)
            except (SourceError, StepError) as exc:  # the store could not be re-read: the findings stay open
                run.note = f"{run.note + '; ' if run.note else ''}the fixes stopped: {exc}"
                run.counts["requeued"] = sum(1 for f in run.found if f.status == "requeued")
            result.requeued += run.counts["requeued"]
            finish_run(ledger, run.run_id, {**run.counts, "checked": run.checked, "note": run.note}, run.error)
    if fix and run_steps and result.requeued:
        _run_due(settings, ledger)
        for source, store_settings in build_sources(settings, store):
            run = next(r for r in result.runs if r.store == store_settings.name)
            keys = {f.order_key for f in run.found if f.status == "requeued"}
            if keys and not run.error:
                _recheck(ledger, source, store_settings, checkers, run, keys)
    result.findings = rows(ledger, run_ids=[run.run_id for run in result.runs])
    return result


def _run_store(settings, ledger: Ledger, source, store_settings, checkers, since, until, fix) -> StoreRun:
    now = utcnow()
    until = until or now
    previous = last_run(ledger, store_settings.name)
    since = since or (_parse(previous["until"]) if previous else until - FIRST_WINDOW)
    cdc_since = max(_parse(previous["started_at"]) if previous else until - FIRST_WINDOW, now - CDC_REACH)
    run_id = start_run(ledger, store_settings.name, since, until, cdc_since, fix)
    run = StoreRun(run_id, store_settings.name, iso(since), iso(until), iso(cdc_since))
    try:
        changed = set()
        for checker in checkers:
            changed |= checker.changed_orders(store_settings.name, cdc_since)
        notes = [c.cdc_note for c in checkers if getattr(c, "cdc_note", None)]
        run.note = "; ".join(notes) or None
        extra = changed | live_order_keys(ledger, store_settings.name)
        states = _gather(ledger, source, store_settings.name, since, until, extra)
        found = _store_findings(ledger, source, states)
        for checker in checkers:
            found += checker.check(states)
        closed = record(ledger, run_id, store_settings.name, found, {s.order_key for s in states})
        run.checked, run.found = len(states), found
        run.counts = _counts(found, closed)
    except (SourceError, StepError) as exc:
        run.error = str(exc)
        LOG.warning("reconcile of %s stopped: %s", store_settings.name, exc)
    finish_run(ledger, run_id, {**run.counts, "checked": run.checked, "note": run.note}, run.error)
    return run


def _counts(found: list[Finding], closed: list[dict]) -> dict:
    counts: dict = {"findings": len(found), "closed": len(closed), "by_kind": {}}
    for finding in found:
        counts["by_kind"][finding.kind] = counts["by_kind"].get(finding.kind, 0) + 1
    return counts


# -- gather -------------------------------------------------------------------------------

def _gather(ledger: Ledger, source, store: str, since: datetime, until: datetime, extra: set[str]) -> list[OrderState]:
    """Each order to check, as the store has it now (re-fetched), as the ledger has it, with its steps."""
    fresh = {}
    for page in source.fetch_changed(since, until):
        _map_into(source, page, fresh)
    in_ledger = {row[0] for row in ledger.conn.execute(
        "SELECT order_key FROM orders WHERE store = ? AND source_updated_at >= ? AND source_updated_at < ?",
        (store, iso(since), iso(until)))}
    keys = set(fresh) | in_ledger | {k for k in extra if k.startswith(store + ":")}
    missing = sorted(keys - set(fresh))
    if missing:
        _map_into(source, source.fetch_by_ids([k.split(":", 1)[1] for k in missing]), fresh)
    return [_state(ledger, key, fresh.get(key)) for key in sorted(keys)]


def _map_into(source, payloads: list[dict], into: dict) -> None:
    for payload in payloads:
        try:
            order = source.to_order(payload)
        except MappingError:
            continue  # a reject: the ledger's rejects table and `o2c status` already show it
        into[order.order_key] = order


def _state(ledger: Ledger, key: str, store_order) -> OrderState:
    snapshot = ledger.order_snapshot(key)
    steps = {name: StepState(state, error, what) for name, state, error, what in ledger.conn.execute(
        "SELECT step, state, error, what_to_do FROM steps WHERE order_key = ?", (key,))}
    return OrderState(key, store_order, from_json(snapshot) if snapshot else None, steps)


# -- store against ledger -----------------------------------------------------------------

def _store_findings(ledger: Ledger, source, states: list[OrderState]) -> list[Finding]:
    """Orders the poll should have seen by now (updated before the store's cursor) but the ledger lacks or has older."""
    cursor = ledger.cursor(source.store)
    cutoff = _parse(cursor) if cursor else None
    rejected = {row[0] for row in ledger.conn.execute("SELECT order_key FROM rejects WHERE store = ?", (source.store,))}
    findings = []
    for state in states:
        order = state.store_order
        if order is None or state.order_key in rejected or (cutoff and order.updated_at >= cutoff):
            continue
        figures = {"store_updated_at": iso(order.updated_at), "store_total": str(order.total.amount),
                   "currency": order.currency}
        if state.ledger_order is None:
            findings.append(Finding(
                state.order_key, source.system, "never_synced", "order",
                f"the store has order {order.name} ({order.total.amount} {order.currency}, updated "
                f"{iso(order.updated_at)}), which the connector never recorded: a webhook and a poll missed it",
                "--fix reads the order in from the store and books it through the normal steps", True,
                {**figures, "ledger": None}, Fix(refetch=True)))
        elif order.updated_at > state.ledger_order.updated_at and content_hash(order) != content_hash(
                state.ledger_order):
            findings.append(Finding(
                state.order_key, source.system, "behind_store", "order",
                f"the store changed order {order.name} at {iso(order.updated_at)}; the ledger holds the version of "
                f"{iso(state.ledger_order.updated_at)}",
                "--fix reads the order in again; the steps its change needs (a payment, a refund, a void) are "
                "planned and run as usual", True,
                {**figures, "ledger_updated_at": iso(state.ledger_order.updated_at),
                 "ledger_total": str(state.ledger_order.total.amount)}, Fix(refetch=True)))
    return findings


# -- fixes --------------------------------------------------------------------------------

def _apply_fixes(settings, ledger: Ledger, store_settings, found: list[Finding]) -> int:
    """Repair the open safe findings through the normal steps; mark them ``requeued``."""
    from connector.refetch import refetch_orders
    todo = [f for f in found if f.safe and f.fix is not None and f.status == "open"]
    if not todo:
        return 0
    refetch = sorted({f.order_key for f in todo if f.fix.refetch})
    if refetch:
        refetch_orders(settings, ledger, refetch)
    now = iso(utcnow())
    for finding in todo:
        with ledger.transaction():
            for system, kind, key in finding.fix.unbind:
                ledger.conn.execute("DELETE FROM bindings WHERE system = ? AND kind = ? AND canonical_key = ?",
                                    (system, kind, key))
                ledger.record_event("reconcile", "unbound", order_key=finding.order_key, system=system,
                                    detail=f"finding {finding.id} {finding.kind}: forgot {system}/{kind}/{key}")
            if finding.fix.steps:
                _replan(ledger, finding.order_key, getattr(store_settings, "posting", "invoice"))
                for step_id, step in _matching(ledger, finding.order_key, finding.fix.steps):
                    ledger.conn.execute(
                        "UPDATE steps SET state = 'pending', attempts = ?, next_attempt_at = ?, lease_until = NULL,"
                        " updated_at = ? WHERE id = ? AND state != 'in_flight'",
                        (1 if finding.fix.probe else 0, now, now, step_id))
                    ledger.record_event("reconcile", "requeued", order_key=finding.order_key, step=step,
                                        detail=f"finding {finding.id} {finding.kind}")
        finding.status = "requeued"
    mark(ledger, [f.id for f in todo], "requeued")
    return len(todo)


def _replan(ledger: Ledger, order_key: str, posting: str) -> None:
    """Plan what the ledger's snapshot needs and lacks (planning only adds; done steps keep their state)."""
    snapshot = ledger.order_snapshot(order_key)
    if snapshot is None:
        return
    order = from_json(snapshot)
    planned = {name for (name,) in ledger.conn.execute("SELECT step FROM steps WHERE order_key = ?", (order_key,))}
    for step in steps_for(order, posting, planned):
        ledger.plan_step(order_key, step.name, step.depends_on, content_hash(order))


def _matching(ledger: Ledger, order_key: str, wanted: tuple[str, ...]) -> list[tuple[int, str]]:
    found = []
    for step_id, step in ledger.conn.execute("SELECT id, step FROM steps WHERE order_key = ?", (order_key,)):
        if any(step == w or step.startswith(w + ":") for w in wanted):
            found.append((step_id, step))
    return found


def _run_due(settings, ledger: Ledger) -> None:
    from connector.composition import build_runners
    from connector.engine import PassReport, run_due_steps
    run_due_steps(ledger, build_runners(settings, ledger), PassReport(), backoff=tuple(settings.queue.retry_seconds),
                  lease_seconds=settings.queue.lease_seconds)


def _recheck(ledger: Ledger, source, store_settings, checkers, run: StoreRun, keys: set[str]) -> None:
    """After the fixes ran: check the repaired orders again; what is gone closes as ``fixed``."""
    try:
        states = [_state(ledger, key, None) for key in sorted(keys)]
        fresh: dict = {}
        _map_into(source, source.fetch_by_ids([k.split(":", 1)[1] for k in sorted(keys)]), fresh)
        for state in states:
            state.store_order = fresh.get(state.order_key)
        found = _store_findings(ledger, source, states)
        for checker in checkers:
            found += checker.check(states)
        closed = record(ledger, run.run_id, store_settings.name, found, keys, keep_requeued=True)
        run.counts["fixed"] = len(closed)
    except (SourceError, StepError) as exc:
        run.note = f"{run.note + '; ' if run.note else ''}the check after the fixes failed: {exc}"
    finish_run(ledger, run.run_id, {**run.counts, "checked": run.checked, "note": run.note}, run.error)


def run_scheduled(settings, *, fix: bool = True) -> None:
    """The daemon's reconcile job: every store since its last run; safe fixes are queued for the workers."""
    ledger = Ledger(settings.ledger_url)
    try:
        result = reconcile(settings, ledger, fix=fix, run_steps=False)
        for run in result.runs:
            LOG.info("reconcile %s %s..%s: %s", run.store, run.since, run.until,
                     run.error or f"{run.checked} orders checked, {run.counts.get('findings', 0)} findings")
        if result.open_unsafe:
            LOG.warning("reconcile: %d finding(s) need a person; see `o2c reconcile`", len(result.open_unsafe))
    except Exception:  # a scheduled job must not stop the daemon
        LOG.exception("reconcile job failed")
    finally:
        ledger.close()
