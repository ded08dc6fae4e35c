"""Injected faults for the WooCommerce emulator (``POST /_sandbox/faults``).

Core wc/v3 has no rate limiting; 429/5xx/timeouts come from hosts, WAFs and
proxies (notes §5), so by default an injected fault answers the way those
layers do: a 500 is WordPress's fatal-error JSON (WP_Fatal_Error_Handler on a
REST request), any other status is a proxy's HTML page, with ``Retry-After``
when given. Shape (same as the HubSpot emulator)::

    {"faults": [{"endpoint": "/wc/v3/orders", "site": "demo", "status": 503, "times": 1,
                 "latency_ms": 0, "retry_after": 2, "body": {...}}]}

``endpoint`` is a substring of the counter key (``"GET /wc/v3/orders"``);
``times`` -1 = forever; ``status`` 0 with ``latency_ms`` = only a delay
(use a delay above the client timeout to provoke a timeout).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from starlette.responses import Response

from sandbox.woocommerce.errors import wp_response

WP_CRITICAL = ("<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/"
               "documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>")


class Faults:
    def __init__(self):
        self.rules: list[dict] = []

    def set(self, rules: list[dict]) -> list[dict]:
        self.rules = [{"times": 1, **rule} for rule in rules]
        return self.rules

    def take(self, site: str, key: str) -> dict | None:
        for rule in self.rules:
            if rule["times"] != 0 and rule.get("endpoint", "") in key and rule.get("site", site) == site:
                rule["times"] -= 1
                return rule
        return None


async def apply(rule: dict) -> Response | None:
    """Sleep for the rule's latency, then return its response (None = carry on normally)."""
    if rule.get("latency_ms"):
        await asyncio.sleep(int(rule["latency_ms"]) / 1000)
    status = int(rule.get("status", 500))
    if not status:
        return None
    headers = {"Retry-After": str(rule["retry_after"])} if rule.get("retry_after") is not None else {}
    if "body" in rule:
        return wp_response(rule["body"], status, headers)
    if status == 500:
        return wp_response({"code": "internal_server_error", "message": WP_CRITICAL,
                            "data": {"status": 500}, "additional_errors": []}, 500, headers)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    html = (f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Response(html, status_code=status, headers=headers, media_type="text/html")
