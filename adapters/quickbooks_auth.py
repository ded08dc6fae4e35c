"""QuickBooks OAuth 2.0 tokens through the official ``intuit-oauth`` client.

Intuit rotates refresh tokens: every refresh may return a new one and the
old one dies later (../shared/notes/quickbooks.md §4; pain point 1 in
peers.md). So the newest refresh token is committed to the ledger *before*
the new access token is used, and the ledger's token, once there, wins over
the one in the config (which is only the first).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError

from connector.errors import PermanentError, RetryableError

EARLY_REFRESH = timedelta(minutes=5)


class TokenVault:
    """Hands out a valid access token for one QuickBooks company."""

    def __init__(self, settings, ledger):
        self.settings = settings
        self.ledger = ledger
        self.realm = settings.realm_id
        self._auth: AuthClient | None = None

    def _auth_client(self) -> AuthClient:
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

    def access_token(self, *, force: bool = False) -> str:
        """A token valid for at least five more minutes, refreshing if needed."""
        stored = self.ledger.token("quickbooks", self.realm)
        now = datetime.now(timezone.utc)
        if stored and stored["access_token"] and not force and stored["access_expires_at"]:
            if datetime.fromisoformat(stored["access_expires_at"]) - EARLY_REFRESH > now:
                return stored["access_token"]
        refresh_token = stored["refresh_token"] if stored else self.settings.refresh_token.get_secret_value()
        auth = self._auth_client()
        try:
            auth.refresh(refresh_token=refresh_token)
        except AuthClientError as exc:
            if exc.status_code in (400, 401) and "invalid_grant" in (exc.content or ""):
                raise PermanentError(
                    "QuickBooks refused the refresh token (invalid_grant): the connection has expired or was revoked",
                    system="quickbooks", code="invalid_grant",
                    what_to_do="reconnect QuickBooks: authorise the app again and put the new refresh token in "
                               "the environment variable named by quickbooks.refresh_token") from exc
            raise RetryableError(f"QuickBooks token refresh failed (HTTP {exc.status_code})",
                                 system="quickbooks", status=exc.status_code) from exc
        except Exception as exc:
            raise RetryableError(f"QuickBooks token refresh failed: {exc}", system="quickbooks") from exc
        expires = now + timedelta(seconds=int(auth.expires_in or 3600))
        # Commit the rotated refresh token first: losing it would force the merchant to reconnect.
        self.ledger.save_token("quickbooks", self.realm, auth.refresh_token or refresh_token,
                               auth.access_token, expires)
        return auth.access_token
