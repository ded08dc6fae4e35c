"""Shared fixtures: one sandbox process for the session, reset before each test that uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

# `where`: a test taking it runs twice, on a SQLite file and on a fresh PostgreSQL database.
from tests.postgres_support import where  # noqa: F401  (a fixture, offered to every test module)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Sandbox:
    """Handle on a running sandbox process: base URLs and control-API helpers."""

    def __init__(self, urls: dict[str, str], ca_file: str | None = None):
        self.urls = {k: v for k, v in urls.items() if not k.endswith("_https")}
        self.https_urls = {k.removesuffix("_https"): v for k, v in urls.items() if k.endswith("_https")}
        self.ca_file = ca_file

    def url(self, system: str) -> str:
        return self.urls[system]

    def control(self, system: str, method: str, path: str, **kwargs):
        response = httpx.request(method, f"{self.urls[system]}/_sandbox/{path.lstrip('/')}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def state(self, system: str) -> dict:
        return self.control(system, "GET", "state")

    def reset(self) -> None:
        for system in self.urls:
            self.control(system, "POST", "reset")


def start_sandbox(tmp_dir: Path, options: dict | None = None) -> tuple[subprocess.Popen, Sandbox]:
    """Start ``python -m sandbox serve`` on free ports and wait until it listens."""
    ready = tmp_dir / "sandbox-ready.json"
    args = [sys.executable, "-m", "sandbox", "serve", "--ready-file", str(ready),
            "--options", json.dumps(options or {})]
    for system in ("shopify", "woocommerce", "hubspot", "quickbooks"):
        args += [f"--{system}-port", "0"]
    args += ["--woocommerce-tls-port", "0", "--tls-dir", str(tmp_dir / "tls")]
    log = open(tmp_dir / "sandbox.log", "w")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("sandbox did not start:\n" + (tmp_dir / "sandbox.log").read_text())
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    return proc, Sandbox(info["urls"], info.get("ca_file"))


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory):
    proc, box = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield box
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def sandbox(sandbox_process) -> Sandbox:
    """The session's sandbox, emptied before the test."""
    from connector.rate_budget import reset_budgets
    sandbox_process.reset()
    # The emulators forget their rate windows on reset; so does this process's budget for them.
    reset_budgets()
    return sandbox_process


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib (ShopifyAPI) and requests would send 127.0.0.1 through a proxy if one were set.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    os.environ.pop("HTTP_PROXY", None)
