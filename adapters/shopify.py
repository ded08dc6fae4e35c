"""Shopify store adapter on the official ``ShopifyAPI`` SDK (GraphQL Admin API).

Reads orders changed in a half-open ``updated_at`` window, sorted by
``UPDATED_AT`` as the docs advise for range searches
(../shared/notes/shopify.md §1), and paces itself by the cost bucket that
every answer reports in ``extensions.cost.throttleStatus`` (§2).

Recovery table:
| what happens                               | what this module does                         |
|--------------------------------------------|-----------------------------------------------|
| ``THROTTLED`` (HTTP 200) or HTTP 429       | wait for the bucket to refill, retry (tenacity) |
| HTTP 5xx, timeout, connection refused      | retry with backoff, then ``SourceError``      |
| HTTP 401/403                               | ``SourceError`` (not retryable): check the token |
| other GraphQL ``errors``                   | ``SourceError`` naming Shopify's message      |
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import urlparse

import shopify
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from connector.errors import SourceError
from connector.model import Order, require_balanced
from adapters.shopify_queries import ACCESS_SCOPES, documents
from mappings.shopify_order import map_order

VISIBLE_DAYS_WITHOUT_SCOPE = 60
MAX_QUERY_COST = 1000  # Shopify's single-query limit, whatever the plan (notes §2)
COST_TARGET = 900  # stay a little under it: the requested cost is an estimate of ours too


class CostTooHigh(Exception):
    def __init__(self, cost: int):
        super().__init__(f"query cost {cost} is over {MAX_QUERY_COST}")
        self.cost = cost


class Throttled(Exception):
    """Shopify said THROTTLED or 429; ``wait`` is how long the bucket needs."""

    def __init__(self, wait: float):
        super().__init__(f"throttled, retry in {wait:.1f}s")
        self.wait = wait


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, Throttled):
        time.sleep(min(exc.wait, 30))
        return True
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    # http.client.HTTPException covers an answer cut off mid-body (IncompleteRead, RemoteDisconnected).
    return isinstance(exc, (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException))


class TimedGraphQL(shopify.GraphQL):
    """The SDK's GraphQL client with a timeout on every request.

    ``shopify.GraphQL.execute`` calls ``urlopen`` without one (and prints error
    bodies to stdout): one answer that never comes would hang a daemon's poll job
    for good. Same endpoint, headers and body as the SDK builds; only the wait is
    bounded and errors are raised, not printed.
    """

    timeout_seconds = 60.0

    def execute(self, query, variables=None, operation_name=None):
        headers = self.merge_headers({"Accept": "application/json", "Content-Type": "application/json"},
                                     self.headers)
        data = {"query": query, "variables": variables, "operationName": operation_name}
        request = urllib.request.Request(self.endpoint, json.dumps(data).encode("utf-8"), headers)
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            return response.read().decode("utf-8")


def shopify_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ShopifySource:
    """Pull orders from one Shopify shop."""

    system = "shopify"

    def __init__(self, store):
        self.store = store.name
        self.posting = store.posting
        self.settings = store
        self.money = store.book_in
        self.queries = documents(store.book_in)
        self.page_size = store.page_size
        self.lines_per_order = 10  # most orders fit; longer ones are completed by follow-up queries
        self.bulk_page_size = 250  # orders per backfill commit
        self.calls = 0
        self.last_cost: float | None = None
        self._scopes: set[str] | None = None
        self._client = self._graphql_client(store)

    @staticmethod
    def _graphql_client(store) -> shopify.GraphQL:
        host = urlparse(store.shop_url).hostname or ""
        session = shopify.Session(host if host.endswith(".myshopify.com") else "local.myshopify.com",
                                  store.api_version, store.access_token.get_secret_value())
        shopify.ShopifyResource.activate_session(session)
        if not host.endswith(".myshopify.com"):
            # A non-myshopify host (the local sandbox) would be rewritten by Session's host rules;
            # set the site directly, as ../shared/notes/shopify.md §4 recipe A does.
            shopify.ShopifyResource.site = f"{store.shop_url}/admin/api/{store.api_version}"
        client = TimedGraphQL()  # captures endpoint and headers now; no global state used later
        client.timeout_seconds = store.timeout_seconds
        # get_headers() hands out the shared thread-local dict, which clear_session() empties: keep a copy.
        client.headers = dict(client.headers)
        shopify.ShopifyResource.clear_session()
        return client

    @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(6),
           wait=wait_exponential(multiplier=0.5, max=20), reraise=True)
    def _execute(self, query: str, variables: dict, operation: str) -> dict:
        self.calls += 1
        try:
            text = self._client.execute(query, variables=variables, operation_name=operation)
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                raise Throttled(float(exc.headers.get("Retry-After") or 2)) from exc
            raise
        answer = json.loads(text)
        errors = answer.get("errors") or []
        if errors:
            code = ((errors[0].get("extensions") or {}).get("code")) if isinstance(errors[0], dict) else None
            if code == "THROTTLED":
                raise Throttled(self._wait_for(answer, requested=None))
            if code == "MAX_COST_EXCEEDED":
                raise CostTooHigh(int(errors[0]["extensions"].get("cost") or MAX_QUERY_COST * 2))
            raise SourceError(self.store, f"Shopify answered: {errors[0].get('message', errors)}", retryable=False)
        self._pace(answer)
        self.last_cost = ((answer.get("extensions") or {}).get("cost") or {}).get("requestedQueryCost")
        return answer["data"]

    def _query(self, query: str, variables: dict, operation: str, doing: str) -> dict:
        """``_execute``, with spent retries turned into a ``SourceError`` saying what was being done."""
        try:
            return self._execute(query, variables, operation)
        except (SourceError, CostTooHigh):
            raise
        except Exception as exc:  # spent retries: connection, 5xx, throttling
            raise SourceError(self.store, f"could not {doing}: {exc}") from exc

    @staticmethod
    def _wait_for(answer: dict, requested: float | None) -> float:
        cost = (answer.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        need = requested or cost.get("requestedQueryCost") or 0
        available = status.get("currentlyAvailable", 0)
        rate = status.get("restoreRate") or 50
        return max(0.5, (need - available) / rate)

    def _pace(self, answer: dict) -> None:
        """Sleep before the next query if the bucket could not pay for another like this one."""
        cost = (answer.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        requested = cost.get("requestedQueryCost") or 0
        if status and status.get("currentlyAvailable", 0) < requested:
            time.sleep(min(30.0, (requested - status["currentlyAvailable"]) / (status.get("restoreRate") or 50)))

    def to_order(self, payload: dict) -> Order:
        return require_balanced(map_order(payload, self.store, money=self.money))

    @staticmethod
    def source_id(payload: dict) -> str:
        return str(payload.get("legacyResourceId") or payload.get("id"))

    def check_history_visible(self, since: datetime) -> None:
        """Refuse to read a window Shopify would silently cut to its last 60 days.

        Without the ``read_all_orders`` scope an app sees only orders of the
        last 60 days (notes §1): an older window would look like "no orders".
        """
        if since >= datetime.now(timezone.utc) - timedelta(days=VISIBLE_DAYS_WITHOUT_SCOPE):
            return
        if self._scopes is None:
            data = self._execute(ACCESS_SCOPES, {}, "AccessScopes")
            self._scopes = {s["handle"] for s in data["currentAppInstallation"]["accessScopes"]}
        if "read_all_orders" not in self._scopes:
            raise SourceError(
                self.store,
                f"this app can only see Shopify orders of the last {VISIBLE_DAYS_WITHOUT_SCOPE} days, and the sync "
                f"asks for orders since {since:%Y-%m-%d}. Older orders are not missing: Shopify hides them. Grant "
                "the app the read_all_orders scope (Shopify approves it per app), or start later: set "
                "initial_cursor / --since within the last 60 days", retryable=False)

    def fetch_changed(self, since: datetime, until: datetime) -> Iterator[list[dict]]:
        """Yield pages of orders with ``since <= updatedAt < until`` (half-open, no gaps, no overlap).

        Pages are sized by cost: after each answer the next ``first`` is set
        so the requested cost stays under the single-query maximum, and a
        ``MAX_COST_EXCEEDED`` answer shrinks the page and asks again.
        """
        self.check_history_visible(since)
        search = f"updated_at:>='{shopify_timestamp(since)}' AND updated_at:<'{shopify_timestamp(until)}'"
        after = None
        first = self.page_size
        seen_cursors = set()
        while True:
            variables = {"first": first, "after": after, "query": search, "lines": self.lines_per_order}
            try:
                data = self._query(self.queries.page, variables, "OrdersPage", "read orders from Shopify")
            except CostTooHigh as exc:
                if first == 1:
                    raise SourceError(self.store, f"even one order costs {exc.cost} points", retryable=False)
                first = max(1, int(first * COST_TARGET / exc.cost))
                continue
            connection = data["orders"]
            yield [self._complete(node) for node in connection["nodes"]]
            if self.last_cost:
                per_order = self.last_cost / max(1, first)
                first = max(1, min(self.page_size, int(COST_TARGET / per_order)))
            page = connection["pageInfo"]
            if not page["hasNextPage"]:
                return
            if page["endCursor"] in seen_cursors:  # a paginator must never loop forever
                raise SourceError(self.store, "Shopify returned the same page cursor twice", retryable=False)
            seen_cursors.add(page["endCursor"])
            after = page["endCursor"]

    # -- bulk export (backfills): the BulkSource protocol ---------------------------------
    def bulk_start(self, since: datetime, until: datetime) -> str:
        from adapters.shopify_bulk import ShopifyBulk
        self.check_history_visible(since)
        search = f"updated_at:>='{shopify_timestamp(since)}' AND updated_at:<'{shopify_timestamp(until)}'"
        return ShopifyBulk(self).start(search)

    def bulk_wait(self, operation_id: str, poll_seconds: float = 2.0) -> str | None:
        """Wait for the export; return its download URL (None: nothing matched)."""
        from adapters.shopify_bulk import ShopifyBulk
        status = ShopifyBulk(self, poll_seconds=poll_seconds).wait(operation_id)
        if status.status != "COMPLETED":
            raise SourceError(self.store, f"the bulk operation ended {status.status} ({status.error});"
                              " run the backfill again to start a new one", retryable=False)
        return status.url

    def bulk_download(self, url: str, path) -> None:
        from adapters.shopify_bulk import ShopifyBulk
        ShopifyBulk(self).download(url, path)

    def bulk_pages(self, path, skip: int = 0):
        """Pages of ``bulk_page_size`` whole orders (each page is one ledger transaction, and what a
        backfill holds in memory at a time)."""
        from adapters.shopify_bulk import reassemble
        return reassemble(path, skip=skip, page_size=self.bulk_page_size)

    def fetch_by_ids(self, order_ids: list[str]) -> list[dict]:
        """Fetch announced orders fresh, many per query (``nodes(ids:)``), sized by cost.

        ``order_ids`` are numeric ids or gids; orders Shopify no longer returns
        (deleted, or outside the 60-day window) are simply absent.
        """
        gids = [i if i.startswith("gid://") else f"gid://shopify/Order/{i}" for i in order_ids]
        found: list[dict] = []
        size = self.page_size
        while gids:
            chunk = gids[:size]
            try:
                data = self._query(self.queries.by_id, {"ids": chunk, "lines": self.lines_per_order},
                                   "OrdersById", "fetch orders by id from Shopify")
            except CostTooHigh as exc:
                size = max(1, int(size * COST_TARGET / exc.cost))
                continue
            found.extend(self._complete(n) for n in data["nodes"] if n and n.get("__typename") == "Order")
            gids = gids[len(chunk):]
            if self.last_cost:
                size = max(1, min(250, int(COST_TARGET / (self.last_cost / len(chunk)))))
        return found

    def _complete(self, node: dict) -> dict:
        """Fetch what did not fit on the page: more line items, shipping lines, transactions, refunds."""
        node = self._complete_lines(node)
        shipping_more = ((node.get("shippingLines") or {}).get("pageInfo") or {}).get("hasNextPage")
        if shipping_more or len(node.get("transactions") or []) >= 5 or len(node.get("refunds") or []) >= 5:
            more = self._query(self.queries.more_lists, {"id": node["id"]}, "OrderLists",
                               f"complete order {node.get('name')}")["order"]
            node = {**node, "shippingLines": {"nodes": more["shippingLines"]["nodes"]},
                    "transactions": more["transactions"], "refunds": more["refunds"]}
        if node.get("refunds"):
            node = self._refund_details(node)
        return node

    def _refund_details(self, node: dict) -> dict:
        """Replace the refund summaries with what each refund gave back (lines, shipping, gateway)."""
        if len(node["refunds"]) > 5:
            raise SourceError(self.store, f"order {node.get('name')} has {len(node['refunds'])} refunds; more than 5"
                              " per order is not read yet, so it is not booked", retryable=False)
        refunds = self._query(self.queries.refund_details, {"id": node["id"]}, "OrderRefunds",
                              f"read the refunds of order {node.get('name')}")["order"]["refunds"]
        for refund in refunds:
            if refund["refundLineItems"]["pageInfo"]["hasNextPage"]:
                raise SourceError(self.store, f"a refund of order {node.get('name')} has more than 20 lines; not"
                                  " read yet, so the order is not booked", retryable=False)
        return {**node, "refunds": refunds}

    def _complete_lines(self, node: dict) -> dict:
        lines = node.get("lineItems") or {}
        page = lines.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return node
        collected = list(lines.get("nodes") or [])
        after = page.get("endCursor")
        per_query = 50
        while after:
            try:
                data = self._query(self.queries.more_lines, {"id": node["id"], "after": after, "lines": per_query},
                                   "OrderLines", f"read the lines of order {node.get('name')}")
            except CostTooHigh as exc:
                per_query = max(1, int(per_query * COST_TARGET / exc.cost))
                continue
            more = data["order"]["lineItems"]
            collected.extend(more["nodes"])
            after = more["pageInfo"]["endCursor"] if more["pageInfo"]["hasNextPage"] else None
        return {**node, "lineItems": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": collected}}
