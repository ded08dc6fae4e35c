"""The ``query:`` search syntax of ``orders(query:)`` (notes §1 "query: search syntax").

Grammar (https://shopify.dev/docs/api/usage/search-syntax): terms joined by
whitespace or ``AND`` (implicit AND), ``OR`` between terms, ``-`` or ``NOT`` to
negate, ``field:value`` with comparators ``:<``, ``:<=``, ``:>``, ``:>=``; values
bare or quoted with ``'`` or ``"``. Times compare as instants; a date-only value
with ``:`` matches that whole day (shop time zone taken as UTC). Unknown fields
and free text are accepted and ignored, as Shopify ignores what it cannot
filter rather than failing the query.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Callable

Predicate = Callable[[dict], bool]

_TOKEN = re.compile(r"""\s*(\(|\)|-?[\w.]+:(?:<=|>=|<|>)?(?:'[^']*'|"[^"]*"|[^\s()]*)|'[^']*'|"[^"]*"|[^\s()]+)""")
_TERM = re.compile(r"""^(-?)([\w.]+):(<=|>=|<|>)?(.*)$""", re.S)

TIME_FIELDS = {"updated_at": "updatedAt", "created_at": "createdAt", "processed_at": "processedAt"}


def tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or not match.group(1):
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_instant(value: str) -> tuple[datetime, datetime] | None:
    """Return [start, end) covered by ``value``: an instant, a day, a month or a year."""
    value = value.strip()
    now = datetime.now(timezone.utc)
    if value.lower() == "now":
        return now, now
    try:
        if re.fullmatch(r"\d{4}", value):
            start = datetime(int(value), 1, 1, tzinfo=timezone.utc)
            return start, start.replace(year=start.year + 1)
        if re.fullmatch(r"\d{4}-\d{2}", value):
            year, month = map(int, value.split("-"))
            start = datetime(year, month, 1, tzinfo=timezone.utc)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
            return start, end
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            start = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment, moment


def _when(node: dict, key: str) -> datetime | None:
    text = node.get(key)
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _time_predicate(key: str, op: str, value: str) -> Predicate:
    span = parse_instant(value)
    if span is None:
        return lambda node: False  # an unparsable date matches nothing
    start, end = span

    def check(node: dict) -> bool:
        moment = _when(node, key)
        if moment is None:
            return False
        if op == ">":
            return moment > start if start == end else moment >= end
        if op == ">=":
            return moment >= start
        if op == "<":
            return moment < start
        if op == "<=":
            return moment <= start if start == end else moment < end
        return moment == start if start == end else start <= moment < end

    return check


def _compare(left, op: str, right) -> bool:
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}.get(op, left == right)


def _number_predicate(getter: Callable[[dict], object], op: str, value: str) -> Predicate:
    try:
        right = Decimal(value.rsplit("/", 1)[-1])
    except InvalidOperation:
        return lambda node: False
    return lambda node: getter(node) is not None and _compare(Decimal(str(getter(node))), op, right)


def _text_predicate(getter: Callable[[dict], list], value: str) -> Predicate:
    wanted = value.lower()
    if wanted.endswith("*"):
        prefix = wanted[:-1]
        return lambda node: any(str(v).lower().startswith(prefix) for v in getter(node) if v is not None)
    return lambda node: any(str(v).lower() == wanted for v in getter(node) if v is not None)


def _status(node: dict) -> list[str]:
    if node.get("cancelledAt"):
        return ["cancelled", "closed"]
    return ["closed"] if node.get("closedAt") else ["open", "not_closed"]


_TEXT_FIELDS: dict[str, Callable[[dict], list]] = {
    "name": lambda n: [n.get("name"), (n.get("name") or "").lstrip("#")],
    "email": lambda n: [n.get("email")],
    "financial_status": lambda n: [(n.get("displayFinancialStatus") or "").lower()],
    "fulfillment_status": lambda n: [(n.get("displayFulfillmentStatus") or "").lower(),
                                     "shipped" if n.get("displayFulfillmentStatus") == "FULFILLED" else "unshipped"],
    "status": _status,
    "test": lambda n: [str(bool(n.get("test"))).lower()],
    "sku": lambda n: [line.get("sku") for line in n.get("lineItems", [])],
    "gateway": lambda n: n.get("paymentGatewayNames", []),
    "customer_id": lambda n: [(n.get("customer") or {}).get("legacyResourceId")],
    "tag": lambda n: n.get("tags", []),
    "tag_not": lambda n: n.get("tags", []),
    "source_name": lambda n: [n.get("sourceName")],
}


def _term(token: str) -> Predicate | None:
    negate = False
    if token.startswith("-") and ":" in token:
        negate, token = True, token[1:]
    match = _TERM.match(token)
    if not match:
        return None  # free text: ignored
    _, field, op, raw = match.groups()
    value, op = _unquote(raw), op or ":"
    field = field.lower()
    if field in TIME_FIELDS:
        pred = _time_predicate(TIME_FIELDS[field], op, value)
    elif field == "id":
        pred = _number_predicate(lambda n: n.get("legacyResourceId"), op, value)
    elif field == "current_total_price":
        pred = _number_predicate(lambda n: n["currentTotalPriceSet"]["shopMoney"]["amount"], op, value)
    elif field in _TEXT_FIELDS:
        getter = _TEXT_FIELDS[field]
        pred = _text_predicate(getter, value) if op == ":" else (lambda n: True)
        if field == "tag_not":
            pred = lambda n, p=pred: not p(n)  # noqa: E731
    else:
        return None  # unknown field: ignored, never an error
    return (lambda n: not pred(n)) if negate else pred


def compile_query(text: str | None) -> Predicate:
    """Compile a search string into a predicate over Order node dicts."""
    if not text or not text.strip():
        return lambda node: True
    groups: list[list[Predicate]] = [[]]
    negate_next = False
    for token in tokenize(text):
        if token in ("(", ")", "AND"):
            continue  # grouping is flattened: implicit AND everywhere, OR splits groups
        if token == "OR":
            groups.append([])
            continue
        if token == "NOT":
            negate_next = True
            continue
        pred = _term(token)
        if pred is not None:
            if negate_next:
                pred = (lambda n, p=pred: not p(n))
            groups[-1].append(pred)
        negate_next = False
    groups = [g for g in groups if g] or [[]]
    return lambda node: any(all(p(node) for p in group) for group in groups)
