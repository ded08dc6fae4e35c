"""Keep each store's webhook subscriptions alive.

Shopify deletes a subscription whose deliveries keep failing and WooCommerce
disables a webhook after repeated failures (peers.md (c) 7, 9): a connector
that was down for an hour may come back to silence. ``o2c webhooks register``
and ``status`` use :func:`check_store`; the daemon runs :func:`repair_all` on
a schedule (``webhooks.health_seconds``) so it re-creates and re-enables by
itself, and records what it found in the ledger's events.
"""

from __future__ import annotations

import logging

from connector.errors import SourceError

LOG = logging.getLogger("o2c.webhooks")

HEALTHY = ("ok", "created", "re-enabled")


def callback_url(settings, store) -> str | None:
    """Where ``store`` delivers: ``<webhooks.public_base_url>/webhooks/<system>/<store>``."""
    hooks = settings.webhooks
    if hooks is None or not hooks.public_base_url:
        return None
    return f"{hooks.public_base_url}/webhooks/{store.system}/{store.name}"


def check_store(store, url: str, *, apply: bool, refresh_secret: bool = True) -> list[dict]:
    """Each topic's subscription of ``store``: ``{topic, state, id}``; with ``apply``, repaired.

    ``refresh_secret`` (WooCommerce) re-sends the configured secret to webhooks that are fine too,
    as ``o2c webhooks register`` does after a secret change; the health check leaves them alone.
    """
    if store.system == "shopify":
        from adapters.shopify_webhooks import ensure
        return ensure(store, url, apply=apply)
    from adapters.woocommerce_webhooks import ensure
    return ensure(store, url, apply=apply, refresh_secret=refresh_secret)


def repair_all(settings, ledger) -> dict[str, list[dict]]:
    """Check and repair every store's subscriptions; log and record anything that was not fine."""
    found: dict[str, list[dict]] = {}
    for store in settings.stores:
        url = callback_url(settings, store)
        if url is None:
            continue
        try:
            rows = check_store(store, url, apply=True, refresh_secret=False)
        except SourceError as exc:
            LOG.warning("webhook check of %s failed: %s", store.name, exc)
            ledger.record_event("webhook_health", "failed", detail=f"{store.name}: {exc}"[:500])
            continue
        found[store.name] = rows
        repaired = [f"{row['topic']} {row['state']}" for row in rows if row["state"] != "ok"]
        outcome = "ok" if not repaired else "repaired" if all(r["state"] in HEALTHY for r in rows) else "failed"
        if repaired:
            LOG.warning("webhooks of %s: %s", store.name, ", ".join(repaired))
        ledger.record_event("webhook_health", outcome,
                            detail=f"{store.name}: {', '.join(repaired) or 'all subscriptions in place'}"[:500])
    return found
