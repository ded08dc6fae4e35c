"""Intuit OAuth 2.0 stand-in: discovery document, token endpoint with refresh-token rotation, revoke.

intuit-oauth's ``AuthClient`` fetches the discovery document in its constructor from the URL
passed as ``environment`` (notes §4, VERIFIED), so pointing it at
``http://127.0.0.1:PORT/.well-known/openid_sandbox_configuration/`` sends every later call here.

Token call (notes §4): ``POST /oauth2/v1/tokens/bearer`` form ``grant_type=refresh_token``,
``Authorization: Basic b64(client_id:secret)``. Every refresh returns a NEW refresh token;
the one it replaces keeps working for ``refresh_grace_seconds`` (default 24 h, the rotation
period Intuit describes) and then answers ``400 {"error":"invalid_grant"}``. Access tokens
live ``access_token_ttl_seconds`` (3600). ``x_refresh_token_hard_expires_in`` (5-year cap) is
added when the request carries ``x-include-refresh-token-hard-expires-in: true``.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from sandbox.quickbooks.wire import Clock, json_response

REFRESH_TTL = 8_726_400  # ≈101 days, the docs sample (notes §4)
HARD_CAP = 5 * 365 * 86_400  # five-year hard expiry (notes §4, S-BLOG-RT-2025)


@dataclass
class RefreshToken:
    client_id: str
    realm_id: str
    expires_at: float
    hard_expires_at: float
    superseded_at: float | None = None
    revoked: bool = False


class OAuthServer:
    """Clients, refresh tokens and access tokens of one emulator."""

    def __init__(self, clock: Clock, options: dict, on_realm=None):
        self.clock = clock
        self.grace = float(options.get("refresh_grace_seconds", 86_400))
        self.access_ttl = int(options.get("access_token_ttl_seconds", 3600))
        self.on_realm = on_realm or (lambda realm: None)
        self.reset()

    def reset(self) -> None:
        self.clients: dict[str, dict] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, dict] = {}
        self.refreshes = 0
        self.codes: dict[str, tuple[str, str, float, str]] = {}  # code -> (client, realm, expires, redirect)

    # -- control ---------------------------------------------------------------------------
    def register_client(self, client_id: str, secret: str, realm_id: str, refresh_token: str | None) -> str:
        """``POST /_sandbox/oauth/clients``: a client with an initial refresh token."""
        self.clients[client_id] = {"client_secret": secret, "realm_id": realm_id}
        token = refresh_token or "RT-" + secrets.token_urlsafe(24)
        now = self.clock.now()
        self.refresh_tokens[token] = RefreshToken(client_id, realm_id, now + REFRESH_TTL, now + HARD_CAP)
        self.on_realm(realm_id)
        return token

    def add_access_token(self, token: str, realm_id: str, ttl: float | None = None,
                         client_id: str | None = None) -> None:
        """Accept ``token`` for ``realm_id`` too (``ttl=None``: never expires)."""
        info = self.access_tokens.setdefault(token, {"realms": set(), "expires_at": None, "client_id": None})
        info["realms"].add(realm_id)
        info["client_id"] = client_id or info["client_id"]
        info["expires_at"] = None if ttl is None else self.clock.now() + ttl

    def app_of(self, token: str) -> str:
        """The app (OAuth client) a token was issued to, for per realm+app limits; else the token."""
        info = self.access_tokens.get(token) or {}
        return info.get("client_id") or token

    def expire_access_tokens(self) -> int:
        """Make every issued access token expired (tests of refresh-on-401)."""
        for info in self.access_tokens.values():
            info["expires_at"] = self.clock.now() - 1
        return len(self.access_tokens)

    def realms_of(self, token: str) -> tuple[set[str] | None, str]:
        """(realms the token may use, "") for a valid access token, else (None, why)."""
        info = self.access_tokens.get(token)
        if info is None:
            return None, "Malformed bearer token or unknown token"
        if info["expires_at"] is not None and self.clock.now() >= info["expires_at"]:
            return None, "Token expired"
        return info["realms"], ""

    def export(self) -> dict:
        return {"clients": {cid: {"realm_id": c["realm_id"]} for cid, c in self.clients.items()},
                "refresh_tokens": {t: {"client_id": r.client_id, "realm_id": r.realm_id,
                                       "superseded": r.superseded_at is not None, "revoked": r.revoked}
                                   for t, r in self.refresh_tokens.items()},
                "refreshes": self.refreshes}

    # -- HTTP ------------------------------------------------------------------------------
    def discovery(self, request: Request) -> Response:
        """Same keys as ``oauth/discovery.production.json``, endpoints pointing here."""
        base = str(request.base_url).rstrip("/")
        return json_response({
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        })

    def _client(self, request: Request, form: dict) -> str | None:
        header = request.headers.get("authorization", "")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
        client = self.clients.get(client_id or "")
        if client is None or client["client_secret"] != secret:
            return None
        return client_id

    def authorize(self, request: Request) -> Response:
        """``GET /connect/oauth2``: the consent page, answered at once as a user who clicks "Connect".

        Redirects to ``redirect_uri`` with ``code``, ``state`` and ``realmId`` (notes §4: the realm
        arrives on the callback). Codes are single-use and short-lived.
        """
        params = request.query_params
        client = self.clients.get(params.get("client_id", ""))
        redirect = params.get("redirect_uri", "")
        if client is None or not redirect or params.get("response_type") != "code":
            return _error("invalid_request", "Unknown client_id, or missing redirect_uri/response_type=code")
        code = "AB-" + secrets.token_urlsafe(24)
        self.codes[code] = (params["client_id"], client["realm_id"], self.clock.now() + 300, redirect)
        query = urlencode({"code": code, "state": params.get("state", ""), "realmId": client["realm_id"]})
        return Response(status_code=302, headers={"location": f"{redirect}?{query}"})

    def _issue(self, client_id: str, realm_id: str, hard_expires_at: float, request: Request) -> Response:
        now = self.clock.now()
        new_token = "RT-" + secrets.token_urlsafe(24)
        self.refresh_tokens[new_token] = RefreshToken(client_id, realm_id, now + REFRESH_TTL, hard_expires_at)
        access = "AT-" + secrets.token_urlsafe(32)
        self.add_access_token(access, realm_id, self.access_ttl, client_id)
        self.on_realm(realm_id)
        body = {"token_type": "bearer", "expires_in": self.access_ttl, "refresh_token": new_token,
                "x_refresh_token_expires_in": REFRESH_TTL, "access_token": access}
        if request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true":
            body["x_refresh_token_hard_expires_in"] = int(hard_expires_at - now)
        return json_response(body)

    async def token(self, request: Request) -> Response:
        """``POST /oauth2/v1/tokens/bearer``."""
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        client_id = self._client(request, form)
        if client_id is None:
            return _error("invalid_client", "Invalid client credentials", 401)
        if form.get("grant_type") == "authorization_code":
            found = self.codes.pop(form.get("code", ""), None)
            if found is None or found[0] != client_id or self.clock.now() >= found[2] \
                    or form.get("redirect_uri") != found[3]:
                return _error("invalid_grant", "Incorrect or invalid authorization code")
            return self._issue(client_id, found[1], self.clock.now() + HARD_CAP, request)
        if form.get("grant_type") != "refresh_token":
            return _error("unsupported_grant_type", "grant_type must be refresh_token or authorization_code")
        presented = form.get("refresh_token", "")
        record = self.refresh_tokens.get(presented)
        now = self.clock.now()
        if (record is None or record.client_id != client_id or record.revoked or now >= record.expires_at
                or now >= record.hard_expires_at
                or (record.superseded_at is not None and now >= record.superseded_at + self.grace)):
            return _error("invalid_grant", "Incorrect or invalid refresh token")
        if record.superseded_at is None:
            record.superseded_at = now
        self.refreshes += 1
        return self._issue(client_id, record.realm_id, record.hard_expires_at, request)

    async def revoke(self, request: Request) -> Response:
        """``POST /v2/oauth2/tokens/revoke`` body ``{"token": …}`` (refresh or access token)."""
        if self._client(request, {}) is None:
            return _error("invalid_client", "Invalid client credentials", 401)
        try:
            token = json.loads(await request.body() or b"{}").get("token", "")
        except (ValueError, AttributeError):
            return _error("invalid_request", "Body must be JSON {\"token\": ...}")
        if token in self.refresh_tokens:
            self.refresh_tokens[token].revoked = True
        self.access_tokens.pop(token, None)
        return Response(status_code=200, headers={"intuit_tid": secrets.token_hex(8)})


def _error(error: str, description: str, status: int = 400) -> Response:
    """OAuth error body ``{"error", "error_description"}`` (``oauth/token.failure.dotnet-sdk-test.json``;
    the descriptions are emulator wording)."""
    return json_response({"error": error, "error_description": description}, status)
