"""WooCommerce webhooks through the REST API (``woocommerce`` library, ``/wc/v3/webhooks``).

WooCommerce *disables* a webhook after its 7th consecutive failed delivery and
never retries (notes/woocommerce.md §3, peers.md (c) 9); ``PUT webhooks/<id>
{"status": "active"}`` re-enables it. The secret is write-only (never shown
again), so ``register`` sets the configured one on every webhook it keeps.
"""

from __future__ import annotations

import time

import requests

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
    """One webhook write. A ``put`` (idempotent) is retried on 429, 5xx and timeouts; a ``post`` is
    not (a lost answer may have created the webhook: the next check lists it instead)."""
    tries = 3 if method == "put" else 1
    for attempt in range(1, tries + 1):
        source.calls += 1
        try:
            response = getattr(source._api, method)(endpoint, data)
        except requests.RequestException as exc:
            if attempt < tries:
                time.sleep(0.5 * attempt)
                continue
            raise SourceError(source.store, f"WooCommerce did not answer {method.upper()} {endpoint} in time"
                              f" ({type(exc).__name__}); it is tried again at the next check") from exc
        if response.status_code == expected:
            return response.json()
        transient = response.status_code == 429 or response.status_code >= 500
        if transient and attempt < tries:
            time.sleep(0.5 * attempt)
            continue
        try:
            body = response.json()
            message = f"{body.get('code')}: {body.get('message')}"
        except ValueError:
            message = response.text[:200]
        hint = "; the key needs read_write permission" if response.status_code in (401, 403) else \
            "; it is tried again at the next check" if transient else ""
        raise SourceError(source.store, f"WooCommerce answered HTTP {response.status_code} {message} to"
                          f" {method.upper()} {endpoint}{hint}", retryable=transient)
    raise AssertionError("unreachable")


def ensure(store, url: str, *, apply: bool, refresh_secret: bool = True) -> list[dict]:
    """One row per topic: ``{topic, state, id}``.

    States: ``ok``; ``missing`` or ``disabled``/``paused`` (status only);
    ``created`` or ``re-enabled`` (with ``apply``). ``refresh_secret`` (``register``) also sets the
    configured secret on webhooks that are fine; the daemon's health check writes only what is broken.
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
        if active and not refresh_secret:
            rows.append({"topic": topic, "state": "ok", "id": hook["id"]})
            continue
        _write(source, "put", f"webhooks/{hook['id']}", {"status": "active", "secret": secret}, 200)
        rows.append({"topic": topic, "state": "ok" if active else "re-enabled", "id": hook["id"]})
    return rows
