"""The webhook server: check each delivery, commit it to the inbox, then answer.

Two routes, ``POST /webhooks/shopify/{store}`` and ``POST /webhooks/woocommerce/{store}``.
Every answer is decided in this order (DESIGN.md guarantees 1, 6 and 7):

| what arrives                                   | answer                             |
|------------------------------------------------|------------------------------------|
| a store not configured (or of the other system)| 404                                |
| a body over ``webhooks.max_body_bytes``        | 413 (Content-Length first, then while reading) |
| WooCommerce's creation ping ``webhook_id=N``   | 200, nothing stored (WC wants exactly 200) |
| no secret configured, no or a wrong signature  | 401 and a log line naming store and reason |
| not a JSON object, no topic header             | 400                                |
| a new delivery                                 | 200 after the inbox row is committed |
| a delivery already in the inbox                | 200, counted as a duplicate        |
| a delivery whose group's commit failed         | 503 with Retry-After, nothing stored |

The signature is base64 HMAC-SHA256 of the raw body (notes/shopify.md §3,
notes/woocommerce.md §3), verified before the body is parsed and compared with
``hmac.compare_digest``. Processing (fetching the announced orders) happens
later, in :mod:`connector.intake`: Shopify gives a delivery 5 s (notes §3), so
the answer never waits for a store.

Writing is a group commit (:mod:`connector.webhook_committer`): each request
checks and parses its delivery on the event loop, hands it to the one committer
thread, and answers when the transaction holding it has committed; whatever
arrived meanwhile shares that transaction and its fsync. A group whose commit
fails gets 503 (``Retry-After``), nothing of it stored; the store sends again.

The route is a plain ASGI endpoint (no Request or Response objects): at a
thousand deliveries a second the per-request cost is the server's capacity, and
this path runs for every one (docs/webhooks.md "Throughput"). The daemon serves
this app in its own process (:mod:`connector.daemon`); ``o2c webhooks serve``
runs it alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.routing import Route

from connector import inbox
from connector.webhook_committer import CommitFailed, GroupCommitter

LOG = logging.getLogger("o2c.webhooks")
DEFAULT_MAX_BODY = 1024 * 1024

# Headers kept with a delivery (never the signature): enough to trace it at the store.
KEPT_HEADERS = {
    "shopify": ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id", "X-Shopify-Triggered-At", "X-Shopify-API-Version",
                "X-Shopify-Shop-Domain"),
    "woocommerce": ("X-WC-Webhook-ID", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Source"),
}
SIGNATURE = {"shopify": "X-Shopify-Hmac-Sha256", "woocommerce": "X-WC-Webhook-Signature"}
TOPIC = {"shopify": "X-Shopify-Topic", "woocommerce": "X-WC-Webhook-Topic"}
# ASGI gives header names in lower case: look them up that way (pairs of (stored name, lookup name)).
_KEPT = {system: tuple((name, name.lower()) for name in names) for system, names in KEPT_HEADERS.items()}

# WooCommerce passes the secret through wp_specialchars_decode(.., ENT_QUOTES) before signing
# (notes/woocommerce.md §3 headers table), so "a &amp; b" signs as "a & b".
_WP_ENTITIES = {"&quot;": '"', "&#034;": '"', "&#x22;": '"', "&lt;": "<", "&#060;": "<", "&gt;": ">",
                "&#062;": ">", "&amp;": "&", "&#038;": "&", "&#x26;": "&", "&#039;": "'", "&#x27;": "'"}
_WP_ENTITY = re.compile("|".join(re.escape(k) for k in sorted(_WP_ENTITIES, key=len, reverse=True)), re.I)


class BadRequest(Exception):
    """The delivery is malformed (400)."""


def signature_of(secret: str, raw: bytes) -> str:
    """``base64(hmac_sha256(secret, raw_body))``, the scheme of both stores."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def signing_key(system: str, secret: str) -> str:
    if system == "woocommerce" and "&" in secret:
        return _WP_ENTITY.sub(lambda m: _WP_ENTITIES[m.group(0).lower()], secret)
    return secret


def _parse_time(value) -> datetime | None:
    """An ISO time from a body: Shopify's carries an offset, WooCommerce's ``*_gmt`` none (UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _gid_tail(value) -> str | None:
    return value.rsplit("/", 1)[-1] if isinstance(value, str) and value.startswith("gid://") else None


def shopify_delivery(store: str, headers, raw: bytes, body: dict) -> inbox.Delivery:
    """Order topics announce ``body`` itself; refunds and transactions name their ``order_id``.

    ``headers`` maps lower-case header names to values (a plain dict, or Starlette's ``Headers``).
    """
    topic = headers["x-shopify-topic"]
    if topic.startswith("orders/"):
        # Ids exceed 2^53 and published samples carry them rounded: trust the gid (notes §3, §5).
        resource = _gid_tail(body.get("admin_graphql_api_id")) or _str(body.get("id"))
        updated = _parse_time(body.get("updated_at"))
    else:
        resource = _str(body.get("order_id")) or headers.get("x-shopify-order-id")
        updated = None
    webhook_id = headers.get("x-shopify-webhook-id")
    # X-Shopify-Webhook-Id is the per-delivery idempotency key, the same on retries (notes §3).
    key = f"webhook-id|{webhook_id}" if webhook_id else f"body|{topic}|{inbox.body_hash(raw)}"
    return inbox.Delivery(store, "shopify", topic, key, resource, updated, raw.decode("utf-8"),
                          _kept(headers, "shopify"))


def woocommerce_delivery(store: str, headers, raw: bytes, body: dict) -> inbox.Delivery:
    """The body is the order as ``GET orders/<id>`` renders it, or ``{"id"}`` for ``order.deleted``.

    ``headers`` maps lower-case header names to values.
    """
    topic = headers["x-wc-webhook-topic"]
    resource = _str(body.get("id"))
    modified = body.get("date_modified_gmt")
    key = inbox.woocommerce_key(topic, resource, modified, raw)
    return inbox.Delivery(store, "woocommerce", topic, key, resource, _parse_time(modified), raw.decode("utf-8"),
                          _kept(headers, "woocommerce"))


def _str(value) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _kept(headers, system: str) -> dict:
    kept = {}
    for name, key in _KEPT[system]:
        value = headers.get(key)
        if value is not None:
            kept[name] = value
    return kept


def _is_ping(headers, raw: bytes) -> bool:
    """WooCommerce's ping: a form body ``webhook_id=<id>``, no X-WC-Webhook-* headers, no signature."""
    if "x-wc-webhook-signature" in headers or "x-wc-webhook-topic" in headers or len(raw) > 64:
        return False
    try:
        form = parse_qs(raw.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    return list(form) == ["webhook_id"] and form["webhook_id"][0].isdigit()


class Body413(Exception):
    pass


class Disconnected(Exception):
    """The client went away before its body was read: there is no one to answer."""


def _headers(scope) -> dict[str, str]:
    """The request's headers as ``{lower-case name: value}``, built once (the first of repeated names)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


async def _read_body(headers: dict, receive, limit: int) -> bytes:
    """The raw body, refused past ``limit`` bytes: by Content-Length first, then while reading."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise Body413(f"Content-Length {declared} is over {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # a chunked body, or a Content-Length that lied
            raise Body413(f"body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_JSON = [(b"content-type", b"application/json")]
_RETRY = [*_JSON, (b"retry-after", b"1")]
_PING = (200, b"ok", [(b"content-type", b"text/plain; charset=utf-8")])


def _refusal(status: int, message: str, headers: list = _JSON) -> tuple[int, bytes, list]:
    return status, json.dumps({"error": message}).encode(), headers


class WebhookApp:
    """The webhook route's ASGI endpoint: the settings and the group committer (the inbox's one writer)."""

    def __init__(self, settings, ledger_path):
        self.stores = {(s.system, s.name): s for s in settings.stores}
        hooks = getattr(settings, "webhooks", None)
        self.max_body = hooks.max_body_bytes if hooks is not None else DEFAULT_MAX_BODY
        self.committer = GroupCommitter(ledger_path)
        self.ledger = self.committer.ledger  # the committer's connection (synchronous=FULL)

    def close(self) -> None:
        """Commit what is waiting, stop the committer and close its connection."""
        self.committer.close()

    async def __call__(self, scope, receive, send) -> None:
        try:
            status, body, headers = await self.decide(scope, receive)
        except Disconnected:
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def decide(self, scope, receive) -> tuple[int, bytes, list]:
        """The answer to one delivery: ``(status, body, headers)``, in the order of the module's table."""
        system, name = scope["path_params"]["system"], scope["path_params"]["store"]
        store = self.stores.get((system, name))
        if store is None:
            LOG.warning("webhook refused (404): no %s store named %r is configured", system, name)
            return _refusal(404, f"no {system} store named {name!r}")
        headers = _headers(scope)
        try:
            raw = await _read_body(headers, receive, self.max_body)
        except Body413 as exc:
            LOG.warning("webhook refused (413): %s store %s: %s", system, name, exc)
            return _refusal(413, str(exc))
        except BadRequest as exc:
            LOG.warning("webhook refused (400): %s store %s: %s", system, name, exc)
            return _refusal(400, str(exc))
        if system == "woocommerce" and _is_ping(headers, raw):
            LOG.info("webhook ping from %s store %s answered", system, name)
            return _PING  # exactly 200, nothing stored (notes §3 "Ping")
        reason = self._unauthentic(store, system, headers, raw)
        if reason:
            client = scope.get("client")
            LOG.warning("webhook refused (401): %s store %s: %s (from %s)", system, name, reason,
                        client[0] if client else "?")
            return _refusal(401, "invalid signature")
        try:
            delivery = self._parse(system, name, headers, raw)
        except BadRequest as exc:
            LOG.warning("webhook refused (400): %s store %s: %s", system, name, exc)
            return _refusal(400, str(exc))
        try:
            row_id, new = await self.committer.commit(delivery)
        except CommitFailed as exc:  # nothing of its group is stored: the store must send it again
            return _refusal(503, str(exc), _RETRY)
        # Only now, with the row committed, may the store hear 2xx (guarantee 1).
        return 200, b'{"inbox_id":%d,"duplicate":%s}' % (row_id, b"false" if new else b"true"), _JSON

    @staticmethod
    def _unauthentic(store, system: str, headers, raw: bytes) -> str | None:
        """Why the delivery is not authentic, or None. Never logs or returns the secret."""
        if store.webhook_secret is None:
            return "no webhook_secret is configured for this store"
        given = headers.get(SIGNATURE[system].lower())
        if not given:
            return f"no {SIGNATURE[system]} header"
        expected = signature_of(signing_key(system, store.webhook_secret.get_secret_value()), raw)
        if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
            return "signature does not match the body"
        return None

    @staticmethod
    def _parse(system: str, name: str, headers, raw: bytes) -> inbox.Delivery:
        if not headers.get(TOPIC[system].lower()):
            raise BadRequest(f"no {TOPIC[system]} header")
        try:
            body = json.loads(raw)  # bytes: json detects the encoding; the row keeps the UTF-8 text below
            raw.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("body is not a JSON object")
        if system == "shopify":
            return shopify_delivery(name, headers, raw, body)
        return woocommerce_delivery(name, headers, raw, body)


def create_webhook_app(settings, ledger_path) -> Starlette:
    """The Starlette app serving both webhook routes for the configured stores.

    ``app.state.webhooks`` is the :class:`WebhookApp`; call its ``close()`` when the server has stopped.
    """
    state = WebhookApp(settings, ledger_path)
    app = Starlette(routes=[
        # An object, not a function: Starlette hands it the raw ASGI call (no Request/Response per delivery).
        Route("/webhooks/{system:str}/{store:str}", state, methods=["POST"]),
    ])
    app.state.webhooks = state
    return app
