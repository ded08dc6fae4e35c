"""The admin dashboard (docs/dashboard.md): every page and API call needs the admin token, a replay
posted from another origin is refused and changes nothing, a dry run changes nothing, a replay from
the page books the fixed invoice exactly once, and no configured secret ever appears in an answer."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import pytest
from pydantic import BaseModel, SecretStr
from starlette.routing import Route
from starlette.testclient import TestClient

from connector.config import load_config
from connector.dashboard import create_dashboard_app, dashboard_server
from connector.dashboard.auth import SESSION_COOKIE
from connector.errors import ConfigError
from connector.ledger import Ledger
from sandbox.seed import REALM, SHOP
from tests.test_replay_dry_run import GHOST, fix_item_map, ghost_shop, ledger_dump, steps, sync

TOKEN = "dashboard-test-token-0123456789abcdef"
BASE = "http://127.0.0.1:8720"
EVIL = "http://evil.example"
PUBLIC = {"/login", "/healthz", "/readyz"}


@pytest.fixture
def world(sandbox, tmp_path, monkeypatch):
    """A shop with one order of ``GHOST`` synced: its invoice is dead. The config has a dashboard section."""
    path = ghost_shop(sandbox, tmp_path)
    path.write_text(path.read_text() + "\ndashboard:\n  admin_token: ${O2C_TEST_ADMIN_TOKEN}\n")
    monkeypatch.setenv("O2C_TEST_ADMIN_TOKEN", TOKEN)
    sync(path)
    return path


def client_for(config_path) -> TestClient:
    settings = load_config(config_path)
    return TestClient(create_dashboard_app(settings, settings.ledger_path), base_url=BASE, follow_redirects=False)


def logged_in(config_path) -> TestClient:
    client = client_for(config_path)
    answer = client.post("/login", data={"token": TOKEN, "next": "/failures"})
    assert answer.status_code == 303 and answer.headers["location"] == "/failures"
    return client


def csrf_of(client: TestClient) -> str:
    page = client.get("/failures")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)


def invoices(sandbox) -> list[dict]:
    return sandbox.state("quickbooks")["companies"][REALM]["Invoice"]


def order_key(config_path) -> str:
    """The key of the world's one order (``store:<the store's order id>``)."""
    (key,) = {row["order_key"] for row in steps(config_path).values()}
    return key


def concrete(path: str, config_path) -> str:
    return path.replace("{key}", order_key(config_path)).replace("{finding_id}", "1")


# -- auth --------------------------------------------------------------------------------------

def test_every_page_and_api_route_answers_401_without_the_token_or_with_a_wrong_one(world):
    client = client_for(world)
    app_routes = [r for r in client.app.routes if isinstance(r, Route)]
    checked = 0
    for route in app_routes:
        if route.path in PUBLIC:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            path = concrete(route.path, world)
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Bearer {TOKEN}x"},
                            {"Cookie": f"{SESSION_COOKIE}=1.abc.def"}):
                answer = client.request(method, path, headers=headers)
                assert answer.status_code == 401, (method, path, headers, answer.text[:200])
                assert TOKEN not in answer.text
            checked += 1
    assert checked >= 15
    # Pages answer with the login form (status 401), the API with JSON.
    page = client.get("/orders")
    assert 'id="token"' in page.text and 'id="login"' in page.text and 'value="/orders"' in page.text
    assert client.get("/api/overview").json()["error"].startswith("authentication required")
    # An unknown path too: nothing is said about what exists before the token.
    assert client.get("/no-such-page").status_code == 401


def test_login_sets_an_httponly_strict_cookie_that_is_not_the_token(world):
    client = client_for(world)
    wrong = client.post("/login", data={"token": "nope", "next": "/"})
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
    answer = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace(
        "Strict", "strict")
    assert TOKEN not in cookie
    overview = client.get("/")
    assert overview.status_code == 200 and 'id="nav-failures"' in overview.text
    assert "chart-daily" in overview.text and 'id="queue"' in overview.text
    # A login posted from another site is refused.
    assert client_for(world).post("/login", data={"token": TOKEN}, headers={"Origin": EVIL}).status_code == 403


def test_healthz_readyz_and_metrics(world, tmp_path):
    client = client_for(world)
    assert client.get("/healthz").text == "ok\n"
    assert client.get("/readyz").status_code == 200
    settings = load_config(world)
    fresh = TestClient(create_dashboard_app(settings, tmp_path / "missing.db"), base_url=BASE)
    assert fresh.get("/readyz").status_code == 503
    assert client.get("/metrics").status_code == 401
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert "# TYPE o2c_queue_steps gauge" in text
    assert 'o2c_queue_steps{system="quickbooks",state="dead"} 1' in text
    assert 'o2c_problem_steps{state="dead",kind="quickbooks.invoice"} 1' in text
    assert re.search(r'^o2c_alerts\{severity="critical"\} [1-9]', text, re.M)


def test_a_foreign_host_name_is_refused(world):
    client = TestClient(client_for(world).app, base_url="http://rebound.example:8720")
    assert client.get("/healthz").status_code == 421


# -- cross-site requests ----------------------------------------------------------------------

def test_a_replay_posted_from_another_origin_is_refused_and_requeues_nothing(world):
    client = logged_in(world)
    csrf = csrf_of(client)
    dead_id = steps(world)["quickbooks.invoice"]["id"]
    before = ledger_dump(world)
    attempts = [
        ("/failures", {"data": {"csrf_token": csrf, "action": "replay", "step_ids": str(dead_id)},
                       "headers": {"Origin": EVIL}}),
        ("/failures", {"data": {"csrf_token": csrf, "action": "replay", "step_ids": str(dead_id)},
                       "headers": {"Referer": f"{EVIL}/attack.html"}}),
        ("/api/replay", {"json": {"step_ids": [dead_id]}, "headers": {"Origin": EVIL, "X-CSRF-Token": csrf}}),
        ("/api/replay", {"json": {"step_ids": [dead_id]},
                         "headers": {"Origin": EVIL, "Authorization": f"Bearer {TOKEN}"}}),
        ("/api/replay", {"json": {"step_ids": [dead_id]}, "headers": {"Origin": "null", "X-CSRF-Token": csrf}}),
        # Same origin, but no CSRF token / a wrong one / no Origin nor Referer at all.
        ("/failures", {"data": {"action": "replay", "step_ids": str(dead_id)}, "headers": {"Origin": BASE}}),
        ("/api/replay", {"json": {"step_ids": [dead_id]}, "headers": {"Origin": BASE, "X-CSRF-Token": "0" * 64}}),
        ("/api/replay", {"json": {"step_ids": [dead_id]}, "headers": {"X-CSRF-Token": csrf}}),
    ]
    for path, kwargs in attempts:
        answer = client.post(path, **kwargs)
        assert answer.status_code == 403, (path, kwargs, answer.text[:300])
        assert "nothing was done" in answer.text
    assert "cross-site request refused" in client.post("/api/replay", json={}, headers={"Origin": EVIL}).text
    assert ledger_dump(world) == before
    assert steps(world)["quickbooks.invoice"]["state"] == "dead"


# -- dry run, replay, the order page ----------------------------------------------------------

def test_dry_run_changes_nothing_then_replay_from_the_page_books_the_invoice_once(sandbox, world):
    fix_item_map(world)
    client = logged_in(world)
    csrf = csrf_of(client)
    failures = client.get("/failures?state=dead&system=quickbooks")
    assert failures.status_code == 200
    row = re.search(r'<tr data-order-key="([^"]+)" data-step="quickbooks.invoice" data-step-id="(\d+)"', failures.text)
    assert row, failures.text
    key, step_id = row.groups()
    assert 'class="dry-run"' in failures.text and 'class="replay"' in failures.text
    assert "quickbooks.item_map" in failures.text  # what to do

    before_ledger, before_books = ledger_dump(world), sandbox.state("quickbooks")
    headers = {"Origin": BASE}
    dry = client.post("/failures", data={"csrf_token": csrf, "action": "dry-run", "step_ids": step_id,
                                         "state": "dead", "system": "quickbooks"}, headers=headers)
    assert dry.status_code == 200, dry.text
    assert 'id="dry-run-result"' in dry.text and 'data-verdict="would send"' in dry.text
    assert "Line[0].SalesItemLineDetail.ItemRef" in dry.text  # field by field
    api_dry = client.post("/api/dry-run", json={"step_ids": [int(step_id)]},
                          headers={"Origin": BASE, "X-CSRF-Token": csrf}).json()
    assert [s["verdict"] for s in api_dry["steps"]] == ["would send"]
    assert ledger_dump(world) == before_ledger
    assert sandbox.state("quickbooks") == before_books

    replayed = client.post("/failures", data={"csrf_token": csrf, "action": "replay", "step_ids": step_id,
                                              "state": "dead", "system": "quickbooks"}, headers=headers)
    assert replayed.status_code == 200, replayed.text
    assert 'id="replay-result"' in replayed.text
    assert steps(world)["quickbooks.invoice"]["state"] == "done"
    booked = [i for i in invoices(sandbox) if i["DocNumber"].endswith("1001")]
    assert len(booked) == 1

    # Again, by API with the bearer token (a script): nothing is selected, nothing booked twice.
    again = client.post("/api/replay", json={"step_ids": [int(step_id)]},
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert again["selected"] == 0
    assert len([i for i in invoices(sandbox) if i["DocNumber"].endswith("1001")]) == 1

    order = client.get(f"/orders/{key}")
    assert order.status_code == 200
    assert re.search(r'id="order-state"[^>]*>done<', order.text)
    assert order.text.count('data-testid="event"') >= 3
    detail = client.get(f"/api/orders/{key}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert detail["state"] == "done"
    invoice_events = [e for e in detail["events"] if e["step"] == "quickbooks.invoice"]
    outcomes = [e["outcome"] for e in invoice_events]
    assert "dead" in outcomes and "done" in outcomes and any(e["kind"] == "replay" for e in invoice_events)
    assert any(d["kind"] == "invoice" and d["doc_number"] for d in detail["documents"])


def test_group_replay_and_api_failures(world):
    client = logged_in(world)
    data = client.get("/api/failures", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    (group,) = data["groups"]
    assert (group["state"], group["step"], group["count"]) == ("dead", "quickbooks.invoice", 1)
    assert group["steps"][0]["order_key"] == order_key(world) and "o2c replay" in group["replay"]
    # Without the fix the dry run of the group says it would fail again, and why.
    csrf = csrf_of(client)
    dry = client.post("/api/dry-run", json={"group": group["id"]}, headers={"Origin": BASE, "X-CSRF-Token": csrf})
    assert dry.status_code == 200
    (step,) = dry.json()["steps"]
    assert step["verdict"] == "would fail" and GHOST in step["message"]
    assert client.get("/api/failures?state=bogus", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400
    held = client.get("/failures?state=held&system=hubspot")
    assert held.status_code == 200 and "Nothing failed." in held.text


def test_orders_search_filters(world):
    client = client_for(world)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    found = client.get("/api/orders", headers=auth).json()
    assert found["total"] == 1 and found["orders"][0]["state"] == "dead"
    assert client.get("/api/orders?state=done", headers=auth).json()["total"] == 0
    assert client.get("/api/orders?min_total=25&max_total=25.00", headers=auth).json()["total"] == 1
    assert client.get("/api/orders?min_total=25.01", headers=auth).json()["total"] == 0
    email = found["orders"][0]["customer"]["email"]
    assert client.get(f"/api/orders?customer={email[:4].upper()}", headers=auth).json()["total"] == 1
    assert client.get("/api/orders?customer=nobody-like-this", headers=auth).json()["total"] == 0
    assert client.get("/api/orders?since=2000-01-01&until=2999-12-31", headers=auth).json()["total"] == 1
    assert client.get("/api/orders?since=2999-01-01", headers=auth).json()["total"] == 0
    assert client.get(f"/api/orders?store={SHOP}", headers=auth).json()["total"] == 1
    assert client.get("/api/orders?min_total=abc", headers=auth).status_code == 400
    page = client.get("/orders?state=dead", headers=auth)
    assert page.status_code == 200 and f'href="/orders/{order_key(world)}"' in page.text
    assert client.get("/api/orders/nope:1", headers=auth).status_code == 404


def test_findings_list_and_accept(world):
    settings = load_config(world)
    ledger = Ledger(settings.ledger_path)
    try:
        from connector.findings import start_run
        from connector.ledger import utcnow
        run_id = start_run(ledger, SHOP, utcnow(), utcnow(), None, False)
        ledger.conn.execute(
            "INSERT INTO findings (run_id, store, order_key, system, kind, subject, detail, proposed_action, safe,"
            " status, first_seen_at, last_seen_at) VALUES (?, ?, ?, 'quickbooks', 'changed_in_target', "
            "'quickbooks.invoice', '{\"text\": \"amount differs\"}', 'check the invoice', 0, 'open', 'x', 'x')",
            (run_id, SHOP, order_key(world)))
        finding_id = ledger.conn.execute("SELECT MAX(id) FROM findings").fetchone()[0]
    finally:
        ledger.close()
    client = logged_in(world)
    listed = client.get("/api/findings").json()["findings"]
    assert [f["id"] for f in listed] == [finding_id] and listed[0]["proposed_action"] == "check the invoice"
    page = client.get("/findings")
    assert "amount differs" in page.text and 'class="accept"' in page.text
    csrf = csrf_of(client)
    assert client.post(f"/api/findings/{finding_id}/accept", headers={"Origin": EVIL, "X-CSRF-Token": csrf}
                       ).status_code == 403
    accepted = client.post(f"/api/findings/{finding_id}/accept", headers={"Origin": BASE, "X-CSRF-Token": csrf})
    assert accepted.json() == {"id": finding_id, "accepted": True}
    assert client.get("/api/findings").json()["findings"] == []


# -- secrets and the API description -----------------------------------------------------------

def _secrets(model) -> list[str]:
    found = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for item in items:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
            elif isinstance(item, BaseModel):
                found += _secrets(item)
    return found


def test_no_configured_secret_appears_in_any_page_or_api_answer(world):
    settings = load_config(world)
    secrets = [s for s in _secrets(settings) if len(s) >= 6]
    assert TOKEN in secrets and len(secrets) >= 5
    client = logged_in(world)
    csrf = csrf_of(client)
    key = order_key(world)
    answers = [client.get(path) for path in ("/", "/?receivables=1", "/orders", f"/orders/{key}", "/failures",
                                             "/failures?state=all", "/findings?status=all", "/metrics",
                                             "/api/overview", "/api/orders", f"/api/orders/{key}",
                                             "/api/failures", "/api/findings?status=all", "/api/openapi.json",
                                             "/login", "/healthz", "/readyz")]
    answers.append(client.post("/api/dry-run", json={"states": ["dead"]}, headers={"Origin": BASE, "X-CSRF-Token": csrf}))
    for answer in answers:
        assert answer.status_code == 200, (answer.url, answer.text[:300])
        for secret in secrets:
            assert secret not in answer.text, (answer.url, "leaks a configured secret")


def test_openapi_document_lists_every_api_route(world):
    client = logged_in(world)
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    api = {(r.path, m.lower()) for r in client.app.routes if isinstance(r, Route) and r.path.startswith("/api/")
           for m in r.methods - {"HEAD"}}
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert api == described


# -- configuration and serving -----------------------------------------------------------------

def test_admin_token_must_be_a_reference_and_long_enough(world, monkeypatch):
    text = world.read_text()
    world.write_text(text.replace("${O2C_TEST_ADMIN_TOKEN}", "in-clear-token-0123456789"))
    with pytest.raises(ConfigError, match="dashboard.admin_token"):
        load_config(world)
    world.write_text(text)
    monkeypatch.setenv("O2C_TEST_ADMIN_TOKEN", "short")
    with pytest.raises(ConfigError, match="too short"):
        load_config(world)
    monkeypatch.setenv("O2C_TEST_ADMIN_TOKEN", TOKEN)
    settings = load_config(world)
    assert (settings.dashboard.host, settings.dashboard.port) == ("127.0.0.1", 8720)


def test_served_by_uvicorn_on_loopback(world):
    settings = load_config(world)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = dashboard_server(settings, port=port)
    server.install_signal_handlers = lambda: None
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/api/overview", timeout=5).status_code == 401
        answer = httpx.get(f"{base}/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert answer.status_code == 200 and answer.json()["status"]["queue"]["systems"]["quickbooks"]["counts"][
            "dead"] == 1
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_daemon_serves_the_dashboard_when_configured(world):
    from types import SimpleNamespace

    from connector.daemon import _start_dashboard_server
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    world.write_text(world.read_text() + f"  port: {port}\n")
    settings = load_config(world)
    assert _start_dashboard_server(SimpleNamespace(settings=settings.model_copy(update={"dashboard": None}))) is None
    server = _start_dashboard_server(SimpleNamespace(settings=settings))
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 401
    finally:
        server.should_exit = True
