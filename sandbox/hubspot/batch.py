"""Object batch endpoints: create, read, update, upsert, archive
(``shared/notes/hubspot.md`` §2.1 and §3).

Every operation validates all inputs before it writes anything, so a rejected
batch leaves no trace. Partial success (207) happens only when every input
carries an ``objectWriteTraceId`` (notes §2.1, HubSpot error-handling docs);
otherwise one bad input fails the whole batch with its own error body.
Each function returns ``(status, body)``; the app adds startedAt/completedAt.
"""

from __future__ import annotations

from .associations import AssociationStore
from .errors import HubSpotError, check_batch_size, duplicate_ids, standard_error, validation
from .objects import ObjectStore, Record, unique_key
from .properties import DEFAULT_READ

OBJECT_NAMES = {"contacts": "CONTACT", "deals": "DEAL", "line_items": "LINE_ITEM"}


def _inputs(body) -> list:
    inputs = (body or {}).get("inputs") if isinstance(body, dict) else None
    check_batch_size(inputs)
    if any(not isinstance(i, dict) for i in inputs):
        raise validation("Invalid input JSON: every input must be an object")
    return inputs


def _partial(inputs: list) -> bool:
    """207 mode: every input has a unique objectWriteTraceId (notes §2.1)."""
    traces = [i.get("objectWriteTraceId") for i in inputs]
    return bool(inputs) and all(traces) and len(set(traces)) == len(traces)


def _trace_error(error: HubSpotError, trace: str) -> dict:
    # Correlating by context.objectWriteTraceId is how public integrations read these 207s
    # (third-party mocks; not in HubSpot's docs).
    body = error.body
    context = dict(body.get("context") or {})
    context["objectWriteTraceId"] = [trace]
    return standard_error(body.get("category", "VALIDATION_ERROR"), body["message"], context)


def view(object_type: str, record: Record, written) -> dict:
    """Write answers show the default properties plus the ones just written."""
    body = record.to_json(list(dict.fromkeys([*DEFAULT_READ[object_type], *written])))
    if record.trace_id:
        body["objectWriteTraceId"] = record.trace_id
    return body


def _answer(ok_status: int, results: list, errors: list) -> tuple[int, dict]:
    body = {"status": "COMPLETE", "results": results}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return 207, body
    return ok_status, body


def _prepare(inputs: list, check) -> tuple[list, list]:
    """Run ``check(input)`` on each input; collect errors (207 mode) or raise the first."""
    partial, plans, errors = _partial(inputs), [], []
    for item in inputs:
        try:
            plans.append((item, check(item)))
        except HubSpotError as error:
            if not partial or error.status == 429:
                raise
            errors.append(_trace_error(error, item["objectWriteTraceId"]))
    return plans, errors


def _reject_duplicates(keys: list[tuple]) -> None:
    """Notes §2.1: two inputs that resolve to one record reject the whole batch."""
    seen, dupes = set(), []
    for key, shown in keys:
        if key in seen and shown not in dupes:
            dupes.append(shown)
        seen.add(key)
    if dupes:
        raise duplicate_ids(dupes)


def batch_create(store: ObjectStore, assocs: AssociationStore, object_type: str, body) -> tuple[int, dict]:
    """``POST …/batch/create`` -> 201 (or 207). An existing unique value is a 409 for the
    whole batch naming only the first conflict (notes §2.1, hubspot-api-python#51)."""
    inputs = _inputs(body)
    uniques = store.registry.unique_names(object_type)
    keys = []
    for item in inputs:
        props = item.get("properties") or {}
        keys += [((p, unique_key(p, str(props[p]))), str(props[p]))
                 for p in uniques if isinstance(props, dict) and props.get(p)]
    _reject_duplicates(keys)

    def check(item):
        props = store.check_properties(object_type, item.get("properties"))
        existing = store.conflicts(object_type, props)
        if existing is not None:
            raise store.conflict_error(object_type, existing)
        return props, assocs.parse_create_body(object_type, item.get("associations"))

    plans, errors = _prepare(inputs, check)
    results = []
    for item, (props, links) in plans:
        record = store.insert(object_type, props, item.get("objectWriteTraceId"))
        assocs.apply_create_body(object_type, record.id, links)
        results.append(view(object_type, record, props))
    return _answer(201, results, errors)


def batch_upsert(store: ObjectStore, object_type: str, body) -> tuple[int, dict]:
    """``POST …/batch/upsert`` by a unique ``idProperty`` -> 200 ``SimplePublicUpsertObject``s
    with ``new`` (notes §2.1)."""
    inputs = _inputs(body)
    keys = []
    for item in inputs:
        prop, ident = item.get("idProperty"), item.get("id")
        if not prop or ident is None or not isinstance(ident, str):
            raise validation("Invalid input JSON: upsert inputs need a string `id` and an `idProperty`")
        store.require_unique(object_type, prop)
        existing = store.find_unique(object_type, prop, ident)
        shown = unique_key(prop, ident)
        keys.append((("record", existing.id) if existing else (prop, shown), shown))
    _reject_duplicates(keys)

    def check(item):
        props = store.check_properties(object_type, item.get("properties"))
        prop, ident = item["idProperty"], item["id"]
        props[prop] = ident  # the id is the value of the unique property
        existing = store.find_unique(object_type, prop, ident)
        clash = store.conflicts(object_type, props, exclude=existing.id if existing else None)
        if clash is not None:
            raise store.conflict_error(object_type, clash)
        return props, existing

    plans, errors = _prepare(inputs, check)
    results = []
    for item, (props, existing) in plans:
        trace = item.get("objectWriteTraceId")
        if existing is None:
            record = store.insert(object_type, props, trace)
        else:
            record = store.patch(object_type, existing, props, trace)
        results.append({**view(object_type, record, props), "new": existing is None})
    return _answer(200, results, errors)


def batch_update(store: ObjectStore, object_type: str, body) -> tuple[int, dict]:
    """``POST …/batch/update``: ``id`` is a record id unless ``idProperty`` names a unique
    property (notes §2.1, hubspot-api-nodejs#548). Unknown ids come back as 207
    OBJECT_NOT_FOUND errors like batch read (the real answer is unverified)."""
    inputs = _inputs(body)
    keys, missing = [], []
    for item in inputs:
        record = store.resolve(object_type, item.get("id"), item.get("idProperty"))
        if record is None:
            missing.append(str(item.get("id")))
        else:
            keys.append((record.id, str(item.get("id"))))
    _reject_duplicates(keys)

    def check(item):
        record = store.resolve(object_type, item.get("id"), item.get("idProperty"))
        if record is None:
            return None
        props = store.check_properties(object_type, item.get("properties"))
        clash = store.conflicts(object_type, props, exclude=record.id)
        if clash is not None:
            raise store.conflict_error(object_type, clash)
        return record, props

    plans, errors = _prepare(inputs, check)
    results = []
    for item, plan in plans:
        if plan is not None:
            record = store.patch(object_type, plan[0], plan[1], item.get("objectWriteTraceId"))
            results.append(view(object_type, record, plan[1]))
    if missing:
        errors.append(_not_found(object_type, missing))
    return _answer(200, results, errors)


def batch_read(store: ObjectStore, object_type: str, body, archived: bool = False) -> tuple[int, dict]:
    """``POST …/batch/read`` (``idProperty`` optional) -> 200, or 207 with one
    OBJECT_NOT_FOUND error listing every missing id (fixture
    contacts.batch_read_by_email.response.207.json)."""
    inputs = _inputs(body)
    history = body.get("propertiesWithHistory") or []
    if history and len(inputs) > 50:
        # Notes §3: reads with property history take at most 50 inputs.
        raise validation("The maximum number of inputs supported in a batch request for property history "
                         "is 50. Please reduce the number of items and try again")
    id_property = body.get("idProperty")
    names = store.read_names(object_type, body.get("properties"))
    results, missing = [], []
    for item in inputs:
        ident = item.get("id")
        record = (store.resolve(object_type, ident, id_property) if not archived
                  else store.get(object_type, str(ident), archived=True))
        if record is None:
            missing.append(str(ident))
        elif record.to_json(names) not in results:
            results.append(record.to_json(names))
    return _answer(200, results, [_not_found(object_type, missing)] if missing else [])


def batch_archive(store: ObjectStore, assocs: AssociationStore, object_type: str, body) -> None:
    """``POST …/batch/archive`` -> 204; ids already gone are ignored."""
    for item in _inputs(body):
        record = store.get(object_type, str(item.get("id")))
        if record is not None:
            store.archive(object_type, record)


def _not_found(object_type: str, ids: list[str]) -> dict:
    return standard_error("OBJECT_NOT_FOUND", f"Could not get some {OBJECT_NAMES[object_type]} objects, they may "
                          "be deleted or not exist. Check that ids are valid.", {"ids": ids})
