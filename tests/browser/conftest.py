"""Browser tests: Playwright driving Debian's headless Chromium (docs/testing.md).

The browser is Debian's ``chromium`` package at /usr/bin/chromium, installed by
``scripts/install-browser.sh`` (run by ``make install`` and ``make test``); Playwright's own browser
download is never used. When either piece is missing the tests skip, and the reason names it.

Screenshots go to the test's own ``tmp_path / "screenshots"`` and are copied to
``test-output/screenshots/<test name>/`` under the repository (gitignored), where they outlive the run.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import ROOT

CHROMIUM = Path(os.environ.get("O2C_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "test-output" / "screenshots"
# As the machine notes advise: no sandbox (root), no GPU, and none of Chromium's own background
# traffic, which this machine's closed network refuses (or answers slowly).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--no-proxy-server"]


def missing_piece() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the Python package 'playwright' is not installed (it is in the test extras: "
                "run `make install`, or pip install -c constraints.txt -e '.[test]')")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return (f"Debian's chromium ({CHROMIUM}) is not installed: run scripts/install-browser.sh as root "
                "(apt-get install --no-install-recommends chromium)")
    return None


def pytest_collection_modifyitems(config, items):
    reason = missing_piece()
    if reason is None:
        return
    if os.environ.get("O2C_REQUIRE_BROWSER"):
        # CI sets this: there the dashboard's browser tests are a promise, and a skip would hide it.
        raise pytest.UsageError(f"the browser tests are required (O2C_REQUIRE_BROWSER is set) but {reason}")
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=f"browser test: {reason}"))


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session (Debian's, launched by path)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                    env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"})
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    """Numbered full-page screenshots of a page, into the test's output dir and test-output/."""

    def __init__(self, page, out_dir: Path, copy_dir: Path):
        self.page, self.out_dir, self.copy_dir = page, out_dir, copy_dir
        self.taken: list[Path] = []

    def __call__(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        self.copy_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, self.copy_dir / path.name)
        return path


@pytest.fixture
def page(chromium):
    """A fresh browser context (no cookies) and page."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def shot(page, request, tmp_path) -> Callable[[str], Path]:
    """``shot("name")`` saves a numbered screenshot of ``page``; a failing test leaves a last one."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    copy_dir = SCREENSHOTS / name
    shutil.rmtree(copy_dir, ignore_errors=True)  # this run's screenshots only
    shots = Shots(page, tmp_path / "screenshots", copy_dir)
    yield shots
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        try:
            shots("failure")
        except Exception:  # the page may be gone; the failure itself says more
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


class StaticSite:
    """A tiny HTTP server on loopback serving fixed pages: ``{path: html}``."""

    def __init__(self, pages: dict[str, str]):
        pages_ = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = pages_.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                data = (body or "not found").encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def static_site():
    """``static_site({path: html})`` serves pages from another origin than anything else in the test."""
    sites: list[StaticSite] = []

    def make(pages: dict[str, str]) -> StaticSite:
        sites.append(StaticSite(pages))
        return sites[-1]

    yield make
    for site in sites:
        site.close()
