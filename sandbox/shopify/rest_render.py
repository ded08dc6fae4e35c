"""Translate the GraphQL ``Order`` node dicts of render.py into REST-shaped webhook bodies.

Webhook bodies are the REST resource, not the GraphQL node (notes §3 "Body": snake_case,
numeric ``id`` plus ``admin_graphql_api_id``). The key order, key names and JSON types
follow the published 2026-01 examples (tests/fixtures/shopify/webhook_*.2026-01.json):

* money: a string with two decimals (``"414.95"``, ``"0.00"``) next to a ``*_set`` bag
  ``{"shop_money": {"amount", "currency_code"}, "presentment_money": {...}}``; only the
  keys the fixture has get the scalar sibling (``current_shipping_price_set`` has none);
* refund line ``subtotal``/``total_tax`` are JSON numbers; transaction
  ``total_unsettled_set`` bags say ``currency``, not ``currency_code`` (fixture);
* numeric ids are ints (exact: Python's json never goes through a float; notes §3
  "Large ints"); enums lowercase (``financial_status: "paid"``, ``cancel_reason``);
* timestamps carry the shop's UTC offset (fixture: ``2021-12-31T19:00:00-05:00``).

This module only reads the node, field by field with ``.get``, so it keeps working as
render.py grows: a field the node lacks becomes the REST default (null, [] or zero).
Nested shapes the fixtures do not show (order ``tax_lines``, ``discount_applications``,
``fulfillments``, ``refund_shipping_lines``) follow the REST Order reference from memory
and are marked unverified.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

CENT = Decimal("0.01")
# REST fulfillment_status of an order: null while nothing is fulfilled (fixture), else these.
ORDER_FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}
DISCOUNT_TYPES = {"ManualDiscountApplication": "manual", "DiscountCodeApplication": "discount_code",
                  "AutomaticDiscountApplication": "automatic", "ScriptDiscountApplication": "script"}


def numeric_id(gid: str | None) -> int | None:
    """``gid://shopify/Order/123?model_name=x`` -> ``123`` (an int, exact above 2^53)."""
    if not gid:
        return None
    return int(gid.rsplit("/", 1)[-1].split("?", 1)[0])


def rest_time(moment: str | None, offset: str = "-05:00") -> str | None:
    """``2026-01-02T03:04:05Z`` -> ``2026-01-01T22:04:05-05:00`` (the shop's offset)."""
    if not moment:
        return None
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = (int(p) for p in offset.lstrip("+-").split(":"))
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    parsed = datetime.fromisoformat(moment)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(zone).isoformat(timespec="seconds")


def money_text(amount) -> str:
    """REST money strings have two decimals (fixture: ``"10.00"``), GraphQL's ``"10.0"``."""
    return f"{Decimal(str(amount)).quantize(CENT):f}"


def _zero_bag(currency: str) -> dict:
    return {"shopMoney": {"amount": "0", "currencyCode": currency},
            "presentmentMoney": {"amount": "0", "currencyCode": currency}}


def money_set(bag: dict | None, currency_key: str = "currency_code") -> dict | None:
    """GraphQL ``MoneyBag`` -> REST ``{"shop_money": {...}, "presentment_money": {...}}``."""
    if not bag:
        return None
    shop, presentment = bag.get("shopMoney") or {}, bag.get("presentmentMoney") or bag.get("shopMoney") or {}
    return {"shop_money": {"amount": money_text(shop.get("amount", "0")), currency_key: shop.get("currencyCode")},
            "presentment_money": {"amount": money_text(presentment.get("amount", "0")),
                                  currency_key: presentment.get("currencyCode")}}


def _shop_amount(bag: dict | None) -> str:
    return money_text(((bag or {}).get("shopMoney") or {}).get("amount", "0"))


def _sum_bags(bags: list[dict], currency: str) -> dict:
    """Sum MoneyBags per side (shop, presentment); used where the node has no total."""
    shop = sum((Decimal(b["shopMoney"]["amount"]) for b in bags), Decimal(0))
    pres = sum((Decimal((b.get("presentmentMoney") or b["shopMoney"])["amount"]) for b in bags), Decimal(0))
    pres_currency = (bags[0].get("presentmentMoney") or bags[0]["shopMoney"])["currencyCode"] if bags else currency
    return {"shopMoney": {"amount": str(shop), "currencyCode": bags[0]["shopMoney"]["currencyCode"] if bags else currency},
            "presentmentMoney": {"amount": str(pres), "currencyCode": pres_currency}}


def _lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _attributes(items) -> list[dict]:
    # GraphQL Attribute {key, value} -> REST {name, value} (note_attributes, properties).
    return [{"name": a.get("key"), "value": a.get("value")} for a in items or []]


def address(node: dict | None) -> dict | None:
    """MailingAddress -> the order address shape of the fixture (same key order)."""
    if not node:
        return None
    return {"first_name": node.get("firstName"), "address1": node.get("address1"), "phone": node.get("phone"),
            "city": node.get("city"), "zip": node.get("zip"), "province": node.get("province"),
            "country": node.get("country"), "last_name": node.get("lastName"), "address2": node.get("address2"),
            "company": node.get("company"), "latitude": node.get("latitude"), "longitude": node.get("longitude"),
            "name": node.get("name"), "country_code": node.get("countryCodeV2"),
            "province_code": node.get("provinceCode")}


def customer(node: dict | None, currency: str, offset: str) -> dict | None:
    if not node:
        return None
    number = numeric_id(node.get("id"))
    default = node.get("defaultAddress")
    email = node.get("email") or (node.get("defaultEmailAddress") or {}).get("emailAddress")
    phone = node.get("phone") or (node.get("defaultPhoneNumber") or {}).get("phoneNumber")
    return {
        "id": number, "created_at": rest_time(node.get("createdAt"), offset),
        "updated_at": rest_time(node.get("updatedAt"), offset),
        "first_name": node.get("firstName"), "last_name": node.get("lastName"),
        "state": _lower(node.get("state")) or "disabled", "note": node.get("note"),
        "verified_email": bool(node.get("verifiedEmail")), "multipass_identifier": None,
        "tax_exempt": bool(node.get("taxExempt")), "email": email, "phone": phone, "currency": currency,
        "tax_exemptions": [_lower(t) for t in node.get("taxExemptions") or []],
        "admin_graphql_api_id": node.get("id"),
        "default_address": (address(default) | {"id": numeric_id(default.get("id")), "customer_id": number,
                                                "country_name": default.get("country"), "default": True})
        if default else None,
    }


def tax_line(node: dict) -> dict:
    # Unverified order/line tax_lines shape (fixture lists are empty): REST Order reference.
    rate = node.get("rate")
    return {"price": _shop_amount(node.get("priceSet")), "rate": rate if rate is not None else 0.0,
            "title": node.get("title"), "price_set": money_set(node.get("priceSet")),
            "channel_liable": bool(node.get("channelLiable"))}


def discount_allocation(node: dict, applications: list[dict]) -> dict:
    application = node.get("discountApplication") or {}
    index = application.get("index")
    if index is None and application in applications:
        index = applications.index(application)
    return {"amount": _shop_amount(node.get("allocatedAmountSet")), "discount_application_index": index or 0,
            "amount_set": money_set(node.get("allocatedAmountSet"))}


def discount_application(node: dict) -> dict:
    # Unverified shape (fixture list empty): REST Order reference ``discount_applications``.
    value = node.get("value") or {}
    if "percentage" in value:
        text, value_type = str(value["percentage"]), "percentage"
    else:
        text, value_type = str(Decimal(str(value.get("amount", "0")))), "fixed_amount"
    kind = DISCOUNT_TYPES.get(node.get("__typename"), "manual")
    out = {"target_type": _lower(node.get("targetType")), "type": kind, "value": text, "value_type": value_type,
           "allocation_method": _lower(node.get("allocationMethod")),
           "target_selection": _lower(node.get("targetSelection"))}
    if kind == "discount_code":
        out["code"] = node.get("code")
    else:
        out["title"] = node.get("title")
        if kind in ("manual", "script"):
            out["description"] = node.get("description")
    return out


def line_item(node: dict, applications: list[dict]) -> dict:
    """LineItem -> REST line item (key order of the fixture's ``line_items``)."""
    variant, product = node.get("variant") or {}, node.get("product") or {}
    status = _lower(node.get("fulfillmentStatus"))
    return {
        "id": numeric_id(node.get("id")), "admin_graphql_api_id": node.get("id"),
        "attributed_staffs": [], "current_quantity": node.get("currentQuantity", node.get("quantity")),
        "fulfillable_quantity": node.get("fulfillableQuantity", 0), "fulfillment_service": "manual",
        "fulfillment_status": None if status in (None, "unfulfilled") else status,
        "gift_card": bool(node.get("isGiftCard")), "grams": int(variant.get("weightGrams") or 0),
        "name": node.get("name"), "price": _shop_amount(node.get("originalUnitPriceSet")),
        "price_set": money_set(node.get("originalUnitPriceSet")),
        "product_exists": bool(product or variant), "product_id": numeric_id(product.get("id")),
        "properties": _attributes(node.get("customAttributes")), "quantity": node.get("quantity"),
        "requires_shipping": bool(node.get("requiresShipping", True)), "sales_line_item_group_id": None,
        "sku": node.get("sku"), "taxable": bool(node.get("taxable")), "title": node.get("title"),
        "total_discount": _shop_amount(node.get("totalDiscountSet")),
        "total_discount_set": money_set(node.get("totalDiscountSet")),
        "variant_id": numeric_id(variant.get("id")), "variant_inventory_management": None,
        "variant_title": node.get("variantTitle"), "vendor": node.get("vendor"),
        "tax_lines": [tax_line(t) for t in node.get("taxLines") or []], "duties": [],
        "discount_allocations": [discount_allocation(a, applications) for a in node.get("discountAllocations") or []],
    }


def shipping_line(node: dict, applications: list[dict]) -> dict:
    current = node.get("currentDiscountedPriceSet") or node.get("discountedPriceSet")
    return {
        "id": numeric_id(node.get("id")), "carrier_identifier": node.get("carrierIdentifier"),
        "code": node.get("code"), "current_discounted_price_set": money_set(current),
        "discounted_price": _shop_amount(node.get("discountedPriceSet")),
        "discounted_price_set": money_set(node.get("discountedPriceSet")),
        "is_removed": bool(node.get("isRemoved")), "phone": node.get("phone"),
        "price": _shop_amount(node.get("originalPriceSet")), "price_set": money_set(node.get("originalPriceSet")),
        "requested_fulfillment_service_id": None, "source": node.get("source"), "title": node.get("title"),
        "tax_lines": [tax_line(t) for t in node.get("taxLines") or []],
        "discount_allocations": [discount_allocation(a, applications) for a in node.get("discountAllocations") or []],
    }


def transaction(node: dict, order: dict, offset: str) -> dict:
    """OrderTransaction -> REST transaction (order_transactions/create body, refund transactions)."""
    bag = node.get("amountSet") or _zero_bag(order.get("currencyCode", "USD"))
    index = next((i for i, t in enumerate(order.get("transactions") or [], 1) if t.get("id") == node.get("id")), 1)
    unsettled = bag if node.get("kind") == "AUTHORIZATION" and node.get("status") == "SUCCESS" else _zero_bag("XXX")
    return {
        "id": numeric_id(node.get("id")), "order_id": numeric_id(order.get("id")),
        "kind": _lower(node.get("kind")), "gateway": node.get("gateway"), "status": _lower(node.get("status")),
        "message": node.get("message"), "created_at": rest_time(node.get("createdAt"), offset),
        "test": bool(node.get("test")), "authorization": node.get("authorizationCode"), "location_id": None,
        "user_id": None, "parent_id": numeric_id((node.get("parentTransaction") or {}).get("id")),
        "processed_at": rest_time(node.get("processedAt"), offset), "device_id": None,
        "error_code": _lower(node.get("errorCode")), "source_name": order.get("sourceName") or "web",
        "receipt": {}, "amount": _shop_amount(bag), "currency": bag["shopMoney"].get("currencyCode"),
        "payment_id": f"{order.get('name', '')}.{index}",
        "total_unsettled_set": {k: v for k, v in reversed(list(money_set(unsettled, "currency").items()))},
        "manual_payment_gateway": bool(node.get("manualPaymentGateway")), "amount_rounding": None,
        "admin_graphql_api_id": node.get("id"),
    }


def refund(node: dict, order: dict, offset: str) -> dict:
    """Refund -> the refunds/create body (= an element of the order's ``refunds``)."""
    applications = order.get("discountApplications") or []
    currency = order.get("currencyCode", "USD")
    lines = []
    for item in node.get("refundLineItems") or []:
        line = line_item(item.get("lineItem") or {}, applications)
        # The fixture's nested line_item lacks these three keys of the order's line_items.
        for key in ("attributed_staffs", "current_quantity", "sales_line_item_group_id"):
            line.pop(key, None)
        lines.append({
            "id": numeric_id(item.get("id")), "quantity": item.get("quantity"), "line_item_id": line["id"],
            "location_id": None, "restock_type": _lower(item.get("restockType")) or "no_restock",
            "subtotal": float(_shop_amount(item.get("subtotalSet"))),  # a JSON number here (fixture)
            "total_tax": float(_shop_amount(item.get("totalTaxSet"))),
            "subtotal_set": money_set(item.get("subtotalSet")), "total_tax_set": money_set(item.get("totalTaxSet")),
            "line_item": line,
        })
    shipping = [{  # unverified shape (fixture list empty)
        "id": numeric_id(s.get("id")), "shipping_line_id": numeric_id((s.get("shippingLine") or {}).get("id")),
        "subtotal_amount_set": money_set(s.get("subtotalAmountSet")), "tax_amount_set": money_set(s.get("taxAmountSet")),
    } for s in node.get("refundShippingLines") or []]
    return {
        "id": numeric_id(node.get("id")), "order_id": numeric_id(order.get("id")),
        "created_at": rest_time(node.get("createdAt"), offset), "note": node.get("note"), "user_id": None,
        "processed_at": rest_time(node.get("processedAt") or node.get("createdAt"), offset), "duties": [],
        "total_duties_set": money_set(node.get("totalDutiesSet") or _zero_bag(currency)), "return": None,
        "restock": any(item.get("restocked") for item in node.get("refundLineItems") or []),
        "refund_shipping_lines": shipping, "admin_graphql_api_id": node.get("id"), "order_adjustments": [],
        "refund_line_items": lines,
        "transactions": [transaction(t, order, offset) for t in node.get("transactions") or []],
    }


def fulfillment(node: dict, order: dict, offset: str) -> dict:
    # Unverified shape (fixture list empty): REST Fulfillment reference.
    applications = order.get("discountApplications") or []
    items = node.get("fulfillmentLineItems")
    lines = [i.get("lineItem") for i in items] if items is not None else order.get("lineItems") or []
    tracking = node.get("trackingInfo") or []
    return {
        "id": numeric_id(node.get("id")), "admin_graphql_api_id": node.get("id"),
        "created_at": rest_time(node.get("createdAt"), offset), "location_id": None, "name": node.get("name"),
        "order_id": numeric_id(order.get("id")), "origin_address": {}, "receipt": {}, "service": "manual",
        "shipment_status": None, "status": _lower(node.get("status")),
        "tracking_company": tracking[0].get("company") if tracking else None,
        "tracking_number": tracking[0].get("number") if tracking else None,
        "tracking_numbers": [t.get("number") for t in tracking],
        "tracking_url": tracking[0].get("url") if tracking else None,
        "tracking_urls": [t.get("url") for t in tracking],
        "updated_at": rest_time(node.get("updatedAt"), offset),
        "line_items": [line_item(line, applications) for line in lines if line],
    }


def _token(order_gid: str) -> str:
    return hashlib.sha1(order_gid.encode()).hexdigest()[:32]


def order(node: dict, shop_domain: str, offset: str = "-05:00") -> dict:
    """Order node -> the REST order body of orders/create|updated|paid|cancelled."""
    cur = node.get("currencyCode", "USD")
    zero = _zero_bag(cur)
    applications = node.get("discountApplications") or []
    lines = node.get("lineItems") or []
    name = node.get("name") or ""
    order_number = int(name.lstrip("#")) if name.lstrip("#").isdigit() else int(node.get("number") or 0) + 1000
    token = _token(node.get("id", ""))

    def amount_and_set(key: str, bag: dict | None) -> dict:
        return {key: _shop_amount(bag), f"{key}_set": money_set(bag or zero)}

    body = {
        "id": numeric_id(node.get("id")), "admin_graphql_api_id": node.get("id"), "app_id": None,
        "browser_ip": node.get("clientIp"), "buyer_accepts_marketing": bool(node.get("customerAcceptsMarketing")),
        "cancel_reason": _lower(node.get("cancelReason")),
        "cancelled_at": rest_time(node.get("cancelledAt"), offset), "cart_token": None, "checkout_id": None,
        "checkout_token": None, "client_details": None, "closed_at": rest_time(node.get("closedAt"), offset),
        "confirmation_number": node.get("confirmationNumber"), "confirmed": bool(node.get("confirmed")),
        "contact_email": node.get("email"), "created_at": rest_time(node.get("createdAt"), offset),
        "currency": cur, "current_shipping_price_set": money_set(node.get("currentShippingPriceSet") or zero),
        **amount_and_set("current_subtotal_price", node.get("currentSubtotalPriceSet")),
        "current_total_additional_fees_set": money_set(node.get("currentTotalAdditionalFeesSet")),
        **amount_and_set("current_total_discounts", node.get("currentTotalDiscountsSet")),
        "current_total_duties_set": money_set(node.get("currentTotalDutiesSet")),
        **amount_and_set("current_total_price", node.get("currentTotalPriceSet")),
        **amount_and_set("current_total_tax", node.get("currentTotalTaxSet")),
        "customer_locale": node.get("customerLocale"), "device_id": None,
        "discount_codes": [_discount_code(code, applications, cur) for code in node.get("discountCodes") or []],
        "duties_included": bool(node.get("dutiesIncluded")), "email": node.get("email"),
        "estimated_taxes": bool(node.get("estimatedTaxes")),
        "financial_status": _lower(node.get("displayFinancialStatus")),
        "fulfillment_status": ORDER_FULFILLMENT.get(node.get("displayFulfillmentStatus")),
        "landing_site": None, "landing_site_ref": None, "location_id": None,
        "merchant_business_entity_id": (node.get("merchantBusinessEntity") or {}).get("id"),
        "merchant_of_record_app_id": None, "name": name, "note": node.get("note"),
        "note_attributes": _attributes(node.get("customAttributes")),
        "number": order_number - 1000, "order_number": order_number,
        "order_status_url": node.get("statusPageUrl") or f"https://{shop_domain}/orders/{token}/authenticate?key={token[:16]}",
        "original_total_additional_fees_set": money_set(node.get("originalTotalAdditionalFeesSet")),
        "original_total_duties_set": money_set(node.get("originalTotalDutiesSet")),
        "payment_gateway_names": list(node.get("paymentGatewayNames") or []), "phone": node.get("phone"),
        "po_number": node.get("poNumber"), "presentment_currency": node.get("presentmentCurrencyCode", cur),
        "processed_at": rest_time(node.get("processedAt"), offset), "reference": None, "referring_site": None,
        "source_identifier": node.get("sourceIdentifier"), "source_name": node.get("sourceName"), "source_url": None,
        **amount_and_set("subtotal_price", node.get("subtotalPriceSet")),
        "tags": ", ".join(node.get("tags") or []), "tax_exempt": bool(node.get("taxExempt")),
        "tax_lines": [tax_line(t) for t in node.get("taxLines") or []],
        "taxes_included": bool(node.get("taxesIncluded")), "test": bool(node.get("test")), "token": token,
        "total_cash_rounding_payment_adjustment_set": money_set(zero),
        "total_cash_rounding_refund_adjustment_set": money_set(zero),
        **amount_and_set("total_discounts", node.get("totalDiscountsSet")),
        **amount_and_set("total_line_items_price",
                         _sum_bags([line["originalTotalSet"] for line in lines if line.get("originalTotalSet")], cur)),
        "total_outstanding": _shop_amount(node.get("totalOutstandingSet")),
        **amount_and_set("total_price", node.get("totalPriceSet")),
        "total_shipping_price_set": money_set(node.get("totalShippingPriceSet") or zero),
        **amount_and_set("total_tax", node.get("totalTaxSet")),
        "total_tip_received": _shop_amount(node.get("totalTipReceivedSet")),
        "total_weight": int(node.get("totalWeight") or 0),
        "updated_at": rest_time(node.get("updatedAt"), offset), "user_id": None,
        "billing_address": address(node.get("billingAddress")),
        "customer": customer(node.get("customer"), cur, offset),
        "discount_applications": [discount_application(a) for a in applications],
        "fulfillments": [fulfillment(f, node, offset) for f in node.get("fulfillments") or []],
        "line_items": [line_item(line, applications) for line in lines],
        "payment_terms": None,
        "refunds": [refund(r, node, offset) for r in node.get("refunds") or []],
        "shipping_address": address(node.get("shippingAddress")),
        "shipping_lines": [shipping_line(s, applications) for s in node.get("shippingLines") or []],
        "returns": [],
    }
    return body


def _discount_code(code: str, applications: list[dict], currency: str) -> dict:
    # Unverified shape (fixture list empty): REST ``discount_codes`` {code, amount, type}.
    match = next((a for a in applications if a.get("code") == code), {})
    value = match.get("value") or {}
    kind = "percentage" if "percentage" in value else "fixed_amount"
    return {"code": code, "amount": money_text(value.get("amount", "0")) if kind == "fixed_amount"
            else str(value["percentage"]), "type": kind}
