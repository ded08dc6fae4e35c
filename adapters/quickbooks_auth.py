"""QuickBooks OAuth 2.0 tokens through the official ``intuit-oauth`` client.

Intuit rotates refresh tokens: every refresh may return a new one and the
old one dies later (../shared/notes/quickbooks.md §4; pain point 1 in
peers.md). So:

- the newest refresh token is committed to the ledger *before* the new
  access token is used, and the ledger's token, once there, wins over the
  one in the config (which is only the first);
- one refresh at a time, across every process and machine on the ledger:
  the refresh runs in a ledger transaction holding the lock
  ``quickbooks-token:<realm>`` (:func:`token_lock`), and whoever gets it
  second re-reads the token the first one saved instead of refreshing again
  with a spent token. On PostgreSQL that is an advisory lock of its own, not
  the ledger's writer lock, so the HTTP call to Intuit stalls only the other
  refreshers of that company, never every writer on every node; a SQLite file
  has one writer lock, held as before;
- ``invalid_grant`` marks the connection "needs reconnect" (committed, so
  every node sees it) and raises :class:`~connector.errors.PausedError`:
  steps wait for a person instead of burning retries, until
  ``o2c auth quickbooks`` stores a fresh token.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from connector.errors import PausedError, RetryableError

EARLY_REFRESH = timedelta(minutes=5)
RECONNECT = ("reconnect QuickBooks: run `o2c auth quickbooks --config <file>` and follow its two steps; "
             "QuickBooks steps resume by themselves afterwards")


def token_lock(realm: str) -> str:
    """The name of the lock one QuickBooks company's token refresh holds (``Ledger.transaction(lock=...)``)."""
    return f"quickbooks-token:{realm}"


class TokenVault:
    """Hands out a valid access token for one QuickBooks company."""

    def __init__(self, settings, ledger):
        self.settings = settings
        self.ledger = ledger
        self.realm = settings.realm_id
        self._auth: AuthClient | None = None

    def auth_client(self) -> AuthClient:
        if self._auth is None:
            try:
                # The constructor fetches the OpenID discovery document; 'environment' may be its URL.
                self._auth = AuthClient(
                    self.settings.client_id.get_secret_value(),
                    self.settings.client_secret.get_secret_value(),
                    self.settings.redirect_uri,
                    self.settings.environment,
                )
            except Exception as exc:
                raise RetryableError(f"could not reach Intuit's OAuth discovery document: {exc}",
                                     system="quickbooks") from exc
        return self._auth

    def _fresh(self, stored: dict | None, now: datetime) -> str | None:
        if stored and stored["access_token"] and stored["access_expires_at"]:
            if datetime.fromisoformat(stored["access_expires_at"]) - EARLY_REFRESH > now:
                return stored["access_token"]
        return None

    def access_token(self, *, force: bool = False) -> str:
        """A token valid for at least five more minutes, refreshing (once, for everyone) if needed.

        Raises:
            PausedError: QuickBooks refused the refresh token; a person must reconnect.
        """
        reason = self.ledger.needs_reconnect("quickbooks", self.realm)
        if reason:
            raise PausedError(f"QuickBooks needs reconnecting: {reason}", what_to_do=RECONNECT,
                              system="quickbooks", code="invalid_grant")
        now = datetime.now(timezone.utc)
        stored = self.ledger.token("quickbooks", self.realm)
        if not force and (token := self._fresh(stored, now)):
            return token
        spent = stored["access_token"] if stored else None
        refused: PausedError | None = None
        with self.ledger.transaction(lock=token_lock(self.realm)):
            # Whoever held the lock before us may have refreshed, or found the connection revoked.
            stored = self.ledger.token("quickbooks", self.realm)
            if stored and stored["access_token"] != spent and (token := self._fresh(stored, now)):
                return token
            reason = self.ledger.needs_reconnect("quickbooks", self.realm)
            if reason:
                raise PausedError(f"QuickBooks needs reconnecting: {reason}", what_to_do=RECONNECT,
                                  system="quickbooks", code="invalid_grant")
            refresh_token = (stored["refresh_token"] if stored and stored["refresh_token"]
                             else self.settings.refresh_token.get_secret_value())
            auth = self.auth_client()
            try:
                auth.refresh(refresh_token=refresh_token)
            except AuthClientError as exc:
                content = exc.content.decode("utf-8", "replace") if isinstance(exc.content, bytes) \
                    else str(exc.content or "")
                if "invalid_grant" not in content:
                    raise RetryableError(f"QuickBooks token refresh failed (HTTP {exc.status_code})",
                                         system="quickbooks", status=exc.status_code) from exc
                # Recorded in this transaction and raised after it commits: an exception inside would
                # roll the mark back, and every node would go on spending the dead token.
                self.ledger.mark_reconnect("quickbooks", self.realm,
                                           "the refresh token was refused (invalid_grant): expired or revoked")
                refused = PausedError("QuickBooks refused the refresh token (invalid_grant): the connection "
                                      "expired or was revoked", what_to_do=RECONNECT, system="quickbooks",
                                      code="invalid_grant")
                refused.__cause__ = exc
            except Exception as exc:
                raise RetryableError(f"QuickBooks token refresh failed: {exc}", system="quickbooks") from exc
            else:
                expires = now + timedelta(seconds=int(auth.expires_in or 3600))
                # Same transaction as the refresh: the rotated token is durable before anyone uses the new one.
                self.ledger.save_token("quickbooks", self.realm, auth.refresh_token or refresh_token,
                                       auth.access_token, expires)
        if refused is not None:
            raise refused
        return auth.access_token

    # -- first authorization (o2c auth quickbooks) --------------------------------------------
    def expected_state(self) -> str:
        """The OAuth ``state`` of today's consent: an HMAC only this installation can make.

        Derived rather than stored, so the redirect can be pasted in a later run
        (``--redirect-url``) and still be checked against forgery.
        """
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        key = self.settings.client_secret.get_secret_value().encode()
        return hmac.new(key, f"{self.realm}|{day}".encode(), hashlib.sha256).hexdigest()[:32]

    def consent_url(self, state: str) -> str:
        return self.auth_client().get_authorization_url([Scopes.ACCOUNTING], state_token=state)

    def connect(self, redirect_url: str, state: str) -> str:
        """Finish the consent: trade the code in ``redirect_url`` for tokens; return the realm id.

        Raises:
            ValueError: the URL carries no code, another state, or another company.
        """
        query = parse_qs(urlparse(redirect_url).query)
        if "error" in query:
            raise ValueError(f"QuickBooks refused the connection: {query['error'][0]}")
        code, realm = query.get("code", [None])[0], query.get("realmId", [None])[0]
        if not code or not realm:
            raise ValueError("the URL has no code and realmId: paste the whole address QuickBooks sent you to")
        if query.get("state", [None])[0] != state:
            raise ValueError("the URL belongs to another authorization attempt (state differs): start again")
        if realm != self.realm:
            raise ValueError(f"you connected company {realm}, but the config names {self.realm}: "
                             "set quickbooks.realm_id or connect the right company")
        auth = self.auth_client()
        try:
            auth.get_bearer_token(code, realm_id=realm)
        except AuthClientError as exc:
            raise ValueError(f"QuickBooks refused the code (HTTP {exc.status_code}): start again") from exc
        expires = datetime.now(timezone.utc) + timedelta(seconds=int(auth.expires_in or 3600))
        with self.ledger.transaction():
            self.ledger.save_token("quickbooks", self.realm, auth.refresh_token, auth.access_token, expires)
        return realm
