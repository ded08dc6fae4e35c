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


def _error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


class WooCommerceSource:
    """Pull orders from one WooCommerce site."""

    system = "woocommerce"

    def __init__(self, store, limits=None):
        self.store = store.name
        self.posting = store.posting
        self.calls = 0
        self._refunds_route = True  # GET /refunds exists (WooCommerce >= 9.0) until the site says 404
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

    def _attach_refunds(self, orders: list[dict]) -> list[dict]:
        """:meth:`_with_refunds` for a page of orders, with one request per 100 refunds, not per order.

        WooCommerce 9.0 and later list refunds of any order at ``GET /refunds``, which takes ``include``
        (the refund ids the orders list); older sites answer 404 ``rest_no_route`` and are read order by
        order, as before (notes §1 routes). ``/refunds`` ignores ``parent`` (the controller unsets it),
        hence the ids. Within an order, refunds keep the per-order listing's order, newest first. An
        order whose refunds changed between the two reads is read on its own.
        """
        wanted = [int(r["id"]) for o in orders for r in o.get("refunds") or [] if str(r.get("id", "")).isdigit()]
        by_order = self._refunds_by_id(wanted) if wanted and self._refunds_route else None
        if by_order is None:
            return [self._with_refunds(o) for o in orders]
        out = []
        for order in orders:
            mine = by_order.get(order.get("id"), [])
            if not order.get("refunds"):
                out.append(order)
            elif len(mine) != len(order["refunds"]):
                out.append(self._with_refunds(order))
            else:
                mine.sort(key=lambda r: (r.get("date_created_gmt") or "", r.get("id") or 0), reverse=True)
                out.append({**order, "o2c_refunds": mine})
        return out

    def _refunds_by_id(self, refund_ids: list[int]) -> dict[int, list[dict]] | None:
        """``{order id: [refund, ...]}`` for ``refund_ids`` from ``GET /refunds``; None on a site older
        than WooCommerce 9.0 (remembered: such a site is not asked again)."""
        by_order: dict[int, list[dict]] = {}
        for start in range(0, len(refund_ids), PER_PAGE):
            chunk = refund_ids[start:start + PER_PAGE]
            try:
                response = self._get("refunds", {"include": ",".join(map(str, chunk)), "per_page": PER_PAGE})
            except (_Transient, requests.RequestException):
                response = None
            if response is not None and response.status_code == 404 and _error_code(response) == "rest_no_route":
                self._refunds_route = False
                return None
            if response is None or response.status_code != 200:
                return None  # read order by order this time (its errors are the ones to report)
            for refund in response.json():
                by_order.setdefault(refund.get("parent_id"), []).append(refund)
        return by_order

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
            found.extend(self._attach_refunds(response.json()))
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
            yield self._attach_refunds(fresh)
            if len(orders) < PER_PAGE:
                return
            last = _modified(orders[-1])
            if last is not None and last - timedelta(seconds=1) > cursor:
                cursor, page, second = last - timedelta(seconds=1), 1, wc_timestamp(last)
                seen = {v for v in seen if v[1] >= second}  # only that second comes again
            else:
                page += 1
