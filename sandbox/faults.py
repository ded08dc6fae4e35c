"""Fault injection shared by the four emulators: latency, error rates, hangs, dropped connections.

An ASGI middleware in front of an emulator app. Rules come from the
emulator's start-up options (``--options '{"<system>": {"chaos": {"faults":
[...], "seed": 1}}}'``) and from ``POST /_sandbox/chaos`` at run time
(``GET`` lists them, ``DELETE`` clears).
A rule::

    {"path": "/graphql.json",      # substring of the request path ("" = every vendor route)
     "method": "POST",             # optional
     "rate": 0.2,                  # probability per matching request (default 1)
     "times": 3,                   # stop after this many hits (default: no limit)
     "latency_ms": 50,             # fixed extra latency, or
     "latency": {"dist": "uniform", "low_ms": 20, "high_ms": 80},   # or "normal" with mean_ms, sd_ms
     "status": 503,                # answer with this status, in the vendor's error shape
     "hang_seconds": 30,           # answer only after this long (client timeouts)
     "drop": true}                 # start the answer, then cut the connection

Error bodies come from the emulator (``error_body(status)``), so an injected
429 or 503 looks like that vendor's own. Control routes (``/_sandbox/``) are
never faulted. Seeded randomness (``seed`` option) keeps runs repeatable.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Callable

ErrorBody = Callable[[int], tuple[bytes, str, dict]]  # status -> (body, content type, headers)


def default_error_body(status: int) -> tuple[bytes, str, dict]:
    return json.dumps({"error": f"injected fault {status}"}).encode(), "application/json", {}


class DroppedConnection(Exception):
    """Raised after the response started, so the server cuts the connection mid-answer."""


@dataclass
class Rule:
    path: str = ""
    method: str | None = None
    rate: float = 1.0
    times: int | None = None
    latency_ms: float = 0.0
    latency: dict | None = None
    status: int | None = None
    hang_seconds: float | None = None
    drop: bool = False
    hits: int = field(default=0)

    @classmethod
    def from_dict(cls, data: dict) -> "Rule":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "hits"}
        unknown = set(data) - set(known) - {"hits"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        return cls(**known)

    def matches(self, method: str, path: str, rng: random.Random) -> bool:
        if self.path and self.path not in path:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        return rng.random() < self.rate

    def delay(self, rng: random.Random) -> float:
        seconds = self.latency_ms / 1000
        if self.latency:
            kind = self.latency.get("dist", "uniform")
            if kind == "uniform":
                seconds += rng.uniform(self.latency.get("low_ms", 0), self.latency.get("high_ms", 0)) / 1000
            elif kind == "normal":
                seconds += max(0.0, rng.gauss(self.latency.get("mean_ms", 0), self.latency.get("sd_ms", 0))) / 1000
            else:
                raise ValueError(f"unknown latency distribution {kind!r}")
        return seconds

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class FaultInjector:
    """ASGI middleware holding the rules of one emulator."""

    def __init__(self, app, options: dict | None = None, error_body: ErrorBody = default_error_body):
        options = options or {}
        self.app = app
        self.error_body = error_body
        self.rng = random.Random(options.get("seed", 0))
        self.rules = [Rule.from_dict(r) for r in options.get("faults", [])]
        self.initial = [r.to_dict() for r in self.rules]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path.startswith("/_sandbox/chaos"):
            return await self._control(scope, receive, send)
        if path.startswith("/_sandbox/"):
            if path == "/_sandbox/reset":
                self.rules = [Rule.from_dict(r) for r in self.initial]
            return await self.app(scope, receive, send)
        rule = next((r for r in self.rules if r.matches(method, path, self.rng)), None)
        if rule is None:
            return await self.app(scope, receive, send)
        rule.hits += 1
        pause = rule.delay(self.rng) + (rule.hang_seconds or 0)
        if pause:
            await asyncio.sleep(pause)
        if rule.drop:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
            await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
            raise DroppedConnection("injected: connection dropped mid-answer")
        if rule.status:
            body, content_type, headers = self.error_body(rule.status)
            raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
            raw += [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
            await send({"type": "http.response.start", "status": rule.status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)  # latency or hang only

    async def _control(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 200
        if scope["method"] == "POST":
            try:
                payload = json.loads(body or b"{}")
                new = [Rule.from_dict(r) for r in payload.get("faults", [])]
            except (ValueError, TypeError) as exc:
                status, answer = 400, {"error": str(exc)}
            else:
                self.rules = new if payload.get("replace", True) else self.rules + new
                answer = {"faults": [r.to_dict() for r in self.rules]}
        elif scope["method"] == "DELETE":
            self.rules = []
            answer = {"faults": []}
        else:
            answer = {"faults": [r.to_dict() for r in self.rules]}
        data = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
