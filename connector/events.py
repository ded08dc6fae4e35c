"""What the events table keeps of an attempt: a hash of the body sent, a short answer, no secret.

Bodies are never stored in the ledger, only :func:`payload_hash` of the
canonical JSON actually sent (sorted keys, Decimal amounts as strings), so
the same body gives the same hash in any ledger and any run. The short
``response`` and ``error`` lines pass through :func:`redact`, which blanks
anything shaped like a credential (an ``Authorization`` value, a bearer or
basic token, ``access_token=...``, a store or HubSpot token) and clips the
line. Schema: docs/ledger.md (migration 8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import date, datetime
from decimal import Decimal
from enum import Enum

MAX_TEXT = 500  # characters kept of a response, error or detail line
REDACTED = "[redacted]"

_CREDENTIAL_NAMES = (r"authorization|proxy-authorization|x-shopify-access-token|x-wc-webhook-signature|"
                     r"access[_-]?token|refresh[_-]?token|id[_-]?token|client[_-]?secret|consumer[_-]?secret|"
                     r"consumer[_-]?key|api[_-]?key|apikey|hapikey|oauth_signature")
_VALUE = r"(?:(?:bearer|basic|token)\s+)?[^\s\"',;&}]+"  # the scheme goes with the value
_SECRETS = (
    # "Authorization: Bearer x", "access_token=x", '"refresh_token": "x"'
    (re.compile(r"(?i)(\b(?:" + _CREDENTIAL_NAMES + r")\b[\"']?\s*[:=]\s*[\"']?)" + _VALUE), r"\1" + REDACTED),
    # Bare words only as a parameter or a JSON key ("token=x", '"secret": "x"'), not in prose ("token: expired")
    (re.compile(r"(?i)(\b(?:token|secret|password)(?:=|[\"']\s*[:=]\s*[\"']?))" + _VALUE), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    # Token shapes of the systems we talk to: Shopify shpat_/shpca_/shppa_/shpss_, HubSpot pat-...,
    # WooCommerce ck_/cs_ keys.
    (re.compile(r"\b(?:shp(?:at|ca|pa|ss)_[A-Za-z0-9]+|pat-[A-Za-z0-9]+-[A-Za-z0-9-]+|c[ks]_[A-Za-z0-9_]{8,})"),
     REDACTED),
)


def _encode(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a payload hash")


def canonical_json(body) -> str:
    """The body as canonical JSON: sorted keys, no spaces, Decimals as their exact strings."""
    return json.dumps(body, default=_encode, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_hash(body) -> str | None:
    """First 16 hex characters of the sha256 of :func:`canonical_json`; None when nothing was sent."""
    if body is None:
        return None
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]


def redact(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """``text`` with anything credential-shaped blanked, on one line, clipped to ``limit`` characters."""
    if text is None:
        return None
    text = " ".join(str(text).split())
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def error_answer(exc: BaseException | None) -> str | None:
    """What a target answered when it refused: ``HTTP 400 6240 Duplicate Name Exists: ...``.

    None when the error carries neither an HTTP status nor a vendor code (the target never answered:
    connection lost, timeout). Only call it on errors that came back from the target.
    """
    if exc is None:
        return None
    status, code = getattr(exc, "status", None), getattr(exc, "code", None)
    if status is None and code is None:
        return None
    parts = []
    if status and status != 200:  # 200: a fault inside a batch answer
        parts.append(f"HTTP {status}")
    if code and str(code) != str(status):
        parts.append(str(code))
    text = str(getattr(exc, "message", None) or exc)
    marker = f"{code}: " if code else None
    if marker and marker in text[:80]:  # "QuickBooks fault 6240: Duplicate Name Exists" -> the vendor's words
        text = text.split(marker, 1)[1]
    parts.append(text)
    return redact(" ".join(parts), 200)
