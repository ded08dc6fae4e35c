"""Find the test PostgreSQL server and give each test a fresh database of its own, dropped after.

The server: ``O2C_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
any database on it the user may create databases from. When it cannot be reached
the PostgreSQL tests skip, saying which URL was tried and how to start one,
unless ``O2C_REQUIRE_POSTGRES=1`` (set by ``.ci/run``): then they fail, so CI
never passes without having run them. See docs/testing.md and docs/ledger.md.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from connector.ledger_url import redact_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOW_TO_START = ("start one (Debian: apt-get install postgresql && service postgresql start; trust auth for "
                "127.0.0.1), or point O2C_TEST_POSTGRES_URL at a server where the user may CREATE DATABASE")


def server_url() -> str:
    return os.environ.get("O2C_TEST_POSTGRES_URL") or DEFAULT_URL


def required() -> bool:
    return os.environ.get("O2C_REQUIRE_POSTGRES") == "1"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _admin():
    """An autocommit connection to the server, or skip/fail saying why."""
    import psycopg
    url = server_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        message = (f"PostgreSQL not reachable at {redact_url(url)} ({redact_url(str(exc).strip())}); "
                   f"{HOW_TO_START}")
        if required():
            pytest.fail(f"O2C_REQUIRE_POSTGRES=1 but {message}", pytrace=False)
        pytest.skip(message)


@contextmanager
def fresh_database(prefix: str = "o2c_test"):
    """Create a uniquely named database, yield its URL, drop it (with any connection left open) after."""
    admin = _admin()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_url(), name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test; its URL."""
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """What ``Ledger(...)`` is given: a file path, or the URL of a fresh PostgreSQL database (both backends)."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
    else:
        with fresh_database() as url:
            yield url
