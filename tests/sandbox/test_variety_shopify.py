"""Every "variety" case of the generator, as the Shopify emulator serves it to the official
ShopifyAPI SDK (GraphQL over loopback, notes §4 recipe A): balanced in Shopify's arithmetic on
the shop side and the presentment side, and each case with Shopify's own marks."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import httpx
import pytest
import shopify
from graphql import parse, validate

from sandbox.generator import CASES, generate_orders
from sandbox.shopify.schema import get_schema

SHOP, TOKEN, VERSION = "variety", "shpat_variety", "2026-01"
BAG = "{ shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }"
# The invoicing page query of notes §1 plus the fields the variety cases show.
QUERY = f"""
query OrdersPage($first: Int!, $after: String, $query: String) {{
  orders(first: $first, after: $after, query: $query, sortKey: ID) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id legacyResourceId name email
      createdAt updatedAt processedAt cancelledAt cancelReason closedAt test
      currencyCode presentmentCurrencyCode taxesIncluded
      displayFinancialStatus displayFulfillmentStatus
      customer {{ id legacyResourceId firstName lastName
                 defaultEmailAddress {{ emailAddress }} defaultPhoneNumber {{ phoneNumber }} }}
      billingAddress  {{ firstName lastName city address1 }}
      subtotalPriceSet {BAG} totalDiscountsSet {BAG} totalShippingPriceSet {BAG}
      totalTaxSet {BAG} totalPriceSet {BAG} totalTipReceivedSet {BAG}
      totalOutstandingSet {{ shopMoney {{ amount currencyCode }} }}
      totalRefundedSet {BAG}
      discountCode discountCodes paymentGatewayNames
      taxLines {{ title rate priceSet {BAG} }}
      discountApplications(first: 10) {{ nodes {{ __typename allocationMethod targetSelection
          ... on DiscountCodeApplication {{ code }} }} }}
      lineItems(first: 100) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ ...Line }}
      }}
      shippingLines(first: 10) {{ nodes {{ id title code originalPriceSet {BAG} discountedPriceSet {BAG}
          taxLines {{ title rate priceSet {BAG} }} }} }}
      transactions(first: 50) {{ id kind status gateway test processedAt createdAt amountSet {BAG}
          parentTransaction {{ id }} }}
      refunds(first: 20) {{ id createdAt note totalRefundedSet {BAG}
          refundLineItems(first: 50) {{ nodes {{ quantity lineItem {{ id }} subtotalSet {BAG} totalTaxSet {BAG} }} }}
          refundShippingLines(first: 5) {{ nodes {{ subtotalAmountSet {BAG} }} }}
          transactions(first: 5) {{ nodes {{ kind gateway amountSet {BAG} }} }} }}
    }}
  }}
}}
fragment Line on LineItem {{
  id sku name title quantity currentQuantity taxable
  originalUnitPriceSet {BAG} discountedUnitPriceSet {BAG} totalDiscountSet {BAG}
  discountAllocations {{ allocatedAmountSet {BAG} discountApplication {{ __typename }} }}
  taxLines {{ title rate priceSet {BAG} }}
  variant {{ id sku }}
}}
"""
MORE_LINES = """
query MoreLines($id: ID!, $after: String) {
  order(id: $id) { lineItems(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { ...Line } } }
}
fragment Line on LineItem {
  id sku name title quantity currentQuantity taxable
  originalUnitPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  discountedUnitPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  totalDiscountSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
  discountAllocations { allocatedAmountSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
                        discountApplication { __typename } }
  taxLines { title rate priceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } } }
  variant { id sku }
}
"""


def _gql(url: str, query: str, variables: dict) -> dict:
    shopify.ShopifyResource.activate_session(shopify.Session(f"{SHOP}.myshopify.com", VERSION, TOKEN))
    shopify.ShopifyResource.site = f"{url}/shop/{SHOP}/admin/api/{VERSION}"
    try:
        data = json.loads(shopify.GraphQL().execute(query, variables=variables))
    finally:
        shopify.ShopifyResource.clear_session()
    assert "errors" not in data, data
    return data["data"]


def _money(bag: dict, side: str = "shopMoney") -> Decimal:
    return Decimal(bag[side]["amount"])


@pytest.fixture(scope="module")
def served(sandbox_process):
    """200 variety orders seeded once and read back through the SDK (with every line item)."""
    sandbox_process.reset()
    url = sandbox_process.url("shopify")
    specs = generate_orders(seed=31, count=200)   # variety is the default
    httpx.post(f"{url}/_sandbox/shops/{SHOP}/orders", timeout=120,
               json={"credentials": {"access_token": TOKEN}, "orders": specs}).raise_for_status()
    httpx.post(f"{url}/_sandbox/shops/{SHOP}/config", timeout=30, json={
        "bucket_size": 10**9, "restore_rate": 10**9, "max_query_cost": 10**9, "fill": True}).raise_for_status()
    orders, after = [], None
    while True:
        page = _gql(url, QUERY, {"first": 20, "after": after, "query": None})["orders"]
        orders += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    for order in orders:
        info = order["lineItems"]["pageInfo"]
        while info["hasNextPage"]:
            more = _gql(url, MORE_LINES, {"id": order["id"], "after": info["endCursor"]})["order"]["lineItems"]
            order["lineItems"]["nodes"] += more["nodes"]
            order["lineItems"]["pageInfo"] = info = more["pageInfo"]
    by_name = {s.get("name") or f"#{s['number']}": s for s in specs}
    return [(by_name[o["name"]], o) for o in orders]


def test_queries_validate_against_the_2026_01_schema():
    schema = get_schema()
    assert validate(schema, parse(QUERY)) == [] and validate(schema, parse(MORE_LINES)) == []


def test_every_case_is_served_and_every_order_balances_on_both_sides(served):
    assert len(served) == 200
    assert Counter(spec["case"] for spec, _ in served).keys() == set(CASES)
    for spec, order in served:
        for side in ("shopMoney", "presentmentMoney"):
            lines = order["lineItems"]["nodes"]
            gross = sum((_money(li["originalUnitPriceSet"], side) * li["quantity"] for li in lines), Decimal(0))
            discounts = _money(order["totalDiscountsSet"], side)
            tax = _money(order["totalTaxSet"], side)
            added_tax = Decimal(0) if order["taxesIncluded"] else tax
            total = (gross - discounts + _money(order["totalShippingPriceSet"], side) + added_tax
                     + _money(order["totalTipReceivedSet"], side))
            assert total == _money(order["totalPriceSet"], side), (spec["case"], side, order["name"])
            assert _money(order["subtotalPriceSet"], side) == gross - discounts
            assert discounts == sum((_money(li["totalDiscountSet"], side) for li in lines), Decimal(0))
            assert discounts == sum((_money(a["allocatedAmountSet"], side) for li in lines
                                     for a in li["discountAllocations"]), Decimal(0))
            parts = [t for x in lines + order["shippingLines"]["nodes"] for t in x["taxLines"]]
            assert sum((_money(t["priceSet"], side) for t in parts), Decimal(0)) == tax
            assert sum((_money(t["priceSet"], side) for t in order["taxLines"]), Decimal(0)) == tax
            sales = [t for t in order["transactions"] if t["kind"] == "SALE"]
            if sales:
                assert sum((_money(t["amountSet"], side) for t in sales), Decimal(0)) == _money(order["totalPriceSet"], side)
        for bag in ("totalPriceSet", "totalTaxSet"):
            assert order[bag]["presentmentMoney"]["currencyCode"] == order["presentmentCurrencyCode"]
            assert order[bag]["shopMoney"]["currencyCode"] == order["currencyCode"] == "USD"


def _cases(served, case):
    found = [(s, o) for s, o in served if s["case"] == case]
    assert found, case
    return found


def test_tax_inclusive_extracts_the_tax_from_the_price(served):
    for spec, order in _cases(served, "tax_inclusive"):
        assert order["taxesIncluded"] is True
        for li in order["lineItems"]["nodes"]:
            net = _money(li["originalUnitPriceSet"]) * li["quantity"] - _money(li["totalDiscountSet"])
            expected = (net * Decimal("0.20") / Decimal("1.20")).quantize(Decimal("0.01"), "ROUND_HALF_UP")
            assert [_money(t["priceSet"]) for t in li["taxLines"]] == ([expected] if li["taxable"] else [])


def test_several_taxes_give_a_tax_line_per_rate(served):
    for spec, order in _cases(served, "several_taxes"):
        titles = ["State tax", "County tax", "City tax"]
        shipping_taxed = any(s["taxLines"] for s in order["shippingLines"]["nodes"])
        taxed = shipping_taxed or any(li["taxable"] for li in order["lineItems"]["nodes"])
        assert [t["title"] for t in order["taxLines"]] == (titles if taxed else [])
        assert all([t["title"] for t in li["taxLines"]] == titles for li in order["lineItems"]["nodes"] if li["taxable"])
        priced = any(_money(s["originalPriceSet"]) > 0 for s in order["shippingLines"]["nodes"])
        assert shipping_taxed == (spec["shipping_taxable"] and priced)


def test_order_discount_is_a_code_allocated_to_the_lines(served):
    for spec, order in _cases(served, "order_discount") + _cases(served, "zero_total"):
        assert order["discountCode"] == spec["discount_code"] and order["discountCodes"] == [spec["discount_code"]]
        [application] = order["discountApplications"]["nodes"]
        assert application == {"__typename": "DiscountCodeApplication", "allocationMethod": "ACROSS",
                               "targetSelection": "ALL", "code": spec["discount_code"]}
        for li in order["lineItems"]["nodes"]:
            assert [a["discountApplication"]["__typename"] for a in li["discountAllocations"]] == ["DiscountCodeApplication"]


def test_fees_are_a_tip_and_a_custom_line(served):
    for spec, order in _cases(served, "fees"):
        tip = next(f for f in spec["fees"] if f["title"] == "Tip")
        assert _money(order["totalTipReceivedSet"]) == Decimal(tip["amount"])
        handling = [li for li in order["lineItems"]["nodes"] if li["name"] == "Handling"]
        assert len(handling) == 1 and handling[0]["sku"] is None and handling[0]["variant"] is None
        assert _money(handling[0]["originalUnitPriceSet"]) == Decimal("2.50") and handling[0]["quantity"] == 1
        assert bool(handling[0]["taxLines"]) == bool(order["taxLines"])   # a taxable fee


def test_gift_card_is_split_tender(served):
    for spec, order in _cases(served, "gift_card"):
        sales = [t for t in order["transactions"] if t["kind"] == "SALE"]
        total = _money(order["totalPriceSet"])
        assert sales[0]["gateway"] == "gift_card" and _money(sales[0]["amountSet"]) == min(Decimal("10.00"), total)
        if total > 10:
            assert [t["gateway"] for t in sales] == ["gift_card", spec["gateway"]]
        assert order["paymentGatewayNames"] == [t["gateway"] for t in sales]


def test_multi_currency_has_presentment_money_everywhere(served):
    for spec, order in _cases(served, "multi_currency"):
        assert order["presentmentCurrencyCode"] == "EUR" and order["currencyCode"] == "USD"
        rate = Decimal(spec["exchange_rate"])
        for li in order["lineItems"]["nodes"]:
            unit = li["originalUnitPriceSet"]
            assert unit["presentmentMoney"]["currencyCode"] == "EUR"
            assert _money(unit, "presentmentMoney") == (_money(unit) * rate).quantize(Decimal("0.01"), "ROUND_HALF_UP")
        shop_total, pres_total = _money(order["totalPriceSet"]), _money(order["totalPriceSet"], "presentmentMoney")
        assert abs(pres_total - shop_total * rate) <= Decimal("0.01") * (len(order["lineItems"]["nodes"]) * 4 + 4)


def test_refunds_show_lines_transactions_and_status(served):
    for case, status in (("partial_refund", "PARTIALLY_REFUNDED"), ("full_refund", "REFUNDED")):
        for spec, order in _cases(served, case):
            assert order["displayFinancialStatus"] == status
            [refund] = order["refunds"]
            assert refund["note"] == spec["refunds"][0]["note"] and refund["createdAt"] == spec["refunds"][0]["created_at"]
            refunded = _money(refund["totalRefundedSet"])
            assert refunded == _money(order["totalRefundedSet"]) > 0
            assert [t["kind"] for t in refund["transactions"]["nodes"]] == ["REFUND"]
            assert _money(refund["transactions"]["nodes"][0]["amountSet"]) == refunded
            parts = sum((_money(r["subtotalSet"]) + _money(r["totalTaxSet"]) for r in refund["refundLineItems"]["nodes"]),
                        Decimal(0))
            shipping = refund["refundShippingLines"]["nodes"]
            assert parts <= refunded and (bool(shipping) or parts == refunded)
            lines = order["lineItems"]["nodes"]
            for want in spec["refunds"][0]["lines"]:
                assert lines[want["index"]]["currentQuantity"] == lines[want["index"]]["quantity"] - want["quantity"]
            if case == "full_refund":
                assert refunded == _money(order["totalPriceSet"])
            assert order["updatedAt"] >= refund["createdAt"]


def test_cancelled_unpaid_order_is_voided(served):
    for spec, order in _cases(served, "cancelled"):
        assert order["cancelledAt"] == spec["cancelled_at"] and order["cancelReason"] == "CUSTOMER"
        assert order["displayFinancialStatus"] == "VOIDED" and order["transactions"] == []
        assert order["closedAt"] == spec["cancelled_at"]


def test_paid_later_is_paid_at_paid_at(served):
    for spec, order in _cases(served, "paid_later"):
        [sale] = order["transactions"]
        assert sale["processedAt"] == sale["createdAt"] == spec["paid_at"] == order["updatedAt"]
        assert order["createdAt"] == spec["created_at"] < sale["processedAt"]
        assert order["displayFinancialStatus"] == "PAID"


def test_guest_unicode_long_name_zero_total_and_many_lines(served):
    for _, order in _cases(served, "guest"):
        assert order["email"] is None and order["customer"] is None
    for _, order in _cases(served, "unicode"):
        assert order["customer"]["lastName"] == "Ærøskøbing-Núñez" and order["billingAddress"]["city"] == "Zürich"
    for spec, order in _cases(served, "long_name"):
        assert order["name"] == spec["name"] and len(order["name"]) > 21
    for _, order in _cases(served, "zero_total"):
        assert order["totalPriceSet"]["shopMoney"]["amount"] == "0.0"
        assert order["displayFinancialStatus"] == "PAID" and order["transactions"] == []
        assert _money(order["totalOutstandingSet"]) == 0
    for _, order in _cases(served, "many_lines"):
        assert len(order["lineItems"]["nodes"]) == 120
        assert len({li["id"] for li in order["lineItems"]["nodes"]}) == 120
