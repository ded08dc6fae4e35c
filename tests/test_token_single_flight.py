"""QuickBooks token refresh: once for every process and node, without stalling the ledger's other writers.

Intuit rotates refresh tokens (pain point 1 of peers.md): two nodes refreshing with the same token at
once would both spend it, and one would keep a token that is about to die. The refresh holds the lock
``quickbooks-token:<realm>`` (adapters/quickbooks_auth.py), an advisory lock of its own on PostgreSQL.
Runs on a SQLite file and on a fresh PostgreSQL database (skipped with the reason when no server is
reachable, failed instead when ``O2C_REQUIRE_POSTGRES=1``).
"""

from __future__ import annotations

import base64
import multiprocessing
import threading
import time
from pathlib import Path

import httpx
import pytest

from adapters.quickbooks_auth import TokenVault
from connector.config import load_config
from connector.demo import write_config
from connector.errors import PausedError
from connector.ledger import Ledger
from sandbox.seed import CREDENTIALS, seed
from tests.postgres_support import fresh_database
from tests.test_quickbooks_tokens import age_access_token, refreshes

SPAWN = multiprocessing.get_context("spawn")
TOKEN_PATH = "/oauth2/v1/tokens/bearer"


def configured(sandbox, tmp_path, where: str):
    config = write_config(tmp_path, seed(sandbox.urls, orders=0, seed_value=5))
    return config, load_config(config).model_copy(update={"ledger": where})


def slow_token_endpoint(sandbox, seconds: float) -> None:
    """Every refresh takes ``seconds``: the others certainly ask while the first is still refreshing."""
    sandbox.control("quickbooks", "POST", "chaos", json={"faults": [{"path": TOKEN_PATH,
                                                                      "latency_ms": seconds * 1000}]})


def ask_for_a_token(config: str, where: str, out: str, start) -> None:
    """One process (another node, as far as the ledger can tell): wait for the start, ask for a token."""
    settings = load_config(config).model_copy(update={"ledger": where})
    ledger = Ledger(settings.ledger_url)
    start.wait(120)  # a barrier: every process has its ledger open before any asks
    Path(out).write_text(TokenVault(settings.quickbooks, ledger).access_token())
    ledger.close()


def test_processes_needing_a_token_at_once_refresh_it_once(sandbox, tmp_path, where):
    config, settings = configured(sandbox, tmp_path, where)
    ledger = Ledger(settings.ledger_url)
    TokenVault(settings.quickbooks, ledger).access_token()  # the first refresh: the config's token is spent
    age_access_token(ledger, settings.quickbooks.realm_id)
    before = refreshes(sandbox)
    slow_token_endpoint(sandbox, 0.8)

    outs = [str(tmp_path / f"token{n}.txt") for n in range(4)]
    start = SPAWN.Barrier(len(outs))
    procs = [SPAWN.Process(target=ask_for_a_token, args=(str(config), settings.ledger_url, out, start))
             for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)

    assert refreshes(sandbox) - before == 1, "the token endpoint was hit more than once"
    tokens = {Path(out).read_text() for out in outs}
    assert len(tokens) == 1
    assert ledger.token("quickbooks", settings.quickbooks.realm_id)["access_token"] in tokens
    ledger.close()


def test_a_refresh_on_postgres_does_not_hold_up_the_ledgers_other_writers(sandbox, tmp_path):
    with fresh_database() as url:
        _, settings = configured(sandbox, tmp_path, url)
        ledger, writer = Ledger(url), Ledger(url)
        TokenVault(settings.quickbooks, ledger).access_token()
        age_access_token(ledger, settings.quickbooks.realm_id)
        slow_token_endpoint(sandbox, 2.0)
        refresher = threading.Thread(target=TokenVault(settings.quickbooks, ledger).access_token)
        refresher.start()
        time.sleep(0.5)  # the refresh is under way: its lock held, Intuit slow to answer
        started = time.monotonic()
        with writer.transaction():  # the global writer lock, as every page of a poll takes it
            writer.set_cursor("main-shop", "2026-01-01T00:00:00+00:00")
        waited = time.monotonic() - started
        still_refreshing = refresher.is_alive()
        refresher.join(30)
        assert still_refreshing, "the refresh ended before the write: the test proved nothing"
        assert waited < 1.0, f"a writer waited {waited:.1f}s for a token refresh"
        ledger.close()
        writer.close()


def test_a_refused_refresh_token_is_remembered_for_every_node(sandbox, tmp_path, where):
    _, settings = configured(sandbox, tmp_path, where)
    basic = base64.b64encode(f"{CREDENTIALS['quickbooks']['client_id']}:"
                             f"{CREDENTIALS['quickbooks']['client_secret']}".encode()).decode()
    httpx.post(f"{sandbox.urls['quickbooks']}/v2/oauth2/tokens/revoke", headers={"Authorization": f"Basic {basic}"},
               json={"token": CREDENTIALS["quickbooks"]["refresh_token"]}, timeout=10).raise_for_status()
    ledger = Ledger(settings.ledger_url)
    with pytest.raises(PausedError, match="invalid_grant"):
        TokenVault(settings.quickbooks, ledger).access_token()
    other_node = Ledger(settings.ledger_url)
    assert "invalid_grant" in (other_node.needs_reconnect("quickbooks", settings.quickbooks.realm_id) or "")
    with pytest.raises(PausedError, match="needs reconnecting"):  # no second try with the dead token
        TokenVault(settings.quickbooks, other_node).access_token()
    ledger.close()
    other_node.close()
