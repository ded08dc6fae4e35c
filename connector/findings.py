"""What the reconciler found, kept in the ledger: ``reconcile_runs`` and ``findings`` (migration 9).

A finding is one disagreement between a store, the ledger and a target,
named by ``(store, order_key, system, kind, subject)``. Recording a run's
findings updates the ones already known (``last_seen_at``, the figures, the
proposed action), adds the new ones, and closes (status ``fixed``) the
known ones the run no longer sees for the orders it checked. A finding a
person has ``accepted`` stays accepted while it lasts. Schema: docs/ledger.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from connector.ledger import Ledger, iso, utcnow

LIVE = ("open", "requeued", "accepted")  # statuses of a finding that is still there


@dataclass(frozen=True)
class Fix:
    """How ``--fix`` repairs a safe finding, through the normal steps only.

    ``refetch``: read the order from its store into the ledger (it plans what is missing).
    ``unbind``: bindings ``(system, kind, canonical key)`` that point at nothing, forgotten first
    so the step looks the object up again. ``steps``: names or kinds (``quickbooks.payment``) of
    the order's steps to put back in the queue, planned first if missing. ``probe``: the re-queued
    steps look in the target before writing (they run as a second attempt), so nothing is booked twice.
    """

    refetch: bool = False
    unbind: tuple[tuple[str, str, str], ...] = ()
    steps: tuple[str, ...] = ()
    probe: bool = False


@dataclass
class Finding:
    """One disagreement, with what a person (or ``--fix``) should do about it."""

    order_key: str
    system: str
    kind: str
    subject: str
    text: str  # one line: what is wrong, with both figures
    proposed_action: str
    safe: bool
    figures: dict = field(default_factory=dict)  # both sides' values, e.g. {"store": "25.00", "quickbooks": "30.00"}
    fix: Fix | None = None
    id: int | None = None
    status: str = "open"

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.order_key, self.system, self.kind, self.subject)

    @property
    def detail(self) -> str:
        return json.dumps({"text": self.text, **self.figures}, sort_keys=True, default=str)


# -- runs ---------------------------------------------------------------------------------

def last_run(ledger: Ledger, store: str) -> dict | None:
    """The store's latest run that finished without error."""
    cursor = ledger.conn.execute(
        "SELECT * FROM reconcile_runs WHERE store = ? AND finished_at IS NOT NULL AND error IS NULL"
        " ORDER BY id DESC LIMIT 1", (store,))
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row)) if row else None


def start_run(ledger: Ledger, store: str, since: datetime, until: datetime, cdc_since: datetime | None,
              fix: bool) -> int:
    cursor = ledger.conn.execute(
        "INSERT INTO reconcile_runs (store, since, until, cdc_since, fix, started_at) VALUES (?, ?, ?, ?, ?, ?)",
        (store, iso(since), iso(until), iso(cdc_since) if cdc_since else None, int(fix), iso(utcnow())))
    return cursor.lastrowid


def finish_run(ledger: Ledger, run_id: int, counts: dict, error: str | None = None) -> None:
    ledger.conn.execute("UPDATE reconcile_runs SET finished_at = ?, counts = ?, error = ? WHERE id = ?",
                        (iso(utcnow()), json.dumps(counts, sort_keys=True), error, run_id))


# -- findings -----------------------------------------------------------------------------

def live_order_keys(ledger: Ledger, store: str) -> set[str]:
    """Orders with a finding still there: every run checks them again, so each can close."""
    marks = ",".join("?" * len(LIVE))
    return {row[0] for row in ledger.conn.execute(
        f"SELECT DISTINCT order_key FROM findings WHERE store = ? AND status IN ({marks})", (store, *LIVE))}


def record(ledger: Ledger, run_id: int, store: str, found: list[Finding], checked: set[str], *,
           keep_requeued: bool = False) -> list[dict]:
    """Store a run's findings: update the known, add the new, close the gone (of the ``checked`` orders).

    Sets each finding's ``id`` and ``status``; returns the rows closed now. A finding seen again
    is ``open`` again (unless accepted), or stays ``requeued`` with ``keep_requeued`` (the check
    right after a fix, while its steps may still be on their way).
    """
    now = iso(utcnow())
    marks = ",".join("?" * len(LIVE))
    known = {}
    for row in ledger.conn.execute(
            f"SELECT id, order_key, system, kind, subject, status FROM findings WHERE store = ? AND status IN ({marks})"
            " ORDER BY id", (store, *LIVE)):
        known.setdefault(tuple(row[1:5]), (row[0], row[5]))
    seen = set()
    closed = []
    with ledger.transaction():
        for finding in found:
            if finding.identity in seen:
                continue  # one object, one finding
            seen.add(finding.identity)
            if finding.identity in known:
                finding.id, status = known[finding.identity]
                if status == "accepted" or (status == "requeued" and keep_requeued):
                    finding.status = status
                else:
                    finding.status = "open"
                ledger.conn.execute(
                    "UPDATE findings SET run_id = ?, detail = ?, proposed_action = ?, safe = ?, status = ?,"
                    " last_seen_at = ? WHERE id = ?",
                    (run_id, finding.detail, finding.proposed_action, int(finding.safe), finding.status, now,
                     finding.id))
            else:
                finding.status = "open"
                finding.id = ledger.conn.execute(
                    "INSERT INTO findings (run_id, store, order_key, system, kind, subject, detail, proposed_action,"
                    " safe, status, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
                    (run_id, store, finding.order_key, finding.system, finding.kind, finding.subject, finding.detail,
                     finding.proposed_action, int(finding.safe), now, now)).lastrowid
            if "{id}" in finding.proposed_action:  # the action names the finding: `o2c reconcile --accept <id>`
                finding.proposed_action = finding.proposed_action.replace("{id}", str(finding.id))
                ledger.conn.execute("UPDATE findings SET proposed_action = ? WHERE id = ?",
                                    (finding.proposed_action, finding.id))
        for identity, (finding_id, _) in known.items():
            if identity in seen or identity[0] not in checked:
                continue
            ledger.conn.execute("UPDATE findings SET status = 'fixed', closed_at = ?, run_id = ? WHERE id = ?",
                                (now, run_id, finding_id))
            closed.append({"id": finding_id, "order_key": identity[0], "system": identity[1], "kind": identity[2],
                           "subject": identity[3]})
    return closed


def mark(ledger: Ledger, finding_ids: list[int], status: str) -> int:
    """Set the status of findings (``requeued`` after a fix; ``accepted`` by a person); how many changed."""
    if not finding_ids:
        return 0
    marks = ",".join("?" * len(finding_ids))
    return ledger.conn.execute(f"UPDATE findings SET status = ? WHERE id IN ({marks})",
                               (status, *finding_ids)).rowcount


def accept(ledger: Ledger, finding_ids: list[int]) -> int:
    """A person says the difference is intended (e.g. a bookkeeper's correction): stop reporting it as open."""
    marks = ",".join("?" * len(finding_ids)) if finding_ids else "NULL"
    return ledger.conn.execute(
        f"UPDATE findings SET status = 'accepted' WHERE id IN ({marks}) AND status IN ('open', 'requeued')",
        tuple(finding_ids)).rowcount


def rows(ledger: Ledger, *, run_ids: list[int] | None = None, store: str | None = None,
         statuses: tuple[str, ...] | None = None) -> list[dict]:
    """Findings as dicts (``detail`` parsed), selected by the runs that last touched them, store, status."""
    where, args = [], []
    if run_ids is not None:
        where.append(f"run_id IN ({','.join('?' * len(run_ids)) or 'NULL'})")
        args += run_ids
    if store:
        where.append("store = ?")
        args.append(store)
    if statuses:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        args += statuses
    cursor = ledger.conn.execute(
        "SELECT * FROM findings" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY kind, order_key, id",
        args)
    names = [d[0] for d in cursor.description]
    result = []
    for row in cursor.fetchall():
        item = dict(zip(names, row))
        item["detail"] = json.loads(item["detail"])
        item["safe"] = bool(item["safe"])
        result.append(item)
    return result


# -- what the checkers compare ------------------------------------------------------------

IN_PROGRESS = ("pending", "in_flight", "failed")  # a step still on its way: not a finding yet


@dataclass(frozen=True)
class StepState:
    state: str
    error: str | None = None
    what_to_do: str | None = None


@dataclass
class OrderState:
    """One order as each side has it: re-fetched from its store, the ledger's snapshot, its steps."""

    order_key: str
    store_order: object | None  # connector.model.Order, or None when the store no longer returns it
    ledger_order: object | None  # the ledger's snapshot, or None when the ledger never recorded it
    steps: dict[str, StepState] = field(default_factory=dict)

    @property
    def order(self):
        """The store's order as it is now (the ledger's snapshot when the store did not return it)."""
        return self.store_order or self.ledger_order

    def state(self, step: str) -> str | None:
        found = self.steps.get(step)
        return found.state if found else None

    def latest(self, kind: str) -> str | None:
        """The newest step of a numbered kind (``hubspot.deal_sync:3``), by its number."""
        named = [s for s in self.steps if s.startswith(kind + ":")]
        return max(named, key=lambda s: int(s.rsplit(":", 1)[1]) if s.rsplit(":", 1)[1].isdigit() else -1,
                   default=None)
