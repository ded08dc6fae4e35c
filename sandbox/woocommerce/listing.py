"""GET /orders collection semantics: parameter validation, filters, sort,
pagination and the pagination headers (notes §1 "GET /orders query
parameters" and "Pagination headers")."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from sandbox.woocommerce.errors import WPError, invalid_params

STATUSES = ["pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "checkout-draft"]
STATUS_ENUM = ["any", "trash", "auto-draft"] + STATUSES
ORDERBY = ["date", "id", "include", "title", "slug", "modified"]   # WC 7.9 class-wc-rest-crud-controller.php
# rest_parse_date(): RFC 3339 with optional fraction and offset; a bare date is "Invalid date."
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?$", re.I)
DATE_PARAMS = {"after": "date_created", "before": "date_created",
               "modified_after": "date_modified", "modified_before": "date_modified"}


def wp_list(items: list[str]) -> str:
    """wp_sprintf '%l': "a and b", "a, b, and c"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _int(params: dict, name: str, problems: dict, default=None, minimum=None, maximum=None):
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, dict) or not re.fullmatch(r"\s*-?\d+\s*", str(value)):
        problems[name] = f"{name} is not of type integer."
        return default
    number = int(value)
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        problems[name] = f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)"
    elif minimum is not None and number < minimum:
        problems[name] = f"{name} must be greater than or equal to {minimum}"
    return number


def parse_list(value) -> list[str]:
    """WP accepts an array or a comma/space separated string (wp_parse_list)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    return [part for part in re.split(r"[\s,]+", str(value)) if part]


def _parse_date(text: str, site_offset: timedelta, gmt: bool) -> datetime | None:
    match = RFC3339.match(text)
    if not match:
        return None
    naive = datetime(*(int(match.group(i)) for i in range(1, 7)))
    zone = match.group(8)
    if not zone:
        return naive   # compared as-is against the chosen column (WP_Date_Query)
    if zone.upper() == "Z":
        aware = naive.replace(tzinfo=timezone.utc)
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        aware = naive.replace(tzinfo=timezone(sign * delta))
    utc = aware.astimezone(timezone.utc).replace(tzinfo=None)
    return utc if gmt else utc + site_offset


def parse_query(params: dict, site_offset: timedelta) -> dict:
    """Validate like WP_REST_Request::has_valid_params; raise rest_invalid_param."""
    problems: dict[str, str] = {}
    q = {
        "page": _int(params, "page", problems, 1, minimum=1),
        "per_page": _int(params, "per_page", problems, 10, 1, 100),
        "offset": _int(params, "offset", problems),
    }
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        problems["order"] = f"order is not one of {wp_list(['asc', 'desc'])}."
    orderby = params.get("orderby", "date")
    if orderby not in ORDERBY:
        problems["orderby"] = f"orderby is not one of {wp_list(ORDERBY)}."
    q["order"], q["orderby"] = order, orderby
    statuses = parse_list(params.get("status")) or ["any"]
    for i, status in enumerate(statuses):
        if status not in STATUS_ENUM:
            problems["status"] = f"status[{i}] is not one of {wp_list(STATUS_ENUM)}."
            break
    q["status"] = statuses
    gmt = str(params.get("dates_are_gmt", "false")).lower() in ("1", "true")
    q["dates_are_gmt"] = gmt
    for name in DATE_PARAMS:
        if name in params:
            parsed = _parse_date(str(params[name]), site_offset, gmt)
            if parsed is None:
                problems[name] = "Invalid date."
            q[name] = parsed
    for name in ("include", "exclude", "parent", "parent_exclude"):
        ids = parse_list(params.get(name))
        bad = [i for i, part in enumerate(ids) if not part.isdigit()]
        if bad:
            problems[name] = f"{name}[{bad[0]}] is not of type integer."
        q[name] = [int(p) for p in ids if p.isdigit()]
    q["customer"] = _int(params, "customer", problems)
    q["search"] = str(params.get("search") or "").strip().lower()
    if problems:
        raise invalid_params(problems)
    return q


def _moment(order: dict, field: str, gmt: bool) -> datetime:
    return datetime.fromisoformat(order[f"{field}_gmt" if gmt else field])


def _haystack(order: dict) -> str:
    # WC order search looks at the address index (billing/shipping), email and item names.
    parts = [str(order["id"])] + [str(v) for v in order["billing"].values() if v]
    parts += [str(v) for v in order["shipping"].values() if v] + [li["name"] for li in order["line_items"]]
    return " ".join(parts).lower()


def _wanted(order: dict, q: dict) -> bool:
    if q["include"] and order["id"] not in q["include"]:
        return False
    if order["id"] in q["exclude"]:
        return False
    if q["parent"] and order["parent_id"] not in q["parent"]:
        return False
    if order["parent_id"] in q["parent_exclude"]:
        return False
    if q["customer"] is not None and order["customer_id"] != q["customer"]:
        return False
    return not q["search"] or q["search"] in _haystack(order)


def select(orders: list[dict], q: dict) -> list[dict]:
    """Filter then sort; date bounds are exclusive (WP date_query default)."""
    wanted = set(q["status"])
    if "any" in wanted:
        # 'any' excludes statuses registered with exclude_from_search (trash, drafts).
        wanted = (wanted - {"any"}) | {s for s in STATUSES if s != "checkout-draft"}
    out = []
    for order in orders:
        if order["status"] not in wanted:
            continue
        if not _wanted(order, q):
            continue
        keep = True
        for name, field in DATE_PARAMS.items():
            bound = q.get(name)
            if bound is None:
                continue
            moment = _moment(order, field, q["dates_are_gmt"])
            if (name.endswith("after") and not moment > bound) or (name.endswith("before") and not moment < bound):
                keep = False
                break
        if keep:
            out.append(order)
    reverse = q["order"] == "desc"
    if q["orderby"] == "include" and q["include"]:
        position = {oid: i for i, oid in enumerate(q["include"])}
        out.sort(key=lambda o: position[o["id"]])
    elif q["orderby"] == "id":
        out.sort(key=lambda o: o["id"], reverse=reverse)
    elif q["orderby"] == "modified":
        out.sort(key=lambda o: (o["date_modified_gmt"], o["id"]), reverse=reverse)
    else:
        # 'date' becomes "date ID" in WC (stable tie-break); order titles and
        # slugs are "Order – <created date>", so they sort like the date too.
        out.sort(key=lambda o: (o["date_created_gmt"], o["id"]), reverse=reverse)
    return out


def paginate(matched: list, q: dict) -> tuple[list, int, int]:
    """Returns (page items, total, total pages); ``offset`` overrides ``page``."""
    per_page = q["per_page"]
    start = q["offset"] if q["offset"] is not None else (q["page"] - 1) * per_page
    total = len(matched)
    return matched[max(start, 0):max(start, 0) + per_page], total, math.ceil(total / per_page)


def _add_query_arg(base: str, params: dict) -> str:
    # add_query_arg does not encode values; only characters that would break
    # the header are escaped here.
    def enc(value) -> str:
        return quote(str(value), safe="!$'()*+,;=:@/?-._~%")
    parts = []
    for key, value in params.items():
        if isinstance(value, dict):
            parts += [f"{enc(key)}[{enc(k)}]={enc(v)}" for k, v in value.items()]
        else:
            parts.append(f"{enc(key)}={enc(value)}")
    return base + ("?" + "&".join(parts) if parts else "")


def headers(collection_url: str, params: dict, q: dict, total: int, pages: int) -> dict:
    """X-WP-Total, X-WP-TotalPages and a Link with only prev/next, its base
    rebuilt from every request query param, oauth_* included (notes §1)."""
    out = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    page, links = q["page"], []
    if page > 1:
        links.append(f'<{_add_query_arg(collection_url, {**params, "page": min(page - 1, pages)})}>; rel="prev"')
    if pages > page:
        links.append(f'<{_add_query_arg(collection_url, {**params, "page": page + 1})}>; rel="next"')
    if links:
        out["Link"] = ", ".join(links)
    return out
