"""The HTTP side of a WooCommerce webhook: what ``WC_Webhook::deliver()`` and
``deliver_ping()`` put on the wire, and how the answer is classified.

Notes §3 "Headers": ``Content-Type``, ``User-Agent: WooCommerce/<ver> Hookshot
(WordPress/<ver>)`` and the ``X-WC-Webhook-*`` headers in the order ``deliver()``
sets them; the body is ``trim(wp_json_encode($payload))`` and the signature is
``base64(hmac_sha256(body, wp_specialchars_decode(secret)))``.
Notes §3 "Ping": form body ``webhook_id=<id>``, no JSON, no ``X-WC-Webhook-*``.

Transport differences from WordPress (documented, not emulated): httpx speaks
HTTP/1.1 (WP asks for 1.0), and ``wp_safe_remote_request``'s refusal of
loopback/private hosts and of ports other than 80/443/8080 is not applied,
because test receivers live on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

import httpx

from sandbox.woocommerce import wp


@dataclass
class Result:
    """One HTTP attempt as ``log_delivery`` sees it: a response code, or a WP_Error."""
    status: int | None = None          # HTTP status; None when the request failed
    message: str = ""                  # reason phrase, or the WP_Error message
    error: str | None = None           # WP_Error code ("http_request_failed") on failure
    headers: dict = field(default_factory=dict)
    body: str = ""
    duration: float = 0.0              # seconds, rounded to 5 places like NumberUtil::round

    @property
    def ok(self) -> bool:
        # log_delivery(): 200 <= code < 303 is a success (2xx, 301, 302).
        return self.status is not None and 200 <= self.status < 303


def user_agent(wc_version: str, wp_version: str) -> str:
    return f"WooCommerce/{wc_version} Hookshot (WordPress/{wp_version})"


def signature(body: bytes, secret: str) -> str:
    """``generate_signature``: base64 of the raw HMAC-SHA256 of the body."""
    key = wp.wp_specialchars_decode(secret).encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def delivery_headers(hook, body: bytes, source: str, delivery_id: str, ua: str) -> dict:
    """Headers in the order ``deliver()`` builds them (User-Agent comes from the
    request args, Content-Type from ``headers``, then the X-WC-Webhook-* set)."""
    return {
        "User-Agent": ua,
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": hook.topic,
        "X-WC-Webhook-Resource": hook.resource,
        "X-WC-Webhook-Event": hook.event,
        "X-WC-Webhook-Signature": signature(body, hook.secret),
        "X-WC-Webhook-ID": str(hook.id),
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


def delivery_id(hook_id: int, salt: str, now: float | None = None) -> str:
    """``wp_hash($webhook_id . strtotime('now'))``: equal for two deliveries of one
    webhook in the same second (notes §3: not an idempotency key)."""
    return wp.wp_hash(f"{hook_id}{int(now if now is not None else time.time())}", salt)


def ping_headers(ua: str) -> dict:
    # wp_safe_remote_post(url, {user-agent, body}): WC sets no Content-Type; WP's cURL
    # transport sends the form type for a string body (notes §3 "Ping").
    return {"User-Agent": ua, "Content-Type": "application/x-www-form-urlencoded"}


async def post(url: str, body: bytes, headers: dict, timeout: float) -> Result:
    """POST without following redirects (``redirection`` 0); timeouts and
    connection errors become a WP_Error-like result (``http_request_failed``)."""
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False,
                                     headers={"Accept": "*/*"}) as client:
            response = await client.post(url, content=body, headers=headers)
        result = Result(status=response.status_code, message=response.reason_phrase,
                        headers=dict(response.headers), body=response.text[:2000])
    except httpx.TimeoutException as exc:
        result = Result(error="http_request_failed",
                        message=f"cURL error 28: Operation timed out after {int(timeout * 1000)} milliseconds"
                                f" ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        result = Result(error="http_request_failed", message=f"cURL error 7: {exc!s}"[:300])
    result.duration = round(time.monotonic() - started, 5)
    return result
