"""When and whether WooCommerce webhooks are delivered (notes §3 "Delivery semantics").

- An order action (``woocommerce_new_order``, ``woocommerce_update_order``,
  ``woocommerce_order_refunded``, ``wp_trash_post``, ``untrashed_post``...) makes
  every *active* webhook whose topic lists that hook queue a job, unless the
  order is in ``draft``/``auto-draft``/``new`` status (``WC_Webhook::should_deliver``).
- Jobs run in the background like Action Scheduler jobs, one at a time per site,
  after ``delay_seconds``; a job for the same (webhook, order) that is still
  pending is not queued twice (``wc_webhook_process_delivery``), so rapid
  changes coalesce into one delivery of the latest state.
- The payload is built when the job runs: the order exactly as ``GET
  /orders/<id>`` renders it, or ``{"id": <id>}`` for ``deleted``.
- No retries. 200-302 resets ``failure_count``; anything else (other codes,
  timeouts, refused connections) runs ``failed_delivery()``: when the count is
  already above 5 the webhook becomes ``disabled``, otherwise it is incremented
  (so the 7th consecutive failure disables it).
- Every save of a webhook sets ``date_modified`` and, while the webhook is
  active and its first ping has not answered 200 (``pending_delivery``) or its
  URL changed, pings again (``WC_Webhook_Data_Store::update``).

Per-site knobs (``POST /_sandbox/sites/<site>/webhooks/config``): ``delay_seconds``
(0), ``timeout_seconds`` (60, WC's ``MINUTE_IN_SECONDS``), ``ping_timeout_seconds``
(5, WP's default HTTP timeout), ``drop_rate`` (0.0: share of jobs that silently
never run, like a stalled WP-Cron) and ``seed`` for the drop dice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import secrets
from collections import deque
from dataclasses import dataclass

from sandbox.woocommerce import hookshot
from sandbox.woocommerce.errors import wp_json
from sandbox.woocommerce.render import serialize, wc_date
from sandbox.woocommerce.webhooks import is_valid_topic, utcnow

NO_DELIVERY_STATUSES = ("draft", "auto-draft", "new")   # is_valid_resource() for orders
MAX_FAILURES = 5                                        # woocommerce_max_webhook_delivery_failures
LOG_LIMIT = 2000


@dataclass
class Job:
    webhook_id: int
    arg: int
    home: str
    due: float


class SiteQueue:
    """The ``woocommerce-webhooks`` Action Scheduler group of one site."""

    def __init__(self):
        self.heap: list = []
        self.pending: dict[tuple[int, int], Job] = {}
        self.wake = asyncio.Event()
        self.worker: asyncio.Task | None = None


class Engine:
    def __init__(self, store, options: dict):
        self.store = store
        self.defaults = {
            "delay_seconds": float(options.get("webhook_delay_seconds", 0.0)),
            "timeout_seconds": float(options.get("webhook_timeout_seconds", 60.0)),
            "ping_timeout_seconds": float(options.get("webhook_ping_timeout_seconds", 5.0)),
            "drop_rate": float(options.get("webhook_drop_rate", 0.0)),
            "seed": None,
        }
        self.wp_version = str(options.get("wp_version", "6.5.3"))
        self.salt = secrets.token_hex(32)        # wp_salt('auth') of this install
        self._seq = itertools.count(1)
        self.queues: dict[str, SiteQueue] = {}
        self.configs: dict[str, dict] = {}
        self.rngs: dict[str, random.Random] = {}
        self.logs: dict[str, deque] = {}

    # ---- control -----------------------------------------------------------
    def reset(self) -> None:
        for queue in self.queues.values():
            if queue.worker and not queue.worker.done():
                queue.worker.cancel()
        self.queues, self.configs, self.rngs, self.logs = {}, {}, {}, {}

    def config(self, site_name: str) -> dict:
        return self.configs.setdefault(site_name, dict(self.defaults))

    def set_config(self, site_name: str, body: dict) -> dict:
        """Validate and merge a config body; raises ValueError on bad values."""
        config = dict(self.config(site_name))
        for name in ("delay_seconds", "timeout_seconds", "ping_timeout_seconds", "drop_rate"):
            if name in body:
                value = float(body[name])
                if value < 0 or (name == "drop_rate" and value > 1):
                    raise ValueError(f"{name} out of range: {value}")
                config[name] = value
        if "seed" in body:
            config["seed"] = body["seed"]
            self.rngs[site_name] = random.Random(body["seed"])
        self.configs[site_name] = config
        return config

    def report(self, site_name: str) -> dict:
        """The delivery log (oldest first), the pending jobs and the config."""
        queue = self.queues.get(site_name)
        loop_now = asyncio.get_running_loop().time()
        pending = [{"webhook_id": j.webhook_id, "resource_id": j.arg, "due_in": round(max(j.due - loop_now, 0), 3)}
                   for j in (queue.pending.values() if queue else [])]
        return {"deliveries": list(self.logs.get(site_name, [])), "pending": pending,
                "config": self.config(site_name)}

    # ---- scheduling --------------------------------------------------------
    def fire(self, site, action: str, order_id: int, home: str) -> list[int]:
        """Run the ``process()`` of every webhook hooked to ``action`` for this
        order; returns the ids of the webhooks that queued (or had) a job."""
        order = site.orders.get(order_id)
        queued = []
        for hook in sorted(site.webhooks.values(), key=lambda h: h.id):
            if action not in hook.hooks or hook.status != "active" or not is_valid_topic(hook.topic):
                continue
            if hook.resource != "order" or order is None or order["status"] in NO_DELIVERY_STATUSES:
                continue
            self._enqueue(site.name, hook.id, order_id, home)
            queued.append(hook.id)
        return queued

    def _enqueue(self, site_name: str, hook_id: int, arg: int, home: str) -> None:
        queue = self.queues.setdefault(site_name, SiteQueue())
        if (hook_id, arg) in queue.pending:
            return                                   # already pending: coalesced
        loop = asyncio.get_running_loop()
        job = Job(hook_id, arg, home, loop.time() + self.config(site_name)["delay_seconds"])
        queue.pending[(hook_id, arg)] = job
        heapq.heappush(queue.heap, (job.due, next(self._seq), job))
        queue.wake.set()
        if queue.worker is None or queue.worker.done():
            queue.worker = loop.create_task(self._work(site_name, queue))

    async def _work(self, site_name: str, queue: SiteQueue) -> None:
        loop = asyncio.get_running_loop()
        while queue.heap:
            due, _, job = queue.heap[0]
            wait = due - loop.time()
            if wait > 0:
                queue.wake.clear()
                try:
                    await asyncio.wait_for(queue.wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            heapq.heappop(queue.heap)
            # Running, no longer pending: a change from now on queues a new job.
            if queue.pending.get((job.webhook_id, job.arg)) is job:
                del queue.pending[(job.webhook_id, job.arg)]
            try:
                await self._run(site_name, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the queue alive, like a failed AS action
                self._log(site_name, {"kind": "error", "webhook_id": job.webhook_id,
                                      "resource_id": job.arg, "error": repr(exc)})

    # ---- delivering --------------------------------------------------------
    def _payload(self, site, hook, arg: int, home: str) -> dict:
        if hook.event == "deleted":
            return {"id": arg}
        order = site.orders.get(arg)
        if order is None:   # rest_do_request() answers with the WP_Error as data
            return {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
                    "data": {"status": 404}}
        return serialize(order, home)

    async def _run(self, site_name: str, job: Job) -> None:
        site = self.store.site(site_name)
        hook = site.webhooks.get(job.webhook_id) if site else None
        if hook is None:
            return
        config = self.config(site_name)
        rng = self.rngs.setdefault(site_name, random.Random(config["seed"]))
        if config["drop_rate"] and rng.random() < config["drop_rate"]:
            self._log(site_name, {"kind": "delivery", "webhook_id": hook.id, "topic": hook.topic,
                                  "resource_id": job.arg, "url": hook.delivery_url, "dropped": True, "ok": None})
            return
        body = wp_json(self._payload(site, hook, job.arg, job.home))
        delivery_id = hookshot.delivery_id(hook.id, self.salt)
        headers = hookshot.delivery_headers(hook, body, job.home + "/", delivery_id, self._ua(site))
        result = await hookshot.post(hook.delivery_url, body, headers, config["timeout_seconds"])
        self._log(site_name, self._entry("delivery", hook, job.arg, hook.delivery_url, headers, body, result,
                                         delivery_id=delivery_id))
        if result.ok:
            hook.failure_count = 0
        elif hook.failure_count > MAX_FAILURES:
            hook.status = "disabled"                 # failed_delivery()
        else:
            hook.failure_count += 1
        if site.webhooks.get(hook.id) is hook:
            await self.save(site, hook, job.home)

    async def save(self, site, hook, home: str, url_changed: bool = False) -> None:
        """``WC_Webhook_Data_Store::update``: date_modified, then maybe a ping."""
        hook.date_modified_gmt = utcnow()
        if hook.status == "active" and (url_changed or hook.pending_delivery):
            await self.ping(site, hook, home)

    async def ping(self, site, hook, home: str) -> bool:
        """``deliver_ping()``; True when the URL answered exactly 200."""
        body = f"webhook_id={hook.id}".encode()
        headers = hookshot.ping_headers(self._ua(site))
        result = await hookshot.post(hook.delivery_url, body, headers, self.config(site.name)["ping_timeout_seconds"])
        self._log(site.name, self._entry("ping", hook, None, hook.delivery_url, headers, body, result))
        if result.status != 200:
            return False
        hook.pending_delivery = False
        await self.save(site, hook, home)
        return True

    def _ua(self, site) -> str:
        return hookshot.user_agent(site.wc_version, self.wp_version)

    @staticmethod
    def _entry(kind, hook, arg, url, headers, body: bytes, result, delivery_id=None) -> dict:
        return {
            "kind": kind, "webhook_id": hook.id, "topic": hook.topic if kind == "delivery" else None,
            "resource_id": arg, "delivery_id": delivery_id, "url": url, "method": "POST",
            "headers": headers, "body": body.decode("ascii", "replace"),
            "status": result.status, "message": result.message, "error": result.error,
            "response_headers": result.headers, "response_body": result.body,
            "duration": result.duration, "dropped": False,
            # A delivery succeeds on 200-302; a ping only on exactly 200 (deliver_ping()).
            "ok": result.ok if kind == "delivery" else result.status == 200,
        }

    def _log(self, site_name: str, entry: dict) -> None:
        entry = {"seq": next(self._seq), "date_gmt": wc_date(utcnow()), **entry}
        self.logs.setdefault(site_name, deque(maxlen=LOG_LIMIT)).append(entry)
