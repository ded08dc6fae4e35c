"""WC_REST_Authentication::authenticate for one request (notes §2).

Over HTTPS (``is_ssl()``; here: ``X-Forwarded-Proto: https``) WC tries
"basic" auth first (``consumer_key``/``consumer_secret`` query params, then the
``Authorization: Basic`` header), then falls back to OAuth. Over plain HTTP
only OAuth 1.0a is tried, so Basic credentials are ignored and the request
runs as anonymous (-> 401 ``woocommerce_rest_cannot_view`` later).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from urllib.parse import unquote_plus

from sandbox.woocommerce import errors, oauth1
from sandbox.woocommerce.errors import WPError
from sandbox.woocommerce.store import Credential, Site


BASIC_REALM = ('Basic realm="WooCommerce API. Use a consumer key in the username field '
               'and a consumer secret in the password field."')


def is_ssl(headers) -> bool:
    return headers.get("x-forwarded-proto", "").lower() == "https"


def _basic(site: Site, params: dict, headers) -> tuple[Credential | None, WPError | None]:
    key = secret = ""
    # perform_basic_authentication(): query params first, then PHP_AUTH_USER/PW.
    if not oauth1.php_empty(params.get("consumer_key")) and not oauth1.php_empty(params.get("consumer_secret")):
        key, secret = str(params["consumer_key"]), str(params["consumer_secret"])
    header = headers.get("authorization", "")
    if not key and header[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            key, secret = user, password
        except (binascii.Error, UnicodeDecodeError):
            pass
    if not key or not secret:
        return None, None
    cred = site.credentials.get(key) if site else None
    if cred is None:
        return None, None   # unknown key over SSL: no error, request runs as anonymous
    if cred.consumer_secret != secret:
        # Notes §2 table: sent with the Basic challenge (send_unauthorized_headers).
        return None, WPError(errors.AUTH_ERROR, errors.BAD_CONSUMER_SECRET, 401, headers={"WWW-Authenticate": BASIC_REALM})
    return cred, None


def _oauth_header_params(header: str) -> dict:
    # parse_header(): "OAuth k="v", ..." values are urldecoded.
    if not header.startswith("OAuth "):
        return {}
    found = re.findall(r'(oauth_[a-z_-]*)=(:?"([^"]*)"|([^,]*))', header)
    return {name: unquote_plus(quoted or bare) for name, _, quoted, bare in found}


def authenticate(method: str, base_url: str, site: Site | None, params: dict, headers,
                 now: float | None = None) -> tuple[Credential | None, WPError | None]:
    """Return (credential, None) on success, (None, error) on an auth error,
    (None, None) for anonymous. ``base_url`` is home_url(request path)."""
    error = None
    if is_ssl(headers):
        cred, error = _basic(site, params, headers)
        if cred:
            return cred, None
    oauth_params = {**params, **_oauth_header_params(headers.get("authorization", "").strip())}
    missing = oauth1.missing_parameters(oauth_params)
    if missing is False:
        return None, error          # not trying OAuth; keep any basic-auth error
    if missing is not None:
        return None, missing
    cred = site.credentials.get(str(oauth_params["oauth_consumer_key"])) if site else None
    if cred is None:
        return None, WPError(errors.AUTH_ERROR, errors.BAD_CONSUMER_KEY, 401)
    error = oauth1.check_signature(method, base_url, oauth_params, cred.consumer_secret)
    if error is None:
        error = oauth1.check_timestamp_and_nonce(cred.nonces, oauth_params["oauth_timestamp"],
                                                 str(oauth_params["oauth_nonce"]), now or time.time())
    return (None, error) if error else (cred, None)


def check_key_permissions(cred: Credential | None, method: str) -> WPError | None:
    """check_permissions() in rest_pre_dispatch: read for GET/HEAD, write for the rest."""
    if cred is None or method == "OPTIONS":
        return None
    if method in ("GET", "HEAD") and cred.permissions not in ("read", "read_write"):
        return WPError(errors.AUTH_ERROR, errors.NO_READ, 401)
    if method in ("POST", "PUT", "PATCH", "DELETE") and cred.permissions not in ("write", "read_write"):
        return WPError(errors.AUTH_ERROR, errors.NO_WRITE, 401)
    return None
