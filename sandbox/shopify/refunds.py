"""Refunds added to a seeded order through the control API (no real vendor call creates them here).

``POST /_sandbox/shops/<shop>/orders/<legacy_id>/refunds`` with::

    {"lines": [{"sku": "MUG-12OZ", "quantity": 1}], "shipping": true,
     "note": "damaged", "created_at": "2026-11-02T10:00:00Z"}

Each refunded line gives back its discounted amount and its tax pro rata
(rounded half-up per line, like the order's own tax lines); ``shipping: true``
refunds every shipping line with its tax. The order then shows the ``Refund``
(its ``refundLineItems``/``refundShippingLines``/``transactions`` connections),
a ``REFUND`` transaction whose parent is the sale or capture, a larger
``totalRefundedSet``, smaller ``current*`` totals and quantities,
``PARTIALLY_REFUNDED`` or ``REFUNDED``, and a newer ``updatedAt`` (Shopify
bumps it, so incremental sync sees the refund; notes §1, §3 refunds/create).
"""

from __future__ import annotations

from decimal import Decimal

from sandbox.shopify.render import ZERO, amount, gid, iso, money_bag, round_cents


def _value(bag: dict) -> Decimal:
    return Decimal(bag["shopMoney"]["amount"])


def _line_tax(line: dict) -> Decimal:
    return sum((_value(t["priceSet"]) for t in line["taxLines"]), ZERO)


def add_refund(store, shop, order: dict, request: dict) -> dict:
    """Append a Refund to ``order`` and update its totals; returns the Refund node."""
    cur = order["currencyCode"]
    when = iso(request.get("created_at") or order["updatedAt"])
    by_sku = {line["sku"]: line for line in order["lineItems"]}
    refund_lines, refund_shipping = [], []
    subtotal = tax = ZERO
    for wanted in request.get("lines") or []:
        line = by_sku.get(wanted.get("sku"))
        quantity = int(wanted.get("quantity") or 0)
        if line is None or not 0 < quantity <= line["currentQuantity"]:
            raise ValueError(f"cannot refund {quantity} of {wanted.get('sku')!r}")
        share = Decimal(quantity) / Decimal(line["quantity"])
        line_subtotal = round_cents(_value(line["discountedTotalSet"]) * share)
        line_tax = round_cents(_line_tax(line) * share)
        subtotal, tax = subtotal + line_subtotal, tax + line_tax
        line["currentQuantity"] -= quantity
        line["refundableQuantity"] = line["currentQuantity"]
        refund_lines.append({
            "id": gid("RefundLineItem", store.next_id()), "lineItem": line, "quantity": quantity,
            "restockType": "NO_RESTOCK", "restocked": False, "location": None,
            "priceSet": line["discountedUnitPriceSet"], "subtotalSet": money_bag(line_subtotal, cur),
            "totalTaxSet": money_bag(line_tax, cur),
        })
    if request.get("shipping"):
        for ship in order["shippingLines"]:
            ship_price, ship_tax = _value(ship["discountedPriceSet"]), _line_tax(ship)
            subtotal, tax = subtotal + ship_price, tax + ship_tax
            refund_shipping.append({"id": gid("RefundShippingLine", store.next_id()), "shippingLine": ship,
                                    "subtotalAmountSet": money_bag(ship_price, cur),
                                    "taxAmountSet": money_bag(ship_tax, cur)})
    total = subtotal + tax
    parent = next((t for t in order["transactions"] if t["kind"] in ("SALE", "CAPTURE")), None)
    transactions = []
    if parent is not None and total > 0:
        transactions.append({
            "__typename": "OrderTransaction", "id": gid("OrderTransaction", store.next_id()), "kind": "REFUND",
            "status": "SUCCESS", "gateway": parent["gateway"], "test": False, "processedAt": when,
            "createdAt": when, "amountSet": money_bag(total, cur), "errorCode": None, "fees": [],
            "authorizationCode": None, "manualPaymentGateway": False, "formattedGateway": parent["gateway"],
            # A copy without its own parent: the node graph stays a tree (the state dump is JSON).
            "parentTransaction": {k: v for k, v in parent.items() if k != "parentTransaction"} | {"parentTransaction": None},
        })
    number = store.next_id()
    refund = {
        "__typename": "Refund", "id": gid("Refund", number), "legacyResourceId": str(number),
        "createdAt": when, "processedAt": when, "updatedAt": when, "note": request.get("note"),
        "totalRefundedSet": money_bag(total, cur), "refundLineItems": refund_lines,
        "refundShippingLines": refund_shipping, "transactions": transactions, "orderAdjustments": [],
        "duties": [], "return": None, "staffMember": None, "_orderId": order["id"],
    }
    order["refunds"].append(refund)
    order["transactions"].extend(transactions)
    refunded = _value(order["totalRefundedSet"]) + total
    order["totalRefundedSet"] = money_bag(refunded, cur)
    if request.get("shipping"):
        order["totalRefundedShippingSet"] = money_bag(
            sum((_value(s["subtotalAmountSet"]) for s in refund_shipping), ZERO), cur)
    for key, less in (("currentSubtotalPriceSet", subtotal - sum((_value(s["subtotalAmountSet"]) for s in refund_shipping), ZERO)),
                      ("currentTotalTaxSet", tax), ("currentTotalPriceSet", total)):
        order[key] = money_bag(_value(order[key]) - less, cur)
    if refund_shipping:
        order["currentShippingPriceSet"] = money_bag(ZERO, cur)
    order["currentSubtotalLineItemsQuantity"] = sum(line["currentQuantity"] for line in order["lineItems"])
    order["netPaymentSet"] = money_bag(_value(order["totalReceivedSet"]) - refunded, cur)
    paid_total = _value(order["totalPriceSet"])
    order["displayFinancialStatus"] = "REFUNDED" if refunded >= paid_total else "PARTIALLY_REFUNDED"
    order["updatedAt"] = max(order["updatedAt"], when)
    return refund


def refund_summary(refund: dict) -> dict:
    return {"id": refund["id"], "totalRefunded": amount(_value(refund["totalRefundedSet"]))}
