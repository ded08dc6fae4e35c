"""The admin dashboard in a real browser (Debian's headless Chromium under Playwright), against the
real daemon and the sandbox: log in, overview, failures filtered to dead, dry-run the dead invoice,
replay it, the order done; and a page from another origin cannot make it replay anything.

The scenario is test_replay_dry_run.py's: an order of a SKU QuickBooks has no item for, and no
``default_item``, leaves its invoice step dead; ``quickbooks.item_map`` fixes the cause.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest

from connector.config import load_config
from sandbox.seed import REALM
from tests.webhook_support import free_port
from tests.conftest import ROOT
from tests.test_replay_dry_run import GHOST, MAPPED, fix_item_map, ghost_shop, sync

ADMIN_TOKEN = "browser-test-admin-token-0123456789"
INVOICE = "quickbooks.invoice"
DOC_NUMBER = "DS-1001"


def invoice_step(config) -> dict:
    conn = sqlite3.connect(load_config(config).ledger_path, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        (row,) = conn.execute("SELECT * FROM steps WHERE step = ?", (INVOICE,)).fetchall()
        return dict(row)
    finally:
        conn.close()


def booked_invoices(sandbox) -> list[dict]:
    return [i for i in sandbox.state("quickbooks")["companies"][REALM]["Invoice"] if i["DocNumber"] == DOC_NUMBER]


class Dashboard:
    def __init__(self, url: str, config, proc: subprocess.Popen, log):
        self.url, self.config, self.proc, self.log = url, config, proc, log


@pytest.fixture
def dashboard(sandbox, tmp_path, monkeypatch):
    """The daemon serving the dashboard, over a ledger whose one order has a dead invoice (cause fixed)."""
    config = ghost_shop(sandbox, tmp_path)
    sync(config)
    dead = invoice_step(config)
    assert dead["state"] == "dead" and GHOST in dead["error"], dead

    # The merchant maps the SKU and (re)starts the daemon, now with the dashboard on.
    port = free_port()
    monkeypatch.setenv("O2C_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    fix_item_map(config)
    text = config.read_text() + ("reconcile_hours: 0\n"  # nothing but the dashboard may requeue the dead step
             "dashboard:\n"
             "  host: 127.0.0.1\n"
             f"  port: {port}\n"
             "  admin_token: ${O2C_TEST_ADMIN_TOKEN}\n")
    config.write_text(text)
    log = open(tmp_path / "daemon.log", "w")
    proc = subprocess.Popen([sys.executable, "sync.py", "daemon", "--config", str(config), "--worker-seconds", "0.5"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the dashboard did not start:\n" + (tmp_path / "daemon.log").read_text())
        time.sleep(0.1)
    yield Dashboard(url, config, proc, tmp_path / "daemon.log")
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    assert proc.returncode == 0, "the daemon did not stop cleanly:\n" + (tmp_path / "daemon.log").read_text()


def log_in(page, dashboard, shot=None) -> None:
    page.goto(dashboard.url + "/")
    page.wait_for_selector("#token")
    if shot:
        shot("login")
    page.fill("#token", ADMIN_TOKEN)
    page.click("#login")
    page.wait_for_selector("#nav-overview")


def test_log_in_find_the_dead_invoice_dry_run_it_replay_it_and_see_the_order_done(sandbox, dashboard, page, shot):
    before = invoice_step(dashboard.config)

    # Log in with the admin token; the overview.
    log_in(page, dashboard, shot)
    page.click("#nav-overview")
    page.wait_for_load_state()
    body = page.inner_text("body")
    assert "dead" in body.lower()
    shot("overview")

    # The failures, filtered to dead: the invoice's row.
    page.click("#nav-failures")
    page.wait_for_selector("#filter-state")
    page.select_option("#filter-state", "dead")
    with page.expect_navigation():
        page.click("#apply-filter")
    assert "state=dead" in page.url
    row = page.locator(f'tr[data-order-key][data-step="{INVOICE}"][data-step-id]')
    assert row.count() == 1
    assert GHOST in row.inner_text() and "dead" in row.inner_text()
    assert page.locator("tr[data-order-key][data-step][data-step-id]").count() == 1  # only the invoice is dead
    shot("failures-dead")

    # Dry run: the invoice it would create, field by field; nothing changes.
    with page.expect_navigation():
        row.locator(".dry-run").click()
    shown = page.inner_text("#dry-run-result")
    assert f"would create Invoice {DOC_NUMBER}" in shown, shown
    mug = next(i for i in sandbox.state("quickbooks")["companies"][REALM]["Item"] if i["Name"] == MAPPED)
    fields = {tds[0]: tds[1:] for tds in page.locator("#dry-run-result tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.innerText.trim()))")}
    assert fields["Line[0].SalesItemLineDetail.ItemRef.value"][0] == str(mug["Id"]), fields
    assert Decimal(fields["Line[0].Amount"][0]) == Decimal("20.00"), fields
    assert fields["DocNumber"][0] == DOC_NUMBER
    assert page.locator('#dry-run-result .dry-run-step[data-verdict="would send"]').count() == 1
    shot("dry-run")
    assert invoice_step(dashboard.config) == before
    assert booked_invoices(sandbox) == []

    # Replay: booked once.
    page.on("dialog", lambda dialog: dialog.accept())  # a confirm() before the replay, if there is one
    with page.expect_navigation():
        page.locator(f'tr[data-order-key][data-step="{INVOICE}"][data-step-id] .replay').click()
    replayed = page.locator(f'#replay-result tr[data-step="{INVOICE}"]')
    assert "done" in replayed.inner_text(), page.inner_text("#replay-result")
    shot("replayed")
    (booked,) = booked_invoices(sandbox)
    assert booked["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == str(mug["Id"])
    assert Decimal(str(booked["TotalAmt"])) == Decimal("25.00")
    assert invoice_step(dashboard.config)["state"] == "done"

    # The order's page says done.
    order_key = before["order_key"]
    page.click("#nav-orders")
    page.wait_for_selector("#orders")
    with page.expect_navigation():
        page.locator(f'#orders tr[data-order-key="{order_key}"] a').first.click()
    assert page.inner_text("#order-state").strip() == "done"
    assert DOC_NUMBER in page.inner_text("body") or booked["Id"] in page.inner_text("body")
    shot("order-done")
    assert len(booked_invoices(sandbox)) == 1


def test_a_page_from_another_origin_cannot_replay_through_the_logged_in_browser(
        sandbox, dashboard, page, shot, static_site):
    log_in(page, dashboard)
    before = invoice_step(dashboard.config)
    # The session's CSRF token, as if it had leaked: the Origin check alone must refuse.
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert csrf
    replay_url = f"{dashboard.url}/failures"
    fields = {"csrf_token": csrf, "step_ids": str(before["id"]), "state": "dead", "system": "all", "action": "replay"}
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items() if k != "action")
    # Same site (127.0.0.1), another origin (another port): the browser sends the session cookie along.
    evil = static_site({"/": f"""<!doctype html><title>prize</title>
<form id="f" method="post" action="{replay_url}">{inputs}
  <button id="go" name="action" value="replay">Claim your prize</button>
</form>
<p id="fetched">not yet</p>
<script>
  async function viaFetch() {{
    try {{
      const r = await fetch({json.dumps(replay_url)}, {{method: "POST", credentials: "include", mode: "no-cors",
        body: new URLSearchParams({json.dumps(fields)})}});
      document.getElementById("fetched").textContent = "sent: " + r.type;
    }} catch (e) {{ document.getElementById("fetched").textContent = "error: " + e; }}
  }}
</script>"""})
    page.goto(evil.url + "/")
    with page.expect_response(lambda r: r.url == replay_url and r.request.method == "POST") as fetched:
        page.evaluate("viaFetch()")
    assert fetched.value.status == 403
    assert page.inner_text("#fetched") == "sent: opaque"
    shot("evil-page-fetched")
    with page.expect_response(lambda r: r.url == replay_url and r.request.method == "POST") as posted:
        page.click("#go")
    assert posted.value.status == 403
    # The browser did send the session cookie (same site): what refused it is the Origin check.
    assert "o2c_session=" in posted.value.request.all_headers().get("cookie", "")
    page.wait_for_load_state()
    assert "cross-site request refused" in page.inner_text("body")
    shot("refused")

    time.sleep(2)  # four worker ticks of the daemon: nothing was requeued for it to run
    assert invoice_step(dashboard.config) == before
    assert booked_invoices(sandbox) == []
