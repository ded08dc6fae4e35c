"""The optional "variety" keys of an order spec, as Shopify shows them (used by render.py).

Choices where Shopify has no direct equivalent of a spec key:

* ``discount_code``: one ``DiscountCodeApplication`` (code, ACROSS/ALL/LINE_ITEM, value =
  the code's total as MoneyV2) that every discounted line's ``discountAllocations`` point to;
  ``discountCode``/``discountCodes`` name it. Other line discounts stay manual (EACH/EXPLICIT).
* ``fees``: Shopify has no fee lines. A fee titled "Tip" is the order's tip
  (``totalTipReceivedSet``, part of ``totalPriceSet``); any other fee becomes a custom line item
  (title = the fee's, ``sku``/``variant`` null, quantity 1, taxed if the fee is taxable).
* ``payments`` (split tender): one SALE per payment, e.g. gateway ``gift_card`` for the gift
  card and the card gateway for the rest ("rest" = total minus the other payments).
* ``paid_at``: the order is paid later, so its SALE is ``processedAt``/``createdAt`` = paid_at.
* a zero total: ``PAID`` with no transaction at all (Shopify records no payment for $0).
* ``refunds``/``cancelled``: applied after rendering with the control API's own code
  (refunds.add_refund, cancel.cancel_order), so a seeded refund or cancellation is the same
  thing as one made later.
* ``guest``: no customer record and no email.
"""

from __future__ import annotations

from decimal import Decimal

from sandbox.shopify.render import ZERO, Money, Pair, amount, gid, iso, line_discount

TIP_TITLES = {"tip", "tips", "gratuity"}
GATEWAY_TITLES = {"gift_card": "Gift card", "shopify_payments": "Shopify Payments", "manual": "Manual"}


def is_tip(fee: dict) -> bool:
    return (fee.get("title") or "").strip().lower() in TIP_TITLES


def code_application(spec: dict, m: Money) -> dict:
    total = sum((line_discount(m, line) for line in spec.get("lines", [])), Pair(ZERO, ZERO))
    return {"__typename": "DiscountCodeApplication", "index": 0, "code": spec["discount_code"],
            "allocationMethod": "ACROSS", "targetSelection": "ALL", "targetType": "LINE_ITEM",
            "value": {"__typename": "MoneyV2", "amount": amount(total[1]), "currencyCode": m.pcur}}


def manual_application(index: int, discount: Decimal, m: Money) -> dict:
    value = m.conv(discount)
    return {"__typename": "ManualDiscountApplication", "index": index, "title": "Line discount",
            "description": None, "allocationMethod": "EACH", "targetSelection": "EXPLICIT",
            "targetType": "LINE_ITEM", "value": {"__typename": "MoneyV2", "amount": amount(value[1]),
                                                 "currencyCode": m.pcur}}


def transactions(store, spec: dict, m: Money, total: Pair, created: str) -> list[dict]:
    financial = spec.get("financial_status", "paid")
    if financial not in ("paid", "authorized") or total[0] <= 0:
        return []
    paid = financial == "paid"
    when = iso(spec["paid_at"]) if paid and spec.get("paid_at") else created
    payments = spec.get("payments") or [{"gateway": spec.get("gateway") or "manual", "amount": "rest"}]
    fixed = [p for p in payments if p.get("amount") != "rest"]
    out, taken = [], Pair(ZERO, ZERO)
    for payment in fixed + [p for p in payments if p.get("amount") == "rest"]:
        if payment.get("amount") == "rest":
            value = total - taken
        else:
            shop_value = min(Decimal(payment["amount"]), total[0] - taken[0])
            value = m.conv(shop_value) if shop_value < total[0] - taken[0] else total - taken
        if value[0] <= 0:
            continue
        taken += value
        number = store.next_id()
        gateway = payment.get("gateway") or "manual"
        out.append({
            "__typename": "OrderTransaction", "id": gid("OrderTransaction", number),
            "kind": "SALE" if paid else "AUTHORIZATION", "status": "SUCCESS",
            "gateway": gateway, "test": False, "processedAt": when, "createdAt": when,
            "amountSet": m.bag(value), "parentTransaction": None, "errorCode": None,
            "authorizationCode": f"AUTH{number % 1000000:06d}", "fees": [],
            "manualPaymentGateway": gateway == "manual",
            "formattedGateway": GATEWAY_TITLES.get(gateway, gateway.replace("_", " ").title()),
        })
    order = {p.get("gateway"): i for i, p in enumerate(payments)}
    return sorted(out, key=lambda t: order.get(t["gateway"], 0))


def gateway_names(spec: dict, transactions: list[dict]) -> list[str]:
    names = [t["gateway"] for t in transactions]
    if not names and spec.get("gateway") and spec.get("financial_status") != "paid":
        names = [spec["gateway"]]  # chosen at checkout, not paid yet
    return list(dict.fromkeys(names))


def after_sale(store, shop, spec: dict, order: dict) -> None:
    """What happened after checkout: refunds, then a cancellation."""
    from sandbox.shopify.cancel import cancel_order
    from sandbox.shopify.refunds import add_refund

    for refund in spec.get("refunds") or []:
        lines = spec["lines"]
        add_refund(store, shop, order, {
            "lines": [{"sku": lines[want["index"]]["sku"], "quantity": want["quantity"]} for want in refund["lines"]],
            "shipping": Decimal(refund.get("shipping") or "0") > 0,
            "note": refund.get("note"), "created_at": refund.get("created_at"),
        })
    if spec.get("cancelled"):
        cancel_order(store, shop, order, {"reason": spec.get("cancel_reason") or "CUSTOMER",
                                          "cancelled_at": spec.get("cancelled_at") or spec.get("updated_at")})
