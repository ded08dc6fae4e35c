"""SKU -> QuickBooks item, for a whole batch of orders at once.

Order of resolution: the ledger cache, ``quickbooks.item_map`` (SKU ->
item name), then one query by Name and one by Sku for what is left (notes
§1.2: ``Sku`` is a field; names are unique, max 100). What is still missing
is created when ``create_missing_items`` is on (NonInventory or Service
with ``income_account``, which both types require), else booked to
``default_item``, else the document step fails naming the SKU.
"""

from __future__ import annotations

from adapters.quickbooks_runner import Books
from mappings.quickbooks_documents import ItemRefs, request_id

ITEM_NAME_MAX = 100


def resolve(books: Books, orders) -> ItemRefs:
    """Item ids for every SKU of ``orders`` plus the shipping, fee, fallback and rounding items."""
    settings, ledger, target = books.settings, books.ledger, books.target
    skus = {line.sku for order in orders for line in order.lines if line.sku}
    wanted = {sku: settings.item_map.get(sku, sku) for sku in skus}
    special = [n for n in (settings.shipping_item, settings.default_item, settings.fee_item, settings.rounding_item)
               if n]
    names = set(wanted.values()) | set(special)
    ids = {n: ledger.binding("quickbooks", "item", n) for n in names}
    missing = sorted(n for n, i in ids.items() if i is None)
    if missing:
        for name, item_id in target.find_items(missing).items():
            if name in ids and ids[name] is None:
                ids[name] = item_id
                ledger.bind("quickbooks", "item", name, item_id)
    missing = sorted(n for n, i in ids.items() if i is None and n not in special)
    if missing and settings.create_missing_items:
        account = books.named_id("Account", settings.income_account, "quickbooks.income_account")
        for name in missing:
            created = target.create("Item", {
                "Name": name[:ITEM_NAME_MAX], "Sku": name[:ITEM_NAME_MAX], "Type": settings.missing_item_type,
                "IncomeAccountRef": {"value": account}}, request_id(f"item:{name}", "quickbooks.item"))
            ids[name] = created["Id"]
            ledger.bind("quickbooks", "item", name, created["Id"], {"created": True})

    def get(name):
        return ids.get(name) if name else None
    return ItemRefs(
        by_sku={sku: ids[name] for sku, name in wanted.items() if ids.get(name)},
        shipping=get(settings.shipping_item),
        fallback=get(settings.default_item),
        fee=get(settings.fee_item),
        rounding=get(settings.rounding_item),
    )
