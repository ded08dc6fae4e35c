"""Webhook subscriptions of the Shopify emulator and the events that feed them.

Subscriptions (notes §3; 2026-01 SDL): ``webhookSubscriptionCreate(topic:
WebhookSubscriptionTopic!, webhookSubscription: WebhookSubscriptionInput!)`` with ``uri``
(or the deprecated ``callbackUrl``), ``includeFields`` and ``filter``;
``webhookSubscriptionUpdate``, ``webhookSubscriptionDelete(id:)``, ``webhookSubscription(id:)``
and ``webhookSubscriptions(first:, topics:, uri:, ...)``. The control API
(``POST /_sandbox/shops/<shop>/webhooks``) adds the same record; with ``"app_config": true``
it stands for a ``shopify.app.toml`` subscription, which the GraphQL list does not show and
persistent failure does not remove (notes §3 "Timeouts/retries").

Events (notes §3 "Topics used"): a merchant action becomes one *event* (one
``X-Shopify-Event-Id``) that fans out to one delivery per matching subscription and topic:

* order seeded      -> orders/create, order_transactions/create per transaction, orders/paid if paid;
* any order change  -> orders/updated, plus refunds/create per new refund,
                       order_transactions/create per new transaction, orders/paid when it became
                       PAID, orders/cancelled when it became cancelled.

Bodies are rendered when the event happens (retries resend that original payload, notes §3
``X-Shopify-Triggered-At``) by rest_render.py; ``includeFields`` trims the top-level keys.
Deliveries themselves are delivery.py's job. Deviation, for tests on loopback: ``http://``
is accepted for loopback hosts only (Shopify requires HTTPS). ``filter`` is stored but not
applied; Pub/Sub and EventBridge URIs are refused.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from graphql import GraphQLError

from sandbox.shopify import rest_render
from sandbox.shopify.connection import PaginationError, paginate

# GraphQL enum <-> REST topic (notes §3). Other enum values are accepted but never fire.
TOPICS = {
    "ORDERS_CREATE": "orders/create", "ORDERS_UPDATED": "orders/updated", "ORDERS_PAID": "orders/paid",
    "ORDERS_CANCELLED": "orders/cancelled", "REFUNDS_CREATE": "refunds/create",
    "ORDER_TRANSACTIONS_CREATE": "order_transactions/create", "BULK_OPERATIONS_FINISH": "bulk_operations/finish",
}
ENUMS = {topic: enum for enum, topic in TOPICS.items()}
DEFAULT_VERSION = "2026-01"
# userError texts: emulator wording modelled on Shopify's REST ``address`` errors (unverified).
BLANK = "Address can't be blank"
INVALID = "Address is invalid"
NOT_HTTPS = "Address protocol http:// is not supported"
TAKEN = "Address for this topic has already been taken"
MISSING = "Webhook subscription does not exist"

_LOCK = threading.Lock()  # guards every shop.webhook_subscriptions swap (threads + the loop)


def topic_name(enum: str) -> str:
    """``ORDERS_CREATE`` -> ``orders/create``; unknown enums split at the first underscore."""
    return TOPICS.get(enum) or enum.lower().replace("_", "/", 1)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_address(uri: str | None) -> str | None:
    """The userError message for a bad address, or None."""
    if not uri:
        return BLANK
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return INVALID
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return NOT_HTTPS
    return None


def visible(shop) -> list[dict]:
    """Subscriptions the Admin API lists (app-config ones are not listed)."""
    return [s for s in shop.webhook_subscriptions if s["_origin"] == "admin_api"]


def find(shop, gid: str) -> dict | None:
    return next((s for s in visible(shop) if s["id"] == gid), None)


def add_subscription(store, shop, enum: str, uri: str | None, *, api_version: str = DEFAULT_VERSION,
                     include_fields=None, filter_text=None, origin: str = "admin_api", field: str = "uri"):
    """Create a subscription; returns ``(node, user_errors)`` (caller holds ``store.lock``)."""
    problem = check_address(uri)
    if problem is None and any(s["topic"] == enum and s["uri"] == uri for s in shop.webhook_subscriptions):
        problem = TAKEN
    if problem:
        return None, [{"field": ["webhookSubscription", field], "message": problem}]
    number, moment = store.next_id(), now_iso()
    node = {
        "__typename": "WebhookSubscription", "id": f"gid://shopify/WebhookSubscription/{number}",
        "legacyResourceId": str(number), "topic": enum, "uri": uri, "callbackUrl": uri,
        "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": uri}, "format": "JSON",
        "includeFields": list(include_fields or []), "filter": filter_text, "metafieldNamespaces": [],
        "metafields": [], "apiVersion": {"handle": api_version, "displayName": api_version, "supported": True},
        "createdAt": moment, "updatedAt": moment, "_origin": origin,
    }
    with _LOCK:
        shop.webhook_subscriptions = shop.webhook_subscriptions + [node]
    return node, []


def remove_subscription(shop, gid: str) -> bool:
    with _LOCK:
        kept = [s for s in shop.webhook_subscriptions if s["id"] != gid]
        removed = len(kept) != len(shop.webhook_subscriptions)
        shop.webhook_subscriptions = kept
    return removed


# --- GraphQL resolvers -------------------------------------------------------------------

def _address_of(spec: dict) -> tuple[str | None, str]:
    if spec.get("uri") is not None:
        return spec["uri"], "uri"
    return spec.get("callbackUrl"), "callbackUrl"


def resolve_create(_root, info, topic, webhookSubscription):
    ctx = info.context
    uri, field = _address_of(webhookSubscription)
    node, errors = add_subscription(
        ctx["store"], ctx["shop"], topic, uri, api_version=ctx.get("api_version") or DEFAULT_VERSION,
        include_fields=webhookSubscription.get("includeFields"), filter_text=webhookSubscription.get("filter"),
        field=field)
    return {"webhookSubscription": node, "userErrors": errors}


def resolve_update(_root, info, id, webhookSubscription):
    shop = info.context["shop"]
    node = find(shop, id)
    if node is None:
        return {"webhookSubscription": None, "userErrors": [{"field": ["id"], "message": MISSING}]}
    uri, field = _address_of(webhookSubscription)
    if uri is not None:
        problem = check_address(uri)
        if problem:
            return {"webhookSubscription": None,
                    "userErrors": [{"field": ["webhookSubscription", field], "message": problem}]}
        node.update(uri=uri, callbackUrl=uri, endpoint={"__typename": "WebhookHttpEndpoint", "callbackUrl": uri})
    if webhookSubscription.get("includeFields") is not None:
        node["includeFields"] = list(webhookSubscription["includeFields"])
    if "filter" in webhookSubscription:
        node["filter"] = webhookSubscription["filter"]
    node["updatedAt"] = now_iso()
    return {"webhookSubscription": node, "userErrors": []}


def resolve_delete(_root, info, id):
    shop = info.context["shop"]
    if find(shop, id) is None or not remove_subscription(shop, id):
        return {"deletedWebhookSubscriptionId": None, "userErrors": [{"field": ["id"], "message": MISSING}]}
    return {"deletedWebhookSubscriptionId": id, "userErrors": []}


def resolve_one(_root, info, id):
    return find(info.context["shop"], id)


def resolve_list(_root, info, **args):
    items = visible(info.context["shop"])
    if args.get("topics"):
        items = [s for s in items if s["topic"] in args["topics"]]
    address = args.get("uri") or args.get("callbackUrl")
    if address:
        items = [s for s in items if s["uri"] == address]
    if args.get("format"):
        items = [s for s in items if s["format"] == args["format"]]
    try:
        return paginate(items, first=args.get("first"), after=args.get("after"), last=args.get("last"),
                        before=args.get("before"), sort_key=args.get("sortKey") or "CREATED_AT",
                        reverse=bool(args.get("reverse")))
    except PaginationError as exc:
        raise GraphQLError(str(exc)) from None


def resolve_count(_root, info, **_args):
    return {"count": len(visible(info.context["shop"])), "precision": "EXACT"}


def wire(schema) -> None:
    mutation, query = schema.mutation_type.fields, schema.query_type.fields
    mutation["webhookSubscriptionCreate"].resolve = resolve_create
    mutation["webhookSubscriptionUpdate"].resolve = resolve_update
    mutation["webhookSubscriptionDelete"].resolve = resolve_delete
    query["webhookSubscription"].resolve = resolve_one
    query["webhookSubscriptions"].resolve = resolve_list
    query["webhookSubscriptionsCount"].resolve = resolve_count


# --- events ------------------------------------------------------------------------------

def snapshot(order: dict) -> dict:
    """What ``order_changed`` compares against to tell which topics an action fires."""
    return {"financial": order.get("displayFinancialStatus"), "cancelled": order.get("cancelledAt"),
            "refunds": len(order.get("refunds") or []), "transactions": len(order.get("transactions") or [])}


class Events:
    """Store listener: turns order actions into deliveries handed to ``delivery.Engine``."""

    def __init__(self, engine):
        self.engine = engine

    def order_created(self, shop, order: dict) -> None:
        topics = [("orders/create", order)]
        topics += [("order_transactions/create", t) for t in order.get("transactions") or []]
        if order.get("displayFinancialStatus") == "PAID":
            topics.append(("orders/paid", order))
        self._emit(shop, order, topics)

    def order_changed(self, shop, order: dict, before: dict) -> None:
        topics = []
        if order.get("cancelledAt") and not before["cancelled"]:
            topics.append(("orders/cancelled", order))
        topics += [("refunds/create", r) for r in (order.get("refunds") or [])[before["refunds"]:]]
        topics += [("order_transactions/create", t) for t in (order.get("transactions") or [])[before["transactions"]:]]
        if order.get("displayFinancialStatus") == "PAID" and before["financial"] != "PAID":
            topics.append(("orders/paid", order))
        topics.append(("orders/updated", order))
        self._emit(shop, order, topics)

    def _emit(self, shop, order: dict, topics: list[tuple[str, dict]]) -> None:
        subs = shop.webhook_subscriptions
        if not subs:
            return  # the common case while seeding: nothing to render
        wanted = {topic_name(s["topic"]) for s in subs}
        offset, domain = shop.timezone_offset, f"{shop.name}.myshopify.com"
        event_id, triggered = str(uuid.uuid4()), _triggered_at()
        order_id = rest_render.numeric_id(order.get("id"))
        for topic, resource in topics:
            if topic not in wanted:
                continue
            if topic == "refunds/create":
                body = rest_render.refund(resource, order, offset)
            elif topic == "order_transactions/create":
                body = rest_render.transaction(resource, order, offset)
            else:
                body = rest_render.order(resource, domain, offset)
            for sub in subs:
                if topic_name(sub["topic"]) == topic:
                    trimmed = {k: v for k, v in body.items() if k in sub["includeFields"]} if sub["includeFields"] else body
                    self.engine.publish(shop.name, sub, topic, trimmed, event_id=event_id,
                                        triggered_at=triggered, order_id=order_id)


def _triggered_at() -> str:
    # Nanosecond-style fraction as in real headers, e.g. 2023-03-29T18:00:27.877041743Z (format unverified).
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
