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
# The open steps (pending, failed, in flight) have an index of their own (migration 12, ``steps_open``
# on (step, priority, id) where the state is open); the condition below is that index's own, word for
# word, so that both databases know they may use it. A kind is looked up twice, each an index range:
# its plain step (``kind``, read in queue order straight off the index) and its variants
# (``kind:<id>``, the range between ``kind:`` and ``kind;``), merged by queue order. Before, one query
# matched ``step = ? OR substr(step, ...)``, which no index serves: every claim walked the whole steps
# table in queue order, done steps included, so idle workers kept the ledger's CPU busy (4 idle workers
# on 26,000 steps took both cores of the machine).
_OPEN = "s.state IN ('pending', 'failed', 'in_flight')"
_DUE = """
    SELECT s.id, s.order_key, s.step, s.state, s.attempts, s.request_id, s.external_id, s.planned_hash,
           s.priority
    FROM steps s{index}
    WHERE {open} AND {step}
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
# SQLite is told the index: without statistics its planner reads the variants' range through the
# index on (state, next_attempt_at) instead, every open step of every kind (100 ms at 50,000 orders).
_INDEX = {"sqlite": " INDEXED BY steps_open", "postgresql": ""}
DUE_PLAIN = {backend: _DUE.format(index=index, open=_OPEN, step="s.step = ?") for backend, index in _INDEX.items()}
DUE_VARIANTS = {backend: _DUE.format(index=index, open=_OPEN, step="s.step > ? AND s.step < ?")
                for backend, index in _INDEX.items()}
# Rows another worker is claiming this instant are skipped, not waited for (PostgreSQL only).
FOR_CLAIM = {"sqlite": "", "postgresql": " FOR UPDATE OF s SKIP LOCKED"}

MARK_CLAIMED = ("UPDATE steps SET state = 'in_flight', attempts = attempts + 1, lease_until = ?, claim_token = ?,"
                " updated_at = ? WHERE id IN ({ids})")
# Appended to an UPDATE of one step: it applies only while the step is still the caller's claim.
STILL_CLAIMED = " AND state = 'in_flight' AND claim_token = ?"
CLAIM_CHUNK = 500  # ids per UPDATE: far below either database's limit on parameters


def due_rows(conn, backend: str, kind: str, now_iso: str, limit: int, *, claim: bool = False) -> list[tuple]:
    """Up to ``limit`` due steps of ``kind`` (``kind`` or ``kind:<id>``) at ``now_iso``, in queue order.

    Rows are ``(id, order_key, step, state, attempts, request_id, external_id, planned_hash, priority)``.
    ``claim``: the rows are being claimed (PostgreSQL locks them, skipping those another worker is
    claiming; a row the merge leaves out stays locked only until the claim's transaction ends).
    """
    lock = FOR_CLAIM[backend] if claim else ""
    rows = conn.execute(DUE_PLAIN[backend] + lock, (kind, now_iso, now_iso, limit)).fetchall()
    rows += conn.execute(DUE_VARIANTS[backend] + lock,
                         (kind + ":", kind + ";", now_iso, now_iso, limit)).fetchall()
    return sorted(rows, key=lambda row: (row[8], row[0]))[:limit]


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
