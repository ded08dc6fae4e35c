"""The QuickBooks query language subset: parse a SELECT and run it against one company.

Grammar (notes §2.1)::

    SELECT * | COUNT(*) | *, Sku FROM <Entity>
        [WHERE <field> <op> <value> [AND ...]]
        [ORDERBY | ORDER BY <field> [ASC|DESC] [, ...]]
        [STARTPOSITION n] [MAXRESULTS n]

ops ``= < > <= >= IN LIKE`` (LIKE takes ``%`` wildcards only); no OR, no JOIN, no projections
other than ``*, Sku``; ``Id`` only with ``=``/``IN``; keywords and string values compare
case-insensitively; ``\\'`` escapes a quote; STARTPOSITION is 1-based; MAXRESULTS defaults to
100, max 1000. Errors: 4000 (does not parse) / 4001 (invalid), HTTP 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal, InvalidOperation

from sandbox.quickbooks import faults
from sandbox.quickbooks.store import ENTITIES, Company, field_value

TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:\\.|[^'\\])*')
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),*])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""", re.VERBOSE)
NAME_LISTS = {"Customer", "Vendor", "Employee", "Item", "Account", "PaymentMethod", "TaxCode", "Term"}
MAX_RESULTS = 1000
DATE = re.compile(r"\d{4}-\d\d-\d\d")  # a value the scan compares as a moment (``_comparable``)


@dataclass
class Condition:
    field: str
    op: str
    values: list


@dataclass
class Query:
    entity: str
    count: bool = False
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start: int = 1
    max_results: int = 100


def tokenize(text: str) -> list[tuple[str, object]]:
    tokens, pos, text = [], 0, text.strip().rstrip(";")
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise faults.query_parse(f"Encountered \"{text[pos:pos + 10]}\" at column {pos + 1}.")
        pos = match.end()
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "string":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "number":
            tokens.append(("value", Decimal(raw)))
        elif kind == "word" and raw.lower() in ("true", "false"):
            tokens.append(("value", raw.lower() == "true"))
        else:
            tokens.append((kind, raw))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0):
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", None)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, raw = self.peek()
        if kind == "word" and str(raw).upper() in words:
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, raw: str | None = None):
        token = self.take()
        if token[0] != kind or (raw is not None and str(token[1]).upper() != raw):
            raise faults.query_parse(f"Encountered \"{token[1]}\", was expecting {raw or kind}.")
        return token[1]

    def parse(self) -> Query:
        if not self.keyword("SELECT"):
            raise faults.query_parse("query must start with SELECT")
        count = False
        if self.keyword("COUNT"):
            self.expect("punct", "(")
            self.expect("punct", "*")
            self.expect("punct", ")")
            count = True
        else:
            self.expect("punct", "*")
            while self.peek() == ("punct", ","):
                self.take()
                name = self.expect("word")
                if name.lower() != "sku":  # python-quickbooks sends `SELECT *, Sku FROM Item` (notes §2.1)
                    raise faults.query_parse(f"projection of {name} is not supported")
        if not self.keyword("FROM"):
            raise faults.query_parse("was expecting FROM")
        name = self.expect("word")
        entity = ENTITIES.get(name.lower())
        if entity is None:
            raise faults.query_invalid(f"Entity {name} is not supported")
        query = Query(entity=entity, count=count)
        if self.keyword("WHERE"):
            query.where.append(self.condition())
            while self.keyword("AND"):
                query.where.append(self.condition())
            if self.peek()[0] == "word" and str(self.peek()[1]).upper() == "OR":
                raise faults.query_parse("OR is not supported")
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self.expect("word", "BY")):
            while True:
                name = self.expect("word")
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                query.order.append((name, descending))
                if self.peek() != ("punct", ","):
                    break
                self.take()
        while self.peek()[0] == "word":
            if self.keyword("STARTPOSITION"):
                query.start = self.integer(1, None)
            elif self.keyword("MAXRESULTS"):
                query.max_results = self.integer(1, MAX_RESULTS)
            else:
                raise faults.query_parse(f"Encountered \"{self.peek()[1]}\".")
        if self.peek()[0] != "end":
            raise faults.query_parse(f"Encountered \"{self.peek()[1]}\".")
        return query

    def integer(self, low: int, high: int | None) -> int:
        kind, value = self.take()
        if kind != "value" or not isinstance(value, Decimal) or value != value.to_integral_value():
            raise faults.query_parse(f"Encountered \"{value}\", was expecting an integer.")
        number = int(value)
        if number < low:
            raise faults.query_invalid(f"value {number} is too small. Min allowed value is {low}")
        if high is not None and number > high:
            raise faults.query_invalid(f"value {number} is too large. Max allowed value is {high}")
        return number

    def condition(self) -> Condition:
        name = self.expect("word")
        kind, op = self.take()
        if kind == "word" and str(op).upper() in ("IN", "LIKE"):
            op = str(op).upper()
        elif kind != "op" or op in ("!=", "<>"):
            raise faults.query_parse(f"Encountered \"{op}\" after {name}.")
        if op == "IN":
            self.expect("punct", "(")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.value())
            self.expect("punct", ")")
        else:
            values = [self.value()]
        if name.lower() == "id" and op not in ("=", "IN"):
            raise faults.query_invalid(f"operator {op} is not supported for property Id")
        if op == "LIKE" and not isinstance(values[0], str):
            raise faults.query_invalid("LIKE needs a string value")
        return Condition(name, op, values)

    def value(self):
        kind, raw = self.take()
        if kind != "value":
            raise faults.query_parse(f"Encountered \"{raw}\", was expecting a value.")
        return raw


def parse(text: str) -> Query:
    """Parse a query; raises a ``Fault`` (4000/4001) when it is not valid."""
    if not text or not text.strip():
        raise faults.query_parse("empty query")
    return _Parser(text).parse()


# -- evaluation ----------------------------------------------------------------------------

_lookup = field_value  # what a condition compares (refs by id, e-mails by address)


def _moment(text: str, company: Company):
    try:
        if len(text) == 10:
            return datetime.combine(datetime.fromisoformat(text).date(), time(), company.clock.tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=company.clock.tz)


def _comparable(left, right, company: Company):
    """Bring a stored value and a query value to one comparable type, or (None, None)."""
    if isinstance(right, bool) or isinstance(left, bool):
        return (left, right) if isinstance(left, bool) and isinstance(right, bool) else (None, None)
    if isinstance(left, (int, Decimal)) or isinstance(right, Decimal):
        try:
            return Decimal(str(left)), Decimal(str(right))
        except InvalidOperation:
            pass
    if isinstance(left, str) and isinstance(right, str) and DATE.match(left) and DATE.match(right):
        a, b = _moment(left, company), _moment(right, company)
        if a and b:
            return a, b
    if isinstance(left, str) and isinstance(right, (str, Decimal)):
        return left.casefold(), str(right).casefold()
    return None, None


def _matches(obj: dict, cond: Condition, company: Company) -> bool:
    stored = _lookup(obj, cond.field)
    if stored is None:
        return False
    if cond.op == "LIKE":
        pattern = "".join(".*" if part == "%" else re.escape(part) for part in re.split(r"(%)", cond.values[0]))
        return isinstance(stored, str) and re.fullmatch(pattern, stored, re.IGNORECASE | re.DOTALL) is not None
    if cond.op == "IN":
        return any(_matches(obj, Condition(cond.field, "=", [v]), company) for v in cond.values)
    left, right = _comparable(stored, cond.values[0], company)
    if left is None:
        return False
    return {"=": left == right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[cond.op]


def _sort_key(path: str):
    def key(obj: dict):
        value = _lookup(obj, path)
        if value is None:
            return (2, "")
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return (0, Decimal(value))
        if path.lower() == "id" and str(value).isdigit():
            return (0, Decimal(value))
        return (1, str(value).casefold())
    return key


def run(company: Company, text: str) -> dict:
    """Run a query; returns the ``QueryResponse`` object (without ``time``)."""
    query = parse(text)
    return execute(company, query)


def _candidates(company: Company, query: Query) -> list[dict]:
    """Narrow by Id or by an indexed field's ``=``/``IN`` on strings (store.INDEXED) before scanning.

    The index holds every object whose value equals a query value case-insensitively (plus any
    whose value is not a string), a superset of what the condition matches, and ``execute``
    applies every condition to the candidates afterwards, so the result is the scan's. Values
    that look like dates are compared as moments by the scan, so they are not narrowed here.
    """
    for cond in query.where:
        if cond.field.lower() == "id" and all(isinstance(v, (str, Decimal)) for v in cond.values):
            found = (company.get(query.entity, str(v)) for v in cond.values)
            return [row for row in found if row is not None]
    for cond in query.where:
        if cond.op not in ("=", "IN") or not all(isinstance(v, str) and not DATE.match(v) for v in cond.values):
            continue
        ids: set[str] = set()
        for value in cond.values:
            found = company.indexed(query.entity, cond.field, value)
            if found is None:
                break
            ids |= found
        else:
            rows = (company.get(query.entity, i) for i in ids)
            return [row for row in rows if row is not None]
    return company.all(query.entity)


def execute(company: Company, query: Query) -> dict:
    rows = _candidates(company, query)
    if query.entity in NAME_LISTS and not any(c.field.lower() == "active" for c in query.where):
        # Inactive name-list objects are hidden unless the query names Active (notes §1.1).
        rows = [row for row in rows if row.get("Active", True)]
    rows = [row for row in rows if all(_matches(row, cond, company) for cond in query.where)]
    if query.count:
        return {"totalCount": len(rows)}
    rows.sort(key=_sort_key("Id"))
    for path, descending in reversed(query.order):
        rows.sort(key=_sort_key(path), reverse=descending)
    page = rows[query.start - 1:query.start - 1 + query.max_results]
    if not page:
        return {}
    # totalCount here is the page size, as in the docs sample; use COUNT(*) for the total.
    return {query.entity: page, "startPosition": query.start, "maxResults": len(page), "totalCount": len(page)}
