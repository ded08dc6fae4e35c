"""One rate budget per (system, account), shared by everything in the process.

The vendors' limits hold per company or per app, not per object: the daemon's
worker tick, the webhook inbox and a replay that write to the same QuickBooks
realm draw on the same 500 requests a minute and the same 10 concurrent
requests (../shared/notes/quickbooks.md §3); every HubSpot call with one
private app's token draws on the same 100 per 10 seconds, and search on its own
5 per second (../shared/notes/hubspot.md §4). So adapters do not pace
themselves: each HTTP attempt (in-request retries included) takes a slot of the
:class:`RateBudget` that :func:`budget_for` hands out, one instance per
``(system, account)`` for the whole process, whichever thread or adapter asks.

The window is a **sliding log**, not a token bucket. The vendors (and the
sandbox's emulators) count requests in a *rolling* window: "at most 500 in any
60 seconds". A token bucket with capacity = limit refilling at limit/window
lets a full burst through and then keeps admitting the refill, so it can send
up to twice the limit inside one rolling window and collect 429s. The log
remembers when each of the last ``limit`` requests ended and admits a new one
only if fewer than ``limit`` fall inside the window, which is exactly the
vendor's rule; it holds at most ``limit`` entries per window (500 for
QuickBooks), so it stays cheap. Two details keep it on the safe side of the
vendor's own count:

- a request counts from the moment it gets its slot (while in flight) and its
  entry is stamped when it *ends*, not when it started: the vendor stamps it
  on arrival, somewhere in between, so ours never expires before theirs;
- a request may cost more than one (a QuickBooks batch counts each item).

Besides the window(s), a budget may cap concurrency (QuickBooks: 10 per realm),
believe the vendor's own count (:meth:`RateBudget.observe`, HubSpot's
``X-HubSpot-RateLimit-*`` headers: when the vendor says fewer remain than we
think, other clients of the same account are spending it), and stop everyone
after a 429 (:meth:`RateBudget.penalise`). A wait longer than ``max_wait``
(a long ``Retry-After``) is not slept inside a request: :class:`RateLimited`, a
:class:`~connector.errors.RetryableError`, hands it to the ledger's retry layer
(DESIGN.md "Two retry layers").

Across processes: by itself a budget knows only this process's requests. A
process that shares its budgets through the ledger
(:func:`connector.rate_budget_shared.share_budgets`, called once at start-up)
gives every budget a *gate* (:meth:`RateBudget.attach`): after the in-process
checks let a request go, the gate takes the same slot in the ledger, where every
process's requests are counted, and a penalty or a vendor hint reaches the other
processes too. The in-process checks stay in front so that the threads of one
process queue here, not at the database.

Clock and sleep are injectable, so tests run on a fake clock; counters
(:meth:`RateBudget.snapshot`) tell benchmarks how much was sent and waited.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter

from connector.errors import RetryableError

DEFAULT_MAX_WAIT = 120.0  # seconds a request may wait for its slot before the ledger takes over


@dataclass(frozen=True)
class Window:
    """At most ``limit`` request units in any ``seconds`` (a rolling window)."""

    limit: int
    seconds: float


@dataclass(frozen=True)
class Limits:
    """What one budget enforces: rolling windows, a concurrency cap, the longest in-request wait."""

    windows: tuple[Window, ...] = ()
    max_concurrent: int | None = None
    max_wait: float = DEFAULT_MAX_WAIT


class RateLimited(RetryableError):
    """The budget would make this request wait longer than ``max_wait``: try the step later."""


@dataclass
class _Ticket:
    cost: int
    released: bool = False
    gate: object | None = None  # the shared gate that granted it as well (None: this process only)
    shared: object | None = None  # what that gate needs to release it


@dataclass
class _Counters:
    requests: int = 0  # slots granted (HTTP attempts)
    units: int = 0  # their total cost (a QuickBooks batch of 30 is 30 units)
    waited_seconds: float = 0.0  # time spent blocked in slot(), summed over requests
    waits: int = 0  # requests that had to wait at all
    max_in_flight: int = 0
    penalties: int = 0  # penalise() calls (429s)
    corrections: int = 0  # observe() calls that believed the vendor over our own count
    refused: int = 0  # RateLimited raised


class RateBudget:
    """A thread-safe rate budget: rolling windows, a concurrency cap, vendor hints, penalties.

    ``with budget.slot(cost):`` blocks until the request may be sent and holds
    one concurrency slot until the block ends (send the request inside it).
    """

    def __init__(self, name: str, limits: Limits, *, clock=time.monotonic, sleep=time.sleep,
                 trace: bool = False):
        self.name = name
        # trace=True: ``grants`` lists (clock time, cost) of every slot given, for tests and benchmarks.
        self.grants: list[tuple[float, int]] | None = [] if trace else None
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()
        self._limits = limits
        # Per window: sorted [(expires_at, cost)] of ended requests (and of the vendor's hints).
        self._logs: list[list[tuple[float, int]]] = [[] for _ in limits.windows]
        self._vendor_limit: int | None = None  # the vendor's own maximum for window 0, if it told us
        self._in_flight = 0
        self._in_flight_cost = 0
        self._blocked_until = -math.inf
        self._counters = _Counters()
        self._gate = None  # connector.rate_budget_shared.SharedGate when budgets are shared through the ledger

    # -- configuration ----------------------------------------------------------------------
    @property
    def limits(self) -> Limits:
        return self._limits

    def reconfigure(self, limits: Limits) -> None:
        """Take new limits; the history is kept when the window lengths are the same."""
        with self._cond:
            if [w.seconds for w in limits.windows] != [w.seconds for w in self._limits.windows]:
                self._logs = [[] for _ in limits.windows]
            self._limits = limits
            self._cond.notify_all()

    def attach(self, gate) -> None:
        """Send every slot through ``gate`` as well (None: this process only), from the next acquire on."""
        with self._cond:
            self._gate = gate

    @property
    def gate(self):
        return self._gate

    def _effective_limits(self) -> Limits:
        """The limits as enforced now: the first window lowered to the vendor's maximum if it told us one."""
        windows = self._limits.windows
        if windows and self._limit(0) != windows[0].limit:
            windows = (Window(self._limit(0), windows[0].seconds),) + windows[1:]
        return Limits(windows, self._limits.max_concurrent, self._limits.max_wait)

    def _limit(self, index: int) -> int:
        limit = self._limits.windows[index].limit
        if index == 0 and self._vendor_limit is not None:
            limit = min(limit, self._vendor_limit)
        return max(1, limit)

    # -- the slot -----------------------------------------------------------------------------
    @contextmanager
    def slot(self, cost: int = 1):
        """Block until a request of ``cost`` units may go; hold a concurrency slot meanwhile.

        Raises:
            RateLimited: the wait would be longer than ``max_wait`` (e.g. a long penalty).
        """
        ticket = self.acquire(cost)
        try:
            yield self
        finally:
            self.release(ticket)

    def acquire(self, cost: int = 1) -> _Ticket:
        cost = max(1, int(cost))
        started = self._clock()
        with self._cond:
            self._wait_for_room(cost)
            self._in_flight += 1
            self._in_flight_cost += cost
            gate, limits = self._gate, self._effective_limits()
            waited = self._clock() - started
        ticket = _Ticket(cost)
        if gate is not None:
            # Outside the lock: the gate may sleep while other processes spend the budget, and the
            # threads of this process queue behind the in-process checks meanwhile, not at the database.
            try:
                ticket.shared = gate.acquire(cost, limits, max_wait=max(0.0, limits.max_wait - waited))
            except BaseException as exc:
                with self._cond:  # the request never went: give the in-process slot back, log nothing
                    self._in_flight -= 1
                    self._in_flight_cost -= cost
                    if isinstance(exc, RateLimited):
                        self._counters.refused += 1
                    self._cond.notify_all()
                raise
            ticket.gate = gate
            waited += ticket.shared.waited  # its time at the ledger's rows, not the transactions'
        with self._cond:
            counters = self._counters
            counters.requests += 1
            counters.units += cost
            counters.max_in_flight = max(counters.max_in_flight, self._in_flight)
            if waited > 0:
                counters.waits += 1
                counters.waited_seconds += waited
        return ticket

    def _wait_for_room(self, cost: int) -> None:
        """Block (holding ``self._cond``) until this process's windows and cap let ``cost`` go."""
        while True:
            now = self._clock()
            cap = self._limits.max_concurrent
            if cap is not None and self._in_flight >= cap:
                self._cond.wait()  # a release wakes us
                continue
            delay, needs_release = self._delay(now, cost)
            if delay > self._limits.max_wait:
                self._counters.refused += 1
                raise RateLimited(f"the {self.name} rate budget asks for a wait of {delay:.0f} s",
                                  system=self.name.split(":", 1)[0].split("-", 1)[0], status=429, retry_after=delay)
            if needs_release:
                self._cond.wait()
                continue
            if delay <= 0:
                if self.grants is not None:
                    self.grants.append((now, cost))
                return
            self._cond.release()
            try:
                self._sleep(delay)
            finally:
                self._cond.acquire()

    def release(self, ticket: _Ticket) -> None:
        with self._cond:
            if ticket.released:
                return
            ticket.released = True
            now = self._clock()
            self._in_flight -= 1
            self._in_flight_cost -= ticket.cost
            for window, log in zip(self._limits.windows, self._logs):
                bisect.insort(log, (now + window.seconds, ticket.cost))
            self._cond.notify_all()
        if ticket.gate is not None:
            ticket.gate.release(ticket.shared)

    def _prune(self, now: float) -> None:
        for log in self._logs:
            cut = bisect.bisect_right(log, (now, math.inf))
            if cut:
                del log[:cut]

    def _delay(self, now: float, cost: int) -> tuple[float, bool]:
        """(seconds to wait, whether only a release can help) for a request of ``cost`` now."""
        self._prune(now)
        delay = self._blocked_until - now
        needs_release = False
        for index, log in enumerate(self._logs):
            limit = self._limit(index)
            used = sum(c for _, c in log) + self._in_flight_cost
            excess = used + min(cost, limit) - limit
            if excess <= 0:
                continue
            freed = 0
            for expires, c in log:  # the ended requests, in the order they leave the window
                freed += c
                if freed >= excess:
                    delay = max(delay, expires - now)
                    break
            else:
                needs_release = True  # what is in flight alone fills the window
        return delay, needs_release

    # -- what the vendor says -------------------------------------------------------------------
    def observe(self, *, remaining: int | None = None, window_ms: float | None = None,
                limit: int | None = None) -> None:
        """Believe the vendor's count for the first window when it is lower than ours.

        ``limit`` (HubSpot's ``X-HubSpot-RateLimit-Max``) caps the window when lower than the
        configured limit. ``remaining`` (``...-Remaining``): when fewer remain than our own count
        says, someone else spends this account's allowance; the difference is entered as
        requests that leave the window ``window_ms`` from now.
        """
        if not self._limits.windows:
            return
        with self._cond:
            now = self._clock()
            if limit is not None and limit > 0:
                self._vendor_limit = int(limit)
            if remaining is None:
                return
            self._prune(now)
            ours = self._limit(0) - sum(c for _, c in self._logs[0]) - self._in_flight_cost
            missing = ours - max(0, int(remaining))
            if missing <= 0:
                # The vendor counts no more than this process alone does (and all processes together
                # count at least as much): nothing to add, here or in the ledger.
                return
            seconds = max(self._limits.windows[0].seconds, (window_ms or 0) / 1000)
            gate, limits = self._gate, self._effective_limits()
            if gate is None:
                bisect.insort(self._logs[0], (now + seconds, missing))
                self._counters.corrections += 1
                return
        # Shared: this process's count is not the account's; the gate compares with every process's.
        if gate.observe(max(0, int(remaining)), seconds, limits):
            with self._cond:
                self._counters.corrections += 1

    def penalise(self, seconds: float) -> None:
        """The vendor answered 429: nobody in the process sends on this budget for ``seconds``."""
        with self._cond:
            self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, float(seconds)))
            self._counters.penalties += 1
            self._cond.notify_all()
            gate = self._gate
        if gate is not None:
            gate.penalise(seconds)  # ... nor in any other process sharing the budget

    # -- counters -------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Counters since the budget was made: requests, units, waited_seconds, waits, ..."""
        with self._cond:
            c = self._counters
            out = {"name": self.name, "requests": c.requests, "units": c.units,
                   "waited_seconds": round(c.waited_seconds, 6), "waits": c.waits,
                   "max_in_flight": c.max_in_flight, "in_flight": self._in_flight, "penalties": c.penalties,
                   "corrections": c.corrections, "refused": c.refused}
            gate = self._gate
        if gate is not None:
            out["shared"] = gate.snapshot()  # the ledger's part: transactions, their time, waits there
        return out


# -- the process-wide registry ------------------------------------------------------------------
_REGISTRY: dict[tuple[str, str], RateBudget] = {}
_REGISTRY_LOCK = threading.Lock()
# name -> gate for each budget, when budgets are shared through the ledger (set_gate_maker).
_GATE_MAKER = None


def budget_for(system: str, account: str, limits: Limits) -> RateBudget:
    """THE budget of ``(system, account)`` in this process, made on first use.

    Asked again with other limits (a reloaded configuration), the same budget takes them.
    ``account`` ends up in log lines and counters: never pass a secret (see :func:`account_key`).
    """
    key = (system, str(account))
    with _REGISTRY_LOCK:
        budget = _REGISTRY.get(key)
        if budget is None:
            budget = _REGISTRY[key] = RateBudget(f"{system}:{account}", limits)
            if _GATE_MAKER is not None:
                budget.attach(_GATE_MAKER(budget.name))
        elif budget.limits != limits:
            budget.reconfigure(limits)
        return budget


def all_budgets() -> dict[tuple[str, str], RateBudget]:
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


def reset_budgets() -> None:
    """Forget every budget (tests; a fresh process starts empty anyway). Sharing stays as it was."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()


def set_gate_maker(maker) -> None:
    """Give every budget, made now or later, the gate ``maker(budget name)`` returns; None: no gates.

    :func:`connector.rate_budget_shared.share_budgets` is the one caller.
    """
    global _GATE_MAKER
    with _REGISTRY_LOCK:
        _GATE_MAKER = maker
        for budget in _REGISTRY.values():
            budget.attach(maker(budget.name) if maker is not None else None)


def account_key(secret: str) -> str:
    """A stable account name derived from a credential without revealing it (sha256 prefix)."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


# -- the limits from the configuration (the ``limits:`` section) --------------------------------
def _scaled(value: float, scale: float) -> int:
    return max(1, int(value * scale))


def limits_for(system: str, settings=None) -> Limits | None:
    """The :class:`Limits` of a budget ``system`` from ``LimitSettings`` (None: the defaults).

    Systems: ``quickbooks`` (per realm), ``quickbooks-batch`` (batch requests per realm),
    ``hubspot`` (per app token), ``hubspot-search`` and ``woocommerce`` (per site; None when
    no limit is configured). ``rate_scale`` multiplies every limit, rounding down, at least 1.
    """
    if settings is None:
        from connector.config import LimitSettings
        settings = LimitSettings()
    scale = settings.rate_scale
    if system == "quickbooks":
        qbo = settings.quickbooks
        windows = [Window(_scaled(qbo.requests_per_minute, scale), 60.0)]
        if qbo.requests_per_second:
            windows.append(Window(_scaled(qbo.requests_per_second, scale), 1.0))
        return Limits(tuple(windows), max_concurrent=_scaled(qbo.max_concurrent, scale))
    if system == "quickbooks-batch":
        return Limits((Window(_scaled(settings.quickbooks.batch_requests_per_minute, scale), 60.0),))
    if system == "hubspot":
        return Limits((Window(_scaled(settings.hubspot.requests_per_10_seconds, scale), 10.0),))
    if system == "hubspot-search":
        return Limits((Window(_scaled(settings.hubspot.search_requests_per_second, scale), 1.0),))
    if system == "woocommerce":
        rate = settings.woocommerce.requests_per_second
        if not rate:
            return None
        rate *= scale
        seconds = max(1.0, 1.0 / rate)  # below 1/s: one request per 1/rate seconds
        # A source pull has no ledger step to hand a long wait to: it waits as long as it takes.
        return Limits((Window(max(1, int(rate * seconds)), seconds),), max_wait=math.inf)
    raise ValueError(f"no rate budget for system {system!r}")


# -- in-request retries that go through the budget ------------------------------------------------
def retry_after_seconds(value) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds, or None."""
    if value in (None, ""):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def backoff_seconds(policy, attempt: int) -> float:
    """``backoff_factor * 2**(attempt-1)`` of a urllib3 ``Retry`` used as the policy, capped."""
    factor = float(getattr(policy, "backoff_factor", 0) or 0)
    cap = float(getattr(policy, "backoff_max", None) or 120)
    return min(cap, factor * (2 ** (attempt - 1)))


def retries_of(policy) -> int:
    total = getattr(policy, "total", 0)
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else 0


class BudgetedHTTPAdapter(HTTPAdapter):
    """A ``requests`` transport adapter whose every HTTP attempt takes budget slots.

    urllib3 would retry inside one ``send`` behind the budget's back, so it is told not
    to (``max_retries=0``) and the retries happen here, each one a new slot, with the
    urllib3 ``Retry`` given as the policy (``total``, ``status_forcelist``,
    ``allowed_methods``, ``backoff_factor``, ``respect_retry_after_header``). A 429
    penalises the request's budgets for its ``Retry-After`` (else the backoff), so the
    whole process waits, not just this thread. When the tries are spent the last
    response is returned (``raise_on_status=False``) or the last error raised.

    ``charges(request)`` names the ``[(budget, cost)]`` a request draws on, acquired in
    that order (keep one order everywhere so nested slots cannot deadlock).
    """

    def __init__(self, charges, retry, *, sleep=time.sleep, **kwargs):
        super().__init__(max_retries=0, **kwargs)
        self.charges, self.retry, self._sleep_for = charges, retry, sleep

    def send(self, request, **kwargs):
        policy = self.retry
        tries = 1 + retries_of(policy)
        allowed = getattr(policy, "allowed_methods", None)
        method_ok = not allowed or (request.method or "").upper() in allowed
        statuses = set(getattr(policy, "status_forcelist", None) or ())
        for attempt in range(1, tries + 1):
            last = attempt == tries or not method_ok
            charges = self.charges(request)
            with ExitStack() as stack:
                for budget, cost in charges:
                    stack.enter_context(budget.slot(cost))
                try:
                    response = super().send(request, **kwargs)
                except requests.exceptions.SSLError:
                    raise
                except (requests.ConnectionError, requests.Timeout):
                    if last:
                        raise
                    self._sleep_for(backoff_seconds(policy, attempt))
                    continue
            if last or response.status_code not in statuses:
                return response
            wait = None
            if getattr(policy, "respect_retry_after_header", True):
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is None:
                wait = backoff_seconds(policy, attempt)
            if response.status_code == 429:
                for budget, _ in charges:  # everyone waits, and this retry waits in its slot()
                    budget.penalise(wait)
            longest = min((b.limits.max_wait for b, _ in charges), default=DEFAULT_MAX_WAIT)
            if wait > longest:
                return response  # not worth holding the request: the ledger retries the step later
            response.close()
            if response.status_code != 429 and wait > 0:
                self._sleep_for(wait)
        raise AssertionError("unreachable")  # pragma: no cover

