"""The harness itself: Debian's Chromium starts under Playwright, runs a page's script, screenshots it."""

from __future__ import annotations

from tests.browser.conftest import CHROMIUM


def test_debian_chromium_runs_a_local_page_and_takes_a_screenshot(chromium, page, shot, static_site):
    site = static_site({"/": "<!doctype html><title>smoke</title><h1 id=h>not clicked</h1>"
                             "<button id=b onclick=\"document.getElementById('h').textContent='clicked'\">"
                             "Click</button>"})
    assert chromium.version.split(".")[0].isdigit()
    page.goto(site.url + "/")
    page.click("#b")
    assert page.text_content("#h") == "clicked"
    path = shot("clicked")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert CHROMIUM.exists()
