"""Cancel a seeded order through the control API, as a merchant would in the Shopify admin.

``POST /_sandbox/shops/<shop>/orders/<legacy_id>/cancel`` with
``{"reason": "CUSTOMER", "cancelled_at": "...", "refund": false}``.

Shopify's effects (notes §1 enums, §3 orders/cancelled): ``cancelledAt``,
``cancelReason`` (OrderCancelReason), the order is closed, ``updatedAt``
moves; an authorization is voided (``VOID`` transaction, ``VOIDED``), a
pending order becomes ``VOIDED``; a paid order stays ``PAID`` unless
``refund: true``, which refunds every line and shipping (``REFUNDED``).
"""

from __future__ import annotations

from sandbox.shopify.refunds import add_refund
from sandbox.shopify.render import ZERO, gid, iso, money_bag

CANCEL_REASONS = {"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "STAFF", "OTHER"}


def cancel_order(store, shop, order: dict, request: dict) -> dict:
    """Cancel ``order`` in place; raises ValueError if it is already cancelled."""
    if order.get("cancelledAt"):
        raise ValueError("order is already cancelled")
    reason = (request.get("reason") or "CUSTOMER").upper()
    if reason not in CANCEL_REASONS:
        raise ValueError(f"reason must be one of {sorted(CANCEL_REASONS)}")
    when = iso(request.get("cancelled_at") or order["updatedAt"])
    cur = order["currencyCode"]
    status = order["displayFinancialStatus"]
    if request.get("refund") and status in ("PAID", "PARTIALLY_REFUNDED"):
        remaining = [{"sku": line["sku"], "quantity": line["currentQuantity"]}
                     for line in order["lineItems"] if line["currentQuantity"] > 0]
        add_refund(store, shop, order, {"lines": remaining, "shipping": True, "created_at": when,
                                        "note": "Order canceled"})
    elif status == "AUTHORIZED":
        auth = next(t for t in order["transactions"] if t["kind"] == "AUTHORIZATION")
        order["transactions"].append({
            **auth, "id": gid("OrderTransaction", store.next_id()), "kind": "VOID", "processedAt": when,
            "createdAt": when, "authorizationCode": None,
            "parentTransaction": {k: v for k, v in auth.items() if k != "parentTransaction"} | {"parentTransaction": None},
        })
        order.update(displayFinancialStatus="VOIDED", capturable=False, totalCapturableSet=money_bag(ZERO, cur))
    elif status == "PENDING":
        order["displayFinancialStatus"] = "VOIDED"
    order.update(cancelledAt=when, cancelReason=reason, closed=True, closedAt=when,
                 updatedAt=max(order["updatedAt"], when))
    return order
