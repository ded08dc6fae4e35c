"""Small WordPress / WooCommerce core helpers the webhook code needs.

Each function mirrors the PHP function of the same name closely enough for
the emulator: ``wp_generate_password`` (generated webhook secrets, notes §3
"Secret"), ``wp_hash`` (the ``X-WC-Webhook-Delivery-ID``, notes §3 "Headers"),
``wp_specialchars_decode`` (the secret is decoded before signing),
``rest_sanitize_boolean`` and ``wc_is_valid_url``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

# wp_generate_password(): letters+digits, then special_chars, then extra_special_chars.
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SPECIAL = "!@#$%^&*()"
_EXTRA_SPECIAL = "-_ []{}<>~`+=,.;:/?|"

# wp_specialchars_decode( $string, ENT_QUOTES ): the entities WP translates back.
_ENTITIES = {
    "&quot;": '"', "&#034;": '"', "&#x22;": '"', "&lt;": "<", "&#060;": "<", "&gt;": ">", "&#062;": ">",
    "&amp;": "&", "&#038;": "&", "&#x26;": "&", "&#039;": "'", "&#x27;": "'",
}
_ENTITY_RE = re.compile("|".join(re.escape(k) for k in sorted(_ENTITIES, key=len, reverse=True)), re.IGNORECASE)


def wp_generate_password(length: int = 12, special_chars: bool = True, extra_special_chars: bool = False) -> str:
    """Random password from WP's alphabet (``wp_generate_password(50, true, true)``
    is what REST webhook creation uses when no secret is sent)."""
    chars = _LETTERS + (_SPECIAL if special_chars else "") + (_EXTRA_SPECIAL if extra_special_chars else "")
    return "".join(secrets.choice(chars) for _ in range(length))


def wp_hash(data: str, salt: str) -> str:
    """``hash_hmac('md5', $data, wp_salt('auth'))``: 32 lowercase hex digits."""
    return hmac.new(salt.encode(), data.encode(), hashlib.md5).hexdigest()


def wp_specialchars_decode(text: str) -> str:
    """Decode the HTML entities WP's ``wp_specialchars_decode(.., ENT_QUOTES)`` knows."""
    if "&" not in text:
        return text
    return _ENTITY_RE.sub(lambda m: _ENTITIES[m.group(0).lower()], text)


def rest_is_boolean(value) -> bool:
    """``rest_is_boolean``: true/false/1/0 (strings compared lowercased) or a bool."""
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("false", "true", "0", "1", "")
    return isinstance(value, int) and value in (0, 1)


def rest_sanitize_boolean(value) -> bool:
    """``rest_sanitize_boolean``: "false"/"0"/"" are false, other strings true."""
    if isinstance(value, str):
        return value.lower() not in ("false", "0", "")
    return bool(value)


def wc_is_valid_url(url) -> bool:
    """``wc_is_valid_url``: starts with http:// or https:// and passes
    ``filter_var(FILTER_VALIDATE_URL)`` (approximated: a host is present and
    there is no whitespace)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return False
    if re.search(r"\s", url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port   # raises on a bad port
    except ValueError:
        return False
    return bool(parts.hostname) and port != 0
