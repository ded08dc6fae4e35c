"""The real Admin GraphQL schema 2026-01, loaded once, with resolvers wired onto it.

The SDL (notes §6) is packaged gzipped next to this module. ``build_schema``
takes about two seconds, so ``start_loading()`` begins it in a background
thread when the app is created and the first request waits for it; the
runner's start-up stays fast. graphql-core 3.2 is required: 3.3 rejects
Shopify's schema (notes §6 "graphql-core gotcha").

Only fields that need arguments or shop state get a resolver; every other
field is read from the node dicts by graphql-core's default resolver, and
abstract types resolve through the ``__typename`` key of those dicts.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

from graphql import GraphQLError, GraphQLObjectType, GraphQLSchema, build_schema, get_named_type

from sandbox.shopify.connection import PaginationError, paginate
from sandbox.shopify.search import compile_query

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "admin_2026-01.graphql.gz"
MAX_NODES_IDS = 250

_schema: GraphQLSchema | None = None
_error: BaseException | None = None
_loaded = threading.Event()
_start_lock = threading.Lock()
_started = False


def _load() -> None:
    global _schema, _error
    try:
        schema = build_schema(gzip.decompress(SCHEMA_PATH.read_bytes()).decode("utf-8"))
        wire(schema)
        _schema = schema
    except BaseException as exc:  # pragma: no cover - surfaced by get_schema
        _error = exc
    finally:
        _loaded.set()


def start_loading() -> None:
    """Start loading the schema in a daemon thread (idempotent)."""
    global _started
    with _start_lock:
        if not _started:
            _started = True
            threading.Thread(target=_load, name="shopify-schema-loader", daemon=True).start()


def get_schema() -> GraphQLSchema:
    """The wired schema, waiting for the background load if it is still running."""
    start_loading()
    _loaded.wait()
    if _schema is None:
        raise RuntimeError(f"could not load the Shopify Admin schema: {_error!r}")
    return _schema


# --- resolvers -------------------------------------------------------------------------

def _shop(info):
    return info.context["shop"]


def _bulk(info) -> bool:
    # Bulk queries take connections without first/last and without the 250 cap (notes §1 Bulk).
    return bool(info.context.get("bulk"))


def _page(items, info, args, sort_key="ID", query=None):
    if query:
        keep = compile_query(query)
        items = [n for n in items if keep(n)]
    if _bulk(info):
        return _unbounded(items, sort_key, bool(args.get("reverse")))
    try:
        return paginate(items, first=args.get("first"), after=args.get("after"), last=args.get("last"),
                        before=args.get("before"), sort_key=sort_key, reverse=bool(args.get("reverse")))
    except PaginationError as exc:
        raise GraphQLError(str(exc)) from None


def _unbounded(items, sort_key, reverse):
    """All items as one connection, for bulk operations (no page size, no 250 cap)."""
    return paginate(items, first=len(items), sort_key=sort_key, reverse=reverse, max_page=None)


def _visible(shop, orders):
    """Orders the app may see: all, or only the last ``visible_days`` without read_all_orders."""
    if not shop.visible_days:
        return orders
    horizon = (datetime.now(timezone.utc) - timedelta(days=int(shop.visible_days))).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [o for o in orders if o["createdAt"] >= horizon]


def resolve_orders(_root, info, **args):
    sort_key = args.get("sortKey") or "PROCESSED_AT"  # schema default (notes §1 orders connection)
    return _page(_visible(_shop(info), _shop(info).orders), info, args, sort_key=sort_key, query=args.get("query"))


def _lookup(info, gid: str):
    shop = _shop(info)
    node = shop.by_id.get(gid)
    if node is not None and node.get("__typename") == "Order" and not _visible(shop, [node]):
        return None
    if node is None:
        from sandbox.shopify.bulk import advance  # local: bulk imports this module

        op = next((op for op in shop.bulk_operations if op["id"] == gid), None)
        node = advance(info.context["store"], shop, op, info.context.get("base_url")) if op else None
    return node


def resolve_order(_root, info, id):  # noqa: A002 - GraphQL argument name
    node = _lookup(info, id)
    return node if node and node.get("__typename") == "Order" else None


def resolve_node(_root, info, id):  # noqa: A002
    return _lookup(info, id)


def resolve_nodes(_root, info, ids):
    if len(ids) > MAX_NODES_IDS:
        raise GraphQLError(f"The maximum number of IDs you can request is {MAX_NODES_IDS}.")
    return [_lookup(info, gid) for gid in ids]


def _connection_field(name: str):
    def resolve(source, info, **args):
        items = source.get(name) if isinstance(source, dict) else None
        return _page(items or [], info, args)
    return resolve


def _list_field(name: str):
    """Plain list fields that take ``first`` (Order.transactions, refunds, fulfillments, ...)."""
    def resolve(source, info, **args):
        items = source.get(name) if isinstance(source, dict) else None
        if items is None:
            return None
        first = args.get("first")
        return items[:first] if first is not None else items
    return resolve


def resolve_customer_orders(customer, info, **args):
    mine = [o for o in _shop(info).orders if (o.get("customer") or {}).get("id") == customer.get("id")]
    return _page(mine, info, args, sort_key=args.get("sortKey") or "ID", query=args.get("query"))


# AccessScope.description is non-null; texts are emulator wording (unverified).
SCOPE_TEXT = {"read_orders": "Read orders, transactions and fulfillments",
              "read_all_orders": "Read all orders, not only the last 60 days"}


def resolve_current_app_installation(_root, info):
    """The calling app's installation; ``accessScopes`` are the shop's granted scopes.

    A connector reads them to learn whether ``read_all_orders`` is granted, i.e. whether
    orders older than 60 days are visible (notes §1; the ``scopes`` knob of the shop config).
    """
    shop = _shop(info)
    return {
        "__typename": "AppInstallation", "id": f"gid://shopify/AppInstallation/{zlib.crc32(shop.name.encode())}",
        "accessScopes": [{"handle": h, "description": SCOPE_TEXT.get(h, h.replace("_", " ").capitalize())}
                         for h in shop.scopes],
        "launchUrl": f"https://admin.shopify.com/store/{shop.name}/apps/o2c-sandbox",
        "uninstallUrl": None, "activeSubscriptions": [], "subscriptions": [],
        "app": {"__typename": "App", "id": "gid://shopify/App/1", "title": "o2c sandbox app", "handle": "o2c-sandbox",
                "apiKey": "sandbox-api-key", "webhookApiVersion": "2026-01"},
    }


ROOT_RESOLVERS = {"orders": resolve_orders, "order": resolve_order, "node": resolve_node, "nodes": resolve_nodes,
                  "currentAppInstallation": resolve_current_app_installation}


def wire(schema: GraphQLSchema) -> None:
    """Set ``.resolve`` on the fields that need arguments or shop state."""
    from sandbox.shopify import bulk, webhooks  # local: bulk needs this module's executor helpers

    for name, resolver in ROOT_RESOLVERS.items():
        schema.query_type.fields[name].resolve = resolver
    bulk.wire(schema)
    webhooks.wire(schema)
    schema.type_map["Customer"].fields["orders"].resolve = resolve_customer_orders
    schema.type_map["Refund"].fields["order"].resolve = lambda refund, info: _shop(info).by_id.get(refund["_orderId"])
    for type_name, gql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(gql_type, GraphQLObjectType):
            continue
        if gql_type is schema.query_type or gql_type is schema.mutation_type:
            continue
        for field_name, field in gql_type.fields.items():
            if field.resolve is not None or "first" not in field.args:
                continue
            named = get_named_type(field.type)
            if named.name.endswith("Connection") and "edges" in getattr(named, "fields", {}):
                field.resolve = _connection_field(field_name)
            else:
                field.resolve = _list_field(field_name)
