"""The queue's SQL: which steps are due, taking them in one atomic claim, and fencing late finishes.

Several workers, in several processes or on several machines, take steps from
one ledger. A claim is one transaction that selects the due steps *and* marks
them ``in_flight`` (``attempts + 1``, a lease, a claim token), so no two
workers ever hold the same step:

* PostgreSQL: a plain ``BEGIN`` (not the ledger's global writer lock) and
  ``SELECT ... FOR UPDATE SKIP LOCKED``: a worker skips the rows another
  worker is claiming right now instead of waiting for them, so claims never
  queue behind each other;
* SQLite: ``BEGIN IMMEDIATE``, the file's single writer lock, across processes.

A lease that runs out (a worker killed or stuck) lets another worker take the
step over. The first worker may still be alive and finish late: its
``finish_step``/``release`` carry the claim token and change the row only while
it is still that claim (:data:`STILL_CLAIMED`), so a late finish never
overwrites the new owner's result. The token is fresh per claim, unlike
``attempts``, which replays and ``retry_skipped`` set back (a token cannot be
mistaken for a later claim that happens to reach the same attempt number).
"""

from __future__ import annotations

import logging
import uuid

LOG = logging.getLogger("o2c.claims")

# Dependencies are a comma list of the order's step names (``depends_on``); a step may run when every
# one of them exists and has ended well (done, skipped, mismatch). Counting the ended ones and comparing
# with the number of names keeps a dependency that was never planned blocking, as it always has.
# ``d.state || ''`` is on purpose: it keeps the index on state out of the dependency lookup, which must
# go by the order's own few steps (the (order_key, step) key). PostgreSQL, before it has statistics for
# a freshly filled table, otherwise ANDs in a bitmap of every done step per candidate: 60 s instead of
# 20 ms to claim 50 steps among 100,000.
_DUE = """
    SELECT s.id, s.order_key, s.step, s.state, s.attempts, s.request_id, s.external_id, s.planned_hash
    FROM steps s
    WHERE (s.step = ? OR substr(s.step, 1, ?) = ?)
      AND (s.state = 'pending' OR (s.state = 'failed' AND s.next_attempt_at <= ?)
           OR (s.state = 'in_flight' AND s.lease_until <= ?))
      AND (s.depends_on = ''
           OR (SELECT COUNT(*) FROM steps d
               WHERE d.order_key = s.order_key AND (d.state || '') IN ('done', 'skipped', 'mismatch')
                 AND instr(',' || s.depends_on || ',', ',' || d.step || ',') > 0)
              = length(s.depends_on) - length(replace(s.depends_on, ',', '')) + 1)
    ORDER BY s.priority, s.id
    LIMIT ?
"""
DUE_STEPS = _DUE
# Rows another worker is claiming this instant are skipped, not waited for (PostgreSQL only).
DUE_STEPS_FOR_CLAIM = {"sqlite": _DUE, "postgresql": _DUE + " FOR UPDATE OF s SKIP LOCKED"}

MARK_CLAIMED = ("UPDATE steps SET state = 'in_flight', attempts = attempts + 1, lease_until = ?, claim_token = ?,"
                " updated_at = ? WHERE id IN ({ids})")
# Appended to an UPDATE of one step: it applies only while the step is still the caller's claim.
STILL_CLAIMED = " AND state = 'in_flight' AND claim_token = ?"
CLAIM_CHUNK = 500  # ids per UPDATE: far below either database's limit on parameters


def due_params(kind: str, now_iso: str, limit: int) -> tuple:
    """The parameters of :data:`DUE_STEPS` for steps of ``kind`` (``kind`` or ``kind:<id>``) due at ``now_iso``."""
    return (kind, len(kind) + 1, kind + ":", now_iso, now_iso, limit)


def new_claim_token() -> str:
    return uuid.uuid4().hex


def record_stale_finish(ledger, step_id: int, claim: str, ending: str) -> None:
    """Say that a worker's late ``ending`` of ``step_id`` was dropped: its lease ran out and the step moved on.

    The new owner's result stands; the attempt really happened (its target call is in the events
    as an ``attempt``), which is why this is worth a line: it explains a double attempt.
    """
    row = ledger.conn.execute("SELECT order_key, step, state, attempts FROM steps WHERE id = ?",
                              (step_id,)).fetchone()
    if row is None:
        LOG.warning("step %s is gone; the late %s of claim %s was dropped", step_id, ending, claim[:8])
        return
    order_key, step, state, attempts = row
    detail = (f"a worker's {ending} came after its lease ran out; the step had moved on (now {state}, attempt "
              f"{attempts}), so it was dropped and the newer result stands. Raise queue.lease_seconds if "
              "batches often outlast it")
    LOG.warning("%s %s: %s", order_key, step, detail)
    ledger.record_event("claim", "stale_dropped", order_key=order_key, step=step, detail=detail)
