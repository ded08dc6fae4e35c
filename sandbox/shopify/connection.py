"""Relay connections over plain lists: opaque cursors, first/after/last/before.

Cursors are base64 JSON like the ones Shopify publishes,
``{"last_id":126216516,"last_value":"2005-07-31 15:57:11.000000"}`` (notes §1,
fixture graphql/orders_list_cursor_pagination.example.json). A cursor names a
position by (sort value, id), not by index, so a page boundary stays put when
earlier orders are updated between two page requests, as on Shopify.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Callable

MAX_PAGE = 250  # notes §1 "Max 250 per page"
FIRST_TOO_LARGE = ("first cannot exceed 250. To query larger amounts of data with fewer limits, "
                   "bulk operations should be used instead.")
LAST_TOO_LARGE = FIRST_TOO_LARGE.replace("first", "last", 1)
NO_FIRST_OR_LAST = "you must provide one of first or last"


class PaginationError(ValueError):
    """Bad pagination arguments; surfaces as a GraphQL error on the field."""


def _numeric(node: dict) -> int:
    """The numeric id used as tie-break (``index`` for id-less nodes such as discount applications)."""
    if "legacyResourceId" in node:
        return int(node["legacyResourceId"])
    if node.get("id"):
        return int(node["id"].rsplit("/", 1)[-1].split("?", 1)[0])
    return int(node.get("index") or 0)


def _decimal(value) -> Decimal:
    return Decimal(str(value))


# Sort key -> (value of a node as JSON-able, converter making it comparable).
SORT_KEYS: dict[str, tuple[Callable[[dict], object], Callable[[object], object]]] = {
    "UPDATED_AT": (lambda n: n["updatedAt"], str),
    "CREATED_AT": (lambda n: n["createdAt"], str),
    "PROCESSED_AT": (lambda n: n["processedAt"], str),
    "ID": (_numeric, int),
    "ORDER_NUMBER": (lambda n: int(n["number"]), int),
    "TOTAL_PRICE": (lambda n: n["totalPriceSet"]["shopMoney"]["amount"], _decimal),
    "CURRENT_TOTAL_PRICE": (lambda n: n["currentTotalPriceSet"]["shopMoney"]["amount"], _decimal),
    "CUSTOMER_NAME": (lambda n: ((n.get("customer") or {}).get("displayName") or "").lower(), str),
    "FINANCIAL_STATUS": (lambda n: n.get("displayFinancialStatus") or "", str),
    "FULFILLMENT_STATUS": (lambda n: n.get("displayFulfillmentStatus") or "", str),
    "TOTAL_ITEMS_QUANTITY": (lambda n: int(n.get("subtotalLineItemsQuantity") or 0), int),
}


def encode_cursor(value, last_id: int) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> dict:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        if not isinstance(data, dict) or "last_id" not in data:
            raise ValueError
        return data
    except (ValueError, TypeError):
        raise PaginationError("Invalid cursor for current pagination sort.") from None


def paginate(items: list[dict], *, first=None, after=None, last=None, before=None,
             sort_key: str = "ID", reverse: bool = False, require_size: bool = True,
             max_page: int | None = MAX_PAGE) -> dict:
    """Return ``{edges, nodes, pageInfo}`` for ``items`` sorted by ``sort_key`` (tie-break id)."""
    if first is None and last is None:
        if require_size:
            raise PaginationError(NO_FIRST_OR_LAST)
        first = MAX_PAGE
    if max_page is not None and first is not None and first > max_page:
        raise PaginationError(FIRST_TOO_LARGE)
    if max_page is not None and last is not None and last > max_page:
        raise PaginationError(LAST_TOO_LARGE)
    if (first is not None and first < 0) or (last is not None and last < 0):
        raise PaginationError("first and last must be non-negative")
    value_of, comparable = SORT_KEYS.get(sort_key, SORT_KEYS["ID"])

    def key(node):
        return comparable(value_of(node)), _numeric(node)

    ordered = sorted(items, key=key, reverse=reverse)
    keys = [key(n) for n in ordered]

    def position(cursor: str) -> tuple:
        data = decode_cursor(cursor)
        return comparable(data["last_value"]), int(data["last_id"])

    def is_after(k, bound) -> bool:
        return k < bound if reverse else k > bound

    start, end = 0, len(ordered)
    if after:
        bound = position(after)
        start = next((i for i, k in enumerate(keys) if is_after(k, bound)), len(ordered))
    if before:
        bound = position(before)
        end = next((i for i, k in enumerate(keys) if not is_after(bound, k)), len(ordered))
        end = max(end, start)
    lo, hi = start, end
    if first is not None:
        hi = min(hi, lo + first)
    if last is not None:
        lo = max(lo, hi - last)
    page = ordered[lo:hi]
    edges = [{"cursor": encode_cursor(value_of(n), _numeric(n)), "node": n} for n in page]
    return {
        "edges": edges,
        "nodes": page,
        "pageInfo": {
            # Relative to the whole sorted set, as Shopify answers (not Relay's narrower rule).
            "hasNextPage": hi < len(ordered),
            "hasPreviousPage": lo > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }
