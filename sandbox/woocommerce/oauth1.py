"""Server side of WooCommerce's one-legged OAuth 1.0a, ported from
``WC_REST_Authentication::check_oauth_signature`` and
``check_oauth_timestamp_and_nonce`` (notes §2 "Plain HTTP").

Also holds ``php_query``: the query string as PHP's ``$_GET`` sees it, since the
signature is computed over ``$_GET`` and the official python client sends every
parameter twice (notes §4 "Quirk over HTTP").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import quote, unquote, unquote_plus

from sandbox.woocommerce import errors
from sandbox.woocommerce.errors import WPError

VALID_WINDOW = 15 * 60  # seconds; "15 minute window" in check_oauth_timestamp_and_nonce
REQUIRED = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature", "oauth_signature_method")


def php_query(raw: str) -> dict:
    """Parse a query string the way PHP fills ``$_GET``.

    Duplicate keys: the last value wins but keeps the first key's position
    (PHP array semantics). ``+`` decodes to a space. ``k[]``/``k[x]`` build
    arrays; ``.`` and space in the base name become ``_``.
    """
    out: dict = {}
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        bracket = name.find("[")
        if bracket > 0 and name.endswith("]"):
            base = re.sub(r"[. ]", "_", name[:bracket])
            sub = name[bracket + 1:-1]
            bucket = out.get(base)
            if not isinstance(bucket, dict):
                bucket = out[base] = {}
            if sub == "":
                sub = str(max((int(k) for k in bucket if k.isdigit()), default=-1) + 1)
            bucket[sub] = value
        else:
            out[re.sub(r"[. ]", "_", name)] = value
    return out


def php_empty(value) -> bool:
    """PHP ``empty()`` on a string: "" and "0" are empty."""
    return value is None or value in ("", "0") or value == {}


def rawurlencode(value: str) -> str:
    """PHP rawurlencode: RFC 3986, only ``A-Za-z0-9-_.~`` left alone."""
    return quote(value, safe="-_.~")


def _join_with_equals_sign(params: dict, prefix: str = "") -> list[str]:
    # join_with_equals_sign(): arrays expand as key%5Bsub%5D, then each
    # "k=v" is rawurlencoded again (so "=" becomes %3D and "%" becomes %25).
    out = []
    for key, value in params.items():
        if prefix:
            key = f"{prefix}%5B{key}%5D"
        if isinstance(value, dict):
            out += _join_with_equals_sign(value, key)
        else:
            out.append(rawurlencode(f"{key}={value}"))
    return out


def _normalize(params):
    # normalize_parameters(): rawurlencode keys and values (values of arrays too).
    if isinstance(params, dict):
        return {rawurlencode(k): _normalize(v) for k, v in params.items()}
    return rawurlencode(params)


def string_to_sign(method: str, base_url: str, params: dict) -> str:
    """``METHOD & rawurlencode(home_url(path)) & join('%26', ...)`` over all params but the signature."""
    params = {k: v for k, v in params.items() if k != "oauth_signature"}
    ordered = {k: params[k] for k in sorted(params, key=lambda s: s.encode())}  # uksort strcmp
    return f"{method.upper()}&{rawurlencode(base_url)}&" + "%26".join(_join_with_equals_sign(_normalize(ordered)))


def missing_parameters(params: dict) -> WPError | None | bool:
    """get_oauth_parameters(): False if no OAuth param at all (not trying OAuth),
    an error if only some are present, None if all are."""
    missing = [name for name in REQUIRED if php_empty(params.get(name))]
    if len(missing) == len(REQUIRED):
        return False
    if missing:
        noun = "parameter" if len(missing) == 1 else "parameters"
        return WPError("woocommerce_rest_authentication_missing_parameter",
                       f"Missing OAuth {noun} {', '.join(missing)}", 401)
    return None


def check_signature(method: str, base_url: str, params: dict, consumer_secret: str) -> WPError | None:
    """check_oauth_signature(): the method check comes after building the
    base string but before comparing, exactly as in WC."""
    # rawurldecode(str_replace(' ', '+', sig)): undo PHP's "+" -> space decoding.
    provided = unquote(str(params["oauth_signature"]).replace(" ", "+"))
    base = string_to_sign(method, base_url, params)
    sig_method = params.get("oauth_signature_method")
    if sig_method not in ("HMAC-SHA1", "HMAC-SHA256"):
        return WPError(errors.AUTH_ERROR, errors.BAD_SIGNATURE_METHOD, 401)
    algo = hashlib.sha1 if sig_method == "HMAC-SHA1" else hashlib.sha256
    expected = base64.b64encode(hmac.new((consumer_secret + "&").encode(), base.encode(), algo).digest()).decode()
    if not hmac.compare_digest(expected.encode(), provided.encode()):
        return WPError(errors.AUTH_ERROR, errors.BAD_SIGNATURE, 401)
    return None


def check_timestamp_and_nonce(used_nonces: dict, timestamp, nonce: str, now: float) -> WPError | None:
    """check_oauth_timestamp_and_nonce(). ``used_nonces`` is the key's stored
    map, mutated in place. Faithful quirk: WC keys it by timestamp, so a later
    nonce with the same timestamp replaces the earlier one in memory."""
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        ts = 0  # PHP compares a non-numeric string to an int as 0 -> out of window
    if ts < now - VALID_WINDOW or ts > now + VALID_WINDOW:
        return WPError(errors.AUTH_ERROR, errors.BAD_TIMESTAMP, 401)
    if nonce in used_nonces.values():
        return WPError(errors.AUTH_ERROR, errors.NONCE_USED, 401)
    used_nonces[ts] = nonce
    for stamp in [s for s in used_nonces if s < now - VALID_WINDOW]:
        del used_nonces[stamp]
    return None
