"""Webhook delivery of the Shopify emulator: headers, HMAC, timeouts, retries, removal.

Notes §3, followed exactly where they speak:

* POST of the raw JSON body with ``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256`` (base64
  HMAC-SHA256 of the raw body keyed with the app's client secret), ``X-Shopify-Shop-Domain``,
  ``X-Shopify-API-Version`` (the subscription's), ``X-Shopify-Webhook-Id`` (one per delivery,
  the same on every retry), ``X-Shopify-Triggered-At`` and ``X-Shopify-Event-Id`` (shared by
  all deliveries of one merchant action), plus ``X-Shopify-Order-Id`` ("also seen").
* 1 s to connect, 5 s in total; a non-2xx answer or a timeout is a failure (a 3xx too:
  redirects are not followed). A failed delivery is retried 8 times over 4 hours with
  exponential backoff; then a subscription created through the Admin API is removed.
  Shopify does not publish the exact schedule: here the gaps double, 56.5 s ... 2 h, and
  add up to 4 h. At-least-once, in no guaranteed order.

Per-shop knobs (``POST /_sandbox/shops/<shop>/webhooks/config``; ``webhook_*`` keys of the
shop config land here too): ``timeout_seconds`` (5), ``connect_timeout_seconds`` (1),
``retry_scale`` (1.0; 0.001 turns 4 h into 14.4 s), ``retries`` (8), ``jitter_seconds``
(0: each delivery waits a random 0..jitter first, so order shuffles), ``drop_rate`` (0..1,
deliveries that never happen), ``duplicate_rate`` (0..1, a successful delivery sent again
with the same webhook id), ``seed`` for those dice and ``max_in_flight`` (20 concurrent
requests per shop, so seeding thousands of orders does not flood a receiver). The log (``GET .../webhooks/deliveries``)
has one entry per attempt.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass

import httpx

from sandbox.shopify import webhooks

TOTAL_RETRY_SECONDS = 4 * 3600  # "retried 8 times over 4 hours" (notes §3)
RETRIES = 8
LOG_LIMIT = 5000
# User-Agent of real deliveries as commonly reported (not in the notes' table; unverified).
USER_AGENT = "Shopify-Captain-Hook"
KNOBS = {"timeout_seconds": 5.0, "connect_timeout_seconds": 1.0, "retry_scale": 1.0, "retries": RETRIES,
         "jitter_seconds": 0.0, "drop_rate": 0.0, "duplicate_rate": 0.0, "max_in_flight": 20}


def retry_delays(retries: int = RETRIES, total: float = TOTAL_RETRY_SECONDS) -> list[float]:
    """Doubling gaps that sum to ``total``: base * (1, 2, 4, ... 2^(n-1))."""
    base = total / (2 ** retries - 1)
    return [base * 2 ** i for i in range(retries)]


def hmac_sha256(secret: str, body: bytes) -> str:
    """Notes §3 "HMAC check": ``base64(hmac_sha256(secret, raw_body))``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def serialize(payload: dict) -> bytes:
    # Compact JSON like the notes' test vector body; json keeps 64-bit ids exact (notes §3).
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class Delivery:
    shop: str
    subscription: dict
    topic: str
    body: bytes
    webhook_id: str
    event_id: str
    triggered_at: str
    order_id: int | None


class Engine:
    """Runs every delivery as its own asyncio task on the server's loop."""

    def __init__(self, store, options: dict | None = None):
        options = options or {}
        self.store = store
        self.defaults = {k: type(v)(options.get(f"webhook_{k}", v)) for k, v in KNOBS.items()} | {"seed": None}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._seq = itertools.count(1)
        self._outbox: list[Delivery] = []
        self.reset()

    # --- control ---------------------------------------------------------------------
    def reset(self) -> None:
        for task in getattr(self, "tasks", set()):
            task.cancel()
        self.tasks: set[asyncio.Task] = set()
        self.pending: dict[str, int] = {}
        self.configs: dict[str, dict] = {}
        self.rngs: dict[str, random.Random] = {}
        self.logs: dict[str, deque] = {}
        self.gates: dict[str, asyncio.Semaphore] = {}
        self._outbox = []

    def config(self, shop: str) -> dict:
        return self.configs.setdefault(shop, dict(self.defaults))

    def set_config(self, shop: str, body: dict) -> dict:
        """Merge knobs (validated; raises ValueError); ``webhook_`` prefixes are accepted."""
        config = dict(self.config(shop))
        for raw_key, value in body.items():
            key = raw_key.removeprefix("webhook_")
            if key == "seed":
                config["seed"] = value
                self.rngs[shop] = random.Random(value)
            elif key in KNOBS:
                number = type(KNOBS[key])(value)
                if number < 0 or (key.endswith("_rate") and number > 1):
                    raise ValueError(f"{raw_key} out of range: {value}")
                config[key] = number
        if config["max_in_flight"] != self.config(shop)["max_in_flight"]:
            self.gates.pop(shop, None)  # the next delivery makes a gate of the new size
        self.configs[shop] = config
        return config

    def report(self, shop: str, topic: str | None = None, limit: int | None = None) -> dict:
        """The attempt log (oldest first; ``limit`` keeps the newest), deliveries in flight, knobs."""
        entries = [e for e in self.logs.get(shop, []) if topic in (None, e["topic"])]
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return {"deliveries": entries, "pending": self.pending.get(shop, 0), "config": self.config(shop)}

    # --- scheduling (thread-safe) ----------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the server loop; deliveries published before it start now."""
        self.loop = loop  # one loop in the runner; a test client may bring a new one per request
        waiting, self._outbox = self._outbox, []
        for delivery in waiting:
            self._start(delivery)

    def publish(self, shop: str, subscription: dict, topic: str, payload: dict, *, event_id: str,
                triggered_at: str, order_id: int | None) -> Delivery:
        """Queue one delivery (any thread; the body is fixed now, retries resend it)."""
        delivery = Delivery(shop, subscription, topic, serialize(payload), str(uuid.uuid4()), event_id,
                            triggered_at, order_id)
        if self.loop is None:
            self._outbox.append(delivery)
        else:
            self.loop.call_soon_threadsafe(self._start, delivery)
        return delivery

    def _start(self, delivery: Delivery) -> None:
        self.pending[delivery.shop] = self.pending.get(delivery.shop, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self.tasks.add(task)
        task.add_done_callback(lambda t, shop=delivery.shop: self._done(t, shop))

    def _done(self, task: asyncio.Task, shop: str) -> None:
        self.tasks.discard(task)
        self.pending[shop] = max(self.pending.get(shop, 1) - 1, 0)

    # --- delivering ------------------------------------------------------------------
    def _rng(self, shop: str) -> random.Random:
        return self.rngs.setdefault(shop, random.Random(self.config(shop)["seed"]))

    def _subscribed(self, delivery: Delivery) -> bool:
        shop = self.store.shop(delivery.shop)
        return shop is not None and any(s is delivery.subscription for s in shop.webhook_subscriptions)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self._deliver(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an emulator bug must show in the log, not vanish with the task
            self._log(delivery, 0, None, {}, error=f"emulator error: {exc!r}")

    async def _deliver(self, delivery: Delivery) -> None:
        config, rng = self.config(delivery.shop), self._rng(delivery.shop)
        if config["jitter_seconds"]:
            await asyncio.sleep(rng.uniform(0, config["jitter_seconds"]))
        if rng.random() < config["drop_rate"]:
            self._log(delivery, 0, None, {}, dropped=True)
            return
        delays = retry_delays(int(config["retries"]))
        for attempt in range(1, len(delays) + 2):
            if not self._subscribed(delivery):  # deleted meanwhile: Shopify stops sending
                self._log(delivery, attempt, None, {}, error="subscription removed")
                return
            ok = await self._attempt(delivery, attempt, config)
            if ok:
                if rng.random() < config["duplicate_rate"]:  # at-least-once: the same delivery again
                    await self._attempt(delivery, attempt, config, duplicate=True)
                return
            if attempt <= len(delays):
                await asyncio.sleep(delays[attempt - 1] * config["retry_scale"])
        if delivery.subscription["_origin"] == "admin_api":
            shop = self.store.shop(delivery.shop)
            if shop is not None and webhooks.remove_subscription(shop, delivery.subscription["id"]):
                self._log(delivery, attempt, None, {}, error="subscription removed after persistent failure",
                          removed=True)

    def headers(self, delivery: Delivery) -> dict:
        shop = self.store.shop(delivery.shop)
        secret = shop.api_secret if shop is not None else ""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Hmac-Sha256": hmac_sha256(secret, delivery.body),
            "X-Shopify-Shop-Domain": f"{delivery.shop}.myshopify.com",
            "X-Shopify-API-Version": delivery.subscription["apiVersion"]["handle"],
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Triggered-At": delivery.triggered_at,
            "X-Shopify-Event-Id": delivery.event_id,
        }
        if delivery.order_id is not None:
            headers["X-Shopify-Order-Id"] = str(delivery.order_id)
        return headers

    async def _attempt(self, delivery: Delivery, attempt: int, config: dict, duplicate: bool = False) -> bool:
        headers = self.headers(delivery)
        total = float(config["timeout_seconds"])
        timeout = httpx.Timeout(total, connect=min(float(config["connect_timeout_seconds"]), total))
        gate = self.gates.setdefault(delivery.shop, asyncio.Semaphore(int(config["max_in_flight"]) or 1))
        status, error = None, None
        async with gate:
            started = time.monotonic()
            try:
                if self._client is None:
                    self._client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=None))
                response = await asyncio.wait_for(
                    self._client.post(delivery.subscription["uri"], content=delivery.body, headers=headers,
                                      timeout=timeout), total)
                status = response.status_code
            except (TimeoutError, httpx.TimeoutException):
                error = "timeout"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self._log(delivery, attempt, status, headers, error=error, duplicate=duplicate,
                  duration=round(time.monotonic() - started, 4), ok=ok)
        return ok

    def _log(self, delivery: Delivery, attempt: int, status, headers: dict, *, ok: bool = False,
             error: str | None = None, dropped: bool = False, duplicate: bool = False, removed: bool = False,
             duration: float = 0.0) -> None:
        self.logs.setdefault(delivery.shop, deque(maxlen=LOG_LIMIT)).append({
            "seq": next(self._seq), "at": webhooks.now_iso(), "topic": delivery.topic,
            "webhook_id": delivery.webhook_id, "event_id": delivery.event_id,
            "subscription_id": delivery.subscription["id"], "address": delivery.subscription["uri"],
            "attempt": attempt, "status": status, "ok": ok, "error": error, "dropped": dropped,
            "duplicate": duplicate, "subscription_removed": removed, "duration": duration,
            "headers": headers, "body": delivery.body.decode("utf-8"),
        })
