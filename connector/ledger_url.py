"""Where the ledger lives: a SQLite file or a PostgreSQL database, named by one string.

``ledger:`` in the config (and ``Ledger(...)``) takes ``sqlite:///path``, a plain
path (as always), or ``postgresql://user@host:port/db``. A password in a URL is a
secret (DESIGN.md guarantee 6): :func:`redact_url` blanks it wherever the URL
is shown or logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class LedgerLocation:
    """A parsed ledger location: ``backend`` is ``sqlite`` (with ``path``) or ``postgresql`` (with ``url``)."""

    backend: str
    path: Path | None = None
    url: str | None = None

    @property
    def shown(self) -> str:
        """How to name the ledger in logs, status and messages: never with a password."""
        return str(self.path) if self.backend == "sqlite" else redact_url(self.url or "")


def parse_ledger(value: str | Path) -> LedgerLocation:
    """Tell a SQLite path from a PostgreSQL URL.

    Raises:
        ValueError: for a URL scheme that is neither (e.g. ``mysql://``).
    """
    text = str(value)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in POSTGRES_SCHEMES:
        return LedgerLocation("postgresql", url=text)
    if scheme == "sqlite":
        return LedgerLocation("sqlite", path=Path(text.removeprefix("sqlite:///") if text.startswith("sqlite:///")
                                                   else text.split("://", 1)[1]))
    if scheme and not re.match(r"^[A-Za-z]:[\\/]", text):
        raise ValueError(f"ledger {redact_url(text)!r}: unknown kind of ledger '{scheme}://'; "
                         "use a file path, sqlite:///path or postgresql://user@host:5432/db")
    return LedgerLocation("sqlite", path=Path(text))


def redact_url(text: str) -> str:
    """``postgresql://app:s3cret@db/o2c`` -> ``postgresql://app:***@db/o2c``; also in a longer message."""
    def one(match: re.Match) -> str:
        url = match.group(0)
        try:
            parts = urlsplit(url)
        except ValueError:
            return re.sub(r"://([^:/@\s]*):[^@\s]*@", r"://\1:***@", url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", one, text)
    return re.sub(r"(?i)(password=)[^&\s'\"]*", r"\1***", text)
