"""Shopify webhook subscriptions through the Admin GraphQL API (ShopifyAPI SDK).

``webhookSubscriptions`` lists what exists, ``webhookSubscriptionCreate`` adds
what is missing (notes/shopify.md §3). Shopify *removes* a subscription made
through the Admin API after 8 failed retries over 4 hours (notes §3,
peers.md (c) 7), so ``o2c webhooks register`` is idempotent and meant to be
run again: it re-creates whatever was deleted.
"""

from __future__ import annotations

from adapters.shopify import ShopifySource
from connector.errors import SourceError

# The order-to-cash topics (notes §3): each announces an order to fetch fresh.
TOPICS = ("ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_PAID", "ORDERS_CANCELLED", "REFUNDS_CREATE")

LIST = """
query Subscriptions($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes { id topic uri }
    pageInfo { hasNextPage endCursor }
  }
}"""
CREATE = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""


def subscriptions(source: ShopifySource) -> list[dict]:
    """Every subscription the Admin API lists for this app: ``{id, topic, uri}``."""
    found, after = [], None
    while True:
        data = source._query(LIST, {"after": after}, "Subscriptions", "list webhook subscriptions")
        page = data["webhookSubscriptions"]
        found.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


def ensure(store, url: str, *, apply: bool) -> list[dict]:
    """One row per topic: ``{topic, state, id}``; state ``ok``, ``missing`` or (with ``apply``) ``created``."""
    source = ShopifySource(store)
    existing = {node["topic"]: node for node in subscriptions(source) if node.get("uri") == url}
    rows = []
    for topic in TOPICS:
        node = existing.get(topic)
        if node is not None:
            rows.append({"topic": topic, "state": "ok", "id": node["id"]})
            continue
        if not apply:
            rows.append({"topic": topic, "state": "missing", "id": None})
            continue
        data = source._query(CREATE, {"topic": topic, "sub": {"uri": url, "format": "JSON"}}, "Subscribe",
                             f"subscribe to {topic}")["webhookSubscriptionCreate"]
        if data["userErrors"]:
            raise SourceError(store.name, f"Shopify refused the {topic} subscription: "
                              f"{data['userErrors'][0]['message']}", retryable=False)
        rows.append({"topic": topic, "state": "created", "id": data["webhookSubscription"]["id"]})
    return rows
