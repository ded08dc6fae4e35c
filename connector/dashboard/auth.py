"""Who may use the dashboard, and from where (docs/dashboard.md "Auth" and "Cross-site requests").

One ASGI middleware guards every route except ``/login``, ``/healthz`` and ``/readyz``:

* **Who**: ``Authorization: Bearer <admin token>``, or the session cookie the login form sets.
  The cookie holds ``<issued>.<nonce>.<mac>``: an HMAC (key derived from the admin token) of the
  issue time and a random nonce; never the token. It is HttpOnly, SameSite=Strict, Secure on
  https, and lasts :data:`SESSION_SECONDS`. Changing the admin token ends every session.
  Without either: 401 (pages answer with the login form, the API with JSON).
* **Where from** (every POST): an ``Origin`` (or, without it, ``Referer``) naming another origin
  than the dashboard's own is refused with 403. A cookie-authenticated POST must also name the
  dashboard's origin (a missing Origin and Referer is refused) and carry the session's CSRF token
  (``X-CSRF-Token`` header, or the ``csrf_token`` form field), an HMAC of the session value. A
  bearer-token POST (a script) needs no CSRF token: browsers never add that header by themselves.
* **Host** (DNS rebinding): without ``dashboard.public_origin`` and bound to a loopback address,
  the ``Host`` header must name a loopback host; with it, the Host must be its host.

Every comparison of a secret-derived value is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import parse_qs, urlsplit

SESSION_COOKIE = "o2c_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_BODY = 1024 * 1024


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class Guard:
    """The admin token and what is derived from it; knows the dashboard's own origin."""

    def __init__(self, admin_token: str, *, public_origin: str | None = None, bind_host: str = "127.0.0.1"):
        self._token = admin_token
        self._key = hashlib.sha256(b"o2c-dashboard-v1|" + admin_token.encode("utf-8")).digest()
        self.public_origin = public_origin.rstrip("/").lower() if public_origin else None
        self.bind_host = bind_host

    # -- credentials ----------------------------------------------------------------------------
    def _mac(self, purpose: str, message: str) -> str:
        return hmac.new(self._key, f"{purpose}|{message}".encode("utf-8"), hashlib.sha256).hexdigest()

    def token_ok(self, presented: str | None) -> bool:
        return presented is not None and _eq(presented, self._token)

    def new_session(self) -> str:
        issued = f"{int(time.time())}.{secrets.token_urlsafe(12)}"
        return f"{issued}.{self._mac('session', issued)}"

    def session_ok(self, value: str | None) -> bool:
        if not value or value.count(".") != 2:
            return False
        issued, nonce, mac = value.split(".")
        if not _eq(mac, self._mac("session", f"{issued}.{nonce}")):
            return False
        try:
            age = time.time() - int(issued)
        except ValueError:
            return False
        return -60 <= age <= SESSION_SECONDS

    def csrf_token(self, session: str) -> str:
        return self._mac("csrf", session)

    def authenticate(self, headers: dict[str, str], cookies: dict[str, str]) -> tuple[str | None, str | None]:
        """``("bearer", None)``, ``("cookie", session)`` or ``(None, None)``."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return ("bearer", None) if self.token_ok(auth[7:].strip()) else (None, None)
        session = cookies.get(SESSION_COOKIE)
        if self.session_ok(session):
            return "cookie", session
        return None, None

    # -- origins ---------------------------------------------------------------------------------
    def own_origin(self, scheme: str, host: str | None) -> str | None:
        if self.public_origin:
            return self.public_origin
        return f"{scheme}://{host}".lower() if host else None

    def host_ok(self, host: str | None) -> bool:
        if not host:
            return False
        name = urlsplit(f"//{host}").hostname or ""
        if self.public_origin:
            return name == (urlsplit(self.public_origin).hostname or "")
        if self.bind_host in LOOPBACK:
            return name in LOOPBACK
        return True  # bound elsewhere without public_origin: the Host decides (docs: set public_origin)


def request_origin(headers: dict[str, str]) -> str | None:
    """The Origin header, else the origin of the Referer; ``None`` when neither is sent."""
    origin = headers.get("origin")
    if origin:
        return origin.rstrip("/").lower()
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else "null"
    return None


def _cookies(raw: str) -> dict[str, str]:
    out = {}
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name and name not in out:
            out[name] = value
    return out


def _wants_html(path: str, headers: dict[str, str]) -> bool:
    return not (path.startswith("/api/") or path == "/api" or path == "/metrics") and \
        "application/json" not in headers.get("accept", "")


class GuardMiddleware:
    """Pure ASGI: 421/401/403 before the app sees the request; sets ``scope['state']['auth']``."""

    def __init__(self, app, guard: Guard, *, login_page):
        self.app = app
        self.guard = guard
        self.login_page = login_page  # (next_path, message) -> html

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        host = headers.get("host")
        if not self.guard.host_ok(host):
            return await _send(send, 421, "text/plain; charset=utf-8",
                               b"misdirected request: this dashboard does not answer to that host name "
                               b"(set dashboard.public_origin to serve it under another name)\n")
        scope.setdefault("state", {})
        own = self.guard.own_origin(scope.get("scheme", "http"), host)
        scope["state"]["own_origin"] = own
        origin = request_origin(headers)
        if method not in ("GET", "HEAD", "OPTIONS") and origin is not None and \
                (own is None or not _eq(origin, own)):
            return await self._refuse(send, path, headers,
                                      f"cross-site request refused: this request came from {origin}, not from "
                                      f"the dashboard ({own}); nothing was done")
        if path in PUBLIC_PATHS:
            scope["state"]["auth"] = (None, None)
            return await self.app(scope, receive, send)
        kind, session = self.guard.authenticate(headers, _cookies(headers.get("cookie", "")))
        if kind is None:
            if _wants_html(path, headers) and method in ("GET", "HEAD"):
                query = scope.get("query_string", b"").decode("latin-1")
                html = self.login_page(path + (f"?{query}" if query else ""), None)
                return await _send(send, 401, "text/html; charset=utf-8", html.encode("utf-8"),
                                   extra=[(b"www-authenticate", b'Bearer realm="o2c"')])
            return await _send(send, 401, "application/json",
                               json.dumps({"error": "authentication required: send Authorization: Bearer "
                                                    "<admin token> or log in at /login"}).encode(),
                               extra=[(b"www-authenticate", b'Bearer realm="o2c"')])
        scope["state"]["auth"] = (kind, session)
        if kind == "cookie" and session:
            scope["state"]["csrf"] = self.guard.csrf_token(session)
        if method in ("GET", "HEAD", "OPTIONS") or kind == "bearer":
            return await self.app(scope, receive, send)
        # A browser (cookie) POST: it must say where it comes from, and carry the session's CSRF token.
        if origin is None:
            return await self._refuse(send, path, headers, "cross-site request refused: the browser sent neither "
                                                           "Origin nor Referer; nothing was done")
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                return await _send(send, 413, "text/plain; charset=utf-8", b"request body too large\n")
        presented = headers.get(CSRF_HEADER)
        if presented is None and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
            presented = (parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD) or [None])[0]
        if presented is None or not _eq(presented, scope["state"]["csrf"]):
            return await self._refuse(send, path, headers, "CSRF token missing or wrong: reload the page and try "
                                                           "again; nothing was done")
        sent = False

        async def replay_body():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay_body, send)

    async def _refuse(self, send, path: str, headers: dict[str, str], message: str):
        if _wants_html(path, headers):
            from html import escape
            page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Refused</title></head>'
                    f'<body><h1>403 Forbidden</h1><p id="error">{escape(message)}</p></body></html>')
            return await _send(send, 403, "text/html; charset=utf-8", page.encode("utf-8"))
        return await _send(send, 403, "application/json", json.dumps({"error": message}).encode("utf-8"))


async def _send(send, status: int, content_type: str, body: bytes, *, extra: list | None = None) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
               (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"),
               (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                            b"frame-ancestors 'none'; base-uri 'none'"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
