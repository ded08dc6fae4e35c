"""Shopify REST-shaped order (webhook bodies) -> canonical order, through the GraphQL mapper.

Webhook bodies are the REST resource (snake_case, numeric ids plus
``admin_graphql_api_id``; ../shared/notes/shopify.md §3). Rather than a
second mapper that could drift, this module restates a REST order in the
shape of the GraphQL page query and hands it to
:func:`mappings.shopify_order.map_order`, so both paths apply one set of
money rules. Numeric ids can exceed 2^53 and some published samples carry
them rounded, so ids are taken from the exact ``admin_graphql_api_id``.

What REST bodies lack: order transactions (Shopify sends them on their own
topic). The connector books from the GraphQL fetch of an announced order
(docs/intake.md); this mapping serves webhook-only decisions and checks.
"""

from __future__ import annotations

from decimal import Decimal

from connector.model import Order
from mappings.shopify_order import map_order

FULFILLMENT = {None: "UNFULFILLED", "fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED",
               "restocked": "RESTOCKED"}


def _bag(value: dict | None) -> dict | None:
    """``{shop_money: {amount, currency_code}, ...}`` -> ``{shopMoney: {amount, currencyCode}, ...}``."""
    if not value:
        return None
    bag = {}
    for rest_key, gql_key in (("shop_money", "shopMoney"), ("presentment_money", "presentmentMoney")):
        if value.get(rest_key):
            bag[gql_key] = {"amount": str(value[rest_key]["amount"]),
                            "currencyCode": value[rest_key]["currency_code"]}
    return bag


def _gid(obj: dict, kind: str) -> str:
    return obj.get("admin_graphql_api_id") or f"gid://shopify/{kind}/{obj['id']}"


def _tail(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


def _address(a: dict | None) -> dict | None:
    if not a:
        return None
    return {"firstName": a.get("first_name"), "lastName": a.get("last_name"), "company": a.get("company"),
            "address1": a.get("address1"), "address2": a.get("address2"), "city": a.get("city"),
            "province": a.get("province"), "provinceCode": a.get("province_code"), "country": a.get("country"),
            "countryCodeV2": a.get("country_code"), "zip": a.get("zip"), "phone": a.get("phone")}


def _tax_lines(items) -> list[dict]:
    return [{"title": t.get("title"), "rate": t.get("rate"), "priceSet": _bag(t.get("price_set"))}
            for t in items or []]


def _allocations(items) -> list[dict]:
    return [{"allocatedAmountSet": _bag(a.get("amount_set"))} for a in items or []]


def _sum_bag(items, key: str, currency: str) -> dict:
    total = sum((Decimal(str(i[key]["shop_money"]["amount"])) for i in items if i.get(key)), Decimal(0))
    return {"shopMoney": {"amount": str(total), "currencyCode": currency}}


def _shipping(line: dict, currency: str) -> dict:
    price = Decimal(str(line["price_set"]["shop_money"]["amount"]))
    discount = sum((Decimal(str(a["amount_set"]["shop_money"]["amount"]))
                    for a in line.get("discount_allocations") or []), Decimal(0))
    return {"id": f"gid://shopify/ShippingLine/{line['id']}", "title": line.get("title"), "code": line.get("code"),
            "originalPriceSet": _bag(line["price_set"]),
            # Computed from the allocations: published samples show discounted_price values that
            # disagree with their own price and allocations.
            "discountedPriceSet": {"shopMoney": {"amount": str(price - discount), "currencyCode": currency}},
            "taxLines": _tax_lines(line.get("tax_lines"))}


def _refund(refund: dict, currency: str) -> dict:
    money_out = [t for t in refund.get("transactions") or []
                 if t.get("kind") == "refund" and t.get("status") in (None, "success")]
    total = sum((Decimal(str(t["amount"])) for t in money_out), Decimal(0))
    return {"id": _gid(refund, "Refund"), "createdAt": refund.get("created_at"), "note": refund.get("note"),
            "totalRefundedSet": {"shopMoney": {"amount": str(total), "currencyCode": currency}}}


def to_graphql_shape(body: dict) -> dict:
    """Restate a REST order body as the GraphQL ``Order`` node our page query returns."""
    currency = body["currency"]
    customer = body.get("customer") or None
    return {
        "id": _gid(body, "Order"),
        "legacyResourceId": _tail(_gid(body, "Order")),
        "name": body["name"],
        "email": body.get("email") or body.get("contact_email"),
        "createdAt": body["created_at"],
        "updatedAt": body.get("updated_at") or body["created_at"],
        "processedAt": body.get("processed_at"),
        "cancelledAt": body.get("cancelled_at"),
        "test": body.get("test", False),
        "currencyCode": currency,
        "presentmentCurrencyCode": body.get("presentment_currency") or currency,
        "taxesIncluded": body.get("taxes_included", False),
        "displayFinancialStatus": (body.get("financial_status") or "pending").upper(),
        "displayFulfillmentStatus": FULFILLMENT.get(body.get("fulfillment_status"), "UNFULFILLED"),
        "customer": None if not customer else {
            "id": _gid(customer, "Customer"), "legacyResourceId": _tail(_gid(customer, "Customer")),
            "firstName": customer.get("first_name"), "lastName": customer.get("last_name"),
            "defaultEmailAddress": {"emailAddress": customer.get("email")} if customer.get("email") else None,
            "defaultPhoneNumber": {"phoneNumber": customer.get("phone")} if customer.get("phone") else None,
        },
        "billingAddress": _address(body.get("billing_address")),
        "shippingAddress": _address(body.get("shipping_address")),
        "subtotalPriceSet": _bag(body.get("subtotal_price_set")),
        "totalDiscountsSet": _bag(body.get("total_discounts_set")),
        "totalShippingPriceSet": _bag(body.get("total_shipping_price_set")),
        "totalTaxSet": _bag(body.get("total_tax_set")),
        "totalPriceSet": _bag(body.get("total_price_set")),
        "totalTipReceivedSet": {"shopMoney": {"amount": str(body.get("total_tip_received") or "0"),
                                              "currencyCode": currency}},
        "taxLines": _tax_lines(body.get("tax_lines")),
        "lineItems": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": [
            {"id": _gid(item, "LineItem"), "sku": item.get("sku"), "name": item.get("name"),
             "title": item.get("title"), "quantity": item["quantity"], "taxable": item.get("taxable", True),
             "originalUnitPriceSet": _bag(item["price_set"]),
             "discountAllocations": _allocations(item.get("discount_allocations")),
             "taxLines": _tax_lines(item.get("tax_lines"))}
            for item in body.get("line_items") or []]},
        "shippingLines": {"nodes": [_shipping(s, currency) for s in body.get("shipping_lines") or []
                                    if not s.get("is_removed")]},
        "transactions": [],  # not part of REST order bodies (their own webhook topic)
        "refunds": [_refund(r, currency) for r in body.get("refunds") or []],
        "fulfillments": [{"id": _gid(f, "Fulfillment"), "status": (f.get("status") or "").upper(),
                          "createdAt": f.get("created_at"),
                          "trackingInfo": [{"number": n} for n in f.get("tracking_numbers") or []]}
                         for f in body.get("fulfillments") or []],
    }


def map_rest_order(body: dict, store: str, *, money: str = "shop") -> Order:
    """Map a REST order body (a webhook) to the same canonical order the GraphQL fetch gives."""
    return map_order(to_graphql_shape(body), store, money=money)
