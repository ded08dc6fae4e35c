"""WooCommerce webhooks through the REST API (``woocommerce`` library, ``/wc/v3/webhooks``).

WooCommerce *disables* a webhook after its 7th consecutive failed delivery and
never retries (notes/woocommerce.md §3, peers.md (c) 9); ``PUT webhooks/<id>
{"status": "active"}`` re-enables it. The secret is write-only (never shown
again), so ``register`` sets the configured one on every webhook it keeps.
"""

from __future__ import annotations

from adapters.woocommerce import PER_PAGE, WooCommerceSource
from connector.errors import SourceError

TOPICS = ("order.created", "order.updated", "order.deleted")


def webhooks(source: WooCommerceSource) -> list[dict]:
    """Every webhook of the site: ``{id, name, status, topic, delivery_url, ...}``."""
    found, page = [], 1
    while True:
        response = source._checked("webhooks", {"per_page": PER_PAGE, "page": page})
        found.extend(response.json())
        if page >= int(response.headers.get("X-WP-TotalPages") or 1):
            return found
        page += 1


def _write(source: WooCommerceSource, method: str, endpoint: str, data: dict, expected: int) -> dict:
    source.calls += 1
    response = getattr(source._api, method)(endpoint, data)
    if response.status_code != expected:
        try:
            body = response.json()
            message = f"{body.get('code')}: {body.get('message')}"
        except ValueError:
            message = response.text[:200]
        raise SourceError(source.store, f"WooCommerce answered HTTP {response.status_code} {message} to"
                          f" {method.upper()} {endpoint}; the key needs read_write permission", retryable=False)
    return response.json()


def ensure(store, url: str, *, apply: bool) -> list[dict]:
    """One row per topic: ``{topic, state, id}``.

    States: ``ok``; ``missing`` or ``disabled``/``paused`` (status only);
    ``created`` or ``re-enabled`` (with ``apply``).
    """
    source = WooCommerceSource(store)
    secret = store.webhook_secret.get_secret_value() if store.webhook_secret else None
    if apply and not secret:
        raise SourceError(store.name, "no webhook_secret is configured; set one (an environment reference) so"
                          " deliveries can be verified", retryable=False)
    existing: dict[str, dict] = {}
    for hook in webhooks(source):
        if hook.get("delivery_url") == url and hook.get("topic") in TOPICS:
            # Several for one topic: prefer an active one.
            if hook["topic"] not in existing or hook.get("status") == "active":
                existing[hook["topic"]] = hook
    rows = []
    for topic in TOPICS:
        hook = existing.get(topic)
        if hook is None:
            if not apply:
                rows.append({"topic": topic, "state": "missing", "id": None})
                continue
            made = _write(source, "post", "webhooks", {"name": f"o2c {topic}", "topic": topic,
                                                       "delivery_url": url, "secret": secret,
                                                       "status": "active"}, 201)
            rows.append({"topic": topic, "state": "created", "id": made["id"]})
            continue
        active = hook.get("status") == "active"
        if not apply:
            rows.append({"topic": topic, "state": "ok" if active else hook.get("status"), "id": hook["id"]})
            continue
        _write(source, "put", f"webhooks/{hook['id']}", {"status": "active", "secret": secret}, 200)
        rows.append({"topic": topic, "state": "ok" if active else "re-enabled", "id": hook["id"]})
    return rows
