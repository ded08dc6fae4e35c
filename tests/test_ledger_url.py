"""Naming the ledger in config: a path, sqlite:///path or postgresql://...; a password never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import Settings, load_config
from connector.errors import ConfigError, SQLiteOnlyError
from connector.ledger_url import parse_ledger, redact_url
from tests.test_status import make_settings


def test_a_path_sqlite_url_and_postgresql_url_are_told_apart():
    assert parse_ledger("var/o2c.db") == parse_ledger("sqlite:///var/o2c.db")
    assert parse_ledger("sqlite:///var/o2c.db").path == Path("var/o2c.db")
    assert parse_ledger("postgresql://app@db:5432/o2c").backend == "postgresql"
    with pytest.raises(ValueError, match="unknown kind of ledger 'mysql://'"):
        parse_ledger("mysql://app:hunter2@db/o2c")


def test_a_password_in_a_ledger_url_is_blanked_wherever_it_is_shown():
    assert redact_url("postgresql://app:s3cret@db:5432/o2c") == "postgresql://app:***@db:5432/o2c"
    assert redact_url("could not open postgresql://app:s3cret@db/o2c?password=x now") == \
        "could not open postgresql://app:***@db/o2c?password=*** now"
    assert redact_url("postgresql://app@db/o2c") == "postgresql://app@db/o2c"
    assert parse_ledger("postgresql://app:s3cret@db/o2c").shown == "postgresql://app:***@db/o2c"


def test_config_takes_a_postgresql_ledger_and_says_which_features_need_a_file(tmp_path):
    settings = make_settings(tmp_path).model_copy(update={"ledger": "postgresql://app@db:5432/o2c"})
    assert settings.ledger_url == "postgresql://app@db:5432/o2c"
    assert not settings.ledger_is_sqlite
    with pytest.raises(SQLiteOnlyError, match="needs a SQLite ledger"):
        settings.ledger_path
    sqlite = make_settings(tmp_path)
    assert sqlite.ledger_url == str(tmp_path / "ledger.db") and sqlite.ledger_path == tmp_path / "ledger.db"


def test_a_ledger_password_written_in_the_yaml_is_refused_without_being_repeated(tmp_path):
    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    text = example.read_text()
    config = tmp_path / "o2c.yaml"
    config.write_text("ledger: postgresql://app:hunter2@db:5432/o2c\n" + "\n".join(
        line for line in text.splitlines() if not line.startswith("ledger:")))
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert caught.value.key == "ledger" and "hunter2" not in str(caught.value)
    assert "${O2C_LEDGER_URL}" in str(caught.value)
