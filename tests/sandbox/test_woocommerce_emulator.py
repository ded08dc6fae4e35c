"""WooCommerce emulator driven by the official ``woocommerce`` 3.0.0 client over
loopback HTTP (OAuth 1.0a in the query string, notes §4)."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn
from woocommerce import API
from woocommerce.oauth import OAuth

from sandbox.generator import generate_orders

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "woocommerce"
CK, CS = "ck_sandbox_emulator_test_key", "cs_sandbox_emulator_test_secret"
ALL_EMULATORS = all((ROOT / "sandbox" / s / "app.py").exists() for s in ("shopify", "woocommerce", "hubspot", "quickbooks"))


class _OwnServer:
    """Fallback while the other three emulators do not exist yet: this app alone in a thread."""

    def __init__(self):
        from sandbox.woocommerce.app import create_app
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


@pytest.fixture
def wc_url(request) -> str:
    """Base URL of a freshly reset WooCommerce emulator: the shared ``sandbox``
    (``python -m sandbox serve``) when all four emulators exist and it starts,
    otherwise this emulator alone in a thread."""
    if ALL_EMULATORS:
        try:
            return request.getfixturevalue("sandbox").url("woocommerce")
        except RuntimeError as exc:   # another emulator is not importable yet
            warnings.warn(f"shared sandbox did not start, using the WooCommerce app alone: {exc}".splitlines()[0])
    url = request.getfixturevalue("_own_server").url
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    return url


def seed(url: str, specs: list[dict], site: str = "demo", **settings) -> dict:
    body = {"credentials": {"consumer_key": CK, "consumer_secret": CS}, "orders": specs}
    if settings:
        body["settings"] = settings
    response = httpx.post(f"{url}/_sandbox/sites/{site}/orders", json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def client(url: str, site: str = "demo", secret: str = CS, key: str = CK) -> API:
    return API(url=f"{url}/site/{site}", consumer_key=key, consumer_secret=secret, version="wc/v3", timeout=30)


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


# ---- listing ---------------------------------------------------------------

def test_paging_through_250_orders_by_total_pages(wc_url):
    assert seed(wc_url, generate_orders(7, 250, gateways=("stripe", "bacs")))["created"] == 250
    wcapi, page, seen = client(wc_url), 1, []
    while True:
        r = wcapi.get("orders", params={"per_page": 100, "page": page, "orderby": "id", "order": "asc"})
        assert r.status_code == 200, r.text
        assert r.headers["X-WP-Total"] == "250" and r.headers["X-WP-TotalPages"] == "3"
        seen += [o["id"] for o in r.json()]
        if page >= int(r.headers["X-WP-TotalPages"]):
            break
        page += 1
    assert page == 3 and len(seen) == 250 and seen == sorted(set(seen))


def test_link_header_has_only_prev_and_next_with_oauth_params(wc_url):
    seed(wc_url, generate_orders(7, 25))
    r = client(wc_url).get("orders", params={"per_page": 10, "page": 2})
    assert set(r.links) == {"prev", "next"}
    assert "page=3" in r.links["next"]["url"] and "oauth_signature=" in r.links["next"]["url"]
    assert "page=1" in r.links["prev"]["url"]
    last = client(wc_url).get("orders", params={"per_page": 10, "page": 3})
    assert set(last.links) == {"prev"} and len(last.json()) == 5


def test_default_sort_is_date_desc_and_offset_overrides_page(wc_url):
    seed(wc_url, generate_orders(3, 30))
    wcapi = client(wc_url)
    everything = wcapi.get("orders", params={"per_page": 100}).json()
    created = [o["date_created_gmt"] for o in everything]
    assert created == sorted(created, reverse=True)
    shifted = wcapi.get("orders", params={"per_page": 5, "page": 4, "offset": 2}).json()
    assert [o["id"] for o in shifted] == [o["id"] for o in everything[2:7]]


def test_modified_after_with_dates_are_gmt_uses_the_gmt_column(wc_url):
    specs = generate_orders(11, 20)
    seed(wc_url, specs, timezone_offset="+05:00")
    ids = [o["id"] for o in client(wc_url).get("orders", params={"per_page": 100, "orderby": "id", "order": "asc"}).json()]
    for oid in ids[:3]:
        httpx.post(f"{wc_url}/_sandbox/sites/demo/orders/{oid}/touch",
                   json={"date_modified_gmt": "2030-01-01T12:00:00Z"}).raise_for_status()
    wcapi = client(wc_url)
    params = {"modified_after": "2030-01-01T09:00:00", "dates_are_gmt": "true", "orderby": "modified", "order": "asc"}
    got = wcapi.get("orders", params=params).json()
    assert sorted(o["id"] for o in got) == ids[:3]
    assert all(o["date_modified_gmt"] == "2030-01-01T12:00:00" and o["date_modified"] == "2030-01-01T17:00:00"
               for o in got)
    # Bounds are exclusive, and without dates_are_gmt the same naive value is site-local time.
    assert wcapi.get("orders", params={**params, "modified_after": "2030-01-01T12:00:00"}).json() == []
    assert wcapi.get("orders", params={"modified_after": "2030-01-01T16:59:59"}).headers["X-WP-Total"] == "3"
    assert wcapi.get("orders", params={"modified_after": "2030-01-01T17:00:00"}).headers["X-WP-Total"] == "0"


def test_after_and_before_filter_the_created_date(wc_url):
    seed(wc_url, generate_orders(5, 40))
    everything = client(wc_url).get("orders", params={"per_page": 100, "order": "asc"}).json()
    lo, hi = everything[10]["date_created_gmt"], everything[20]["date_created_gmt"]
    got = client(wc_url).get("orders", params={"after": lo, "before": hi, "dates_are_gmt": "1",
                                               "per_page": 100, "order": "asc"}).json()
    assert [o["id"] for o in got] == [o["id"] for o in everything[11:20]]


def test_status_comma_list_filters_statuses(wc_url):
    seed(wc_url, generate_orders(13, 120))
    wcapi = client(wc_url)
    everything = wcapi.get("orders", params={"per_page": 100, "page": 1}).json() + \
        wcapi.get("orders", params={"per_page": 100, "page": 2}).json()
    statuses = {o["status"] for o in everything}
    assert {"completed", "processing", "pending", "on-hold"} <= statuses
    r = wcapi.get("orders", params={"status": "processing,completed", "per_page": 100})
    assert r.status_code == 200
    want = sum(o["status"] in ("processing", "completed") for o in everything)
    assert int(r.headers["X-WP-Total"]) == want
    assert {o["status"] for o in r.json()} == {"processing", "completed"}


def test_include_with_orderby_include_keeps_the_given_order(wc_url):
    ids = seed(wc_url, generate_orders(2, 10))["ids"]
    wanted = [ids[4], ids[1], ids[7]]
    r = client(wc_url).get("orders", params={"include": ",".join(map(str, wanted)), "orderby": "include"})
    assert [o["id"] for o in r.json()] == wanted


def test_per_page_101_returns_the_exact_rest_invalid_param_body(wc_url):
    seed(wc_url, generate_orders(1, 2))
    r = client(wc_url).get("orders", params={"per_page": 101})
    assert r.status_code == 400
    assert r.json() == fixture("wc-issue-21052_error_rest_invalid_param_per_page.json")
    assert r.text == json.dumps(r.json(), separators=(",", ":"))   # byte-identical to the captured body


def test_bad_orderby_and_bad_date_are_rejected(wc_url):
    seed(wc_url, generate_orders(1, 2))
    r = client(wc_url).get("orders", params={"orderby": "total", "after": "2024-01-01"})
    assert r.status_code == 400
    assert r.json()["data"]["params"] == {
        "orderby": "orderby is not one of date, id, include, title, slug, and modified.",
        "after": "Invalid date.",
    }


# ---- single order, routes ----------------------------------------------------

def test_get_one_order_and_unknown_id(wc_url):
    ids = seed(wc_url, generate_orders(1, 3))["ids"]
    wcapi = client(wc_url)
    r = wcapi.get(f"orders/{ids[1]}")
    assert r.status_code == 200 and r.json()["id"] == ids[1] and r.json()["number"] == str(ids[1])
    assert r.json()["_links"]["self"][0]["href"].endswith(f"/site/demo/wp-json/wc/v3/orders/{ids[1]}")
    missing = wcapi.get("orders/999999")
    assert missing.status_code == 404
    assert missing.json() == {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
                              "data": {"status": 404}}
    assert wcapi.get(f"orders/{ids[1]}/refunds").json() == []


def test_unknown_route_is_rest_no_route(wc_url):
    seed(wc_url, [])
    r = client(wc_url).get("products/categories/oops")
    assert r.status_code == 404 and r.json() == fixture("wcdocs_v3_error_rest_no_route.json")


# ---- authentication ----------------------------------------------------------

def test_no_credentials_is_401_cannot_view(wc_url):
    seed(wc_url, generate_orders(1, 2))
    r = httpx.get(f"{wc_url}/site/demo/wp-json/wc/v3/orders")
    assert r.status_code == 401
    assert r.json() == {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
                        "data": {"status": 401}}


def test_basic_auth_over_plain_http_is_never_accepted(wc_url):
    seed(wc_url, generate_orders(1, 2))
    r = httpx.get(f"{wc_url}/site/demo/wp-json/wc/v3/orders", auth=(CK, CS))
    assert r.status_code == 401 and r.json()["code"] == "woocommerce_rest_cannot_view"
    r = httpx.get(f"{wc_url}/site/demo/wp-json/wc/v3/orders", params={"consumer_key": CK, "consumer_secret": CS})
    assert r.status_code == 401 and r.json()["code"] == "woocommerce_rest_cannot_view"


def test_basic_auth_behind_a_tls_proxy_is_accepted(wc_url):
    seed(wc_url, generate_orders(1, 2))
    url, tls = f"{wc_url}/site/demo/wp-json/wc/v3/orders", {"X-Forwarded-Proto": "https"}
    assert httpx.get(url, auth=(CK, CS), headers=tls).status_code == 200
    assert httpx.get(url, params={"consumer_key": CK, "consumer_secret": CS}, headers=tls).status_code == 200
    wrong = httpx.get(url, auth=(CK, "cs_wrong"), headers=tls)
    assert wrong.status_code == 401 and wrong.json()["message"] == "Consumer secret is invalid."


def test_bad_secret_is_401_invalid_signature(wc_url):
    seed(wc_url, generate_orders(1, 2))
    r = client(wc_url, secret="cs_wrong").get("orders")
    assert r.status_code == 401
    assert r.json() == {"code": "woocommerce_rest_authentication_error",
                        "message": "Invalid signature - provided signature does not match.",
                        "data": {"status": 401}}


def test_unknown_key_and_other_site_key_are_rejected(wc_url):
    seed(wc_url, generate_orders(1, 2))
    seed(wc_url, [], site="other")
    r = client(wc_url, key="ck_nobody").get("orders")
    assert r.status_code == 401 and r.json()["message"] == "Consumer key is invalid."
    httpx.post(f"{wc_url}/_sandbox/sites/third/orders", json={"credentials": {"consumer_key": "ck_3", "consumer_secret": "cs_3"}, "orders": []})
    r = client(wc_url, site="demo", key="ck_3", secret="cs_3").get("orders")
    assert r.status_code == 401 and r.json()["message"] == "Consumer key is invalid."


def test_reused_nonce_is_401(wc_url):
    seed(wc_url, generate_orders(1, 2))
    first = client(wc_url).get("orders", params={"per_page": 5})
    assert first.status_code == 200
    replay = requests.get(first.request.url, timeout=30)
    assert replay.status_code == 401
    assert replay.json() == {"code": "woocommerce_rest_authentication_error",
                             "message": "Invalid nonce - nonce has already been used.", "data": {"status": 401}}


def _signed(url: str, timestamp: int, method: str = "GET", secret: str = CS) -> str:
    return OAuth(url=url, consumer_key=CK, consumer_secret=secret, version="wc/v3", method=method,
                 oauth_timestamp=timestamp).get_oauth_url()


def test_stale_timestamp_is_401(wc_url):
    seed(wc_url, generate_orders(1, 2))
    base = f"{wc_url}/site/demo/wp-json/wc/v3/orders?per_page=5"
    stale = requests.get(_signed(base, int(time.time()) - 16 * 60), timeout=30)
    assert stale.status_code == 401
    assert stale.json() == {"code": "woocommerce_rest_authentication_error", "message": "Invalid timestamp.",
                            "data": {"status": 401}}
    assert requests.get(_signed(base, int(time.time()) - 14 * 60), timeout=30).status_code == 200


def test_partial_oauth_params_and_bad_signature_method(wc_url):
    seed(wc_url, generate_orders(1, 2))
    url = f"{wc_url}/site/demo/wp-json/wc/v3/orders"
    r = httpx.get(url, params={"oauth_consumer_key": CK, "oauth_nonce": "abc"})
    assert r.status_code == 401 and r.json() == {
        "code": "woocommerce_rest_authentication_missing_parameter",
        "message": "Missing OAuth parameters oauth_timestamp, oauth_signature, oauth_signature_method",
        "data": {"status": 401}}
    signed = _signed(url, int(time.time())).replace("HMAC-SHA256", "PLAINTEXT")
    r = requests.get(signed, timeout=30)
    assert r.status_code == 401 and r.json()["message"] == "Invalid signature - signature method is invalid."


def test_hmac_sha1_signature_is_accepted(wc_url):
    import base64
    import hashlib
    import hmac
    from sandbox.woocommerce.oauth1 import string_to_sign
    seed(wc_url, generate_orders(1, 2))
    url = f"{wc_url}/site/demo/wp-json/wc/v3/orders"
    params = {"per_page": "1", "oauth_consumer_key": CK, "oauth_timestamp": str(int(time.time())),
              "oauth_nonce": "sha1nonce", "oauth_signature_method": "HMAC-SHA1"}
    base = string_to_sign("GET", url, params)
    params["oauth_signature"] = base64.b64encode(hmac.new((CS + "&").encode(), base.encode(), hashlib.sha1).digest()).decode()
    assert httpx.get(url, params=params).status_code == 200


# ---- the order object --------------------------------------------------------

def _missing_schema_props(schema: dict, value, path: str = "") -> list[str]:
    missing = []
    props = schema.get("properties") or {}
    if isinstance(value, dict):
        for name, sub in props.items():
            if name == "set_paid":   # write-only
                continue
            if name not in value:
                missing.append(f"{path}{name}")
            else:
                missing += _missing_schema_props(sub, value[name], f"{path}{name}.")
    items = schema.get("items")
    if items and isinstance(value, list):
        for element in value[:1]:
            missing += _missing_schema_props(items, element, f"{path}[].")
    return missing


def test_order_object_has_every_documented_field(wc_url):
    specs = [s for s in generate_orders(21, 60) if any(Decimal(l["discount"]) for l in s["lines"])]
    seed(wc_url, specs[:5])
    orders = client(wc_url).get("orders").json()
    schema = fixture("derived_wc-7.9.0_wc-v3-order_item-schema.json")
    captured = fixture("pipedream_new-order-event_test-event.json")
    for order in orders:
        assert _missing_schema_props(schema, order) == []
        assert set(captured) - {"currency_symbol"} <= set(order)      # real 8.0.2 payload keys
        assert set(captured["line_items"][0]) <= set(order["line_items"][0])
        assert set(captured["shipping"]) == set(order["shipping"])
        assert isinstance(order["id"], int) and isinstance(order["number"], str)
        assert order["coupon_lines"] and order["coupon_lines"][0]["discount"] == order["discount_total"]
        for key in ("date_created", "date_modified", "date_created_gmt"):
            assert len(order[key]) == 19 and "Z" not in order[key]


def test_status_and_payment_rendering(wc_url):
    specs = generate_orders(4, 80, gateways=("stripe", "bacs"), variety=False)
    seed(wc_url, specs)
    wcapi = client(wc_url)
    orders = wcapi.get("orders", params={"per_page": 100, "orderby": "id", "order": "asc"}).json()
    for spec, order in zip(specs, orders):
        expected = {("paid", "fulfilled"): "completed", ("paid", "unfulfilled"): "processing"}.get(
            (spec["financial_status"], spec["fulfillment_status"]),
            {"pending": "pending", "authorized": "on-hold"}.get(spec["financial_status"]))
        assert order["status"] == expected
        assert (order["date_paid_gmt"] is not None) == (spec["financial_status"] == "paid")
        assert order["date_created_gmt"] == spec["created_at"].rstrip("Z")
        assert order["payment_method"] == spec["gateway"]
        assert order["billing"]["email"] == spec["customer"]["email"]
        assert (order["customer_id"] == 0) == (spec["customer"]["email"] is None)


def test_every_order_balances_to_the_cent(wc_url):
    seed(wc_url, generate_orders(99, 200, gateways=("stripe", "bacs", "cod"), variety=False))  # variety: test_variety_woocommerce.py
    wcapi, orders = client(wc_url), []
    for page in (1, 2):
        orders += wcapi.get("orders", params={"per_page": 100, "page": page}).json()
    assert len(orders) == 200
    for o in orders:
        d = {k: Decimal(o[k]) for k in ("discount_total", "shipping_total", "total_tax", "cart_tax", "shipping_tax", "total")}
        subtotal = sum(Decimal(li["subtotal"]) for li in o["line_items"])
        assert subtotal - d["discount_total"] + d["shipping_total"] + d["total_tax"] == d["total"], o["id"]
        assert d["cart_tax"] + d["shipping_tax"] == d["total_tax"]
        assert sum(Decimal(li["total_tax"]) for li in o["line_items"]) == d["cart_tax"]
        assert sum(Decimal(s["total"]) for s in o["shipping_lines"]) == d["shipping_total"]
        for li in o["line_items"]:
            assert Decimal(li["total"]) <= Decimal(li["subtotal"])
            assert isinstance(li["price"], (int, float)) and isinstance(li["quantity"], int)
        for key in d:
            assert o[key] == f"{d[key]:.2f}"


# ---- control API -------------------------------------------------------------

def test_control_state_counters_and_reset(wc_url):
    seed(wc_url, generate_orders(1, 3))
    client(wc_url).get("orders")
    client(wc_url, secret="nope").get("orders")
    state = httpx.get(f"{wc_url}/_sandbox/state").json()
    assert len(state["sites"]["demo"]["orders"]) == 3
    counters = httpx.get(f"{wc_url}/_sandbox/counters").json()
    assert counters["by_endpoint"]["GET /wc/v3/orders"] == {"200": 1, "401": 1}
    assert counters["requests"] == 2 and counters["throttled"] == 0
    httpx.post(f"{wc_url}/_sandbox/reset").raise_for_status()
    assert httpx.get(f"{wc_url}/_sandbox/state").json() == {"sites": {}}


def test_list_params_break_the_signature_as_in_real_life(wc_url):
    # notes §4: requests re-encodes a list as repeated keys, PHP keeps the last one -> 401.
    seed(wc_url, generate_orders(1, 2))
    r = client(wc_url).get("orders", params={"status": ["processing", "completed"]})
    assert r.status_code == 401 and r.json()["message"] == "Invalid signature - provided signature does not match."


def test_fields_param_shrinks_the_payload(wc_url):
    seed(wc_url, generate_orders(1, 3))
    got = client(wc_url).get("orders", params={"_fields": "id,date_modified_gmt"}).json()
    assert all(set(o) == {"id", "date_modified_gmt"} for o in got)


# ---- refunds -----------------------------------------------------------------

def _refund(url: str, order_id: int, body: dict, site: str = "demo") -> httpx.Response:
    return httpx.post(f"{url}/_sandbox/sites/{site}/orders/{order_id}/refunds", json=body)


def test_refund_shows_on_order_and_refund_endpoints(wc_url):
    specs = [s for s in generate_orders(8, 40) if s["financial_status"] == "paid" and s["tax_rate"] != "0"]
    oid = seed(wc_url, specs[:1])["ids"][0]
    wcapi = client(wc_url)
    order = wcapi.get(f"orders/{oid}").json()
    line = order["line_items"][0]
    r = _refund(wc_url, oid, {"line_items": [{"id": line["id"], "quantity": 1}], "reason": "damaged",
                              "date_created_gmt": "2031-02-03T04:05:06Z"})
    assert r.status_code == 201, r.text
    refund_id = r.json()["id"]
    unit_total = Decimal(line["total"]) / line["quantity"]
    unit_tax = Decimal(line["total_tax"]) / line["quantity"]
    expected = (unit_total.quantize(Decimal("0.01")) + unit_tax.quantize(Decimal("0.01")))
    after = wcapi.get(f"orders/{oid}").json()
    assert after["refunds"] == [{"id": refund_id, "reason": "damaged", "total": f"-{expected:.2f}"}]
    assert after["date_modified_gmt"] == "2031-02-03T04:05:06" and after["total"] == order["total"]
    listed = wcapi.get(f"orders/{oid}/refunds").json()
    captured = fixture("wcdocs_v3_order_refund_726_create_retrieve_delete_response.json")
    assert len(listed) == 1 and set(listed[0]) == set(captured)
    assert listed[0]["amount"] == f"{expected:.2f}"
    rline = listed[0]["line_items"][0]
    assert rline["quantity"] == -1 and rline["total"].startswith("-")
    assert set(fixture("airbyte_unit-tests_refunds_response.json")[0]["line_items"][0]) <= set(rline)
    one = wcapi.get(f"orders/{oid}/refunds/{refund_id}")
    assert one.status_code == 200 and one.json()["_links"]["up"][0]["href"].endswith(f"/orders/{oid}")
    too_old = wcapi.get("refunds")  # the default site runs WooCommerce 8.9.3: /refunds came with 9.0
    assert too_old.status_code == 404 and too_old.json()["code"] == "rest_no_route"
    seed(wc_url, [], wc_version="9.0.0")
    everywhere = wcapi.get("refunds", params={"parent": oid + 1}).json()  # parent is ignored, as in WC
    assert [r["parent_id"] for r in everywhere] == [oid]
    assert wcapi.get("refunds", params={"include": refund_id + 1}).json() == []
    assert wcapi.get(f"orders/{refund_id}").status_code == 404   # a refund id is not an order


def test_full_refund_marks_order_refunded_and_over_refund_is_rejected(wc_url):
    specs = [s for s in generate_orders(8, 40) if s["financial_status"] == "paid"]
    oid = seed(wc_url, specs[:1])["ids"][0]
    total = client(wc_url).get(f"orders/{oid}").json()["total"]
    assert _refund(wc_url, oid, {"amount": str(Decimal(total) + 1)}).status_code == 400
    assert _refund(wc_url, oid, {"amount": total}).status_code == 201
    assert client(wc_url).get(f"orders/{oid}").json()["status"] == "refunded"
    assert httpx.get(f"{wc_url}/_sandbox/state").json()["sites"]["demo"]["refunds"][0]["amount"] == total


def test_injected_faults_answer_like_the_host_and_then_clear(wc_url):
    seed(wc_url, generate_orders(1, 2))
    httpx.post(f"{wc_url}/_sandbox/faults", json={"faults": [
        {"endpoint": "GET /wc/v3/orders", "status": 503, "retry_after": 3, "times": 1},
    ]}).raise_for_status()
    wcapi = client(wc_url)
    first = wcapi.get("orders")
    assert first.status_code == 503 and first.headers["Retry-After"] == "3"
    assert wcapi.get("orders").status_code == 200
    httpx.post(f"{wc_url}/_sandbox/faults", json={"faults": [{"endpoint": "orders", "status": 500}]})
    crash = wcapi.get("orders")
    assert crash.status_code == 500 and crash.json()["code"] == "internal_server_error"
    counters = httpx.get(f"{wc_url}/_sandbox/counters").json()["by_endpoint"]["GET /wc/v3/orders"]
    assert counters == {"503": 1, "200": 1, "500": 1}


def test_exclude_customer_and_search_filters(wc_url):
    ids = seed(wc_url, generate_orders(6, 30))["ids"]
    wcapi = client(wc_url)
    everything = wcapi.get("orders", params={"per_page": 100}).json()
    r = wcapi.get("orders", params={"exclude": f"{ids[0]},{ids[1]}", "per_page": 100})
    assert r.headers["X-WP-Total"] == "28"
    repeat = next(o for o in everything if o["customer_id"] and
                  sum(x["customer_id"] == o["customer_id"] for x in everything) > 1)
    mine = wcapi.get("orders", params={"customer": repeat["customer_id"]}).json()
    assert len(mine) > 1 and {o["customer_id"] for o in mine} == {repeat["customer_id"]}
    found = wcapi.get("orders", params={"search": repeat["billing"]["email"]}).json()
    assert {o["id"] for o in found} == {o["id"] for o in mine}
