"""WooCommerce store adapter on the official ``woocommerce`` library (REST wc/v3).

Incremental pull by ``modified_after``/``modified_before`` with
``dates_are_gmt=true``, 100 per page, paged by moving ``modified_after`` to
the last order read (see ``fetch_changed``; the ``Link`` header carries stale
OAuth parameters, so requests are built here; ../shared/notes/woocommerce.md
§1). The library signs OAuth 1.0a over http and uses Basic auth over https by itself (§4). Its default 5 s timeout is
too short for cheap hosting: ours is configurable, 30 s by default (§5).

Recovery table:
| what happens                     | what this module does                          |
|----------------------------------|------------------------------------------------|
| 429, 5xx, timeout, refused       | retry with backoff (tenacity), then SourceError |
| 401/403 (``woocommerce_rest_*``) | SourceError, not retryable, with WC's message  |
| 400 ``rest_invalid_param``       | SourceError, not retryable (a bug here)        |
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from typing import Iterator

import requests
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential
from woocommerce import API

from connector.errors import SourceError
from connector.rate_budget import budget_for, limits_for, retry_after_seconds
from connector.model import Order, require_balanced
from mappings.woocommerce_order import map_order

PER_PAGE = 100


class _Transient(Exception):
    def __init__(self, response: requests.Response | None, message: str):
        super().__init__(message)
        self.response = response


def _retryable(exc: BaseException) -> bool:
    # A connection cut mid-answer surfaces as ChunkedEncodingError, not ConnectionError.
    return isinstance(exc, (_Transient, requests.ConnectionError, requests.Timeout,
                            requests.exceptions.ChunkedEncodingError))


def wc_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _version(order: dict) -> tuple:
    return order.get("id"), order.get("date_modified_gmt") or ""


def _modified(order: dict) -> datetime | None:
    """The order's modification time (GMT, whole seconds), or None if the site sent none."""
    text = order.get("date_modified_gmt")
    if not text:
        return None
    return datetime.fromisoformat(text[:19]).replace(tzinfo=timezone.utc)


class WooCommerceSource:
    """Pull orders from one WooCommerce site."""

    system = "woocommerce"

    def __init__(self, store, limits=None):
        self.store = store.name
        self.posting = store.posting
        self.calls = 0
        # A rate budget per site only when ``limits.woocommerce.requests_per_second`` is set.
        spec = limits_for("woocommerce", limits)
        self._budget = budget_for("woocommerce", store.url, spec) if spec else None
        self._api = API(
            url=store.url,
            consumer_key=store.consumer_key.get_secret_value(),
            consumer_secret=store.consumer_secret.get_secret_value(),
            version="wc/v3",
            timeout=store.timeout_seconds,
            # requests takes a CA file path here as well as a bool.
            verify_ssl=store.ca_bundle or True,
        )

    @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(5),
           wait=wait_exponential(multiplier=0.5, max=20), reraise=True)
    def _get(self, endpoint: str, params: dict) -> requests.Response:
        self.calls += 1
        with self._budget.slot() if self._budget else nullcontext():
            response = self._api.get(endpoint, params=params)
        if response.status_code == 429 and self._budget:
            self._budget.penalise(min(60.0, retry_after_seconds(response.headers.get("Retry-After")) or 1.0))
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(response, f"HTTP {response.status_code}")
        return response

    def _checked(self, endpoint: str, params: dict) -> requests.Response:
        try:
            response = self._get(endpoint, params)
        except (_Transient, requests.RequestException) as exc:
            raise SourceError(self.store, f"WooCommerce did not answer in time or failed: {exc}") from exc
        if response.status_code != 200:
            try:
                body = response.json()
                message = f"{body.get('code')}: {body.get('message')}"
            except ValueError:
                message = response.text[:200]
            hint = " Check consumer_key/consumer_secret and that the key has read access." \
                if response.status_code in (401, 403) else ""
            raise SourceError(self.store, f"WooCommerce answered HTTP {response.status_code} {message}.{hint}",
                              retryable=False)
        return response

    def to_order(self, payload: dict) -> Order:
        return require_balanced(map_order(payload, self.store))

    @staticmethod
    def source_id(payload: dict) -> str:
        return str(payload.get("id"))

    def _with_refunds(self, order: dict) -> dict:
        """Attach the full refund objects: the order lists only {id, reason, total} (notes §1)."""
        if not order.get("refunds"):
            return order
        response = self._checked(f"orders/{order['id']}/refunds", {"per_page": PER_PAGE})
        return {**order, "o2c_refunds": response.json()}

    def fetch_by_ids(self, order_ids: list[str]) -> list[dict]:
        """Fetch announced orders fresh, 100 per request (``include`` as a comma list, notes §4).

        Orders the site no longer returns (trashed, deleted) are simply absent.
        """
        found: list[dict] = []
        ids = [str(i) for i in order_ids]
        for start in range(0, len(ids), PER_PAGE):
            chunk = ids[start:start + PER_PAGE]
            response = self._checked("orders", {"include": ",".join(chunk), "per_page": PER_PAGE,
                                                "status": "any", "orderby": "id", "order": "asc"})
            found.extend(self._with_refunds(o) for o in response.json())
        return found

    def fetch_changed(self, since: datetime, until: datetime) -> Iterator[list[dict]]:
        """Yield pages of orders modified in ``[since, until)``, each order once.

        Read by a moving cursor on the modification time (notes §1), not by page number. By page
        number, an order modified while the poll ran left the window, every later page moved up by
        one, and the order that moved onto a page already read was never read - nor by the next poll,
        its modification time being before that poll's window (16 of 2,500 orders in a scale-out run).

        WooCommerce's date bounds are exclusive (WP ``date_query``) with whole seconds, so each query
        asks from one second before the last order read; the orders of that second come again and are
        dropped here by ``(id, date_modified_gmt)``. A full page all in one second pages on by number
        within that second.
        """
        cursor, page = since - timedelta(seconds=1), 1
        seen: set[tuple] = set()  # (id, date_modified_gmt) read at or after the cursor's second
        params = {
            "per_page": PER_PAGE,
            "modified_before": wc_timestamp(until),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "status": "any",
        }
        while True:
            orders = self._checked("orders", {**params, "modified_after": wc_timestamp(cursor),
                                              "page": page}).json()
            fresh = [o for o in orders if _version(o) not in seen]
            seen.update(_version(o) for o in fresh)
            yield [self._with_refunds(o) for o in fresh]
            if len(orders) < PER_PAGE:
                return
            last = _modified(orders[-1])
            if last is not None and last - timedelta(seconds=1) > cursor:
                cursor, page, second = last - timedelta(seconds=1), 1, wc_timestamp(last)
                seen = {v for v in seen if v[1] >= second}  # only that second comes again
            else:
                page += 1
