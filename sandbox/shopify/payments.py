"""Mark a seeded order as paid through the control API, as a merchant would in the admin.

``POST /_sandbox/shops/<shop>/orders/<legacy_id>/pay`` with ``{"paid_at": "...", "gateway": "manual"}``.

Shopify's effects (notes §1 enums, §3 orders/paid): an ``AUTHORIZED`` order gets a
``CAPTURE`` transaction whose parent is the authorization; a ``PENDING`` one a ``SALE``.
Either way the order becomes ``PAID`` with nothing outstanding or capturable, and
``updatedAt`` moves. The app's store hook then fires orders/paid,
order_transactions/create and orders/updated with one event id (webhooks.py).
"""

from __future__ import annotations

from decimal import Decimal

from sandbox.shopify.render import ZERO, gid, iso, money_bag


def _value(bag: dict) -> Decimal:
    return Decimal(bag["shopMoney"]["amount"])


def pay_order(store, order: dict, request: dict) -> dict:
    """Record the payment of ``order`` in place; raises ValueError if it cannot be paid."""
    status = order["displayFinancialStatus"]
    if order.get("cancelledAt") or status not in ("PENDING", "AUTHORIZED", "PARTIALLY_PAID"):
        raise ValueError(f"an order that is {status.lower()}{' and cancelled' if order.get('cancelledAt') else ''} "
                         "cannot be marked as paid")
    when = iso(request.get("paid_at") or order["updatedAt"])
    cur = order["currencyCode"]
    total = _value(order["totalPriceSet"])
    outstanding = _value(order.get("totalOutstandingSet") or order["totalPriceSet"])
    auth = next((t for t in order["transactions"] if t["kind"] == "AUTHORIZATION"), None)
    number = store.next_id()
    order["transactions"].append({
        "__typename": "OrderTransaction", "id": gid("OrderTransaction", number),
        "kind": "CAPTURE" if auth else "SALE", "status": "SUCCESS",
        "gateway": request.get("gateway") or (auth or {}).get("gateway") or "manual", "test": False,
        "processedAt": when, "createdAt": when, "amountSet": money_bag(outstanding, cur), "errorCode": None,
        "authorizationCode": (auth or {}).get("authorizationCode"), "fees": [],
        "manualPaymentGateway": auth is None, "formattedGateway": request.get("gateway") or "manual",
        # A copy without its own parent keeps the node graph a tree (the state dump is JSON).
        "parentTransaction": ({k: v for k, v in auth.items() if k != "parentTransaction"} | {"parentTransaction": None})
        if auth else None,
    })
    refunded = _value(order.get("totalRefundedSet") or money_bag(ZERO, cur))
    order.update(displayFinancialStatus="PAID", fullyPaid=True, unpaid=False, capturable=False,
                 totalCapturableSet=money_bag(ZERO, cur), totalOutstandingSet=money_bag(ZERO, cur),
                 totalReceivedSet=money_bag(total, cur), netPaymentSet=money_bag(total - refunded, cur),
                 updatedAt=max(order["updatedAt"], when))
    return order
