"""Bulk query operations (notes §1 "Bulk operations").

``bulkOperationRunQuery`` answers ``CREATED``; the operation then reads
``RUNNING`` until ``bulk_seconds`` (default 0.2 s, per-shop config) have passed,
and ``COMPLETED`` after, once its result is rendered (on a thread of its own, see
``advance``): the inner query runs
without page sizes or the 250 cap, and every node of a nested connection
becomes its own JSONL line carrying ``"__parentId"`` (fixture
bulk/products_variants.example.jsonl). With ``groupObjects: false`` (the
2026-01 default) all parents come first and children after, so clients that
wrongly assume adjacency fail here too; ``true`` puts children right after
their parent. The file is served by this emulator at a URL that carries
``response-content-disposition`` with a filename, which Airbyte requires
(notes §7).
"""

from __future__ import annotations

import gc
import json
import threading
import time
from datetime import datetime, timezone
from urllib.parse import quote

from graphql import execute, get_named_type, parse, validate

from sandbox.shopify.bulk_projector import project

# json.dumps(line, separators=(",", ":")) without building an encoder for each of the (millions of) lines.
_encode = json.JSONEncoder(separators=(",", ":")).encode

MAX_RUNNING = 5  # 2026-01+: up to 5 bulk query operations per shop (notes §1 Bulk)
DEFAULT_SECONDS = 0.2


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_error(message: str, code: str, field=("query",)) -> dict:
    return {"field": list(field) if field else None, "message": message, "code": code}


def file_url(base_url: str, shop: str, number: str) -> str:
    name = f"bulk-{number}.jsonl"
    disposition = quote(f'attachment; filename="{name}"; filename*=UTF-8\'\'{name}', safe="")
    return (f"{base_url}/_files/bulk/{shop}/{number}.jsonl?response-content-disposition={disposition}"
            f"&response-content-type={quote('application/jsonl', safe='')}")


def _is_connection(value) -> bool:
    return isinstance(value, dict) and (
        (isinstance(value.get("edges"), list) and all(isinstance(e, dict) and "node" in e for e in value["edges"]))
        or isinstance(value.get("nodes"), list)
    ) and set(value) <= {"edges", "nodes", "pageInfo"}


def _nodes(connection: dict) -> list[dict]:
    if isinstance(connection.get("edges"), list):
        return [e["node"] for e in connection["edges"] if e.get("node") is not None]
    return [n for n in connection.get("nodes") or [] if n is not None]


def _flatten(node: dict, parent_id: str | None, grouped: bool, lines: list, later: list) -> None:
    """Emit ``node`` (minus nested connections) then its connection children."""
    own, children = {}, []
    for key, value in node.items():
        if _is_connection(value):
            children += _nodes(value)
        else:
            own[key] = value
    if parent_id is not None:
        own["__parentId"] = parent_id
    lines.append(own)
    queue = lines if grouped else later
    for child in children:
        nested_later: list = []
        _flatten(child, node.get("id"), grouped, queue, nested_later)
        queue.extend(nested_later)


def render_jsonl(schema, store, shop, query: str, grouped: bool) -> tuple[str, int, int]:
    """Run the inner bulk query and return (JSONL text, object count, root object count)."""
    # A whole shop's orders at once: millions of objects that all stay alive until the text is built, so
    # the cyclic GC's collections on the way would find nothing to free (on 100,000 orders they cost a
    # sixth of the time). Collected as usual afterwards.
    enabled = gc.isenabled()
    gc.disable()
    try:
        document, context = parse(query), {"shop": shop, "store": store, "bulk": True}
        data = project(schema, document, context)  # execute() took 32 s on 10,000 orders, this 4 s
        if data is None:  # a shape or value the projector leaves to graphql-core (errors, too)
            result = execute(schema, document, context_value=context)
            if result.errors or not result.data:
                raise ValueError("; ".join(e.message for e in result.errors or []) or "no data")
            data = result.data
        lines: list[dict] = []
        roots = 0
        for value in data.values():
            if not _is_connection(value):
                continue
            later: list[dict] = []
            for node in _nodes(value):
                roots += 1
                _flatten(node, None, grouped, lines, later)
            lines.extend(later)
        text = "".join(_encode(line) + "\n" for line in lines)
    finally:
        if enabled:
            gc.enable()
    return text, len(lines), roots


_renders: dict[str, threading.Thread] = {}  # bulk op gid -> the thread rendering its result
RENDER_INLINE_SECONDS = 1.0  # a render done within this answers the same poll COMPLETED, as before threads


def advance(store, shop, op: dict, base_url: str | None = None) -> dict:
    """Move ``op`` along CREATED -> RUNNING -> COMPLETED as time passes; returns ``op``.

    The result is rendered on a thread of its own, as Shopify runs a bulk operation apart from the
    API: a whole shop of 100,000 orders takes minutes to render, and done inside a poll it held the
    emulator's event loop for longer than any client waits (the connector's poll timed out, five
    times). A poll waits up to :data:`RENDER_INLINE_SECONDS` for the render; after that it answers
    ``RUNNING`` until the render is done.
    """
    if op["status"] not in ("CREATED", "RUNNING", "CANCELING"):
        return op
    if op["status"] == "CANCELING":
        op.update(status="CANCELED", completedAt=_now())
        return op
    op["status"] = "RUNNING"
    if time.monotonic() - op["_started"] < op["_seconds"]:
        return op
    render = _renders.get(op["id"])
    if render is None:
        render = threading.Thread(target=_render, args=(store, shop, op, base_url or op["_base_url"]),
                                  name=f"bulk-render-{op['id'].rsplit('/', 1)[-1]}", daemon=True)
        _renders[op["id"]] = render
        render.start()
    render.join(RENDER_INLINE_SECONDS)
    if not render.is_alive():
        _renders.pop(op["id"], None)
    return op


def _render(store, shop, op: dict, base_url: str) -> None:
    """Render ``op``'s result and complete it (unless it was cancelled meanwhile)."""
    from sandbox.shopify.schema import get_schema  # local: schema imports this module

    number = op["id"].rsplit("/", 1)[-1]
    try:
        text, count, roots = render_jsonl(get_schema(), store, shop, op["query"], op["_grouped"])
    except ValueError:
        if op["status"] == "RUNNING":
            op.update(status="FAILED", errorCode="INTERNAL_SERVER_ERROR", completedAt=_now())
        return
    if op["status"] != "RUNNING":  # cancelled while rendering
        return
    shop.bulk_results[op["id"]] = text
    op.update(objectCount=str(count), rootObjectCount=str(roots),
              fileSize=str(len(text.encode())) if count else None,
              url=file_url(base_url, shop.name, number) if count else None)
    op.update(status="COMPLETED", completedAt=_now())  # last: a poll reading COMPLETED finds the url set


def _advance_field(info, op):
    ctx = info.context
    return advance(ctx["store"], ctx["shop"], op, ctx.get("base_url")) if op else None


def _shape_problem(schema, document) -> str | None:
    """Bulk query limits (notes §1 Bulk): a top-level connection, <= 5 connections, nesting <= 2.

    The messages are emulator wording; Shopify's exact texts are not in the notes.
    """
    from sandbox.shopify.cost import _walker  # the cost module already walks selections by type

    op, walker = _walker(schema, document, None, {})
    if op is None or op.operation.value != "query":
        return "Bulk queries must be a query operation."
    counted = {"connections": 0, "depth": 0}

    def visit(selection_set, parent_type, depth):
        for node, definition in walker._fields(selection_set, parent_type):
            named = get_named_type(definition.type)
            if walker._is_connection(named):
                counted["connections"] += 1
                counted["depth"] = max(counted["depth"], depth + 1)
                node_type = get_named_type(named.fields["nodes"].type)
                for sel, _, _ in walker._node_selections(node, named):
                    visit(sel.selection_set, node_type, depth + 1)
            elif node.selection_set:
                visit(node.selection_set, named, depth)

    top = list(walker._fields(op.selection_set, schema.query_type))
    if not any(walker._is_connection(get_named_type(d.type)) for _, d in top):
        return "Bulk queries must contain at least one connection."
    visit(op.selection_set, schema.query_type, 0)
    if counted["connections"] > 5:
        return "Bulk queries cannot contain more than 5 connections."
    if counted["depth"] > 2:
        return "Bulk queries cannot contain connections with a nesting depth greater than 2."
    return None


def resolve_run_query(_root, info, query: str, groupObjects: bool = False):  # noqa: N803 - GraphQL name
    from sandbox.shopify.schema import get_schema

    ctx = info.context
    shop, store = ctx["shop"], ctx["store"]
    try:
        document = parse(query)
    except Exception as exc:  # graphql syntax error inside the string
        return {"bulkOperation": None, "userErrors": [_user_error(str(exc), "INVALID")]}
    errors = validate(get_schema(), document)
    if errors:
        return {"bulkOperation": None, "userErrors": [_user_error(e.message, "INVALID") for e in errors]}
    problem = _shape_problem(get_schema(), document)
    if problem:
        return {"bulkOperation": None, "userErrors": [_user_error(problem, "INVALID")]}
    running = [o for o in shop.bulk_operations if _advance_field(info, o)["status"] in ("CREATED", "RUNNING")]
    if len(running) >= MAX_RUNNING:
        return {"bulkOperation": None, "userErrors": [_user_error(
            "Bulk operations limit reached. Please try again later.", "LIMIT_REACHED", None)]}
    number = store.next_id()
    op = {
        "__typename": "BulkOperation", "id": f"gid://shopify/BulkOperation/{number}", "status": "CREATED",
        "type": "QUERY", "query": query, "createdAt": _now(), "completedAt": None, "errorCode": None,
        "objectCount": "0", "rootObjectCount": "0", "fileSize": None, "url": None, "partialDataUrl": None,
        "_started": time.monotonic(), "_seconds": float(getattr(shop, "bulk_seconds", DEFAULT_SECONDS)),
        "_grouped": bool(groupObjects), "_base_url": ctx.get("base_url") or "",
    }
    shop.bulk_operations.append(op)
    return {"bulkOperation": dict(op), "userErrors": []}  # a copy: this answer must say CREATED


def resolve_cancel(_root, info, id):  # noqa: A002
    op = next((o for o in info.context["shop"].bulk_operations if o["id"] == id), None)
    if op is None:
        return {"bulkOperation": None, "userErrors": [_user_error("Bulk operation does not exist", None, ("id",))]}
    _advance_field(info, op)
    if op["status"] in ("CREATED", "RUNNING"):
        op["status"] = "CANCELING"
        return {"bulkOperation": dict(op), "userErrors": []}
    return {"bulkOperation": op, "userErrors": [_user_error(
        f"A bulk operation cannot be canceled when it is {op['status'].lower()}", None, ("id",))]}


def resolve_bulk_operation(_root, info, id):  # noqa: A002
    op = next((o for o in info.context["shop"].bulk_operations if o["id"] == id), None)
    return _advance_field(info, op)


def resolve_current(_root, info, type="QUERY"):  # noqa: A002 - deprecated in 2026-01, still served
    ops = [o for o in info.context["shop"].bulk_operations if o["type"] == (type or "QUERY")]
    return _advance_field(info, ops[-1]) if ops else None


def resolve_list(_root, info, **args):
    from sandbox.shopify.connection import PaginationError, paginate
    from graphql import GraphQLError

    ops = [_advance_field(info, o) for o in info.context["shop"].bulk_operations]
    for term in (args.get("query") or "").split():
        field, _, value = term.partition(":")
        if field in ("status", "type") and value:
            ops = [o for o in ops if o[field].upper() == value.upper()]
    try:
        return paginate(ops, first=args.get("first"), after=args.get("after"), last=args.get("last"),
                        before=args.get("before"), sort_key="ID", reverse=bool(args.get("reverse")))
    except PaginationError as exc:
        raise GraphQLError(str(exc)) from None


def wire(schema) -> None:
    """Attach the bulk resolvers to QueryRoot and Mutation."""
    schema.mutation_type.fields["bulkOperationRunQuery"].resolve = resolve_run_query
    schema.mutation_type.fields["bulkOperationCancel"].resolve = resolve_cancel
    schema.query_type.fields["bulkOperation"].resolve = resolve_bulk_operation
    schema.query_type.fields["currentBulkOperation"].resolve = resolve_current
    schema.query_type.fields["bulkOperations"].resolve = resolve_list
