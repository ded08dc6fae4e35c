"""QuickBooks tokens: rotation kept, one refresh at a time, invalid_grant pauses, reconnect resumes.

Pain point 1 of peers.md (refresh-token rotation ending in invalid_grant and
forced re-authorisation) is what these guard against.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import httpx

from adapters.quickbooks_auth import TokenVault
from connector.composition import build_runners, build_sources
from connector.config import load_config
from connector.demo import write_config
from connector.engine import sync_pass
from connector.ledger import Ledger, iso
from sandbox.seed import CREDENTIALS, seed
from tests.conftest import ROOT


def settings_for(sandbox, tmp_path, orders: int = 0):
    return load_config(write_config(tmp_path, seed(sandbox.urls, orders=orders, seed_value=5)))


def age_access_token(ledger: Ledger, realm: str) -> None:
    ledger.conn.execute("UPDATE tokens SET access_expires_at = ? WHERE system='quickbooks' AND account=?",
                        (iso(datetime.now(timezone.utc) - timedelta(minutes=1)), realm))


def refreshes(sandbox) -> int:
    return sandbox.state("quickbooks")["oauth"]["refreshes"]


def test_rotated_refresh_token_is_kept_and_wins_over_the_config(sandbox, tmp_path):
    settings = settings_for(sandbox, tmp_path)
    ledger = Ledger(settings.ledger_path)
    TokenVault(settings.quickbooks, ledger).access_token()
    first = ledger.token("quickbooks", settings.quickbooks.realm_id)["refresh_token"]
    assert first != CREDENTIALS["quickbooks"]["refresh_token"]  # Intuit rotated it; we kept the new one
    age_access_token(ledger, settings.quickbooks.realm_id)
    TokenVault(settings.quickbooks, ledger).access_token()  # a new process: config still has the first token
    second = ledger.token("quickbooks", settings.quickbooks.realm_id)["refresh_token"]
    assert second not in (first, CREDENTIALS["quickbooks"]["refresh_token"])
    assert refreshes(sandbox) == 2


def test_two_workers_needing_a_token_at_once_refresh_only_once(sandbox, tmp_path):
    settings = settings_for(sandbox, tmp_path)
    Ledger(settings.ledger_path).close()
    before = refreshes(sandbox)
    tokens, start = [], threading.Barrier(4)

    def worker():
        ledger = Ledger(settings.ledger_path)  # its own connection, as another process would have
        start.wait()
        tokens.append(TokenVault(settings.quickbooks, ledger).access_token())
        ledger.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 4 and len(set(tokens)) == 1
    assert refreshes(sandbox) - before == 1


def test_invalid_grant_pauses_quickbooks_without_spending_retries_and_reconnect_resumes(sandbox, tmp_path):
    settings = settings_for(sandbox, tmp_path, orders=6)
    ledger = Ledger(settings.ledger_path)
    qbo = sandbox.urls["quickbooks"]
    # The merchant disconnected the app in QuickBooks: the refresh token is revoked.
    basic = base64.b64encode(f"{CREDENTIALS['quickbooks']['client_id']}:"
                             f"{CREDENTIALS['quickbooks']['client_secret']}".encode()).decode()
    httpx.post(f"{qbo}/v2/oauth2/tokens/revoke", headers={"Authorization": f"Basic {basic}"},
               json={"token": CREDENTIALS["quickbooks"]["refresh_token"]}, timeout=10).raise_for_status()

    report = sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    assert "quickbooks" in report.paused and "o2c auth quickbooks" in report.paused["quickbooks"]
    rows = ledger.conn.execute("SELECT state, attempts FROM steps WHERE step LIKE 'quickbooks.%'").fetchall()
    assert rows and all(state == "pending" and attempts == 0 for state, attempts in rows)  # no retry spent
    assert ledger.conn.execute("SELECT COUNT(*) FROM steps WHERE step = 'hubspot.contact' AND state = 'done'"
                               ).fetchone()[0] > 0  # the CRM side is not held hostage
    refreshes_while_paused = refreshes(sandbox)
    sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    assert refreshes(sandbox) == refreshes_while_paused  # paused: no hammering of the token endpoint

    # The merchant reconnects: follow the consent URL as a browser would, paste where it lands.
    vault = TokenVault(settings.quickbooks, ledger)
    consent = httpx.get(vault.consent_url(vault.expected_state()), follow_redirects=False, timeout=10)
    landed = consent.headers["location"]
    result = subprocess.run([sys.executable, "sync.py", "auth", "quickbooks", "--config",
                             str(tmp_path / "config.yaml"), "--redirect-url", landed],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "connected" in result.stdout

    report = sync_pass(build_sources(settings), build_runners(settings, ledger), ledger)
    assert report.paused == {}
    states = {s for (s,) in ledger.conn.execute("SELECT state FROM steps WHERE step LIKE 'quickbooks.%'")}
    assert "pending" not in states


def test_a_redirect_from_another_attempt_is_refused(sandbox, tmp_path):
    settings = settings_for(sandbox, tmp_path)
    ledger = Ledger(settings.ledger_path)
    vault = TokenVault(settings.quickbooks, ledger)
    landed = httpx.get(vault.consent_url("forged-state"), follow_redirects=False, timeout=10).headers["location"]
    result = subprocess.run([sys.executable, "sync.py", "auth", "quickbooks", "--config",
                             str(tmp_path / "config.yaml"), "--redirect-url", landed],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "another authorization attempt" in result.stderr
