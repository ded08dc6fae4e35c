"""Shopify emulator driven by the official ShopifyAPI 12.7.0 SDK over loopback HTTP.

Only the SDK's site changes (notes §4 recipe A). Fixtures in tests/fixtures/shopify/
are copies of the published Shopify payloads (see SOURCES.md there).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import pytest
import shopify
import uvicorn
from graphql import parse, validate

from sandbox.generator import generate_orders
from sandbox.shopify.cost import requested_cost
from sandbox.shopify.schema import get_schema
from sandbox.shopify.search import compile_query

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "shopify"
SHOP, TOKEN, VERSION = "demo", "shpat_demo_token", "2026-01"
ALL_EMULATORS = all((ROOT / "sandbox" / s / "app.py").exists() for s in ("shopify", "woocommerce", "hubspot", "quickbooks"))
CENT = Decimal("0.01")

# The invoicing page query of notes §1, verbatim.
PAGE_QUERY = """
query OrdersPage($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id legacyResourceId name email
      createdAt updatedAt processedAt cancelledAt cancelReason closedAt test
      currencyCode presentmentCurrencyCode taxesIncluded
      displayFinancialStatus displayFulfillmentStatus
      customer { id legacyResourceId firstName lastName
                 defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } }
      billingAddress  { firstName lastName company address1 address2 city province provinceCode country countryCodeV2 zip phone }
      shippingAddress { firstName lastName company address1 address2 city province provinceCode country countryCodeV2 zip phone }
      subtotalPriceSet      { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      totalDiscountsSet     { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      totalShippingPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      totalTaxSet           { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      totalPriceSet         { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
      totalOutstandingSet { shopMoney { amount currencyCode } }
      totalRefundedSet    { shopMoney { amount currencyCode } }
      taxLines { title rate priceSet { shopMoney { amount currencyCode } } }
      lineItems(first: 100) {
        pageInfo { hasNextPage endCursor }
        nodes {
          id sku name title quantity currentQuantity taxable
          originalUnitPriceSet   { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
          discountedUnitPriceSet { shopMoney { amount currencyCode } }
          totalDiscountSet       { shopMoney { amount currencyCode } }
          discountAllocations { allocatedAmountSet { shopMoney { amount currencyCode } } }
          taxLines { title rate priceSet { shopMoney { amount currencyCode } } }
          variant { id sku }
        }
      }
      shippingLines(first: 10) { nodes { id title code
          originalPriceSet { shopMoney { amount currencyCode } }
          discountedPriceSet { shopMoney { amount currencyCode } }
          taxLines { title rate priceSet { shopMoney { amount currencyCode } } } } }
      transactions(first: 50) { id kind status gateway test processedAt createdAt
          amountSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
          parentTransaction { id } }
      refunds(first: 20) { id createdAt note totalRefundedSet { shopMoney { amount currencyCode } } }
      fulfillments(first: 20) { id status createdAt trackingInfo(first: 5) { company number url } }
    }
  }
}
"""
IDS_QUERY = """
query Ids($first: Int!, $after: String, $query: String, $sortKey: OrderSortKeys, $reverse: Boolean) {
  orders(first: $first, after: $after, query: $query, sortKey: $sortKey, reverse: $reverse) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id legacyResourceId name createdAt updatedAt } }
  }
}"""
MONEY_QUERY = """
query Money($first: Int!, $after: String) {
  orders(first: $first, after: $after, sortKey: ID) {
    pageInfo { hasNextPage endCursor }
    nodes {
      name displayFinancialStatus
      subtotalPriceSet { shopMoney { amount } } totalDiscountsSet { shopMoney { amount } }
      totalShippingPriceSet { shopMoney { amount } } totalTaxSet { shopMoney { amount } }
      totalPriceSet { shopMoney { amount } } totalOutstandingSet { shopMoney { amount } }
      taxLines { rate priceSet { shopMoney { amount } } }
      lineItems(first: 10) { nodes { quantity originalUnitPriceSet { shopMoney { amount } }
          totalDiscountSet { shopMoney { amount } } taxLines { priceSet { shopMoney { amount } } } } }
      shippingLines(first: 2) { nodes { originalPriceSet { shopMoney { amount } }
          taxLines { priceSet { shopMoney { amount } } } } }
    }
  }
}"""


class _OwnServer:
    """Fallback while the other three emulators do not exist yet: this app alone in a thread."""

    def __init__(self):
        from sandbox.shopify.app import create_app
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = uvicorn.Config(create_app({}), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def _own_server():
    server = _OwnServer()
    yield server
    server.stop()


class Shopify:
    """The emulator as a test sees it: control API by httpx, the Admin API by the SDK."""

    def __init__(self, url: str):
        self.url = url

    def control(self, method: str, path: str, **kwargs):
        response = httpx.request(method, f"{self.url}/_sandbox/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def seed(self, specs: list[dict], shop: str = SHOP, token: str = TOKEN) -> None:
        assert self.control("POST", f"shops/{shop}/orders",
                            json={"credentials": {"access_token": token}, "orders": specs}) == {"created": len(specs)}

    def state(self) -> dict:
        return self.control("GET", "state")

    def configure(self, shop: str = SHOP, **settings) -> dict:
        return self.control("POST", f"shops/{shop}/config", json=settings)

    def site(self, shop: str = SHOP) -> str:
        return f"{self.url}/shop/{shop}/admin/api/{VERSION}"

    def gql(self, query: str, variables: dict | None = None, operation_name: str | None = None,
            shop: str = SHOP, token: str = TOKEN) -> dict:
        shopify.ShopifyResource.activate_session(shopify.Session(f"{shop}.myshopify.com", VERSION, token))
        shopify.ShopifyResource.site = self.site(shop)
        try:
            return json.loads(shopify.GraphQL().execute(query, variables=variables, operation_name=operation_name))
        finally:
            shopify.ShopifyResource.clear_session()


@pytest.fixture
def box(request) -> Shopify:
    """A freshly reset Shopify emulator."""
    if ALL_EMULATORS:
        return Shopify(request.getfixturevalue("sandbox").url("shopify"))
    server = request.getfixturevalue("_own_server")
    httpx.post(f"{server.url}/_sandbox/reset").raise_for_status()
    return Shopify(server.url)


def _all_pages(box: Shopify, variables: dict, query: str = IDS_QUERY) -> list[dict]:
    nodes, after = [], None
    for _ in range(100):
        data = box.gql(query, {**variables, "after": after})
        assert "errors" not in data, data
        page = data["data"]["orders"]
        nodes += [e["node"] for e in page["edges"]] if "edges" in page else page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("pagination did not end")


def _amount(bag: dict) -> Decimal:
    return Decimal(bag["shopMoney"]["amount"])


# --- pagination, sorting, search ---------------------------------------------------------

def test_sdk_pages_through_all_orders_ten_at_a_time_without_gaps_or_repeats(box):
    box.seed(generate_orders(seed=7, count=57))
    nodes = _all_pages(box, {"first": 10, "sortKey": "UPDATED_AT"})
    assert len(nodes) == 57 and len({n["id"] for n in nodes}) == 57
    keys = [(n["updatedAt"], int(n["legacyResourceId"])) for n in nodes]
    assert keys == sorted(keys)
    assert all(re.fullmatch(r"gid://shopify/Order/\d+", n["id"]) for n in nodes)
    # Ids above 2^53 arrive exact (no float on the way).
    assert all(n["id"].endswith("/" + n["legacyResourceId"]) and int(n["legacyResourceId"]) > 2**53 for n in nodes)


def test_second_page_reports_previous_page_and_reverse_sort_descends(box):
    box.seed(generate_orders(seed=8, count=15))
    first = box.gql(IDS_QUERY, {"first": 10, "sortKey": "CREATED_AT"})["data"]["orders"]
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    second = box.gql(IDS_QUERY, {"first": 10, "after": first["pageInfo"]["endCursor"], "sortKey": "CREATED_AT"})
    info = second["data"]["orders"]["pageInfo"]
    assert info["hasPreviousPage"] and not info["hasNextPage"] and len(second["data"]["orders"]["edges"]) == 5
    backwards = _all_pages(box, {"first": 4, "sortKey": "ID", "reverse": True})
    ids = [int(n["legacyResourceId"]) for n in backwards]
    assert ids == sorted(ids, reverse=True) and len(ids) == 15


def test_half_open_updated_at_windows_partition_the_orders(box):
    specs = generate_orders(seed=3, count=40, start=datetime(2026, 10, 1, tzinfo=timezone.utc))
    box.seed(specs)
    stamps = sorted(s["updated_at"] for s in specs)
    # Window edges fall exactly on order timestamps, so the boundary case is exercised.
    edges = [stamps[0], stamps[10], stamps[25], "2030-01-01T00:00:00Z"]
    seen = []
    for low, high in zip(edges, edges[1:]):
        query = f"updated_at:>='{low}' AND updated_at:<'{high}'"
        window = _all_pages(box, {"first": 7, "query": query, "sortKey": "UPDATED_AT"})
        assert all(low <= n["updatedAt"] < high for n in window)
        seen += [n["id"] for n in window]
    assert len(seen) == 40 and len(set(seen)) == 40


def test_search_accepts_double_quotes_bare_dates_and_exclusive_bounds(box):
    specs = generate_orders(seed=4, count=20, start=datetime(2026, 10, 1, tzinfo=timezone.utc))
    box.seed(specs)
    middle = sorted(s["updated_at"] for s in specs)[10]
    after = _all_pages(box, {"first": 50, "query": f'updated_at:>"{middle}"'})
    assert all(n["updatedAt"] > middle for n in after) and len(after) == sum(s["updated_at"] > middle for s in specs)
    upto = _all_pages(box, {"first": 50, "query": f"updated_at:<={middle} financial_status:any_unknown_is_fine"})
    assert upto == [] or all(n["updatedAt"] <= middle for n in upto)
    by_day = _all_pages(box, {"first": 50, "query": f"created_at:{specs[0]['created_at'][:10]}"})
    assert specs[0]["created_at"] in {n["createdAt"] for n in by_day}
    assert _all_pages(box, {"first": 50, "query": "totally unknown:field words"}) != []


def test_touched_order_moves_into_the_later_window(box):
    box.seed(generate_orders(seed=5, count=5, start=datetime(2026, 10, 1, tzinfo=timezone.utc)))
    order = box.gql(IDS_QUERY, {"first": 1, "sortKey": "ID"})["data"]["orders"]["edges"][0]["node"]
    box.control("POST", f"shops/{SHOP}/orders/{order['legacyResourceId']}/touch",
                json={"updated_at": "2026-11-20T12:00:00+00:00"})
    found = _all_pages(box, {"first": 10, "query": "updated_at:>='2026-11-20T00:00:00Z'"})
    assert [(n["id"], n["updatedAt"]) for n in found] == [(order["id"], "2026-11-20T12:00:00Z")]


def test_search_parser_operators():
    node = {"updatedAt": "2026-01-01T10:00:00Z", "createdAt": "2025-12-31T23:00:00Z", "legacyResourceId": "50",
            "displayFinancialStatus": "PAID", "name": "#1001", "lineItems": [{"sku": "MUG"}]}
    assert compile_query("updated_at:>='2026-01-01T09:59:59Z' AND updated_at:<'2026-01-01T10:00:01Z'")(node)
    assert not compile_query("updated_at:<'2026-01-01T10:00:00Z'")(node)
    assert compile_query("updated_at:<=2026-01-01T10:00:00Z updated_at:2026-01-01")(node)
    assert compile_query("updated_at:>2025-12-31 created_at:<=2025")(node)
    assert compile_query("financial_status:pending OR sku:MUG")(node)
    assert not compile_query("-sku:MUG")(node)
    assert compile_query("id:>=50 name:1001 whatever:x free text")(node)


# --- money ----------------------------------------------------------------------------------

def _expected_total(spec: dict) -> Decimal:
    """Independent recomputation from the spec (per-line half-up tax, notes §1)."""
    rate = Decimal(spec["tax_rate"])
    tax = total = Decimal(0)
    for line in spec["lines"]:
        net = Decimal(line["unit_price"]) * line["quantity"] - Decimal(line["discount"])
        total += net
        if line["taxable"]:
            tax += (net * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    for ship in spec["shipping"]:
        total += Decimal(ship["price"])
        tax += (Decimal(ship["price"]) * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    return total + tax


def test_two_hundred_generated_orders_balance_to_the_cent(box):
    specs = generate_orders(seed=11, count=200, variety=False)  # plain orders; variety: test_variety_shopify.py
    box.seed(specs)
    box.configure(bucket_size=1_000_000, restore_rate=1_000_000, fill=True)
    nodes = []
    after = None
    while True:
        data = box.gql(MONEY_QUERY, {"first": 5, "after": after})
        assert "errors" not in data, data
        nodes += data["data"]["orders"]["nodes"]
        if not data["data"]["orders"]["pageInfo"]["hasNextPage"]:
            break
        after = data["data"]["orders"]["pageInfo"]["endCursor"]
    assert len(nodes) == 200
    by_name = {f"#{s['number']}": s for s in specs}
    for order in nodes:
        lines = order["lineItems"]["nodes"]
        gross = sum(_amount(li["originalUnitPriceSet"]) * li["quantity"] for li in lines)
        discounts, shipping = _amount(order["totalDiscountsSet"]), _amount(order["totalShippingPriceSet"])
        tax, total = _amount(order["totalTaxSet"]), _amount(order["totalPriceSet"])
        assert gross - discounts + shipping + tax == total, order["name"]
        assert total == _expected_total(by_name[order["name"]]), order["name"]
        assert _amount(order["subtotalPriceSet"]) == gross - discounts
        assert discounts == sum(_amount(li["totalDiscountSet"]) for li in lines)
        line_taxes = [_amount(t["priceSet"]) for x in lines + order["shippingLines"]["nodes"] for t in x["taxLines"]]
        assert sum(line_taxes, Decimal(0)) == tax == sum((_amount(t["priceSet"]) for t in order["taxLines"]), Decimal(0))
        paid = order["displayFinancialStatus"] == "PAID"
        assert _amount(order["totalOutstandingSet"]) == (0 if paid else total)
        # Money is a string with at least one fraction digit ("2000.0"), never a JSON number.
        assert re.fullmatch(r"-?\d+\.\d{1,2}", order["totalPriceSet"]["shopMoney"]["amount"])


# --- the page query of notes §1, schema conformance, lookups ---------------------------------

def test_invoicing_page_query_validates_and_answers_every_field(box):
    specs = generate_orders(seed=12, count=6, gateways=("stripe",), variety=False)
    box.seed(specs)
    schema = get_schema()
    assert validate(schema, parse(PAGE_QUERY)) == []
    box.configure(max_query_cost=100_000, bucket_size=100_000, fill=True)
    data = box.gql(PAGE_QUERY, {"first": 10, "after": None, "query": None}, "OrdersPage")
    assert "errors" not in data, data
    orders = data["data"]["orders"]["nodes"]
    assert len(orders) == 6
    by_name = {f"#{s['number']}": s for s in specs}
    for order in orders:
        spec = by_name[order["name"]]
        assert order["email"] == spec["customer"]["email"]
        assert order["customer"]["firstName"] == spec["customer"]["first_name"]
        email = order["customer"]["defaultEmailAddress"]
        assert (email or {}).get("emailAddress") == spec["customer"]["email"]
        assert order["billingAddress"]["provinceCode"] == spec["billing_address"]["province_code"]
        assert order["displayFinancialStatus"] == spec["financial_status"].upper()
        assert order["displayFulfillmentStatus"] == spec["fulfillment_status"].upper()
        assert order["test"] is False and order["currencyCode"] == "USD" and order["taxesIncluded"] is False
        assert [li["sku"] for li in order["lineItems"]["nodes"]] == [li["sku"] for li in spec["lines"]]
        assert all(li["variant"]["sku"] == li["sku"] for li in order["lineItems"]["nodes"])
        kinds = [(t["kind"], t["status"], t["gateway"]) for t in order["transactions"]]
        expected = {"paid": [("SALE", "SUCCESS", "stripe")], "authorized": [("AUTHORIZATION", "SUCCESS", "stripe")],
                    "pending": []}[spec["financial_status"]]
        assert kinds == expected
        if kinds:
            assert order["transactions"][0]["amountSet"]["shopMoney"] == order["totalPriceSet"]["shopMoney"]
        assert order["refunds"] == [] and len(order["fulfillments"]) == (spec["fulfillment_status"] == "fulfilled")
    # The answer is what graphql-core produces for the real schema: same keys as the query asks.
    assert set(orders[0]) == {sel.alias.value if sel.alias else sel.name.value for sel in
                              parse(PAGE_QUERY).definitions[0].selection_set.selections[0]
                              .selection_set.selections[1].selection_set.selections}


def test_nodes_by_ids_keeps_request_order_and_answers_null_for_unknown_ids(box):
    box.seed(generate_orders(seed=13, count=4))
    ids = [e["node"]["id"] for e in box.gql(IDS_QUERY, {"first": 4, "sortKey": "ID"})["data"]["orders"]["edges"]]
    wanted = [ids[2], "gid://shopify/Order/1", ids[0]]
    data = box.gql("query($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on Order { id name } } }", {"ids": wanted})
    assert [n and n["id"] for n in data["data"]["nodes"]] == [ids[2], None, ids[0]]
    assert data["extensions"]["cost"]["requestedQueryCost"] == 3  # one object per requested id
    one = box.gql("query($id: ID!) { order(id: $id) { id legacyResourceId } }", {"id": ids[1]})
    assert one["data"]["order"]["id"] == ids[1]
    assert box.gql("{ order(id: \"gid://shopify/Order/1\") { id } }")["data"] == {"order": None}


# --- errors, cost, throttling ----------------------------------------------------------------

def test_invalid_query_answers_200_with_shopify_error_shape(box):
    box.seed(generate_orders(seed=1, count=1))
    data = box.gql("{ orders(first: 1) { nodes { id nonsenseField } } }")
    error = data["errors"][0]
    assert error["message"] == "Field 'nonsenseField' doesn't exist on type 'Order'"
    assert error["locations"] == [{"line": 1, "column": 33}] and error["extensions"]["code"] == "undefinedField"
    assert "data" not in data and "cost" in data["extensions"]
    broken = box.gql("{ orders(first: 1) { nodes { id ")
    assert broken["errors"][0]["extensions"]["code"] and broken["errors"][0]["locations"]


def test_first_above_250_is_refused(box):
    box.seed(generate_orders(seed=1, count=1))
    data = box.gql("{ orders(first: 251) { nodes { id } } }")
    assert data["errors"][0]["message"].startswith("first cannot exceed 250")


def test_every_answer_carries_cost_and_the_bucket_drains_then_refunds(box):
    box.seed(generate_orders(seed=2, count=3))
    data = box.gql(IDS_QUERY, {"first": 10})
    cost = data["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 10 * 1 and cost["actualQueryCost"] == 2 + 3 * 1
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 2000.0 and status["restoreRate"] == 100.0
    assert 2000 - cost["actualQueryCost"] - 1 <= status["currentlyAvailable"] <= 2000


def test_small_bucket_answers_throttled_exactly_like_shopify(box):
    box.seed(generate_orders(seed=2, count=3))
    box.configure(bucket_size=20, restore_rate=1)
    data = box.gql(IDS_QUERY, {"first": 50})  # requests 52 points > 20
    fixture = json.loads((FIXTURES / "error_throttled.example.json").read_text())
    assert data["errors"] == fixture["errors"]
    assert "data" not in data and data["extensions"]["cost"]["actualQueryCost"] is None
    assert data["extensions"]["cost"]["requestedQueryCost"] == 52
    assert set(data["extensions"]["cost"]["throttleStatus"]) == set(fixture["extensions"]["cost"]["throttleStatus"])
    assert box.control("GET", "counters")["throttled"] == 1


def test_query_over_1000_points_is_rejected_as_max_cost_exceeded(box):
    box.seed(generate_orders(seed=2, count=1))
    query = "{ orders(first: 250) { nodes { id lineItems(first: 250) { nodes { id } } } } }"
    data = box.gql(query)
    fixture = json.loads((FIXTURES / "error_max_cost_exceeded.example.json").read_text())
    expected = 2 + 250 * (1 + 2 + 250)
    error = data["errors"][0]
    assert error["extensions"] == {**fixture["errors"][0]["extensions"], "cost": expected}
    assert error["message"] == fixture["errors"][0]["message"].replace("1002", str(expected))


def test_requested_cost_follows_shopify_rules():
    schema = get_schema()
    query = "{ orders(first: 10) { edges { node { name lineItems(first: 5) { edges { node { sku } } } } } } }"
    assert requested_cost(schema, parse(query)) == 2 + 10 * (1 + 2 + 5 * 1)
    mutation = 'mutation { bulkOperationRunQuery(query: "{ orders { edges { node { id } } } }") { userErrors { message } } }'
    assert requested_cost(schema, parse(mutation)) == 10


def test_wrong_token_is_401_and_unknown_shop_is_404(box):
    box.seed(generate_orders(seed=1, count=1))
    with pytest.raises(urllib.error.HTTPError) as raised:
        box.gql(IDS_QUERY, {"first": 1}, token="shpat_wrong")
    assert raised.value.code == 401
    response = httpx.post(f"{box.site()}/graphql.json", json={"query": "{ shop { name } }"},
                          headers={"X-Shopify-Access-Token": "nope"})
    assert response.status_code == 401
    assert response.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    missing = httpx.post(f"{box.site('nowhere')}/graphql.json", json={"query": "{ __typename }"},
                         headers={"X-Shopify-Access-Token": TOKEN})
    assert (missing.status_code, missing.json()) == (404, {"errors": "Not Found"})


def test_control_api_reports_state_and_counters(box):
    box.seed(generate_orders(seed=1, count=2))
    box.gql(IDS_QUERY, {"first": 1})
    state = box.control("GET", "state")
    assert [o["name"] for o in state["shops"][SHOP]["orders"]] == ["#1001", "#1002"]
    counters = box.control("GET", "counters")
    assert counters["requests"] >= 1 and counters["by_status"].get("200", 0) >= 1 and counters["cost_spent"] > 0
    box.control("POST", "reset")
    assert box.control("GET", "state") == {"shops": {}}


# --- nested connections and bulk operations ------------------------------------------------

def _big_order(lines: int) -> dict:
    spec = generate_orders(seed=21, count=1)[0]
    spec["lines"] = [{"sku": f"SKU-{i:03d}", "title": f"Part {i}", "quantity": 1 + i % 3, "unit_price": "1.15",
                      "discount": "0.00", "taxable": True} for i in range(lines)]
    return spec


def test_line_items_of_a_120_line_order_page_by_cursor(box):
    box.seed([_big_order(120)])
    order_id = box.gql("{ orders(first: 1) { nodes { id } } }")["data"]["orders"]["nodes"][0]["id"]
    query = """query($id: ID!, $after: String) { order(id: $id) {
        lineItems(first: 50, after: $after) { pageInfo { hasNextPage endCursor } nodes { sku } } } }"""
    skus, after, pages = [], None, 0
    while True:
        page = box.gql(query, {"id": order_id, "after": after})["data"]["order"]["lineItems"]
        skus += [n["sku"] for n in page["nodes"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3 and skus == [f"SKU-{i:03d}" for i in range(120)]


BULK_QUERY = """{ orders(query: "updated_at:>='2020-01-01T00:00:00Z'", sortKey: UPDATED_AT) { edges { node {
  id name updatedAt totalPriceSet { shopMoney { amount currencyCode } }
  lineItems { edges { node { id sku quantity } } } } } } }"""


def _run_bulk(box: Shopify, group: bool = False) -> dict:
    mutation = """mutation($q: String!, $g: Boolean!) { bulkOperationRunQuery(query: $q, groupObjects: $g) {
        bulkOperation { id status } userErrors { field message code } } }"""
    started = box.gql(mutation, {"q": BULK_QUERY, "g": group})
    assert started["extensions"]["cost"]["requestedQueryCost"] == 10
    payload = started["data"]["bulkOperationRunQuery"]
    assert payload["userErrors"] == [] and payload["bulkOperation"]["status"] == "CREATED"
    poll = """query($id: ID!) { node(id: $id) { ... on BulkOperation {
        id status errorCode createdAt objectCount rootObjectCount fileSize url partialDataUrl } } }"""
    for _ in range(200):
        op = box.gql(poll, {"id": payload["bulkOperation"]["id"]})["data"]["node"]
        if op["status"] == "COMPLETED":
            return op
        assert op["status"] == "RUNNING"
        time.sleep(0.05)
    raise AssertionError("bulk operation never completed")


def test_bulk_query_writes_jsonl_with_parent_ids_after_their_parents(box):
    specs = generate_orders(seed=22, count=12, variety=False)
    box.seed(specs)
    op = _run_bulk(box)
    assert "response-content-disposition" in op["url"] and f"bulk-{op['id'].rsplit('/', 1)[1]}.jsonl" in \
        httpx.URL(op["url"]).params["response-content-disposition"]
    text = httpx.get(op["url"]).text
    lines = [json.loads(line) for line in text.splitlines()]
    assert op["objectCount"] == str(len(lines)) and op["rootObjectCount"] == "12" and op["fileSize"] == str(len(text.encode()))
    position = {line["id"]: i for i, line in enumerate(lines)}
    orders = [line for line in lines if "__parentId" not in line]
    children = [line for line in lines if "__parentId" in line]
    assert len(orders) == 12 and len(children) == sum(len(s["lines"]) for s in specs)
    assert all(position[c["__parentId"]] < position[c["id"]] for c in children)
    assert all("lineItems" not in o for o in orders) and all(c["id"].startswith("gid://shopify/LineItem/") for c in children)
    # Same key convention as Shopify's own example file.
    example = [json.loads(line) for line in (FIXTURES / "products_variants.example.jsonl").read_text().splitlines()]
    assert {k for line in example for k in line} - {"title"} <= {k for line in lines for k in line}
    grouped = [json.loads(line) for line in httpx.get(_run_bulk(box, group=True)["url"]).text.splitlines()]
    parent = None
    for line in grouped:  # groupObjects: true puts each child right under its parent
        parent = line["id"] if "__parentId" not in line else parent
        assert line.get("__parentId", parent) == parent


def test_bulk_operation_is_visible_through_bulk_operation_and_current_bulk_operation(box):
    box.seed(generate_orders(seed=23, count=2))
    op = _run_bulk(box)
    by_id = box.gql("query($id: ID!) { bulkOperation(id: $id) { id status url } }", {"id": op["id"]})
    assert by_id["data"]["bulkOperation"] == {"id": op["id"], "status": "COMPLETED", "url": op["url"]}
    current = box.gql("{ currentBulkOperation(type: QUERY) { id status objectCount } }")["data"]["currentBulkOperation"]
    assert current["id"] == op["id"] and current["objectCount"] == op["objectCount"]
    listed = box.gql('{ bulkOperations(first: 5, query: "status:COMPLETED type:QUERY") { nodes { id } } }')
    assert listed["data"]["bulkOperations"]["nodes"] == [{"id": op["id"]}]
    bad = box.gql('mutation { bulkOperationRunQuery(query: "{ orders { edges { node { nope } } } }") '
                  '{ bulkOperation { id } userErrors { field message code } } }')
    assert bad["data"]["bulkOperationRunQuery"]["userErrors"][0]["code"] == "INVALID"
    too_deep = ('mutation { bulkOperationRunQuery(query: "{ orders { edges { node { id lineItems { edges { node { id '
                'discountAllocations { discountApplication { index } } } } } customer { orders { edges { node { id '
                'lineItems { edges { node { id } } } } } } } } } } }") { userErrors { message code } } }')
    errors = box.gql(too_deep)["data"]["bulkOperationRunQuery"]["userErrors"]
    assert errors and errors[0]["code"] == "INVALID" and "nesting depth" in errors[0]["message"]
    no_connection = box.gql('mutation { bulkOperationRunQuery(query: "{ shop { name } }") { userErrors { code } } }')
    assert no_connection["data"]["bulkOperationRunQuery"]["userErrors"] == [{"code": "INVALID"}]


def test_injected_faults_answer_429_with_retry_after_then_internal_error_then_recover(box):
    box.seed(generate_orders(seed=24, count=1))
    box.control("POST", "faults", json={"faults": [{"status": 429, "retry_after": 1.5},
                                                   {"graphql_code": "INTERNAL_SERVER_ERROR"}]})
    with pytest.raises(urllib.error.HTTPError) as raised:
        box.gql(IDS_QUERY, {"first": 1})
    assert raised.value.code == 429 and raised.value.headers["Retry-After"] == "1.5"
    internal = box.gql(IDS_QUERY, {"first": 1})
    assert internal["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and "data" not in internal
    assert len(box.gql(IDS_QUERY, {"first": 1})["data"]["orders"]["edges"]) == 1
    assert box.control("GET", "counters")["by_status"]["429"] == 1


def test_refund_of_one_line_and_shipping_shows_on_the_order_and_bumps_updated_at(box):
    spec = generate_orders(seed=25, count=1)[0]
    spec.update(financial_status="paid", tax_rate="0.0825", tax_title="State tax",
                lines=[{"sku": "MUG-12OZ", "title": "Stoneware mug 12oz", "quantity": 3, "unit_price": "16.50",
                        "discount": "1.00", "taxable": True}],
                shipping=[{"title": "Standard", "code": "standard", "price": "5.00"}])
    box.seed([spec])
    order = box.gql("{ orders(first: 1) { nodes { legacyResourceId updatedAt } } }")["data"]["orders"]["nodes"][0]
    box.control("POST", f"shops/{SHOP}/orders/{order['legacyResourceId']}/refunds",
                json={"lines": [{"sku": "MUG-12OZ", "quantity": 1}], "shipping": True, "note": "broken",
                      "created_at": "2030-01-01T00:00:00Z"})
    query = """{ orders(first: 1) { nodes { updatedAt displayFinancialStatus totalRefundedSet { shopMoney { amount } }
        transactions(first: 5) { kind amountSet { shopMoney { amount } } parentTransaction { kind } }
        lineItems(first: 1) { nodes { currentQuantity } }
        refunds(first: 5) { note totalRefundedSet { shopMoney { amount } } order { legacyResourceId }
          refundLineItems(first: 5) { nodes { quantity subtotalSet { shopMoney { amount } }
            totalTaxSet { shopMoney { amount } } lineItem { sku } } }
          refundShippingLines(first: 5) { nodes { subtotalAmountSet { shopMoney { amount } } } } } } } }"""
    got = box.gql(query)["data"]["orders"]["nodes"][0]
    # line: (49.50 - 1.00) / 3 = 16.17 back + tax 4.00 / 3 = 1.33; shipping 5.00 + tax 0.41
    line = got["refunds"][0]["refundLineItems"]["nodes"][0]
    assert (line["subtotalSet"]["shopMoney"]["amount"], line["totalTaxSet"]["shopMoney"]["amount"]) == ("16.17", "1.33")
    assert got["refunds"][0]["totalRefundedSet"]["shopMoney"]["amount"] == "22.91"
    assert got["totalRefundedSet"]["shopMoney"]["amount"] == "22.91"
    assert got["refunds"][0]["order"]["legacyResourceId"] == order["legacyResourceId"]
    assert [(t["kind"], t["parentTransaction"] and t["parentTransaction"]["kind"]) for t in got["transactions"]] == \
        [("SALE", None), ("REFUND", "SALE")]
    assert got["displayFinancialStatus"] == "PARTIALLY_REFUNDED" and got["updatedAt"] == "2030-01-01T00:00:00Z"
    assert got["lineItems"]["nodes"][0]["currentQuantity"] == 2
    assert box.state()["shops"][SHOP]["orders"][0]["refunds"][0]["note"] == "broken"


def test_cost_debug_header_breaks_the_requested_cost_down_per_field(box):
    box.seed(generate_orders(seed=26, count=1))
    query = "{ orders(first: 10) { nodes { id lineItems(first: 5) { nodes { sku } } } } }"
    response = httpx.post(f"{box.site()}/graphql.json", json={"query": query},
                          headers={"X-Shopify-Access-Token": TOKEN, "Shopify-GraphQL-Cost-Debug": "1"})
    cost = response.json()["extensions"]["cost"]
    fields = {tuple(f["path"]): f for f in cost["fields"]}
    assert fields[("orders",)]["requestedTotalCost"] == cost["requestedQueryCost"] == 2 + 10 * (1 + 2 + 5)
    assert fields[("orders", "nodes", "lineItems")] == {"path": ["orders", "nodes", "lineItems"], "definedCost": 2,
                                                        "requestedTotalCost": 7, "requestedChildrenCost": 5}
    assert fields[("orders", "nodes", "id")]["definedCost"] == 0


def test_cancelling_an_authorized_order_voids_it_and_moves_updated_at(box):
    spec = generate_orders(seed=27, count=1)[0]
    spec["financial_status"] = "authorized"
    box.seed([spec])
    legacy = box.gql("{ orders(first: 1) { nodes { legacyResourceId } } }")["data"]["orders"]["nodes"][0]["legacyResourceId"]
    box.control("POST", f"shops/{SHOP}/orders/{legacy}/cancel", json={"reason": "fraud", "cancelled_at": "2030-01-02T00:00:00Z"})
    order = box.gql("""{ orders(first: 1) { nodes { cancelledAt cancelReason closed updatedAt displayFinancialStatus
        transactions(first: 5) { kind parentTransaction { kind } } } } }""")["data"]["orders"]["nodes"][0]
    assert (order["cancelledAt"], order["cancelReason"], order["closed"], order["displayFinancialStatus"]) == \
        ("2030-01-02T00:00:00Z", "FRAUD", True, "VOIDED")
    assert order["updatedAt"] == "2030-01-02T00:00:00Z"
    assert [(t["kind"], t["parentTransaction"] and t["parentTransaction"]["kind"]) for t in order["transactions"]] == \
        [("AUTHORIZATION", None), ("VOID", "AUTHORIZATION")]


def test_without_read_all_orders_only_the_last_60_days_are_visible(box):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old = generate_orders(seed=28, count=1, start=now.replace(year=now.year - 1))[0]
    recent_spec = generate_orders(seed=29, count=1, first_number=2001)[0]
    box.seed([old, recent_spec])
    box.configure(visible_days=60)
    names = [n["name"] for n in _all_pages(box, {"first": 10})]
    assert names == ["#2001"]


def test_a_merchant_action_on_one_order_leaves_every_other_order_as_it_was():
    # Equal MoneyBags are one shared dict (render.py _BAGS): an action that changed a bag in place
    # would change every other order showing that amount too.
    import copy

    from sandbox.shopify.cancel import cancel_order
    from sandbox.shopify.payments import pay_order
    from sandbox.shopify.refunds import add_refund
    from sandbox.shopify.render import render_order
    from sandbox.shopify.store import Store

    store = Store()
    shop = store.ensure_shop("bags", "shpat_bags")
    for spec in generate_orders(3, 60):
        store.add_order(shop, render_order(store, shop, spec))
    orders = shop.orders
    paid = [o for o in orders if o["displayFinancialStatus"] == "PAID" and not o["refunds"]]
    unpaid = [o for o in orders if o["displayFinancialStatus"] in ("PENDING", "AUTHORIZED")]
    assert len(paid) >= 2 and unpaid
    acted = {id(paid[0]), id(paid[1]), id(unpaid[0])}
    before = copy.deepcopy([o for o in orders if id(o) not in acted])
    line = paid[0]["lineItems"][0]
    add_refund(store, shop, paid[0], {"lines": [{"sku": line["sku"], "quantity": 1}], "shipping": True})
    cancel_order(store, shop, paid[1], {"reason": "CUSTOMER", "refund": True})
    pay_order(store, unpaid[0], {})
    assert [o for o in orders if id(o) not in acted] == before
    assert paid[0]["totalRefundedSet"]["shopMoney"]["amount"] != "0.0"  # the actions did change their orders
