"""Shopify emulator webhooks: subscriptions over the official ShopifyAPI SDK, deliveries to a
real HTTP receiver on a loopback port, checked against notes §3 and the published bodies
(tests/fixtures/shopify/webhook_*.2026-01.json, origins in SOURCES.md there).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import shopify

from sandbox.generator import generate_orders
from sandbox.shopify.delivery import hmac_sha256, retry_delays

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "shopify"
SHOP, TOKEN, VERSION, SECRET = "hooks", "shpat_hooks_token", "2026-01", "shpss_hooks_secret"
HEADERS = ("X-Shopify-Topic", "X-Shopify-Hmac-Sha256", "X-Shopify-Shop-Domain", "X-Shopify-API-Version",
           "X-Shopify-Webhook-Id", "X-Shopify-Triggered-At", "X-Shopify-Event-Id", "X-Shopify-Order-Id")

CREATE = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri format includeFields apiVersion { handle } }
    userErrors { field message }
  }
}"""
LIST = "{ webhookSubscriptions(first: 50) { nodes { id topic uri } pageInfo { hasNextPage } } }"
DELETE = """mutation Unsubscribe($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } } }"""


class Receiver:
    """A real HTTP endpoint in a thread: records each request; answers from ``plan``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: list = []  # per request: a status, or ("sleep", seconds) then 200; default 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    step = receiver.plan.pop(0) if receiver.plan else 200
                    receiver.requests.append({"headers": {k: v for k, v in self.headers.items()}, "raw": raw,
                                              "path": self.path, "at": time.monotonic()})
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = 200
                self.send_response(step)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many deliveries connect at once (default backlog 5)
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, topic: str) -> list[dict]:
        return [r for r in self.requests if r["headers"]["X-Shopify-Topic"] == topic]

    def wait(self, count: int, topic: str | None = None, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(topic) if topic else list(self.requests)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"expected {count} {topic or ''} deliveries, got {len(got)}")


class Box:
    def __init__(self, url: str):
        self.url = url

    def control(self, method: str, path: str, **kwargs):
        response = httpx.request(method, f"{self.url}/_sandbox/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def seed(self, specs: list[dict]) -> None:
        self.control("POST", f"shops/{SHOP}/orders", json={"credentials": {"access_token": TOKEN}, "orders": specs})

    def configure(self, **settings) -> dict:
        return self.control("POST", f"shops/{SHOP}/config", json={"access_token": TOKEN, **settings})

    def subscribe(self, topic: str, address: str, **extra) -> dict:
        return self.control("POST", f"shops/{SHOP}/webhooks", json={"topic": topic, "address": address, **extra})

    def log(self) -> dict:
        return self.control("GET", f"shops/{SHOP}/webhooks/deliveries")

    def gql(self, query: str, variables: dict | None = None) -> dict:
        shopify.ShopifyResource.activate_session(shopify.Session(f"{SHOP}.myshopify.com", VERSION, TOKEN))
        shopify.ShopifyResource.site = f"{self.url}/shop/{SHOP}/admin/api/{VERSION}"
        try:
            return json.loads(shopify.GraphQL().execute(query, variables=variables))
        finally:
            shopify.ShopifyResource.clear_session()

    def legacy_ids(self) -> list[str]:
        data = self.gql("{ orders(first: 50, sortKey: ID) { nodes { legacyResourceId } } }")
        return [n["legacyResourceId"] for n in data["data"]["orders"]["nodes"]]


@pytest.fixture
def box(sandbox) -> Box:
    box = Box(sandbox.url("shopify"))
    box.configure(api_secret=SECRET)
    return box


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def _fixture(name: str):
    return json.loads((FIXTURES / f"webhook_{name}.2026-01.json").read_text())


def _verify(request: dict, secret: str = SECRET) -> bool:
    """A receiver's check, as notes §3 writes it."""
    digest = base64.b64encode(hmac.new(secret.encode(), request["raw"], hashlib.sha256).digest()).decode()
    return hmac.compare_digest(digest, request["headers"]["X-Shopify-Hmac-Sha256"])


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _conforms(ours, reference, path="$") -> list[str]:
    """Every key of ``ours`` exists in ``reference`` with the same JSON type (null matches any)."""
    problems = []
    if isinstance(ours, dict) and isinstance(reference, dict):
        for key, value in ours.items():
            if key not in reference:
                problems.append(f"{path}.{key} not in the published body")
            elif None not in (value, reference[key]) and _kind(value) != _kind(reference[key]):
                problems.append(f"{path}.{key}: {_kind(value)} vs {_kind(reference[key])}")
            else:
                problems += _conforms(value, reference[key], f"{path}.{key}")
    elif isinstance(ours, list) and isinstance(reference, list) and reference:
        for i, item in enumerate(ours):
            problems += _conforms(item, reference[0], f"{path}[{i}]")
    return problems


# --- signing -----------------------------------------------------------------------------

def test_hmac_matches_the_notes_test_vector():
    body = b'{"id":820982911946154508,"name":"#9999"}'
    assert hmac_sha256("shpss_test_secret", body) == "ynR1PMel7WVr1F1xdQeN9vLyaY7o7B3/WRdc5xl3VY8="
    assert len(retry_delays()) == 8 and round(sum(retry_delays())) == 4 * 3600


# --- subscriptions over the SDK ----------------------------------------------------------

def test_sdk_creates_lists_and_deletes_subscriptions(box, receiver):
    box.seed([])
    made = box.gql(CREATE, {"topic": "ORDERS_CREATE", "sub": {"uri": receiver.url, "format": "JSON"}})
    node = made["data"]["webhookSubscriptionCreate"]["webhookSubscription"]
    assert made["data"]["webhookSubscriptionCreate"]["userErrors"] == []
    assert (node["topic"], node["uri"], node["format"], node["apiVersion"]["handle"]) == \
        ("ORDERS_CREATE", receiver.url, "JSON", VERSION)
    # The deprecated callbackUrl still works; a second subscription for the same topic+address does not.
    again = box.gql(CREATE, {"topic": "ORDERS_CREATE", "sub": {"callbackUrl": receiver.url}})
    assert again["data"]["webhookSubscriptionCreate"]["webhookSubscription"] is None
    assert again["data"]["webhookSubscriptionCreate"]["userErrors"][0]["field"] == ["webhookSubscription", "callbackUrl"]
    plain = box.gql(CREATE, {"topic": "ORDERS_PAID", "sub": {"uri": "http://example.com/hook"}})
    assert "http://" in plain["data"]["webhookSubscriptionCreate"]["userErrors"][0]["message"]
    box.gql(CREATE, {"topic": "REFUNDS_CREATE", "sub": {"uri": "https://example.com/hook"}})
    box.subscribe("orders/updated", receiver.url, app_config=True)  # a shopify.app.toml one: not listed
    listed = box.gql(LIST)["data"]["webhookSubscriptions"]["nodes"]
    assert [(n["topic"], n["uri"]) for n in listed] == [("ORDERS_CREATE", receiver.url),
                                                        ("REFUNDS_CREATE", "https://example.com/hook")]
    moved = box.gql("""mutation Move($id: ID!, $sub: WebhookSubscriptionInput!) {
      webhookSubscriptionUpdate(id: $id, webhookSubscription: $sub) { webhookSubscription { uri } userErrors { message } } }""",
                    {"id": node["id"], "sub": {"uri": receiver.url + "?v=2"}})["data"]["webhookSubscriptionUpdate"]
    assert moved == {"webhookSubscription": {"uri": receiver.url + "?v=2"}, "userErrors": []}
    one = box.gql("query One($id: ID!) { webhookSubscription(id: $id) { topic uri } webhookSubscriptionsCount { count } }",
                  {"id": node["id"]})["data"]
    assert one == {"webhookSubscription": {"topic": "ORDERS_CREATE", "uri": receiver.url + "?v=2"},
                   "webhookSubscriptionsCount": {"count": 2}}
    gone = box.gql(DELETE, {"id": node["id"]})["data"]["webhookSubscriptionDelete"]
    assert gone == {"deletedWebhookSubscriptionId": node["id"], "userErrors": []}
    assert box.gql(DELETE, {"id": node["id"]})["data"]["webhookSubscriptionDelete"]["userErrors"]
    assert [n["topic"] for n in box.gql(LIST)["data"]["webhookSubscriptions"]["nodes"]] == ["REFUNDS_CREATE"]


def test_include_fields_trims_the_body(box, receiver):
    box.seed([])
    box.gql(CREATE, {"topic": "ORDERS_CREATE", "sub": {"uri": receiver.url, "includeFields": ["id", "updated_at"]}})
    box.seed(generate_orders(seed=3, count=1))
    assert set(json.loads(receiver.wait(1)[0]["raw"])) == {"id", "updated_at"}


# --- deliveries --------------------------------------------------------------------------

def test_seeding_delivers_signed_orders_create_with_the_documented_headers(box, receiver):
    box.subscribe("orders/create", receiver.url)
    box.seed(generate_orders(seed=11, count=2))
    requests = receiver.wait(2)
    legacy = box.legacy_ids()
    for request in requests:
        headers, body = request["headers"], json.loads(request["raw"])
        assert all(name in headers for name in HEADERS), headers
        assert _verify(request) and not _verify(request, "wrong-secret")
        assert headers["Content-Type"] == "application/json"
        assert (headers["X-Shopify-Topic"], headers["X-Shopify-Shop-Domain"], headers["X-Shopify-API-Version"]) == \
            ("orders/create", f"{SHOP}.myshopify.com", VERSION)
        # Exact 64-bit ids as JSON numbers, plus the gid (notes §3 "Large ints").
        assert isinstance(body["id"], int) and body["id"] > 2**53 and str(body["id"]) in legacy
        assert body["admin_graphql_api_id"] == f"gid://shopify/Order/{body['id']}"
        assert headers["X-Shopify-Order-Id"] == str(body["id"])
        datetime.fromisoformat(headers["X-Shopify-Triggered-At"].replace("Z", "")[:26])
    assert len({r["headers"]["X-Shopify-Webhook-Id"] for r in requests}) == 2
    assert len({r["headers"]["X-Shopify-Event-Id"] for r in requests}) == 2  # two orders, two actions


def test_bodies_conform_to_the_published_payloads(box, receiver):
    for topic in ("orders/create", "orders/updated", "refunds/create", "order_transactions/create"):
        box.subscribe(topic, receiver.url)
    specs = generate_orders(seed=5, count=12, variety=True)
    box.seed(specs)
    orders = receiver.wait(12, "orders/create")
    reference = _fixture("orders_create")
    for request in orders:
        body = json.loads(request["raw"])
        assert _conforms(body, reference) == []
        assert set(body) == set(reference)  # every top-level key of the published body
        for line in body["line_items"]:
            assert set(line) == set(reference["line_items"][0])
        assert body["financial_status"] == body["financial_status"].lower()
    # Money agrees with the Admin GraphQL API to the cent.
    gql = box.gql("{ orders(first: 50) { nodes { legacyResourceId totalPriceSet { shopMoney { amount } } } } }")
    totals = {n["legacyResourceId"]: Decimal(n["totalPriceSet"]["shopMoney"]["amount"])
              for n in gql["data"]["orders"]["nodes"]}
    for request in orders:
        body = json.loads(request["raw"])
        assert Decimal(body["total_price"]) == totals[str(body["id"])]
        assert body["total_price_set"]["shop_money"]["amount"] == body["total_price"]
        assert all(line["price_set"]["shop_money"]["currency_code"] == body["currency"] for line in body["line_items"])
    transactions = receiver.wait(1, "order_transactions/create")
    assert all(_conforms(json.loads(r["raw"]), _fixture("order_transactions_create")) == [] for r in transactions)
    # A refund: refunds/create matches the published refund, and the order now lists it.
    paid = next(json.loads(r["raw"]) for r in orders if json.loads(r["raw"])["financial_status"] == "paid")
    sku = paid["line_items"][0]["sku"]
    box.control("POST", f"shops/{SHOP}/orders/{paid['id']}/refunds",
                json={"lines": [{"sku": sku, "quantity": 1}], "shipping": True, "note": "damaged"})
    refund = json.loads(receiver.wait(1, "refunds/create")[0]["raw"])
    assert _conforms(refund, _fixture("refunds_create")) == []
    assert refund["order_id"] == paid["id"] and refund["refund_line_items"][0]["line_item"]["sku"] == sku
    updated = json.loads(receiver.wait(1, "orders/updated")[0]["raw"])
    assert _conforms(updated, _fixture("orders_updated")) == []
    assert _conforms(updated["refunds"], [_fixture("refunds_create")]) == []
    assert updated["financial_status"] in ("partially_refunded", "refunded")


def test_one_merchant_action_shares_one_event_id_across_topics(box, receiver):
    for topic in ("orders/updated", "orders/cancelled", "refunds/create"):
        box.subscribe(topic, receiver.url)
    spec = generate_orders(seed=9, count=1)[0]
    spec["financial_status"] = "paid"
    box.seed([spec])
    legacy = box.legacy_ids()[0]
    box.control("POST", f"shops/{SHOP}/orders/{legacy}/cancel", json={"reason": "customer", "refund": True})
    got = receiver.wait(3)
    assert sorted(r["headers"]["X-Shopify-Topic"] for r in got) == ["orders/cancelled", "orders/updated",
                                                                     "refunds/create"]
    assert len({r["headers"]["X-Shopify-Event-Id"] for r in got}) == 1
    assert len({r["headers"]["X-Shopify-Webhook-Id"] for r in got}) == 3
    cancelled = json.loads(receiver.of("orders/cancelled")[0]["raw"])
    assert cancelled["cancel_reason"] == "customer" and cancelled["cancelled_at"]
    assert cancelled["financial_status"] == "refunded"
    box.control("POST", f"shops/{SHOP}/orders/{legacy}/touch", json={"updated_at": "2031-01-01T00:00:00Z"})
    touched = receiver.wait(4)[-1]
    assert touched["headers"]["X-Shopify-Topic"] == "orders/updated"
    assert touched["headers"]["X-Shopify-Event-Id"] != got[0]["headers"]["X-Shopify-Event-Id"]
    assert json.loads(touched["raw"])["updated_at"].startswith("2030-12-31T19:00:00")  # shop offset -05:00


def test_orders_paid_fires_when_an_order_becomes_paid(box, receiver):
    for topic in ("orders/paid", "orders/create", "order_transactions/create"):
        box.subscribe(topic, receiver.url)
    paid, pending, authorized = generate_orders(seed=4, count=3)
    paid["financial_status"], pending["financial_status"], authorized["financial_status"] = \
        "paid", "pending", "authorized"
    box.seed([paid, pending, authorized])
    created = {json.loads(r["raw"])["financial_status"]: r for r in receiver.wait(3, "orders/create")}
    at_checkout = receiver.wait(1, "orders/paid")[0]
    assert at_checkout["headers"]["X-Shopify-Event-Id"] == created["paid"]["headers"]["X-Shopify-Event-Id"]
    receiver.wait(2, "order_transactions/create")  # the sale and the authorization
    auth_id = next(json.loads(r["raw"])["id"] for r in receiver.of("order_transactions/create")
                   if json.loads(r["raw"])["kind"] == "authorization")
    for status in ("pending", "authorized"):
        order_id = json.loads(created[status]["raw"])["id"]
        box.control("POST", f"shops/{SHOP}/orders/{order_id}/pay", json={})
        event = receiver.wait(1 + ["pending", "authorized"].index(status) + 1, "orders/paid")[-1]
        assert json.loads(event["raw"])["id"] == order_id
        assert json.loads(event["raw"])["financial_status"] == "paid"
        assert json.loads(event["raw"])["total_outstanding"] == "0.00"
        money = [json.loads(r["raw"]) for r in receiver.wait(2 + ["pending", "authorized"].index(status) + 1,
                                                              "order_transactions/create")][-1]
        assert money["kind"] == ("sale" if status == "pending" else "capture") and money["order_id"] == order_id
        assert money["parent_id"] == (None if status == "pending" else auth_id)
    # Paying twice is refused; touching a paid order fires no second orders/paid.
    assert httpx.post(f"{box.url}/_sandbox/shops/{SHOP}/orders/{order_id}/pay", json={}).status_code == 422
    box.control("POST", f"shops/{SHOP}/orders/{order_id}/touch", json={"fields": {"note": "x"}})
    time.sleep(0.2)
    assert len(receiver.of("orders/paid")) == 3


def test_failures_are_retried_with_one_webhook_id_then_the_api_subscription_is_removed(box, receiver):
    box.configure(webhook_retry_scale=0.00005)  # 4 h -> 0.72 s
    box.seed([])
    box.gql(CREATE, {"topic": "ORDERS_CREATE", "sub": {"uri": receiver.url}})
    box.subscribe("orders/create", receiver.url + "?toml", app_config=True)
    receiver.plan = [500] * 18
    box.seed(generate_orders(seed=12, count=1))
    requests = receiver.wait(18, timeout=15)
    for path in ("/webhooks", "/webhooks?toml"):
        mine = [r for r in requests if r["path"] == path]
        assert len(mine) == 9  # the first try and 8 retries
        assert len({r["headers"]["X-Shopify-Webhook-Id"] for r in mine}) == 1
        assert len({r["raw"] for r in mine}) == 1 and len({r["headers"]["X-Shopify-Triggered-At"] for r in mine}) == 1
        gaps = [b["at"] - a["at"] for a, b in zip(mine, mine[1:])]
        assert gaps[-1] > gaps[0]  # exponential backoff
    deadline = time.monotonic() + 5
    while box.log()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert box.gql(LIST)["data"]["webhookSubscriptions"]["nodes"] == []  # removed: created via the Admin API
    kept = box.control("GET", f"shops/{SHOP}/webhooks")["webhook_subscriptions"]
    assert [s["uri"] for s in kept] == [receiver.url + "?toml"]  # app-config subscriptions stay
    log = box.log()["deliveries"]
    assert [e["attempt"] for e in log if e["address"] == receiver.url and e["status"]] == list(range(1, 10))
    assert any(e["subscription_removed"] for e in log)


def test_a_timeout_then_an_error_then_success(box, receiver):
    box.configure(webhook_retry_scale=0.00005, webhook_timeout_seconds=0.3)
    box.subscribe("orders/create", receiver.url)
    receiver.plan = [("sleep", 1.0), 503]
    box.seed(generate_orders(seed=13, count=1))
    requests = receiver.wait(3)
    assert len({r["headers"]["X-Shopify-Webhook-Id"] for r in requests}) == 1
    time.sleep(0.1)
    log = box.log()["deliveries"]
    assert [(e["attempt"], e["status"], e["error"], e["ok"]) for e in log] == \
        [(1, None, "timeout", False), (2, 503, None, False), (3, 200, None, True)]
    assert box.control("GET", f"shops/{SHOP}/webhooks")["webhook_subscriptions"]  # kept


def test_drop_and_duplicate_knobs(box, receiver):
    box.subscribe("orders/create", receiver.url)
    box.control("POST", f"shops/{SHOP}/webhooks/config", json={"drop_rate": 1.0})
    box.seed(generate_orders(seed=14, count=3))
    deadline = time.monotonic() + 5
    while len(box.log()["deliveries"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receiver.requests == [] and all(e["dropped"] for e in box.log()["deliveries"])
    box.control("POST", f"shops/{SHOP}/webhooks/config", json={"drop_rate": 0, "duplicate_rate": 1.0})
    box.seed(generate_orders(seed=15, count=2, first_number=3001))
    requests = receiver.wait(4)
    by_id: dict[str, list] = {}
    for r in requests:
        by_id.setdefault(r["headers"]["X-Shopify-Webhook-Id"], []).append(r["raw"])
    assert len(by_id) == 2 and all(len(raws) == 2 and raws[0] == raws[1] for raws in by_id.values())


def test_jitter_still_delivers_everything(box, receiver):
    box.configure(webhook_jitter_seconds=0.2)
    box.subscribe("orders/create", receiver.url)
    box.seed(generate_orders(seed=16, count=8))
    assert len({json.loads(r["raw"])["id"] for r in receiver.wait(8)}) == 8


# --- scopes --------------------------------------------------------------------------------

def test_access_scopes_tell_the_connector_about_the_60_day_window(box):
    now = datetime.now(UTC).replace(microsecond=0)
    old = generate_orders(seed=17, count=1, start=now.replace(year=now.year - 1))[0]
    recent = generate_orders(seed=18, count=1, first_number=2001)[0]
    box.seed([old, recent])
    scopes = "{ currentAppInstallation { accessScopes { handle } } }"
    names = "{ orders(first: 10) { nodes { name } } }"
    handles = [s["handle"] for s in box.gql(scopes)["data"]["currentAppInstallation"]["accessScopes"]]
    assert handles == ["read_orders", "read_all_orders"]
    assert len(box.gql(names)["data"]["orders"]["nodes"]) == 2
    assert box.configure(scopes=["read_orders"])["visible_days"] == 60
    handles = [s["handle"] for s in box.gql(scopes)["data"]["currentAppInstallation"]["accessScopes"]]
    assert handles == ["read_orders"]
    assert [n["name"] for n in box.gql(names)["data"]["orders"]["nodes"]] == ["#2001"]
    box.configure(scopes=["read_orders", "read_all_orders"])
    assert len(box.gql(names)["data"]["orders"]["nodes"]) == 2
