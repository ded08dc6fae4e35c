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


def hubspot_target(settings: Settings) -> HubSpotTarget:
    """The HubSpot client, on the process's shared rate budget for its account (``limits:``)."""
    return HubSpotTarget(settings.hubspot, settings.limits)


def quickbooks_target(settings: Settings, ledger: Ledger) -> QuickBooksTarget:
    """The QuickBooks client, on the process's shared rate budget for its realm (``limits:``)."""
    return QuickBooksTarget(settings.quickbooks, ledger, settings.limits)


def build_sources(settings: Settings, only: str | None = None) -> list[tuple[object, object]]:
    """One source per configured store (or just ``only``), paired with its settings."""
    sources = []
    for store in settings.stores:
        if only and store.name != only:
            continue
        source = ShopifySource(store) if store.system == "shopify" else WooCommerceSource(store, settings.limits)
        sources.append((source, store))
    return sources


TARGET_SYSTEMS = ("hubspot", "quickbooks")


def build_runner(settings: Settings, ledger: Ledger, system: str):
    """The step runner of one target system, on ``ledger``."""
    if system == "hubspot":
        return HubSpotRunner(hubspot_target(settings), ledger, settings.hubspot)
    if system == "quickbooks":
        prefixes = {store.name: doc_prefix(store) for store in settings.stores}
        return QuickBooksRunner(quickbooks_target(settings, ledger), ledger, settings.quickbooks, prefixes)
    raise ValueError(f"no target system {system!r}")


def build_runners(settings: Settings, ledger: Ledger) -> list[object]:
    """The step runners of the two targets, sharing the ledger."""
    return [build_runner(settings, ledger, system) for system in TARGET_SYSTEMS]


def run_all_targets(settings: Settings, *, progress=None, should_stop=None):
    """Run every due step, one worker thread per target system (``connector.workers``)."""
    from connector.workers import run_targets
    return run_targets(lambda: Ledger(settings.ledger_url),
                       lambda ledger, system: build_runner(settings, ledger, system), list(TARGET_SYSTEMS),
                       progress=progress, should_stop=should_stop,
                       backoff=tuple(settings.queue.retry_seconds), lease_seconds=settings.queue.lease_seconds,
                       threads=dict(settings.queue.threads))
