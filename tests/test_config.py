"""A bad config stops with one clear line naming the key and the fix, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import load_config
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENV = {"SHOP_TOKEN": "shop-token-xyz", "WOO_KEY": "ck", "WOO_SECRET": "cs", "HS_TOKEN": "h", "QBO_ID": "i", "QBO_SECRET": "s",
       "QBO_REFRESH": "r"}
GOOD = """\
ledger: var/ledger.db
stores:
  - name: main-shop
    system: shopify
    shop_url: main-shop.myshopify.com
    access_token: ${SHOP_TOKEN}
  - name: wholesale
    system: woocommerce
    url: https://wholesale.example.com
    consumer_key: ${WOO_KEY}
    consumer_secret: ${WOO_SECRET}
hubspot:
  access_token: ${HS_TOKEN}
quickbooks:
  realm_id: "9341453000000000"
  client_id: ${QBO_ID}
  client_secret: ${QBO_SECRET}
  refresh_token: ${QBO_REFRESH}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_valid_config_with_two_stores_resolves_secrets_from_environment(tmp_path):
    settings = load_config(write(tmp_path, GOOD), env=ENV)
    assert [s.name for s in settings.stores] == ["main-shop", "wholesale"]
    assert settings.stores[0].shop_url == "https://main-shop.myshopify.com"
    assert settings.stores[0].access_token.get_secret_value() == "shop-token-xyz"
    assert "shop-token-xyz" not in repr(settings.stores[0])  # secrets never print
    assert settings.ledger_path == tmp_path / "var" / "ledger.db"


@pytest.mark.parametrize("change, key, words", [
    (("    access_token: ${SHOP_TOKEN}\n", "    access_token: ${SHOP_TOKEN}\n    colour: blue\n"),
     "stores[0].colour", "unknown key"),
    (("  - name: wholesale\n    system: woocommerce\n", "  - name: wholesale\n    system: woocommerce\n    timeout_seconds: slow\n"),
     "stores[1].timeout_seconds", "number"),
    (("    url: https://wholesale.example.com", "    url: ftp://wholesale.example.com"),
     "stores[1].url", "not an http(s) URL"),
    (("    shop_url: main-shop.myshopify.com", "    shop_url: http://main-shop.example.com"),
     "stores[0].shop_url", "plain http"),
    (("  access_token: ${HS_TOKEN}", "  access_token: pat-na1-123"), "hubspot.access_token", "in clear"),
    (("  realm_id: \"9341453000000000\"\n", ""), "quickbooks.realm_id", "missing"),
    (("    system: shopify", "    system: magento"), "stores[0].system", "shopify' or 'woocommerce"),
])
def test_bad_config_names_the_key_and_the_fix(tmp_path, change, key, words):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    assert caught.value.key == key
    assert words in str(caught.value)
    assert caught.value.fix


def test_missing_environment_variable_says_which_to_export(tmp_path):
    env = {k: v for k, v in ENV.items() if k != "QBO_REFRESH"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD), env=env)
    assert caught.value.key == "quickbooks.refresh_token"
    assert "export QBO_REFRESH" in caught.value.fix


def test_secret_file_readable_by_others_is_refused(tmp_path):
    secret = tmp_path / "hs.secret"
    secret.write_text("pat-token\n")
    secret.chmod(0o644)
    text = GOOD.replace("${HS_TOKEN}", "${file:hs.secret}")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    assert "chmod 600" in caught.value.fix
    secret.chmod(0o600)
    assert load_config(write(tmp_path, text), env=ENV).hubspot.access_token.get_secret_value() == "pat-token"


def test_two_stores_whose_document_numbers_would_collide_are_refused(tmp_path):
    text = GOOD.replace("name: wholesale", "name: main-site")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    assert "doc_number_prefix" in str(caught.value)


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("    access_token: ${SHOP_TOKEN}\n", "    access_token: ${SHOP_TOKEN}\n    colour: blue\n"))
    result = subprocess.run([sys.executable, "sync.py", "check-config", "--config", str(path)], cwd=ROOT,
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **ENV})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "stores[0].colour" in lines[0] and "Fix:" in lines[0]


def test_example_config_is_valid():
    settings = load_config(ROOT / "config.example.yaml", env={**ENV, "SHOPIFY_MAIN_TOKEN": "t",
                                                               "WOO_WHOLESALE_KEY": "k", "WOO_WHOLESALE_SECRET": "s",
                                                               "HUBSPOT_TOKEN": "h", "QBO_CLIENT_ID": "i",
                                                               "QBO_CLIENT_SECRET": "s", "QBO_REFRESH_TOKEN": "r",
                                                               "SHOPIFY_MAIN_WEBHOOK_SECRET": "w",
                                                               "WOO_WHOLESALE_WEBHOOK_SECRET": "w"})
    assert len(settings.stores) >= 2
