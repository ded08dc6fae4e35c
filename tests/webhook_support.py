"""Helpers of the webhook tests: a config with webhook secrets, the server on a free loopback port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import sqlite3
import threading
import time
from pathlib import Path

import uvicorn

from connector.config import load_config
from connector.demo import write_config
from connector.webhook_server import create_webhook_app

SHOP_SECRET = "shpss_sandbox_secret"  # the sandbox shop's app secret (docs/sandbox.md §5.1)
WOO_SECRET = "whsec&amp;more-0123"  # WordPress decodes &amp; before signing (notes/woocommerce.md §3)
WOO_SIGNING = "whsec&more-0123"  # ... so WooCommerce signs with this
SHOP, SITE = "demo-shop", "demo-woo"

PLACEHOLDER = {
    "shopify": {"access_token": "shpat_x", "shop_url": "http://127.0.0.1:9/shop/demo-shop"},
    "woocommerce": {"consumer_key": "ck_x", "consumer_secret": "cs_x", "url": "http://127.0.0.1:9/site/demo-woo"},
    "hubspot": {"access_token": "pat-x", "host": "https://api.hubapi.com"},
    "quickbooks": {"client_id": "c", "client_secret": "s", "refresh_token": "r", "realm_id": "1",
                   "api_url": "https://quickbooks.api.intuit.com/v3", "discovery_url": "sandbox"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_webhook_config(tmp_path: Path, credentials: dict, monkeypatch, *, port: int,
                         max_body_bytes: int = 1024 * 1024) -> Path:
    """The demo config plus webhook secrets (environment references) and a ``webhooks:`` section."""
    path = write_config(tmp_path, credentials)
    monkeypatch.setenv("O2C_TEST_SHOP_HOOK_SECRET", SHOP_SECRET)
    monkeypatch.setenv("O2C_TEST_WOO_HOOK_SECRET", WOO_SECRET)
    text = path.read_text()
    text = text.replace("    system: shopify\n",
                        "    system: shopify\n    webhook_secret: ${O2C_TEST_SHOP_HOOK_SECRET}\n")
    text = text.replace("    system: woocommerce\n",
                        "    system: woocommerce\n    webhook_secret: ${O2C_TEST_WOO_HOOK_SECRET}\n")
    text += (f"webhooks:\n  host: 127.0.0.1\n  port: {port}\n  max_body_bytes: {max_body_bytes}\n"
             f"  public_base_url: http://127.0.0.1:{port}\n")
    path.write_text(text)
    return path


class Server:
    """The webhook app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings):
        self.settings = settings
        self.port = settings.webhooks.port
        self.base = f"http://127.0.0.1:{self.port}"
        self.app = create_webhook_app(settings, settings.ledger_path)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "webhook server did not start"
            time.sleep(0.02)

    def url(self, system: str, store: str) -> str:
        return f"{self.base}/webhooks/{system}/{store}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.webhooks.close()


def start_server(tmp_path: Path, credentials: dict, monkeypatch, **kwargs) -> Server:
    port = free_port()
    settings = load_config(write_webhook_config(tmp_path, credentials, monkeypatch, port=port, **kwargs))
    return Server(settings)


def sign(secret: str, raw: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def inbox_rows(ledger_path, where: str = "1=1", params: tuple = ()) -> list[dict]:
    """Rows of the inbox, read with a connection of its own (what is committed, nothing else)."""
    conn = sqlite3.connect(ledger_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM inbox WHERE {where} ORDER BY id", params)]
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
