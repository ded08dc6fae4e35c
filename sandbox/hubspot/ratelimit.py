"""Rate limits: the 10-second rolling burst window per token, the daily account limit,
and the separate per-second search limit (``shared/notes/hubspot.md`` §4).

The limiter also meters what the clients offered and what it let through in each window
(:mod:`sandbox.traffic`), for ``GET /_sandbox/traffic``.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone

from sandbox.traffic import AccountTraffic, token_label

INTERVAL_MS = 10_000


class RateLimiter:
    """Counts accepted requests and decides when to answer 429.

    Requests answered 429 do not consume allowance: the window refills once
    old requests age out, which is what a client backing off for
    ``Interval-Milliseconds`` relies on.
    """

    def __init__(self, ten_second_limit: int = 100, daily_limit: int = 250_000, search_per_second: int = 5,
                 clock=time.monotonic):
        # Notes §4: Free/Starter private app = 100 per 10 s per app, 250,000 per day per account.
        self.ten_second_limit = ten_second_limit
        self.daily_limit = daily_limit
        # Notes §4 [2nd]: search is 5 requests/s per account and carries no headers.
        self.search_per_second = search_per_second
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.windows: dict[str, deque] = {}
        self.search_window: deque = deque()
        self.daily_used = 0
        self.day = self._today()
        self.traffic = AccountTraffic()

    @staticmethod
    def _today() -> str:
        # Notes §4: the daily limit resets at midnight in the account's time zone; the sandbox account is UTC.
        return datetime.now(timezone.utc).date().isoformat()

    def _roll_day(self) -> None:
        today = self._today()
        if today != self.day:
            self.day, self.daily_used = today, 0

    def _window(self, token: str, span: float) -> deque:
        window = self.windows.setdefault(token, deque())
        cutoff = self.clock() - span
        while window and window[0] <= cutoff:
            window.popleft()
        return window

    def check(self, token: str) -> str | None:
        """Admit one non-search request for ``token``; return the exceeded policy or None."""
        self._roll_day()
        meter = self.traffic.limit(f"ten_second_limit:{token_label(token)}", INTERVAL_MS / 1000)
        meter.offered.add(self.clock())
        if self.daily_used >= self.daily_limit:
            return "DAILY"
        window = self._window(token, INTERVAL_MS / 1000)
        if len(window) >= self.ten_second_limit:
            return "TEN_SECONDLY_ROLLING"
        window.append(self.clock())
        meter.admitted.add(window[-1])
        self.traffic.units += 1
        self.daily_used += 1
        return None

    def check_search(self) -> str | None:
        """Admit one search request: its own per-second limit, but it shares the daily count (notes §4)."""
        self._roll_day()
        meter = self.traffic.limit("search_per_second", 1.0)
        meter.offered.add(self.clock())
        if self.daily_used >= self.daily_limit:
            return "DAILY"
        cutoff = self.clock() - 1.0
        while self.search_window and self.search_window[0] <= cutoff:
            self.search_window.popleft()
        if len(self.search_window) >= self.search_per_second:
            return "SECONDLY"
        self.search_window.append(self.clock())
        meter.admitted.add(self.search_window[-1])
        self.traffic.units += 1
        self.daily_used += 1
        return None

    def traffic_report(self) -> dict:
        """This account's figures for ``GET /_sandbox/traffic`` (the limits as configured now)."""
        report = self.traffic.report({"ten_second_limit": self.ten_second_limit,
                                      "search_per_second": self.search_per_second})
        report["daily"] = {"limit": self.daily_limit, "used": self.daily_used}
        return report

    def headers(self, token: str) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers for a non-search answer (notes §4,
        fixture ``rate_limit_headers.example.json``)."""
        window = self._window(token, INTERVAL_MS / 1000)
        return {
            "X-HubSpot-RateLimit-Max": str(self.ten_second_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(self.ten_second_limit - len(window), 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(INTERVAL_MS),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self.daily_used, 0)),
        }
