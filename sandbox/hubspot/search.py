"""``POST /crm/v3/objects/{type}/search`` (``shared/notes/hubspot.md`` §2.1, §3).

Filter groups are ORed, filters inside a group ANDed; limits: 5 groups, 6 filters
per group, 18 in total (the notes' conservative reading), page size <= 200,
10,000 results per query. Search is eventually consistent in real life; here it
sees every committed write at once.
"""

from __future__ import annotations

from .errors import validation
from .objects import ObjectStore, creation_order, unique_key

MAX_GROUPS, MAX_PER_GROUP, MAX_FILTERS, MAX_LIMIT, MAX_TOTAL = 5, 6, 18, 200, 10_000


def _norm(prop: str, value) -> str | None:
    # HubSpot compares string values case-insensitively in search; emails are stored lower-cased anyway.
    return None if value is None else unique_key("email", str(value))


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(op: str, have, want) -> bool:
    a, b = _number(have), _number(want)
    if a is None or b is None:
        a, b = have, want
    if a is None or b is None:
        return False
    return {"LT": a < b, "LTE": a <= b, "GT": a > b, "GTE": a >= b}[op]


def matches(record_props: dict, flt: dict) -> bool:
    """One filter against one record's properties."""
    prop, op = flt.get("propertyName"), flt.get("operator", "EQ")
    have = _norm(prop, record_props.get(prop) if prop != "hs_object_id" else record_props.get("hs_object_id"))
    if op == "HAS_PROPERTY":
        return have not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return have in (None, "")
    if op in ("EQ", "NEQ"):
        hit = have is not None and have == _norm(prop, flt.get("value"))
        return hit if op == "EQ" else not hit
    if op in ("IN", "NOT_IN"):
        wanted = {_norm(prop, v) for v in flt.get("values") or []}
        hit = have in wanted
        return hit if op == "IN" else not hit
    if op in ("LT", "LTE", "GT", "GTE"):
        return _compare(op, have, _norm(prop, flt.get("value")))
    if op == "BETWEEN":
        return _compare("GTE", have, _norm(prop, flt.get("value"))) and \
            _compare("LTE", have, _norm(prop, flt.get("highValue")))
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = (_norm(prop, flt.get("value")) or "").strip("*")
        hit = have is not None and token in have
        return hit if op == "CONTAINS_TOKEN" else not hit
    raise validation(f"Invalid filter operator {op}")


# A tuple, compared with ==, as matches() does: an unhashable operator is refused there, not here.
OPERATORS = ("EQ", "NEQ", "IN", "NOT_IN", "LT", "LTE", "GT", "GTE", "BETWEEN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")


def _well_formed(flt) -> bool:
    """True when :func:`matches` cannot raise on this filter, whatever the record."""
    if not isinstance(flt, dict) or not isinstance(flt.get("propertyName"), str):
        return False
    op = flt.get("operator", "EQ")
    if op not in OPERATORS:
        return False
    return op not in ("IN", "NOT_IN") or not flt.get("values") or isinstance(flt["values"], list)


def _narrowing(store: ObjectStore, object_type: str, flt: dict) -> list | None:
    """The live records an ``EQ``/``IN`` filter can match, from the property index; None when
    the filter does not narrow (other operators, a null value: those match records without it)."""
    op, prop = flt.get("operator", "EQ"), flt["propertyName"]
    if op == "EQ" and flt.get("value") is not None:
        return store.candidates(object_type, prop, flt["value"])
    if op == "IN" and isinstance(flt.get("values"), list) and None not in flt["values"]:
        found = {}
        for value in flt["values"]:
            found.update((r.id, r) for r in store.candidates(object_type, prop, value))
        return list(found.values())
    return None


def _candidates(store: ObjectStore, object_type: str, groups: list) -> list | None:
    """The live records that can match some group, in creation order, or None to scan them all.

    Each group contributes the smallest bucket among its ``EQ``/``IN`` filters (a record
    matching the group passes every filter, so it is in that bucket). The caller still runs
    every filter on each candidate, so the answer is the scan's. Used only when no filter could
    raise, so errors do not depend on which records happen to be looked at.
    """
    if not groups or not all(_well_formed(f) for g in groups for f in g.get("filters") or []):
        return None
    found = {}
    for group in groups:
        best = None
        for flt in group.get("filters") or []:
            narrowed = _narrowing(store, object_type, flt)
            if narrowed is not None and (best is None or len(narrowed) < len(best)):
                best = narrowed
        if best is None:
            return None  # this group can match records the indexes do not point to
        found.update((r.id, r) for r in best)
    return sorted(found.values(), key=creation_order)


def search(store: ObjectStore, object_type: str, body) -> dict:
    """Run a ``PublicObjectSearchRequest``; returns ``{total, results, paging?}``."""
    body = body or {}
    groups = body.get("filterGroups") or []
    filters = [f for g in groups for f in (g.get("filters") or [])]
    if len(groups) > MAX_GROUPS or any(len(g.get("filters") or []) > MAX_PER_GROUP for g in groups) \
            or len(filters) > MAX_FILTERS:
        raise validation(f"Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_PER_GROUP} filters per "
                         f"group and {MAX_FILTERS} in total")
    limit = int(body.get("limit") or 10)
    if limit > MAX_LIMIT:
        raise validation(f"limit must be at most {MAX_LIMIT}")
    after = int(body.get("after") or 0)
    query = (body.get("query") or "").lower()
    hits = []
    pool = _candidates(store, object_type, groups)
    for record in store.live(object_type) if pool is None else pool:
        props = record.properties
        if groups and not any(all(matches(props, f) for f in (g.get("filters") or [])) for g in groups):
            continue
        if query and not any(query in (v or "").lower() for v in props.values()):
            continue
        hits.append(record)
    for sort in reversed(body.get("sorts") or []):
        if isinstance(sort, str):
            sort = {"propertyName": sort.lstrip("-"), "direction": "DESCENDING" if sort.startswith("-") else ""}
        name = sort.get("propertyName")
        hits.sort(key=lambda r: (r.properties.get(name) is None, r.properties.get(name) or ""),
                  reverse=sort.get("direction") == "DESCENDING")
    if after + limit > MAX_TOTAL and after < len(hits):
        raise validation(f"Search results are limited to {MAX_TOTAL} per query")
    names = store.read_names(object_type, body.get("properties"))
    page = hits[after:after + limit]
    answer = {"total": len(hits), "results": [r.to_json(names) for r in page]}
    if after + limit < len(hits):
        # Fixture contacts.search.response.200.paged.json.
        answer["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
    return answer
