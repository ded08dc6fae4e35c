"""What each account sent an emulator, for ``GET /_sandbox/traffic`` (docs/sandbox.md §2).

``/_sandbox/counters`` says how many requests came and what was answered. This says whether the
clients *together* kept to the limits: for every rolling-window limit an emulator enforces, the
most units seen in any one window, both of the requests the emulator let through
(``max_in_window``, never above the limit: the rest were refused) and of every request that
reached the limiter, refused or not (``max_offered_in_window``: above the limit when the clients
sent too much). A test or benchmark proves N workers stayed under a limit when
``max_offered_in_window <= limit`` and no 429 was sent; and shows they ran near it when
``max_in_window`` is close to ``limit``. Concurrency likewise: the most requests in progress at
once, and the most that were (the one refused included).

The window arithmetic is the emulators' own: a unit counts in ``(t - seconds, t]``. The most in any
window is the most right after some unit arrived, so one deque per limit is enough.
"""

from __future__ import annotations

import hashlib
from collections import deque


def token_label(token: str) -> str:
    """A name for a token in reports that does not give the token away."""
    return "token-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:8]


class RollingPeak:
    """Units in a rolling window of ``seconds``: the current sum and the highest ever seen."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self._events: deque[tuple[float, int]] = deque()
        self._sum = 0
        self.peak = 0

    def add(self, now: float, units: int = 1) -> int:
        """Count ``units`` arriving at ``now``; the sum in the window ending now."""
        cutoff = now - self.seconds
        while self._events and self._events[0][0] <= cutoff:
            self._sum -= self._events.popleft()[1]
        self._events.append((now, units))
        self._sum += units
        self.peak = max(self.peak, self._sum)
        return self._sum


class LimitTraffic:
    """One enforced rolling-window limit of one account: what was offered and what was let through."""

    def __init__(self, seconds: float):
        self.offered = RollingPeak(seconds)
        self.admitted = RollingPeak(seconds)

    def report(self, limit) -> dict:
        return {"limit": limit, "seconds": self.offered.seconds, "max_in_window": self.admitted.peak,
                "max_offered_in_window": self.offered.peak}


class ConcurrencyTraffic:
    """Requests in progress at once for one account."""

    def __init__(self):
        self.current = 0
        self.peak = 0  # let through and in progress together
        self.peak_offered = 0  # in progress when one more arrived, that one included

    def offer(self) -> None:
        self.peak_offered = max(self.peak_offered, self.current + 1)

    def enter(self) -> None:
        self.current += 1
        self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        self.current -= 1

    def report(self, limit) -> dict:
        return {"limit": limit, "max": self.peak, "max_offered": self.peak_offered}


class AccountTraffic:
    """Everything ``/_sandbox/traffic`` reports for one account (realm, portal, shop or site)."""

    def __init__(self):
        self.requests = 0
        self.units = 0  # what the limits counted (a QuickBooks batch counts its items)
        self.throttled = 0  # 429s sent, the limiter's and injected ones
        self.limits: dict[str, LimitTraffic] = {}
        self.concurrency = ConcurrencyTraffic()

    def answered(self, status: int) -> None:
        self.requests += 1
        if status == 429:
            self.throttled += 1

    def limit(self, key: str, seconds: float) -> LimitTraffic:
        """The meter of limit ``key`` (made on first use, for a window of ``seconds``)."""
        meter = self.limits.get(key)
        if meter is None:
            meter = self.limits[key] = LimitTraffic(seconds)
        return meter

    def report(self, limits: dict, max_concurrent=None) -> dict:
        """The account's figures; ``limits`` maps each limit key to its configured value now."""
        out = {"requests": self.requests, "units": self.units, "throttled": self.throttled,
               # A per-app limit is keyed "name:app"; its configured value is the name's.
               "limits": {key: meter.report(limits.get(key.split(":", 1)[0]))
                          for key, meter in sorted(self.limits.items())}}
        if max_concurrent is not None:
            out["concurrent"] = self.concurrency.report(max_concurrent)
        return out
