"""The composition root: the one place that builds concrete adapters from configuration."""

from __future__ import annotations

from adapters.hubspot import HubSpotTarget
from adapters.hubspot_runner import HubSpotRunner
from adapters.quickbooks import QuickBooksTarget
from adapters.quickbooks_runner import QuickBooksRunner
from adapters.shopify import ShopifySource
from adapters.woocommerce import WooCommerceSource
from connector.config import Settings, doc_prefix
from connector.ledger import Ledger


def build_sources(settings: Settings, only: str | None = None) -> list[tuple[object, object]]:
    """One source per configured store (or just ``only``), paired with its settings."""
    sources = []
    for store in settings.stores:
        if only and store.name != only:
            continue
        source = ShopifySource(store) if store.system == "shopify" else WooCommerceSource(store)
        sources.append((source, store))
    return sources


def build_runners(settings: Settings, ledger: Ledger) -> list[object]:
    """The step runners of the two targets, sharing the ledger."""
    prefixes = {store.name: doc_prefix(store) for store in settings.stores}
    return [
        HubSpotRunner(HubSpotTarget(settings.hubspot), ledger, settings.hubspot),
        QuickBooksRunner(QuickBooksTarget(settings.quickbooks, ledger), ledger, settings.quickbooks, prefixes),
    ]
