"""WooCommerce emulator webhooks (notes §3): the REST resource driven by the
official ``woocommerce`` client, and deliveries received by a real HTTP server
on loopback (stdlib ``http.server`` in a thread)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn
from woocommerce import API

from sandbox.generator import generate_orders
from sandbox.woocommerce import hookshot

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "woocommerce"
CK, CS = "ck_webhooks0123456789abcdef0123456789abcdef", "cs_webhooks0123456789abcdef0123456789abcdef"
RO_CK, RO_CS = "ck_readonly0123456789abcdef0123456789abcdef", "cs_readonly0123456789abcdef0123456789abcdef"
SECRET = "s3cr3t & <more>"
UA = "WooCommerce/8.9.3 Hookshot (WordPress/6.5.3)"
ORDER_UPDATED_HOOKS = ["woocommerce_update_order", "woocommerce_order_refunded", "woocommerce_delete_order_refund"]


# ---- a receiver that records what WooCommerce sends --------------------------

class Receiver:
    """Answers ``/hook`` with 200, ``/status/<code>`` with that code and
    ``/slow/<seconds>`` after sleeping; records every request."""

    def __init__(self):
        self.hits: list[dict] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.cond:
                    outer.hits.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                    outer.cond.notify_all()
                status = 200
                if self.path.startswith("/status/"):
                    status = int(self.path.split("/")[2])
                elif self.path.startswith("/slow/"):
                    time.sleep(float(self.path.split("/")[2]))
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base + "/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def deliveries(self) -> list[dict]:
        return [h for h in self.hits if "X-WC-Webhook-Topic" in h["headers"]]

    def pings(self) -> list[dict]:
        return [h for h in self.hits if "X-WC-Webhook-Topic" not in h["headers"]]

    def wait(self, count: int, kind: str = "deliveries", timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(getattr(self, kind)()) < count and time.monotonic() < deadline:
                self.cond.wait(0.05)
        return getattr(self, kind)()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


# ---- the emulator --------------------------------------------------------------

class _OwnServer:
    """This emulator alone in a thread, if the shared sandbox does not start."""

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


@pytest.fixture(scope="module")
def _own_server():
    server = _OwnServer()
    yield server
    server.server.should_exit = True
    server.thread.join(timeout=10)


@pytest.fixture
def wc(request) -> str:
    """Base URL of a freshly reset WooCommerce emulator with site "demo" seeded
    with a read_write and a read key (no orders)."""
    try:
        url = request.getfixturevalue("sandbox").url("woocommerce")
    except RuntimeError as exc:   # another emulator is not importable right now
        warnings.warn(f"shared sandbox did not start, using the WooCommerce app alone: {exc}".splitlines()[0])
        url = request.getfixturevalue("_own_server").url
        httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    seed(url, [])
    return url


def seed(url: str, specs: list[dict]) -> list[int]:
    creds = [{"consumer_key": CK, "consumer_secret": CS},
             {"consumer_key": RO_CK, "consumer_secret": RO_CS, "permissions": "read"}]
    response = httpx.post(f"{url}/_sandbox/sites/demo/orders", json={"credentials": creds, "orders": specs}, timeout=30)
    response.raise_for_status()
    return response.json()["ids"]


def api(url: str, key: str = CK, secret: str = CS) -> API:
    return API(url=f"{url}/site/demo", consumer_key=key, consumer_secret=secret, version="wc/v3", timeout=30)


def control(url: str, method: str, path: str, **kwargs):
    response = httpx.request(method, f"{url}/_sandbox/{path}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def touch(url: str, order_id: int, **body):
    return control(url, "POST", f"sites/demo/orders/{order_id}/touch", json=body)


def hook_state(url: str, hook_id: int) -> dict:
    hooks = control(url, "GET", "state")["sites"]["demo"]["webhooks"]
    return next(h for h in hooks if h["id"] == hook_id)


def wait_log(url: str, predicate, timeout: float = 5.0) -> list[dict]:
    """Poll the delivery log until ``predicate(deliveries)`` holds and nothing is pending."""
    deadline = time.monotonic() + timeout
    while True:
        report = control(url, "GET", "sites/demo/webhooks/deliveries")
        log = [d for d in report["deliveries"] if d["kind"] == "delivery"]
        if (predicate(log) and not report["pending"]) or time.monotonic() > deadline:
            return log
        time.sleep(0.03)


def create_hook(url: str, topic: str, delivery_url: str, **extra) -> dict:
    r = api(url).post("webhooks", {"name": f"hook {topic}", "topic": topic, "delivery_url": delivery_url, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def specs(n: int, seed_value: int = 5) -> list[dict]:
    # Plain orders: the webhook tests do not depend on the generator's variety cases.
    return generate_orders(seed_value, n, variety=False)


# ---- REST resource ---------------------------------------------------------------

def test_webhook_crud_with_the_official_client(wc, receiver):
    wcapi = api(wc)
    r = wcapi.post("webhooks", {"name": "Order updated", "topic": "order.updated",
                                "delivery_url": receiver.url, "secret": SECRET, "status": "active"})
    assert r.status_code == 201, r.text
    created = r.json()
    shape = json.loads((FIXTURES / "wcdocs_v3_webhook_create_response.json").read_text())
    assert list(created) == list(shape) and "secret" not in r.text
    assert created["status"] == "active" and created["resource"] == "order" and created["event"] == "updated"
    assert created["hooks"] == ORDER_UPDATED_HOOKS and created["delivery_url"] == receiver.url
    assert created["date_modified"] is None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", created["date_created_gmt"])
    hook_url = f"{wc}/site/demo/wp-json/wc/v3/webhooks/{created['id']}"
    assert r.headers["Location"] == hook_url and created["_links"]["self"] == [{"href": hook_url}]
    # The ping answered 200, so the webhook was saved again: date_modified is now set.
    got = wcapi.get(f"webhooks/{created['id']}").json()
    assert got["date_modified_gmt"] is not None and "secret" not in got

    second = wcapi.post("webhooks", {"topic": "order.created", "delivery_url": receiver.url}).json()
    assert second["name"].startswith("Webhook created on ")
    listed = wcapi.get("webhooks")
    assert listed.headers["X-WP-Total"] == "2" and [w["id"] for w in listed.json()] == [second["id"], created["id"]]
    documented = json.loads((FIXTURES / "wcdocs_v3_webhooks_list_response.json").read_text())
    assert [list(w) for w in listed.json()] == [list(w) for w in documented]

    r = wcapi.put(f"webhooks/{created['id']}", {"status": "paused", "name": "Renamed"})
    assert r.status_code == 200 and r.json()["status"] == "paused" and r.json()["name"] == "Renamed"
    assert [w["id"] for w in wcapi.get("webhooks", params={"status": "paused"}).json()] == [created["id"]]

    r = wcapi.delete(f"webhooks/{created['id']}")
    assert r.status_code == 501 and r.json()["code"] == "woocommerce_rest_trash_not_supported"
    r = wcapi.delete(f"webhooks/{created['id']}", params={"force": True})
    assert r.status_code == 200 and r.json()["id"] == created["id"]
    r = wcapi.get(f"webhooks/{created['id']}")
    assert r.status_code == 400 and r.json()["code"] == "woocommerce_rest_shop_webhook_invalid_id"
    assert wcapi.delete(f"webhooks/{created['id']}", params={"force": True}).status_code == 404
    assert [w["id"] for w in wcapi.get("webhooks").json()] == [second["id"]]


def test_webhook_rest_errors_and_permissions(wc, receiver):
    wcapi = api(wc)
    r = api(wc, RO_CK, RO_CS).post("webhooks", {"topic": "order.created", "delivery_url": receiver.url})
    assert r.status_code == 401 and r.json()["message"] == "The API key provided does not have write permissions."
    assert api(wc, RO_CK, RO_CS).get("webhooks").status_code == 200
    r = requests.get(f"{wc}/site/demo/wp-json/wc/v3/webhooks", timeout=10)
    assert r.status_code == 401 and r.json()["code"] == "woocommerce_rest_cannot_view"
    r = wcapi.post("webhooks", {"topic": "order.shipped", "delivery_url": receiver.url})
    assert r.status_code == 400 and r.json()["code"] == "woocommerce_rest_shop_webhook_invalid_topic"
    r = wcapi.post("webhooks", {"topic": "order.created", "delivery_url": "ftp://example.com/x"})
    assert r.json()["code"] == "woocommerce_rest_shop_webhook_invalid_delivery_url"
    r = wcapi.post("webhooks", {"topic": "order.created"})
    assert r.status_code == 400 and r.json()["code"] == "rest_missing_callback_param"
    assert r.json()["data"]["params"] == ["delivery_url"]
    r = wcapi.post("webhooks", {"topic": "order.created", "delivery_url": receiver.url, "status": "on"})
    assert r.json()["code"] == "rest_invalid_param"
    assert r.json()["data"]["params"]["status"] == "status is not one of active, paused, and disabled."
    assert wcapi.get("webhooks").json() == []


# ---- ping -------------------------------------------------------------------------

def test_creation_pings_with_a_form_body_and_no_signature(wc, receiver):
    hook = create_hook(wc, "order.created", receiver.url, secret=SECRET)
    [ping] = receiver.wait(1, "pings")
    assert ping["body"] == f"webhook_id={hook['id']}".encode()
    assert ping["headers"]["User-Agent"] == UA
    assert ping["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert not [name for name in ping["headers"] if name.lower().startswith("x-wc-webhook")]
    assert hook_state(wc, hook["id"])["pending_delivery"] is False

    # A failing ping does not fail the creation; the webhook stays "pending delivery".
    failing = create_hook(wc, "order.created", receiver.base + "/status/500")
    state = hook_state(wc, failing["id"])
    assert state["status"] == "active" and state["pending_delivery"] is True and state["date_modified_gmt"] is None


# ---- deliveries ----------------------------------------------------------------------

def test_order_created_delivery_headers_signature_and_body(wc, receiver):
    hook = create_hook(wc, "order.created", receiver.url, secret=SECRET)
    order_specs = specs(2)
    order_specs[0]["customer"]["first_name"] = "Zoë"
    order_specs[0]["billing_address"]["first_name"] = "Zoë"
    ids = seed(wc, order_specs)
    got = receiver.wait(2)
    assert len(got) == 2
    for hit, order_id in zip(sorted(got, key=lambda h: json.loads(h["body"])["id"]), ids):
        headers, body = hit["headers"], hit["body"]
        assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == UA
        assert headers["X-WC-Webhook-Source"] == f"{wc}/site/demo/"
        assert (headers["X-WC-Webhook-Topic"], headers["X-WC-Webhook-Resource"], headers["X-WC-Webhook-Event"]) == \
            ("order.created", "order", "created")
        assert headers["X-WC-Webhook-ID"] == str(hook["id"])
        assert re.fullmatch(r"[0-9a-f]{32}", headers["X-WC-Webhook-Delivery-ID"])
        # The secret goes through wp_specialchars_decode only; "&" stays "&".
        assert headers["X-WC-Webhook-Signature"] == sign(body, SECRET)
        assert body == api(wc).get(f"orders/{order_id}").content   # byte for byte the REST object
        assert b"\\/wp-json\\/wc\\/v3\\/orders" in body and b" " not in body[:20]
    assert b"Zo\\u00eb" in next(h["body"] for h in got if json.loads(h["body"])["id"] == ids[0])
    log = wait_log(wc, lambda log: len(log) == 2)
    assert [(d["ok"], d["status"], d["topic"]) for d in log] == [(True, 200, "order.created")] * 2
    assert set(log[0]) >= {"url", "topic", "headers", "body", "status", "duration", "ok"}


def test_generated_secret_is_50_chars_never_returned_and_signs(wc, receiver):
    r = api(wc).post("webhooks", {"topic": "order.created", "delivery_url": receiver.url})
    assert r.status_code == 201 and "secret" not in r.json()
    secret = hook_state(wc, r.json()["id"])["secret"]
    assert len(secret) == 50
    seed(wc, specs(1))
    [hit] = receiver.wait(1)
    assert hit["headers"]["X-WC-Webhook-Signature"] == sign(hit["body"], secret)


def test_rapid_updates_coalesce_into_one_delivery_of_the_latest_state(wc, receiver):
    a, b = seed(wc, specs(2))
    # A window far longer than three local requests take even on a loaded 2-core machine (0.4 s was not).
    control(wc, "POST", "sites/demo/webhooks/config", json={"delay_seconds": 1.5})
    create_hook(wc, "order.updated", receiver.url, secret=SECRET)
    touch(wc, a, status="processing")
    touch(wc, a, status="completed")
    touch(wc, a, status="on-hold")
    touch(wc, b)
    got = sorted(receiver.wait(2), key=lambda h: json.loads(h["body"])["id"])
    time.sleep(0.2)
    assert len(receiver.deliveries()) == 2
    assert [json.loads(h["body"])["id"] for h in got] == [a, b]
    assert json.loads(got[0]["body"])["status"] == "on-hold"   # built when sent, not at the event
    # A refund fires woocommerce_order_refunded and woocommerce_update_order: still one delivery.
    line = api(wc).get(f"orders/{a}").json()["line_items"][0]
    control(wc, "POST", f"sites/demo/orders/{a}/refunds", json={"line_items": [{"id": line["id"], "quantity": 1}]})
    got = receiver.wait(3)
    time.sleep(0.5)
    assert len(receiver.deliveries()) == 3 and json.loads(got[2]["body"])["refunds"]


def test_seventh_consecutive_failure_disables_and_put_reenables(wc, receiver):
    with socket.socket() as sock:   # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    ids = seed(wc, specs(9))
    hook = create_hook(wc, "order.updated", dead)
    for n, order_id in enumerate(ids[:6], start=1):
        touch(wc, order_id)
        log = wait_log(wc, lambda log, n=n: len(log) == n)
        assert log[-1]["ok"] is False and log[-1]["error"] == "http_request_failed"
        assert hook_state(wc, hook["id"])["failure_count"] == n
    assert hook_state(wc, hook["id"])["status"] == "active"
    touch(wc, ids[6])
    wait_log(wc, lambda log: len(log) == 7)
    state = hook_state(wc, hook["id"])
    assert state["status"] == "disabled" and state["failure_count"] == 6
    touch(wc, ids[7])
    time.sleep(0.3)
    assert len(wait_log(wc, lambda log: True)) == 7          # disabled: nothing queued

    r = api(wc).put(f"webhooks/{hook['id']}", {"status": "active", "delivery_url": receiver.url})
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert receiver.wait(1, "pings")                          # the new URL is pinged
    # Re-enabling does not reset failure_count (only a successful delivery does).
    assert hook_state(wc, hook["id"])["failure_count"] == 6
    touch(wc, ids[8])
    [hit] = receiver.wait(1)
    assert json.loads(hit["body"])["id"] == ids[8]
    wait_log(wc, lambda log: len(log) == 8)
    assert hook_state(wc, hook["id"])["failure_count"] == 0


def test_timeouts_and_codes_count_as_failures_and_302_as_success(wc, receiver):
    control(wc, "POST", "sites/demo/webhooks/config", json={"timeout_seconds": 0.3, "ping_timeout_seconds": 0.3})
    [order_id] = seed(wc, specs(1))
    hook = create_hook(wc, "order.updated", receiver.base + "/slow/0.8")
    outcomes = []
    for path in ("/slow/0.8", "/status/302", "/status/500", "/status/201", "/status/404"):
        api(wc).put(f"webhooks/{hook['id']}", {"delivery_url": receiver.base + path})
        touch(wc, order_id)
        expected = len(outcomes) + 1
        log = wait_log(wc, lambda log, n=expected: len(log) == n)
        outcomes.append((log[-1]["ok"], log[-1]["status"], hook_state(wc, hook["id"])["failure_count"]))
    assert outcomes == [(False, None, 1), (True, 302, 0), (False, 500, 1), (True, 201, 0), (False, 404, 1)]


def test_trash_sends_order_deleted_with_only_the_id_and_untrash_order_restored(wc, receiver):
    a, _ = seed(wc, specs(2))
    deleted = create_hook(wc, "order.deleted", receiver.url, secret=SECRET)
    create_hook(wc, "order.restored", receiver.url, secret=SECRET)
    create_hook(wc, "order.created", receiver.url, secret=SECRET)
    status_before = api(wc).get(f"orders/{a}").json()["status"]
    control(wc, "DELETE", f"sites/demo/orders/{a}")
    [hit] = receiver.wait(1)
    assert hit["body"] == f'{{"id":{a}}}'.encode() and hit["headers"]["X-WC-Webhook-Event"] == "deleted"
    assert hit["headers"]["X-WC-Webhook-ID"] == str(deleted["id"])
    assert hit["headers"]["X-WC-Webhook-Signature"] == sign(hit["body"], SECRET)
    assert api(wc).get(f"orders/{a}").json()["status"] == "trash"
    assert a not in [o["id"] for o in api(wc).get("orders").json()]
    control(wc, "POST", f"sites/demo/orders/{a}/untrash")
    got = receiver.wait(2)
    assert got[1]["headers"]["X-WC-Webhook-Topic"] == "order.restored"
    assert json.loads(got[1]["body"])["status"] == status_before
    assert got[1]["body"] == api(wc).get(f"orders/{a}").content
    time.sleep(0.2)
    assert len(receiver.deliveries()) == 2


def test_drop_rate_one_drops_every_delivery(wc, receiver):
    control(wc, "POST", "sites/demo/webhooks/config", json={"drop_rate": 1.0})
    create_hook(wc, "order.created", receiver.url)
    seed(wc, specs(3))
    log = wait_log(wc, lambda log: len(log) == 3)
    assert [d["dropped"] for d in log] == [True] * 3
    assert receiver.deliveries() == [] and len(receiver.pings()) == 1


def test_paused_webhooks_and_draft_orders_do_not_deliver(wc, receiver):
    a, b = seed(wc, specs(2))
    hook = create_hook(wc, "order.updated", receiver.url)
    touch(wc, a, status="auto-draft")
    api(wc).put(f"webhooks/{hook['id']}", {"status": "paused"})
    touch(wc, b)
    time.sleep(0.3)
    assert wait_log(wc, lambda log: True) == [] and receiver.deliveries() == []


def test_reset_forgets_webhooks_deliveries_and_config(wc, receiver):
    control(wc, "POST", "sites/demo/webhooks/config", json={"delay_seconds": 5})
    create_hook(wc, "order.created", receiver.url)
    seed(wc, specs(1))
    assert control(wc, "GET", "sites/demo/webhooks/deliveries")["pending"]
    control(wc, "POST", "reset")
    seed(wc, [])
    assert api(wc).get("webhooks").json() == []
    report = control(wc, "GET", "sites/demo/webhooks/deliveries")
    assert report["deliveries"] == [] and report["pending"] == [] and report["config"]["delay_seconds"] == 0


def test_delivery_id_is_the_same_within_one_second():
    # wp_hash(webhook_id . time()): notes §3 warn it is not unique.
    assert hookshot.delivery_id(7, "salt", now=1000.1) == hookshot.delivery_id(7, "salt", now=1000.9)
    assert hookshot.delivery_id(7, "salt", now=1000.9) != hookshot.delivery_id(7, "salt", now=1001.0)
    assert hookshot.delivery_id(7, "salt", now=1000.1) != hookshot.delivery_id(8, "salt", now=1000.1)
