"""Batch (``POST …/batch``) and change data capture (``GET …/cdc``) for one company.

Batch (notes §2.2): up to 30 ``BatchItemRequest`` items, each ``create``/``update``/``delete``
(``optionsData: "void"`` with ``update`` voids) or a ``Query``; answered HTTP 200 with one
``BatchItemResponse`` per item, correlated by ``bId``, a per-item ``Fault`` when it fails.
Items run one after the other, isolated as Intuit describes ("a customer created in item 1
is not usable by item 2"): an object created by an earlier item of the same batch is hidden
from later items — references to it are unknown (2500), updates/deletes of it get 610, queries
do not list it. Names stay reserved (a second item creating the same DisplayName still gets
6240). Metering (each item counted like a normal call, plus per-batch limits) is done by
``app.Emulator`` with ``item_count``.

CDC (notes §2.3): objects changed since ``changedSince`` (≤ 30 days back), grouped per entity,
deleted objects last as ``{"status":"Deleted",…}`` stubs, at most 1000 objects.
"""

from __future__ import annotations

from starlette.requests import Request

from sandbox.quickbooks import entities, faults, query
from sandbox.quickbooks.store import ENTITIES, Company
from sandbox.quickbooks.wire import loads

MAX_ITEMS = 30
CDC_MAX = 1000
CDC_LOOKBACK = 30 * 86_400
NOT_IN_CDC = ("JournalCode", "TimeActivity", "TaxAgency", "TaxCode", "TaxRate")  # notes §2.3
OPERATIONS = ("create", "update", "delete")


async def bids_of(request: Request) -> tuple[str, ...]:
    """The ``bId``s of a batch body (part of the requestid replay key, notes §2.2); else ``()``."""
    if not request.url.path.endswith("/batch"):
        return ()
    try:
        body = loads(await request.body())
        return tuple(str(item.get("bId")) for item in body.get("BatchItemRequest", []))
    except (ValueError, AttributeError, TypeError):
        return ()


async def item_count(request: Request) -> int:
    """How many items a batch body holds (each is metered like a normal call, notes §2.2)."""
    try:
        items = loads(await request.body()).get("BatchItemRequest")
    except (ValueError, AttributeError, TypeError):
        return 1
    return max(1, len(items)) if isinstance(items, list) else 1


def run(company: Company, body: dict) -> tuple[dict, int]:
    """Run a batch; returns the response body (without ``time``) and the number of writes."""
    items = body.get("BatchItemRequest")
    if not isinstance(items, list) or not items:
        raise faults.required("BatchItemRequest")
    if len(items) > MAX_ITEMS:
        raise faults.business(f"Batch request has {len(items)} items; the maximum is {MAX_ITEMS}.")
    responses, writes = [], 0
    try:
        for item in items:
            bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
            company.inserted = []
            try:
                if not isinstance(item, dict):
                    raise faults.invalid_property("batch item must be an object")
                answer, wrote = _one(company, item)
                writes += wrote
                responses.append({"bId": bid, **answer})
            except faults.Fault as fault:
                responses.append({"bId": bid, "Fault": faults.as_observed(fault).body()})
            company.hidden.update(company.inserted)  # later items cannot see these (notes §2.2)
    finally:
        company.hidden.clear()
        company.inserted = None
    return {"BatchItemResponse": responses}, writes


def _one(company: Company, item: dict) -> tuple[dict, int]:
    if "Query" in item:
        return {"QueryResponse": query.run(company, str(item["Query"]))}, 0
    operation = str(item.get("operation", "")).lower()
    if operation not in OPERATIONS:
        raise faults.unsupported(f"batch operation {operation or '(none)'}")
    names = [key for key in item if key in ENTITIES.values()]
    if len(names) != 1 or not isinstance(item[names[0]], dict):
        raise faults.invalid_property("batch item must carry exactly one entity object")
    entity, obj = names[0], item[names[0]]
    options = {part.strip().lower() for part in str(item.get("optionsData", "")).split(",")}
    allow_dup = "allowduplicatedocnum" in options
    if operation == "create":
        return {entity: entities.create(company, entity, obj, allow_dup)}, 1
    if operation == "delete":
        return {entity: entities.delete(company, entity, obj)}, 1
    if "void" in options:
        return {entity: entities.void(company, entity, obj)}, 1
    return {entity: entities.update(company, entity, obj, allow_dup)}, 1


def cdc(company: Company, params) -> dict:
    """``GET …/cdc?entities=Invoice,Payment&changedSince=…`` -> ``{"CDCResponse": […]}``."""
    names = [n.strip() for n in (params.get("entities") or "").split(",") if n.strip()]
    if not names:
        raise faults.required("entities")
    since_text = params.get("changedSince")
    if not since_text:
        raise faults.required("changedSince")
    since = query._moment(since_text, company)
    if since is None:
        raise faults.invalid_property(f"changedSince {since_text}")
    since_epoch = since.timestamp()
    if since_epoch < company.clock.now() - CDC_LOOKBACK:
        raise faults.business("changedSince must be within the last 30 days.")  # emulator wording
    groups, budget = [], CDC_MAX
    for name in names:
        entity = ENTITIES.get(name.lower())
        if entity is None or entity in NOT_IN_CDC:
            raise faults.query_invalid(f"Entity {name} is not supported for CDC")
        changed = [obj for obj in company.all(entity)
                   if company.updated_at.get((entity, obj["Id"]), 0) >= since_epoch]
        gone = [stub for stub in company.deleted.get(entity, {}).values()
                if company.updated_at.get((entity, stub["Id"]), 0) >= since_epoch]
        rows = (changed + gone)[:budget]
        budget -= len(rows)
        groups.append({entity: rows, "startPosition": 1, "maxResults": len(rows), "totalCount": len(rows)})
    return {"CDCResponse": [{"QueryResponse": groups}]}
