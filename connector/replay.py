"""``o2c replay``: give failed, dead or skipped steps another go, exactly once like everything else.

Selecting is read-only; replaying puts the selected steps back to
``pending`` with a fresh attempt count and runs them through the normal
runners, so bindings and request ids still make the effect exactly-once: a
step whose document was booked after all finds its binding (or probes the
target) instead of booking again. A step that was attempted before counts as
attempted once (not zero), so its first replayed attempt probes the target
(DocNumber, PaymentRefNum) like any retry: the earlier attempt may have
booked it and lost the answer. ``--dry-run`` shows what a replay would send,
field by field, and changes nothing (:mod:`connector.dry_run`). ``--fresh`` re-reads the orders from their
stores first, so a replay books what the store says now.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.ledger import Ledger, iso, utcnow

REPLAYABLE = ("failed", "dead", "skipped", "held", "mismatch")


@dataclass(frozen=True)
class Selection:
    order_keys: tuple[str, ...] = ()
    step: str | None = None  # a kind (quickbooks.invoice) or a full name (quickbooks.payment:123)
    states: tuple[str, ...] = ("failed", "dead")
    system: str | None = None
    since: str | None = None  # ISO instants, on the step's last update
    until: str | None = None


def select(ledger: Ledger, selection: Selection) -> list[dict]:
    """The steps a replay would touch, with what they last said."""
    where, args = [f"state IN ({','.join('?' * len(selection.states))})"], list(selection.states)
    if selection.order_keys:
        where.append(f"order_key IN ({','.join('?' * len(selection.order_keys))})")
        args += selection.order_keys
    if selection.step:
        where.append("(step = ? OR substr(step, 1, ?) = ?)")
        args += [selection.step, len(selection.step) + 1, selection.step + ":"]
    if selection.system:
        where.append("substr(step, 1, ?) = ?")
        args += [len(selection.system) + 1, selection.system + "."]
    if selection.since:
        where.append("updated_at >= ?")
        args.append(selection.since)
    if selection.until:
        where.append("updated_at < ?")
        args.append(selection.until)
    rows = ledger.conn.execute(
        "SELECT id, order_key, step, state, attempts, error, what_to_do, updated_at FROM steps WHERE "
        + " AND ".join(where) + " ORDER BY order_key, id", args).fetchall()
    keys = ("id", "order_key", "step", "state", "attempts", "error", "what_to_do", "updated_at")
    return [dict(zip(keys, row)) for row in rows]


def requeue(ledger: Ledger, steps: list[dict]) -> int:
    """Put ``steps`` back in the queue, due now, with their attempts reset; record why in events.

    Reset to 1 when the step was attempted (its next attempt is a retry, which probes before it
    creates), else 0.
    """
    now = iso(utcnow())
    with ledger.transaction():
        for step in steps:
            ledger.conn.execute(
                "UPDATE steps SET state='pending', attempts=MIN(attempts, 1), next_attempt_at=?, lease_until=NULL, updated_at=?"
                " WHERE id=? AND state IN ('failed','dead','skipped','held','mismatch')", (now, now, step["id"]))
            ledger.record_event("replay", "requeued", order_key=step["order_key"], step=step["step"],
                                detail=f"was {step['state']}: {step['error'] or ''}"[:500])
    return len(steps)
