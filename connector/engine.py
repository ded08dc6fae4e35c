"""One sync pass: pull what changed from each store, plan steps, run the due ones.

Reads top to bottom as named steps, like OCA's synchronizer: pull a window,
record each order (skip if unchanged or older), plan its steps, then run
due steps per target in batches and record how each attempt ended. The
cursor advances only after the window's orders are committed (DESIGN.md,
dlt's rule), and a window overlaps the previous one by the store's lookback
so an order committed mid-run at the store is not missed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from connector.errors import (MappingError, PausedError, PermanentError, RetryableError, SkippableError,
                              SourceError)
from connector.ledger import PRIORITY, Ledger, iso, utcnow
from connector.snapshot import content_hash, from_json
from connector.planner import KINDS, kind_of, steps_for
from connector.protocols import OrderSource, Outcome, StepRunner, Work

HELD = "held_for_review"  # error code: a person edited the target's document; never overwrite it
MISMATCH_NOTE = "total mismatch"  # outcome note: booked, but the totals differ

# Default per-step retry schedule (seconds; `queue.retry_seconds`) before a step is declared dead.
BACKOFF = (30, 120, 600, 1800, 3600, 6 * 3600, 12 * 3600)


@dataclass
class StorePull:
    store: str
    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0  # could not be mapped to a balanced order: see the ledger's rejects
    error: str | None = None


@dataclass
class PassReport:
    pulls: list[StorePull] = field(default_factory=list)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> state -> n
    created: dict[str, int] = field(default_factory=dict)  # step -> remote creates
    calls: dict[str, int] = field(default_factory=dict)  # system -> API calls
    paused: dict[str, str] = field(default_factory=dict)  # system -> why its steps wait

    def count(self, step: str, outcome: Outcome) -> None:
        states = self.outcomes.setdefault(step, {})
        states[outcome.state] = states.get(outcome.state, 0) + 1
        if outcome.created:
            self.created[step] = self.created.get(step, 0) + 1


Progress = Callable[[str, int], None]  # (what, how many more) for progress bars


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def pull_store(source: OrderSource, settings, ledger: Ledger, *, now: datetime | None = None,
               progress: Progress | None = None) -> StorePull:
    """Pull one store's changed orders into the ledger and plan their steps."""
    result = StorePull(source.store)
    now = now or utcnow()
    stored = ledger.cursor(source.store)
    cursor = _parse(stored) if stored else _parse(settings.initial_cursor)
    since = cursor - timedelta(seconds=settings.lookback_seconds) if stored else cursor
    until = now - timedelta(seconds=settings.safety_lag_seconds)
    if until <= since:
        return result
    try:
        for page in source.fetch_changed(since, until):
            with ledger.transaction():
                record_page(source, page, ledger, result)
            if progress:
                progress(f"pull:{source.store}", len(page))
    except SourceError as exc:
        result.error = str(exc)
        # Recorded like a good pull (detail starts with the store) so `o2c status` can say a store is failing.
        ledger.record_event("pull", "failed", error=str(exc),
                            detail=f"{source.store} {iso(since)}..{iso(until)} failed after {result.fetched} orders")
        return result  # cursor stays where it was: the window is read again next pass
    ledger.set_cursor(source.store, iso(until))
    ledger.record_event("pull", "ok", detail=f"{source.store} {iso(since)}..{iso(until)} {result.fetched} orders")
    return result


def record_page(source: OrderSource, page: list[dict], ledger: Ledger, result: StorePull, *,
                via: str = "poll") -> None:
    """Map and record one page of raw payloads (inside the caller's transaction).

    ``via`` (webhook | poll | backfill) sets where the order's steps go in the queue.
    """
    for payload in page:
        try:
            order = source.to_order(payload)
        except MappingError as exc:
            result.fetched += 1
            result.rejected += 1
            ledger.record_reject(source.store, source.source_id(payload), exc, payload)
            continue
        _record(order, ledger, result, getattr(source, "posting", "invoice"), PRIORITY[via])


def _record(order, ledger: Ledger, result: StorePull, posting: str, priority: int) -> None:
    result.fetched += 1
    ledger.clear_reject(order.order_key)
    change = ledger.record_order(order)
    setattr(result, change.outcome, getattr(result, change.outcome) + 1)
    if change.outcome in ("new", "changed"):
        digest = change.content_hash or content_hash(order)
        planned = {name for (name,) in ledger.conn.execute("SELECT step FROM steps WHERE order_key = ?",
                                                           (order.order_key,))}
        wanted = steps_for(order, posting, planned)
        for step in wanted:
            ledger.plan_step(order.order_key, step.name, step.depends_on, digest, priority=priority)
        if change.outcome == "changed":
            # A step skipped for what the order lacked then (no email, a refund missing from an
            # older snapshot) gets another go now that the order says something new.
            ledger.retry_skipped(order.order_key, [step.name for step in wanted])
    if priority < PRIORITY["poll"]:
        ledger.raise_priority(order.order_key, priority)


def run_due_steps(ledger: Ledger, runners: list[StepRunner], report: PassReport, *,
                  progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                  backoff: tuple[int, ...] = BACKOFF, lease_seconds: int = 300) -> None:
    """Run every due step, kind by kind in dependency order, until none is due.

    Each batch is taken with one atomic claim (:meth:`Ledger.claim_due`), so
    any number of workers, in any number of processes or machines, can run
    this on one ledger: none takes a step another holds. Every ending names the
    claim, so a worker whose lease ran out (and whose step was taken over)
    cannot overwrite the new owner's result.

    ``should_stop`` is asked between batches: a stopping daemon claims nothing
    more, and the batch in hand is finished and recorded first. ``backoff`` is
    the wait before each retry (``queue.retry_seconds``); ``lease_seconds`` how
    long a claim lasts before another worker may take the step over.
    """
    by_kind = {kind: runner for runner in runners for kind in runner.steps}
    for step in KINDS:
        runner = by_kind.get(step)
        if runner is None or runner.system in report.paused:
            continue
        while runner.system not in report.paused:
            if should_stop and should_stop():
                return
            due = ledger.claim_due(step, limit=runner.batch_size, lease_seconds=lease_seconds)
            if not due:
                break
            claim = due[0].claim_token  # one claim per batch
            work = [Work(row.id, row.step, from_json(ledger.order_snapshot(row.order_key)), row.request_id,
                         row.attempts) for row in due]
            started = time.monotonic()
            try:
                outcomes = runner.run(step, work)
            except PausedError as exc:  # e.g. QuickBooks needs reconnecting: wait, spend no retry
                ledger.release([w.step_id for w in work], str(exc), exc.what_to_do, claim=claim)
                report.paused[runner.system] = f"{exc} {exc.what_to_do}".strip()
                break
            except Exception as exc:  # a runner bug or outage must not lose the claimed steps
                outcomes = [Outcome(w.step_id, "failed", error=exc) for w in work]
            pause = next((o.error for o in outcomes if isinstance(o.error, PausedError)), None)
            if pause is not None:  # the runner met it per step: the whole system waits all the same
                ledger.release([w.step_id for w in work], str(pause), pause.what_to_do, claim=claim)
                report.paused[runner.system] = f"{pause} {pause.what_to_do}".strip()
                break
            elapsed = int((time.monotonic() - started) * 1000)
            # One transaction for the batch's endings and their events: written one by one, each was its own
            # write transaction, and a target's worker queued behind the other targets' workers for the
            # SQLite writer lock twice per step (the engine's largest wait, in its profile).
            with ledger.step_endings():
                for item, outcome in zip(work, outcomes):
                    _finish(ledger, item, outcome, elapsed // max(1, len(work)), backoff, claim)
                    report.count(step, outcome)
            if progress:
                progress(step, len(work))


def _finish(ledger: Ledger, item: Work, outcome: Outcome, duration_ms: int,
            backoff: tuple[int, ...] = BACKOFF, claim: str | None = None) -> None:
    error = outcome.error
    state, retry_at, what_to_do = outcome.state, None, None
    if error is not None:
        what_to_do = getattr(error, "what_to_do", None) or None
        if isinstance(error, SkippableError):
            state = "skipped"
        elif isinstance(error, PermanentError) and error.code == HELD:
            state = "held"
        elif isinstance(error, PermanentError):
            state = "dead"
        elif item.attempts > len(backoff):
            state = "dead"
            what_to_do = what_to_do or "the target kept failing; check its status, then replay"
        else:
            state = "failed"
            delay = backoff[min(item.attempts, len(backoff)) - 1]
            if isinstance(error, RetryableError) and error.retry_after:
                delay = max(delay, error.retry_after)
            retry_at = utcnow() + timedelta(seconds=delay)
        outcome.state = state
    elif outcome.state == "done" and (outcome.note or "").startswith(MISMATCH_NOTE):
        state = outcome.state = "mismatch"  # booked, but the target's figures differ from the store's
        what_to_do = "compare the document with the store's order (both figures are in the error); fix it in " \
                     "the target, or accept it"
    message = str(error) if error is not None else outcome.note
    ledger.finish_step(item.step_id, state, external_id=outcome.external_id, error=message,
                       what_to_do=what_to_do, retry_at=retry_at, claim=claim)
    # The events table keeps the attempt whole (docs/ledger.md): the error apart from what the target
    # answered; a skip is no failure, its reason is what the step found.
    failure = str(error) if error is not None and state != "skipped" else None
    response = outcome.response
    if response is None and state == "skipped":
        response = f"skipped: {error}" if error is not None else "skipped"
    ledger.record_event("attempt", state, order_key=item.order.order_key, step=item.step,
                        request_id=outcome.request_id or item.request_id, payload_hash=outcome.payload_hash,
                        response=response, error=failure, detail=message, duration_ms=duration_ms)


def sync_pass(sources: list[tuple[OrderSource, object]], runners: list[StepRunner], ledger: Ledger, *,
              progress: Progress | None = None, now: datetime | None = None) -> PassReport:
    """One whole pass: every store pulled, then every due step run."""
    report = PassReport()
    for source, settings in sources:
        report.pulls.append(pull_store(source, settings, ledger, now=now, progress=progress))
    run_due_steps(ledger, runners, report, progress=progress)
    for source, _ in sources:
        report.calls[source.system] = report.calls.get(source.system, 0) + source.calls
    for runner in runners:
        report.calls[runner.system] = report.calls.get(runner.system, 0) + runner.calls
    return report
