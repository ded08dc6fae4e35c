"""HTTP handlers of the vendor API (objects, properties, pipelines, associations) and their routes.

Handlers are plain ``async def (request, account) -> Response``; ``app.py`` wraps
each in auth, rate limiting, fault injection and counting. Path prefixes are
configurable (notes §0.1: v3/v4 are "legacy", date-versioned paths such as
``/crm/objects/2026-03`` carry the same bodies).
"""

from __future__ import annotations

import json

from starlette.requests import Request

from . import batch
from .errors import json_response, not_found, validation
from .objects import now_iso
from .properties import TYPE_IDS, canonical_type
from .search import search

DEFAULT_PREFIXES = {
    "objects": ["/crm/v3/objects", "/crm/objects/2026-03"],
    "properties": ["/crm/v3/properties", "/crm/properties/2026-03"],
    "associations": ["/crm/v4/associations", "/crm/associations/2026-03"],
    "objects_v4": ["/crm/v4/objects"],
    "pipelines": ["/crm/v3/pipelines", "/crm/pipelines/2026-03"],
}
SINGULAR = {"contacts": "contact", "deals": "deal", "line_items": "line_item"}


async def read_json(request: Request):
    """Parse the body; malformed JSON is a 400 like HubSpot's "Invalid input JSON"."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise validation(f"Invalid input JSON on line {getattr(exc, 'lineno', 1)}, "
                         f"column {getattr(exc, 'colno', 1)}: {exc.msg if hasattr(exc, 'msg') else exc}")


def _type(request: Request, name: str = "object_type") -> str:
    return canonical_type(request.path_params[name])


def _query_list(request: Request, name: str) -> list[str]:
    """A list parameter: the SDK repeats the key (``properties=a&properties=b``), browsers use commas."""
    return [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]


def _archived(request: Request) -> bool:
    return request.query_params.get("archived", "false").lower() == "true"


def _stamped(status: int, body: dict, started: str) -> object:
    """Batch answers carry startedAt/completedAt (notes §2.1)."""
    return json_response({**body, "startedAt": started, "completedAt": now_iso()}, status)


# --- objects -------------------------------------------------------------------
async def object_batch(request: Request, acc):
    object_type, op, started = _type(request), request.path_params["op"], now_iso()
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: expected an object with `inputs`")
    if op == "create":
        status, answer = batch.batch_create(acc.store, acc.assocs, object_type, body)
    elif op == "upsert":
        status, answer = batch.batch_upsert(acc.store, object_type, body)
    elif op == "update":
        status, answer = batch.batch_update(acc.store, object_type, body)
    elif op == "read":
        status, answer = batch.batch_read(acc.store, object_type, body, _archived(request))
    elif op == "archive":
        batch.batch_archive(acc.store, acc.assocs, object_type, body)
        return json_response(None, 204)
    else:
        raise not_found("resource not found")
    return _stamped(status, answer, started)


async def object_search(request: Request, acc):
    return json_response(search(acc.store, _type(request), await read_json(request)))


async def object_create(request: Request, acc):
    """``POST /crm/v3/objects/{type}`` -> 201; duplicate email -> 409 (notes §2.1)."""
    object_type = _type(request)
    body = await read_json(request) or {}
    links = acc.assocs.parse_create_body(object_type, body.get("associations"))
    record = acc.store.create(object_type, body.get("properties"))
    acc.assocs.apply_create_body(object_type, record.id, links)
    return json_response(batch.view(object_type, record, body.get("properties") or {}), 201)


def _find(request: Request, acc, object_type: str):
    ident = request.path_params["object_id"]
    id_property = request.query_params.get("idProperty")
    if _archived(request):
        record = acc.store.get(object_type, ident, archived=True)
    else:
        record = acc.store.resolve(object_type, ident, id_property)
    if record is None:
        raise not_found("resource not found")
    return record


async def object_get(request: Request, acc):
    """``GET …/{id}?properties=&idProperty=&associations=`` -> SimplePublicObjectWithAssociations."""
    object_type = _type(request)
    record = _find(request, acc, object_type)
    answer = record.to_json(acc.store.read_names(object_type, _query_list(request, "properties")))
    wanted = _query_list(request, "associations")
    if wanted:
        answer["associations"] = {}
        for name in wanted:
            to_type = canonical_type(name)
            found = acc.assocs.targets(object_type, record.id, to_type)
            if found:
                answer["associations"][to_type] = {"results": [
                    {"id": to_id, "type": f"{SINGULAR[object_type]}_to_{SINGULAR[to_type]}"} for to_id, _ in found]}
    return json_response(answer)


async def object_update(request: Request, acc):
    object_type = _type(request)
    record = _find(request, acc, object_type)
    body = await read_json(request) or {}
    record = acc.store.update(object_type, record, body.get("properties"))
    return json_response(batch.view(object_type, record, body.get("properties") or {}))


async def object_archive(request: Request, acc):
    object_type = _type(request)
    record = acc.store.get(object_type, request.path_params["object_id"])
    if record is not None:
        acc.store.archive(object_type, record)
    return json_response(None, 204)


async def object_list(request: Request, acc):
    object_type = _type(request)
    limit = min(int(request.query_params.get("limit", 10)), 100)
    after = int(request.query_params.get("after") or 0)
    names = acc.store.read_names(object_type, _query_list(request, "properties"))
    records, more = acc.store.page(object_type, _archived(request), after, limit)
    answer = {"results": [r.to_json(names) for r in records]}
    if more:
        answer["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
    return json_response(answer)


# --- properties ---------------------------------------------------------------------
async def property_create(request: Request, acc):
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: expected a property definition")
    return json_response(acc.registry.create(_type(request), body, now_iso()), 201)


async def property_list(request: Request, acc):
    return json_response({"results": acc.registry.listing(_type(request))})


async def property_get(request: Request, acc):
    return json_response(acc.registry.get(_type(request), request.path_params["name"]))


# --- pipelines (read only: a connector discovers stage ids here) ----------------------
async def pipeline_list(request: Request, acc):
    """``GET /crm/v3/pipelines/{objectType}`` -> ``{results: [Pipeline]}``."""
    return json_response(acc.pipelines.listing(_type(request)))


async def pipeline_get(request: Request, acc):
    return json_response(acc.pipelines.get(_type(request), request.path_params["pipeline_id"]))


async def pipeline_stages(request: Request, acc):
    return json_response(acc.pipelines.stages(_type(request), request.path_params["pipeline_id"]))


# --- associations v4 ---------------------------------------------------------------
async def association_batch(request: Request, acc):
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    op, started = request.path_params["op"], now_iso()
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation("Invalid input JSON: expected an object with `inputs`")
    operations = {"create": acc.assocs.batch_create, "associate/default": acc.assocs.batch_default,
                  "read": acc.assocs.batch_read}
    if op == "archive":
        acc.assocs.batch_archive(from_type, to_type, body)
        return json_response(None, 204)
    if op not in operations:
        raise not_found("resource not found")
    status, answer = operations[op](from_type, to_type, body)
    return _stamped(status, answer, started)


def _pair(request: Request, acc):
    from_type, to_type = _type(request, "object_type"), _type(request, "to_type")
    from_id, to_id = request.path_params["object_id"], request.path_params.get("to_id")
    for object_type, object_id in ((from_type, from_id), (to_type, to_id)):
        if object_id is not None and acc.store.get(object_type, object_id) is None:
            raise not_found(f"{SINGULAR[object_type]} {object_id} does not exist")
    return from_type, from_id, to_type, to_id


async def association_put_default(request: Request, acc):
    """``PUT /crm/v4/objects/{type}/{id}/associations/default/{toType}/{toId}`` -> 200."""
    from_type, from_id, to_type, to_id = _pair(request, acc)
    acc.assocs.check_pair(from_type, from_id, to_type, to_id)
    status, answer = acc.assocs.batch_default(from_type, to_type, {"inputs": [{"from": {"id": from_id},
                                                                               "to": {"id": to_id}}]})
    return _stamped(status, answer, now_iso())


async def association_put_typed(request: Request, acc):
    """``PUT …/associations/{toType}/{toId}`` with ``[{associationCategory, associationTypeId}]`` -> 201."""
    from_type, from_id, to_type, to_id = _pair(request, acc)
    specs = await read_json(request)
    if not isinstance(specs, list) or not specs:
        raise validation("Invalid input JSON: expected a list of association types")
    type_ids = [acc.assocs.check_type(from_type, to_type, s) for s in specs]
    acc.assocs.check_pair(from_type, from_id, to_type, to_id)
    for type_id in type_ids:
        acc.assocs.add(from_type, from_id, to_type, to_id, type_id)
    return json_response({"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": from_id,
                          "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": to_id, "labels": []}, 201)


async def association_list(request: Request, acc):
    from_type, from_id, to_type, _ = _pair(request, acc)
    results = [{"toObjectId": to_id, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": t, "label": None} for t in sorted(types)]}
        for to_id, types in acc.assocs.targets(from_type, from_id, to_type)]
    return json_response({"results": results})


async def association_delete(request: Request, acc):
    from_type, from_id, to_type, to_id = _pair(request, acc)
    acc.assocs.remove(from_type, from_id, to_type, to_id)
    return json_response(None, 204)


def api_routes(prefixes: dict) -> list[tuple[str, list[str], object, str]]:
    """``(path, methods, handler, kind)`` for every prefix; kind "search" skips the burst
    window and the rate-limit headers (notes §4)."""
    table = []
    for p in prefixes["objects"]:
        table += [
            (p + "/{object_type}/batch/{op}", ["POST"], object_batch, "api"),
            (p + "/{object_type}/search", ["POST"], object_search, "search"),
            (p + "/{object_type}", ["POST"], object_create, "api"),
            (p + "/{object_type}", ["GET"], object_list, "api"),
            (p + "/{object_type}/{object_id}", ["GET"], object_get, "api"),
            (p + "/{object_type}/{object_id}", ["PATCH"], object_update, "api"),
            (p + "/{object_type}/{object_id}", ["DELETE"], object_archive, "api"),
        ]
    for p in prefixes["properties"]:
        table += [
            (p + "/{object_type}", ["POST"], property_create, "api"),
            (p + "/{object_type}", ["GET"], property_list, "api"),
            (p + "/{object_type}/{name}", ["GET"], property_get, "api"),
        ]
    for p in prefixes["pipelines"]:
        table += [
            (p + "/{object_type}", ["GET"], pipeline_list, "api"),
            (p + "/{object_type}/{pipeline_id}", ["GET"], pipeline_get, "api"),
            (p + "/{object_type}/{pipeline_id}/stages", ["GET"], pipeline_stages, "api"),
        ]
    for p in prefixes["associations"]:
        table += [(p + "/{from_type}/{to_type}/batch/{op:path}", ["POST"], association_batch, "api")]
    for p in prefixes["objects_v4"]:
        base = p + "/{object_type}/{object_id}/associations"
        table += [
            (base + "/default/{to_type}/{to_id}", ["PUT"], association_put_default, "api"),
            (base + "/{to_type}/{to_id}", ["PUT"], association_put_typed, "api"),
            (base + "/{to_type}", ["GET"], association_list, "api"),
            (base + "/{to_type}/{to_id}", ["DELETE"], association_delete, "api"),
        ]
    return table

