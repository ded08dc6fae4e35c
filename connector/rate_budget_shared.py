"""Rate budgets shared by every process on one ledger, so that N workers together stay under a vendor's limit.

:class:`~connector.rate_budget.RateBudget` keeps one process under a limit. Two
daemons (or a daemon and an ``o2c replay``) on the same QuickBooks company would
each think they have the 500 requests a minute and the 10 concurrent requests
to themselves. Called once at process start, :func:`share_budgets` gives every
budget of the process a :class:`SharedGate` over the ledger's ``rate_slots``
(:mod:`connector.rate_slots`); a request then goes when the in-process checks
*and* the gate let it. The gate applies the same rules as the in-process budget,
to every process's requests:

* a request counts in each rolling window from the moment it is granted, and
  until one window after it *ended* (stamped at the end, so ours never expires
  before the vendor's count, which stamps it on arrival, in between);
* at most ``max_concurrent`` are in flight at once;
* a 429 penalty (``blocked_until``) and a vendor hint (HubSpot's ``Remaining``
  lower than every process's count together) are rows too, so they stop or slow
  the other processes as well as this one;
* a holder that died with a slot in flight gives it back when its lease runs out
  (its units still count for one window after that, as the vendor may have
  counted them).

Cost: a grant is one short transaction (lock, read the budget's live rows, insert
one) and a release one ``UPDATE``; a request that must wait sleeps *outside* the
transaction, for as long as the rows say (or polls briefly when only a release
elsewhere can help), then tries again. Rows that left every window are deleted in
batches, at most a few times per window. ``benchmarks/bench_shared_budget.py``
measures it.

Recovery (DESIGN.md "Two retry layers"):

=====================================  ================================================
what happened                          what the caller gets
=====================================  ================================================
the wait would exceed ``max_wait``     :class:`~connector.rate_budget.RateLimited` (the step is retried later)
the ledger cannot be read or written   :class:`~connector.errors.RetryableError` naming the ledger
releasing fails (ledger gone)          nothing: the row counts until its lease runs out
=====================================  ================================================
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from connector.errors import RetryableError
from connector.rate_budget import Limits, RateLimited, set_gate_maker
from connector.rate_slots import Slot, SlotTable, Usage, holder_name

LOG = logging.getLogger(__name__)

# A request in flight longer than this is taken for dead: QuickBooks times requests out at 120 s
# (../shared/notes/quickbooks.md §3) and the adapters' own timeouts are shorter still.
DEFAULT_LEASE_SECONDS = 180.0
# Waiting for a release in another process: there is no signal across processes, so poll, starting
# short (a request often ends within milliseconds) and backing off so waiters do not flood the ledger.
FIRST_POLL_SECONDS, LONGEST_POLL_SECONDS = 0.005, 0.1
# Slack added to a computed wait, so the retry lands after the unit has left the window, not on its edge.
EDGE_SECONDS = 0.001
# How long a row is kept after it left the longest window: slack for the clocks of a SQLite ledger's
# processes (tests raise it to read every grant back).
KEEP_AFTER_WINDOW_SECONDS = 1.0
# HubSpot reports its count on every answer; with several processes nearly every answer says fewer
# remain than this process alone spent, so the shared comparison (a transaction) runs at most this often.
OBSERVE_EVERY_SECONDS = 0.25


def fits(usage: Usage, cost: int, limits: Limits) -> bool:
    """Whether a request of ``cost`` units may go now: the rule of
    :meth:`RateBudget._delay <connector.rate_budget.RateBudget._delay>`, on every process's requests.

    In each window, the units in flight plus those that ended less than a window ago, plus this
    one, must not pass the limit (a request costing more than the limit goes alone in an empty
    window); fewer than ``max_concurrent`` may be in flight; no 429 pause may be running.
    """
    if usage.blocked_until is not None and usage.blocked_until > usage.now:
        return False
    if limits.max_concurrent is not None and usage.in_flight >= limits.max_concurrent:
        return False
    return all(used + min(cost, max(1, window.limit)) <= max(1, window.limit)
               for used, window in zip(usage.used, limits.windows))


@dataclass(frozen=True)
class Verdict:
    """How long a request that does not fit waits: ``wait`` seconds, or None: until a release."""

    wait: float | None


def judge(slots: list[Slot], now: float, cost: int, limits: Limits, blocked_until: float | None) -> Verdict:
    """How long until a request of ``cost`` units fits, from the budget's live rows (pure).

    A window frees room as its ended requests leave it, oldest first. What is in flight frees
    room only when released, which no row can predict: the caller polls (None).
    """
    delay = (blocked_until if blocked_until is not None else -math.inf) - now
    release_needed = limits.max_concurrent is not None and \
        sum(1 for s in slots if s.ended is None) >= limits.max_concurrent
    for index, window in enumerate(limits.windows):
        limit = max(1, window.limit)
        counted = [s for s in slots if (index == 0 or not s.hint) and (s.ended is None or s.ended > now - window.seconds)]
        excess = sum(s.cost for s in counted) + min(cost, limit) - limit
        if excess <= 0:
            continue
        freed = 0
        for slot in sorted((s for s in counted if s.ended is not None), key=lambda s: s.ended):
            freed += slot.cost
            if freed >= excess:
                delay = max(delay, slot.ended + window.seconds - now)
                break
        else:
            release_needed = True  # what is in flight alone fills the window
    if release_needed:
        return Verdict(None)
    return Verdict(delay + EDGE_SECONDS if delay > 0 else 0.0)


@dataclass(frozen=True)
class Grant:
    """A slot taken in the ledger: its row, when it was granted on the shared clock, how long it waited."""

    slot_id: int
    granted_at: float
    waited: float = 0.0  # seconds slept for room (0: it went at once)


class SharedGate:
    """One budget's slots in the ledger, for :class:`~connector.rate_budget.RateBudget` (``attach``).

    Thread-safe; a budget's gate is called by whichever thread the in-process checks let through.
    """

    def __init__(self, name: str, table: SlotTable, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 sleep=time.sleep, monotonic=time.monotonic):
        self.name, self.table, self.lease_seconds = name, table, float(lease_seconds)
        self._sleep, self._monotonic = sleep, monotonic
        self._holder = holder_name()
        self._lock = threading.Lock()  # guards the counters and the prune schedule
        self._next_prune = -math.inf
        self._next_observe = -math.inf  # on the monotonic clock
        self._counters = {"grants": 0, "waits": 0, "waited_seconds": 0.0, "polls": 0, "pruned": 0, "hints": 0,
                          "penalties": 0, "release_failures": 0}

    # -- the slot ------------------------------------------------------------------------------
    def acquire(self, cost: int, limits: Limits, *, max_wait: float) -> Grant:
        """Take a slot of ``cost`` units that every process's requests leave room for; wait if needed.

        Raises:
            RateLimited: the wait would take longer than ``max_wait`` seconds.
            RetryableError: the ledger could not be read or written.
        """
        started = self._monotonic()
        poll, slept = FIRST_POLL_SECONDS, False
        lengths = tuple(w.seconds for w in limits.windows)
        longest = max(lengths, default=0.0)
        while True:
            granted = None
            with self._ledger_errors("take a rate slot"), self.table.locked(self.name) as rows:
                self._maybe_prune(rows, longest)
                usage = rows.usage(lengths)  # sums, in the database: the cheap path when it fits
                if fits(usage, cost, limits):
                    granted = Grant(rows.grant(cost, self.lease_seconds, self._holder), usage.now)
                else:  # the rows themselves only to work out how long to wait
                    verdict = judge(rows.live(longest), usage.now, cost, limits, usage.blocked_until)
            waited = self._monotonic() - started
            if granted is not None:
                waited = waited if slept else 0.0
                self._count(grants=1, waits=int(slept), waited_seconds=waited)
                return Grant(granted.slot_id, granted.granted_at, waited)
            if verdict.wait is None:  # only a release (here or in another process) or a lease running out helps
                wait, poll = poll, min(LONGEST_POLL_SECONDS, poll * 2)
                self._count(polls=1)
            else:
                wait = verdict.wait  # 0: a release landed between the sums and the rows; try again now
            if waited + wait > max_wait:
                raise RateLimited(f"the {self.name} rate budget, shared with the other processes on the ledger,"
                                  f" asks for a wait of {waited + wait:.0f} s", status=429, retry_after=wait,
                                  system=self.name.split(":", 1)[0].split("-", 1)[0])
            if wait > 0:
                self._sleep(wait)
                slept = True

    def release(self, grant: Grant | None) -> None:
        """The request ended: stamp its row. Never raises: a row left in flight ends with its lease."""
        if grant is None:
            return
        try:
            self.table.end(grant.slot_id)
        except sqlite3.Error as exc:
            self._count(release_failures=1)
            LOG.warning("could not end rate slot %s of %s in the ledger (%s); it counts until its lease runs out",
                        grant.slot_id, self.name, exc)

    # -- what the vendor says ----------------------------------------------------------------------
    def penalise(self, seconds: float) -> None:
        """A 429: no process sends on this budget for ``seconds`` (the vendor counts the account, not us).

        Never raises: without the ledger the pause still holds in this process (the budget's own).
        """
        try:
            self.table.block(self.name, max(0.0, float(seconds)))
        except sqlite3.Error as exc:
            LOG.warning("could not record a %.1f s pause of %s in the ledger (%s); only this process pauses",
                        seconds, self.name, exc)
            return
        self._count(penalties=1)

    def observe(self, remaining: int, seconds: float, limits: Limits) -> bool:
        """The vendor says ``remaining`` units are left of the first window: when every process's count
        together leaves more, someone else spends the account's allowance, and the difference is
        entered as a hint row that counts for ``seconds``. Whether one was entered. Never raises:
        a hint lost with the ledger only leaves the vendor's next answer to say it again.
        """
        if not limits.windows:
            return False
        with self._lock:
            if self._monotonic() < self._next_observe:
                return False  # the vendor says it again with the next answer
            self._next_observe = self._monotonic() + OBSERVE_EVERY_SECONDS
        first = limits.windows[0]
        try:
            with self.table.locked(self.name) as rows:
                missing = max(1, first.limit) - rows.usage((first.seconds,)).used[0] - remaining
                if missing > 0:
                    # Ends so that it leaves the first window ``seconds`` from now.
                    rows.hint(missing, rows.now + max(0.0, seconds - first.seconds))
        except sqlite3.Error as exc:
            LOG.warning("could not record the vendor's count of %s in the ledger (%s)", self.name, exc)
            return False
        if missing > 0:
            self._count(hints=1)
        return missing > 0

    # -- housekeeping -------------------------------------------------------------------------------
    def _maybe_prune(self, rows, longest: float) -> None:
        """Delete the rows that left every window, at most a few times per window (not on every grant).

        Every grant reads the rows of the last ``longest`` seconds and the in-flight ones, so what is
        kept beyond the window is only what has piled up since the last prune (a quarter window).
        Processes sharing a ledger must use the same ``limits:``: one with a longer window would
        find rows it still counts deleted.
        """
        with self._lock:
            if rows.now < self._next_prune:
                return
            keep = longest + KEEP_AFTER_WINDOW_SECONDS
            self._next_prune = rows.now + max(1.0, longest / 4)
        deleted = rows.prune(rows.now - keep)
        self._count(pruned=max(0, deleted))

    def _count(self, **amounts) -> None:
        with self._lock:
            for key, amount in amounts.items():
                self._counters[key] += amount

    def snapshot(self) -> dict:
        """Counters: grants, waits, waited_seconds, polls, pruned, hints, penalties, release_failures,
        and the ledger's share of the cost (transactions and seconds of the whole table, all budgets)."""
        with self._lock:
            out = dict(self._counters)
        out["waited_seconds"] = round(out["waited_seconds"], 6)
        out["ledger_transactions"] = self.table.transactions
        out["ledger_seconds"] = round(self.table.seconds, 6)
        return out

    @contextmanager
    def _ledger_errors(self, doing: str):
        """A ledger failure as a retryable error that says which ledger and what was being done."""
        try:
            yield
        except sqlite3.Error as exc:  # both ledgers raise sqlite3 types (connector/ledger_postgres.py)
            raise RetryableError(f"could not {doing} for {self.name} in the ledger {self.table.location}: {exc}",
                                 what_to_do="check that the ledger is reachable; the step is retried") from exc


# -- the process's switch --------------------------------------------------------------------------
_TABLE: SlotTable | None = None
_SWITCH_LOCK = threading.Lock()


def share_budgets(ledger, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> bool:
    """Share this process's rate budgets with every process on ``ledger``; None stops sharing.

    Call it once at process start, before the first request (budgets made before it are attached
    too, from their next request on). ``ledger`` is what ``Ledger(...)`` opens: a SQLite path or a
    ``postgresql://`` URL. Whether budgets are now shared.
    """
    global _TABLE
    with _SWITCH_LOCK:
        old, _TABLE = _TABLE, None
        if ledger is None:
            set_gate_maker(None)
        else:
            table = _TABLE = SlotTable(str(ledger))
            set_gate_maker(lambda name: SharedGate(name, table, lease_seconds=lease_seconds))
        if old is not None:
            old.close()
        return _TABLE is not None


def share_budgets_as_configured(settings) -> bool:
    """:func:`share_budgets` through the configured ledger, unless ``limits: shared: false``.

    ``settings`` is the loaded :class:`~connector.config.Settings`. Whether budgets are now shared.
    """
    limits = settings.limits
    if not limits.shared:
        return share_budgets(None)
    return share_budgets(settings.ledger_url, lease_seconds=limits.slot_lease_seconds)


def sharing() -> str | None:
    """Where budgets are shared (the ledger, password blanked), or None."""
    table = _TABLE
    return table.location if table is not None else None
