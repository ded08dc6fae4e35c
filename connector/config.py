"""Load and validate the YAML configuration.

Secrets are never written in the YAML in clear (DESIGN.md guarantee 6):
a secret field holds ``${ENV_VAR}`` or ``${file:/path/to/secret}`` (the file
must not be readable by group or others). Any problem stops with one
:class:`~connector.errors.ConfigError` that names the key and the fix; the
CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union
from urllib.parse import urlparse

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator,
                      model_validator)

from connector.errors import ConfigError, SQLiteOnlyError
from connector.ledger_url import parse_ledger, redact_url

REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*|file:[^}]+)\}$")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_url(value: str, *, allow_plain_http: bool) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"'{value}' is not an http(s) URL")
    if parsed.scheme == "http" and not allow_plain_http and parsed.hostname not in LOOPBACK:
        raise ValueError(f"'{value}' uses plain http; only https is accepted except on 127.0.0.1/localhost")
    return value.rstrip("/")


class ShopifyStore(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    system: Literal["shopify"]
    shop_url: str
    access_token: SecretStr
    api_version: str = Field(default="2026-01", pattern=r"^(\d{4}-\d{2}|unstable)$")
    initial_cursor: str = "1970-01-01T00:00:00Z"
    lookback_seconds: int = Field(default=300, ge=0, le=7 * 86400)
    safety_lag_seconds: int = Field(default=5, ge=0, le=3600)
    page_size: int = Field(default=50, ge=1, le=250)
    poll_seconds: int = Field(default=300, ge=5, le=86400)  # how often the daemon polls this store
    # Which money books: the shop's currency, or the currency the shopper paid in (presentment).
    book_in: Literal["shop", "presentment"] = "shop"
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    doc_number_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{0,10}$")
    # invoice: an invoice plus a payment per captured transaction; sales_receipt: a sales receipt
    # for orders paid in full at checkout (other orders still get an invoice).
    posting: Literal["invoice", "sales_receipt"] = "invoice"
    # The app's client secret: Shopify signs webhook bodies with it (notes/shopify.md §3).
    webhook_secret: SecretStr | None = None

    @field_validator("shop_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if "://" not in v:
            v = "https://" + v
        return _check_url(v, allow_plain_http=False)


class WooCommerceStore(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    system: Literal["woocommerce"]
    url: str
    consumer_key: SecretStr
    consumer_secret: SecretStr
    poll_seconds: int = Field(default=300, ge=5, le=86400)  # how often the daemon polls this store
    initial_cursor: str = "1970-01-01T00:00:00Z"
    lookback_seconds: int = Field(default=300, ge=0, le=7 * 86400)
    safety_lag_seconds: int = Field(default=5, ge=0, le=3600)
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    doc_number_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{0,10}$")
    # invoice: an invoice plus a payment per captured transaction; sales_receipt: a sales receipt
    # for orders paid in full at checkout (other orders still get an invoice).
    posting: Literal["invoice", "sales_receipt"] = "invoice"
    # A CA file to trust for a site whose https certificate is self-signed or from a private CA.
    ca_bundle: str | None = None
    # The secret `o2c webhooks register` gives the site's webhooks; WooCommerce signs with it
    # and never shows it again (notes/woocommerce.md §3 "Secret").
    webhook_secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        # WooCommerce speaks OAuth1 over plain http, so http is legitimate here.
        return _check_url(v, allow_plain_http=True)


def doc_prefix(store) -> str:
    """QuickBooks DocNumber prefix: the configured one, else the store name's initials + '-'."""
    if store.doc_number_prefix is not None:
        return store.doc_number_prefix
    initials = "".join(part[0] for part in re.split(r"[-_]+", store.name) if part).upper()[:5]
    return initials + "-"


Store = Annotated[Union[ShopifyStore, WooCommerceStore], Field(discriminator="system")]


class HubSpotSettings(Strict):
    """The ``hubspot:`` section (docs/targets-hubspot.md)."""

    # Deal stage per order status: "cancelled", a financial status, or "<financial>+<fulfillment>"
    # (which wins over the financial status alone). Ids of HubSpot's default sales pipeline.
    DEFAULT_DEAL_STAGES: ClassVar[dict[str, str]] = {
        "pending": "contractsent", "authorized": "contractsent", "partially_paid": "contractsent",
        "paid": "closedwon", "partially_refunded": "closedwon",
        "refunded": "closedlost", "voided": "closedlost", "cancelled": "closedlost",
    }
    FINANCIAL: ClassVar[tuple[str, ...]] = ("pending", "authorized", "partially_paid", "paid",
                                            "partially_refunded", "refunded", "voided")
    FULFILLMENT: ClassVar[tuple[str, ...]] = ("unfulfilled", "partial", "fulfilled")

    access_token: SecretStr
    host: str = "https://api.hubapi.com"
    # legacy: the SDK's /crm/v3 and /crm/v4 paths; a date version such as "2026-03" sends the same
    # bodies to /crm/objects/2026-03/... (notes/hubspot.md §0: v3/v4 go unsupported in 2027).
    api_version: str = Field(default="legacy", pattern=r"^(legacy|\d{4}-\d{2})$")
    # Orders without an email: skip the contact (with the reason), or find a contact by phone.
    no_email_rule: Literal["skip", "match_by_phone"] = "skip"
    lifecycle_stage: str = "customer"
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    pipeline: str = "default"
    deal_stages: dict[str, str] = Field(default_factory=dict)
    deal_name_template: str = "{order_name} ({store})"
    # Unique custom properties the connector creates (if missing) and upserts by.
    order_key_property: str = Field(default="o2c_order_key", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    line_key_property: str = Field(default="o2c_line_key", pattern=r"^[a-z][a-z0-9_]{0,62}$")

    @field_validator("host")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, allow_plain_http=False)

    @field_validator("deal_stages")
    @classmethod
    def _stages(cls, v: dict[str, str]) -> dict[str, str]:
        allowed = {"cancelled", *cls.FINANCIAL} | {f"{a}+{b}" for a in cls.FINANCIAL for b in cls.FULFILLMENT}
        wrong = sorted(k for k in v if k not in allowed)
        if wrong:
            raise ValueError(f"unknown order status {wrong[0]!r} in deal_stages; use 'cancelled', one of "
                             f"{', '.join(cls.FINANCIAL)}, or '<financial>+<fulfillment>' like 'paid+fulfilled'")
        empty = sorted(k for k, stage in v.items() if not str(stage).strip())
        if empty:
            raise ValueError(f"deal_stages.{empty[0]} is empty; give a stage id of the pipeline")
        return {**cls.DEFAULT_DEAL_STAGES, **v}

    @field_validator("deal_name_template")
    @classmethod
    def _deal_name(cls, v: str) -> str:
        try:
            v.format(order_name="#1", store="s", source_order_id="1", email="e")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"deal_name_template {v!r} uses an unknown field ({exc}); "
                             "use {order_name}, {store}, {source_order_id}, {email}") from None
        return v

    def stage_map(self) -> dict[str, str]:
        """Configured stages over the defaults (also when ``deal_stages`` was left out)."""
        return {**self.DEFAULT_DEAL_STAGES, **self.deal_stages}


class QuickBooksGateway(Strict):
    """How one store gateway's money books in QuickBooks (names as QuickBooks shows them)."""

    payment_method: str | None = None
    deposit_account: str | None = None  # Payment / SalesReceipt DepositToAccountRef
    refund_account: str | None = None  # RefundReceipt DepositToAccountRef (Bank or Other Current Asset)


class QuickBooksSettings(Strict):
    realm_id: str = Field(pattern=r"^\d{1,20}$")
    client_id: SecretStr
    client_secret: SecretStr
    refresh_token: SecretStr
    # 'sandbox', 'production', or the URL of an OpenID discovery document (the local sandbox).
    environment: str = "production"
    api_url: str = "https://quickbooks.api.intuit.com/v3"
    redirect_uri: str = "https://localhost/callback"
    minor_version: int = Field(default=75, ge=75)
    display_name_template: str = "{first_name} {last_name}"
    shipping_item: str = "Shipping"
    default_item: str | None = None
    item_map: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=60, gt=0, le=600)
    # Items: a SKU with no item is created (create_missing_items) or booked to default_item,
    # else the step is dead naming the SKU. Fee lines book to fee_item (default: default_item).
    create_missing_items: bool = False
    missing_item_type: Literal["NonInventory", "Service"] = "NonInventory"
    income_account: str = "Sales of Product Income"  # account name for created items
    fee_item: str | None = None
    # Taxes (notes §1.3): us = TAX/NON per line + TxnTaxDetail.TotalTax (+ us_tax_code as
    # TxnTaxCodeRef); non_us = TaxCodeRef per line from tax_codes ({rate percent or tax title:
    # TaxCode id}), exempt_tax_code for untaxed lines, GlobalTaxCalculation from the order.
    tax: Literal["us", "non_us"] = "us"
    us_tax_code: str | None = None
    tax_codes: dict[str, str] = Field(default_factory=dict)
    exempt_tax_code: str | None = None
    # Money: {gateway: {payment_method, deposit_account, refund_account}} by QuickBooks name;
    # "*" is the default for gateways not listed. Refunds book as a refund_receipt (money back)
    # or a credit_memo (credit on account).
    gateways: dict[str, "QuickBooksGateway"] = Field(default_factory=dict)
    refunds: Literal["refund_receipt", "credit_memo"] = "refund_receipt"
    # A line on this item may absorb a total difference of at most one cent per document.
    rounding_item: str | None = None

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, allow_plain_http=False)

    @field_validator("environment")
    @classmethod
    def _env(cls, v: str) -> str:
        if v in ("sandbox", "production", "prod"):
            return v
        return _check_url(v, allow_plain_http=False)


class WebhookSettings(Strict):
    """The ``webhooks:`` section: where the webhook server listens (docs/webhooks.md)."""

    host: str = "127.0.0.1"  # put a TLS-terminating proxy in front; stores deliver to https only
    port: int = Field(default=8710, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # The address the stores reach this server at (https in production); `o2c webhooks register`
    # subscribes <public_base_url>/webhooks/<system>/<store>.
    public_base_url: str | None = None
    # How often the daemon checks each store's subscriptions and re-creates (Shopify deletes failing
    # ones) or re-enables (WooCommerce disables failing ones) them; needs public_base_url.
    health_seconds: int = Field(default=900, ge=5, le=86400)

    @field_validator("public_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v, allow_plain_http=False)


class DashboardSettings(Strict):
    """The ``dashboard:`` section: the admin dashboard the daemon (or ``o2c dashboard``) serves (docs/dashboard.md)."""

    host: str = "127.0.0.1"  # bind address; put a TLS-terminating proxy in front to reach it from elsewhere
    port: int = Field(default=8720, ge=1, le=65535)
    # Every page and API call needs it (a login form sets a session cookie derived from it).
    admin_token: SecretStr
    # The address browsers use (https://admin.example.com); POSTs must come from it. Default: the
    # address the request was made to, on a loopback bind only.
    public_origin: str | None = None
    # Links to HubSpot records need the account (portal) id; without it the ids are shown.
    hubspot_portal_id: str | None = Field(default=None, pattern=r"^\d{1,20}$")

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("admin_token is too short; use at least 16 random characters "
                             "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return v

    @field_validator("public_origin")
    @classmethod
    def _origin(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = _check_url(v, allow_plain_http=False)
        if urlparse(v).path not in ("", "/"):
            raise ValueError(f"'{v}' is not an origin; give scheme, host and port only")
        return v


class QueueSettings(Strict):
    """The ``queue:`` section: how failed steps are retried and how long a claim lasts (docs/operations.md)."""

    # Waits before each retry of a failed step; after the last one the step is dead (a person replays it).
    retry_seconds: list[int] = Field(default=[30, 120, 600, 1800, 3600, 6 * 3600, 12 * 3600],
                                     min_length=1, max_length=30)
    # How long a worker's claim on a step lasts; a crashed worker's steps come back after it (and are
    # probed in the target before being written again).
    lease_seconds: int = Field(default=300, ge=5, le=24 * 3600)
    # Batches of one target system in flight at once in each worker (each its own claim): QuickBooks
    # spends most of a batch's time waiting on the network, and its realm allows 10 concurrent requests.
    threads: dict[Literal["hubspot", "quickbooks"], int] = Field(default={"hubspot": 2, "quickbooks": 4})

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: dict[str, int]) -> dict[str, int]:
        if any(n < 1 or n > 10 for n in v.values()):
            raise ValueError("threads per system must be between 1 and 10 (QuickBooks allows 10 concurrent requests)")
        return v

    @field_validator("retry_seconds")
    @classmethod
    def _waits(cls, v: list[int]) -> list[int]:
        if any(wait < 1 or wait > 7 * 86400 for wait in v):
            raise ValueError("each wait must be between 1 second and 7 days")
        return v


class QuickBooksLimits(Strict):
    """Per realm (notes/quickbooks.md §3). A batch counts one request per item here, plus one batch request."""

    requests_per_minute: int = Field(default=500, ge=1, le=1_000_000)
    max_concurrent: int = Field(default=10, ge=1, le=1000)
    batch_requests_per_minute: int = Field(default=40, ge=1, le=1_000_000)
    # Intuit's limits page also says 10 requests per second per realm and app; off unless set.
    requests_per_second: int | None = Field(default=None, ge=1, le=100_000)


class HubSpotLimits(Strict):
    """Per private app token (notes/hubspot.md §4); the X-HubSpot-RateLimit-* headers lower it further."""

    requests_per_10_seconds: int = Field(default=100, ge=1, le=1_000_000)  # Free/Starter; 190 Pro/Enterprise
    search_requests_per_second: int = Field(default=5, ge=1, le=100_000)


class WooCommerceLimits(Strict):
    """Per site. Self-hosted, so unlimited unless set (a host or security plugin may throttle)."""

    requests_per_second: float | None = Field(default=None, gt=0, le=100_000)


class LimitSettings(Strict):
    """The ``limits:`` section: one rate budget per (system, account) in the process (docs/operations.md).

    Shopify has none here: its GraphQL cost bucket already paces the source.
    """

    rate_scale: float = Field(default=1.0, gt=0, le=1000)  # multiplies every limit (benchmarks)
    # Every process on the ledger counts against the same budgets (connector/rate_budget_shared.py):
    # two short ledger statements per request. Off: each process thinks it has the whole allowance.
    shared: bool = True
    # A request still in flight this long after its slot was granted is taken for a crashed process's:
    # its concurrency slot comes back. Longer than any request may take (QuickBooks times out at 120 s).
    slot_lease_seconds: float = Field(default=180, ge=10, le=3600)
    quickbooks: QuickBooksLimits = Field(default_factory=QuickBooksLimits)
    hubspot: HubSpotLimits = Field(default_factory=HubSpotLimits)
    woocommerce: WooCommerceLimits = Field(default_factory=WooCommerceLimits)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data):
        # "quickbooks:" with every key commented out is an empty section, not an error.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("quickbooks", "hubspot", "woocommerce") else v)
                    for k, v in data.items()}
        return data


class Settings(Strict):
    ledger: str = "var/o2c.db"
    stores: list[Store] = Field(min_length=1)
    hubspot: HubSpotSettings
    quickbooks: QuickBooksSettings
    webhooks: WebhookSettings | None = None
    dashboard: DashboardSettings | None = None
    queue: QueueSettings = Field(default_factory=QueueSettings)
    # How often the daemon reconciles each store with the books (`o2c reconcile`, safe fixes queued);
    # 0 turns the job off.
    reconcile_hours: float = Field(default=24, ge=0, le=24 * 30)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    @field_validator("limits", mode="before")
    @classmethod
    def _no_limits(cls, v):
        return {} if v is None else v  # "limits:" with everything commented out: the defaults

    @model_validator(mode="after")
    def _unique_store_names(self) -> "Settings":
        seen = set()
        for i, store in enumerate(self.stores):
            if store.name in seen:
                raise ValueError(f"stores[{i}].name '{store.name}' is used twice")
            seen.add(store.name)
        prefixes: dict[str, str] = {}
        for i, store in enumerate(self.stores):
            prefix = doc_prefix(store)
            if prefix in prefixes:
                raise ValueError(
                    f"stores[{i}] would number its QuickBooks documents like '{prefixes[prefix]}' ('{prefix}...'); "
                    "set a distinct doc_number_prefix on one of them")
            prefixes[prefix] = store.name
        return self

    def store(self, name: str):
        for store in self.stores:
            if store.name == name:
                return store
        raise ConfigError("stores", f"no store named '{name}'",
                          "use one of: " + ", ".join(s.name for s in self.stores))

    @property
    def ledger_url(self) -> str:
        """What ``Ledger(...)`` opens: the SQLite file's path, or the ``postgresql://`` URL as written."""
        where = parse_ledger(self.ledger)
        return str(where.path) if where.backend == "sqlite" else self.ledger

    @property
    def ledger_is_sqlite(self) -> bool:
        return parse_ledger(self.ledger).backend == "sqlite"

    @property
    def ledger_shown(self) -> str:
        """The ledger named for logs and messages: a URL's password is blanked."""
        return parse_ledger(self.ledger).shown

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger file, for the features only a file has; a clear error on PostgreSQL."""
        where = parse_ledger(self.ledger)
        if where.backend != "sqlite":
            raise SQLiteOnlyError("this command (it works on the ledger file)")
        return where.path

    @field_validator("ledger")
    @classmethod
    def _known_ledger(cls, v: str) -> str:
        parse_ledger(v)  # a ValueError (unknown scheme, password blanked) becomes a ConfigError at 'ledger'
        return v


SECRET_FIELDS = {"access_token", "consumer_key", "consumer_secret", "client_id", "client_secret",
                 "refresh_token", "webhook_secret", "admin_token"}


def _resolve(node, path: str, env, base: Path):
    """Replace ``${...}`` references; refuse secrets written in clear."""
    if isinstance(node, dict):
        return {k: _resolve(v, f"{path}.{k}" if path else str(k), env, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, f"{path}[{i}]", env, base) for i, v in enumerate(node)]
    leaf = path.rsplit(".", 1)[-1]
    if isinstance(node, str):
        match = REFERENCE.match(node.strip())
        if match:
            return _lookup(match.group("name"), path, env, base)
        if "${" in node:
            raise ConfigError(path, f"'{node}' is not a valid reference",
                              "write the whole value as ${ENV_VAR} or ${file:/path}")
    if path == "ledger" and isinstance(node, str) and redact_url(node) != node:
        # A database password is a secret like any token (guarantee 6); libpq also reads PGPASSWORD and ~/.pgpass.
        raise ConfigError(path, f"the ledger URL {redact_url(node)} carries a password in clear",
                          "write ledger: ${O2C_LEDGER_URL} and export the URL, or leave the password out and"
                          " set PGPASSWORD or ~/.pgpass")
    if leaf in SECRET_FIELDS and node is not None:
        raise ConfigError(path, "a secret is written in clear in the YAML",
                          f"move it to an environment variable and write {leaf}: ${{{leaf.upper()}}}")
    return node


def _lookup(name: str, path: str, env, base: Path) -> str:
    if name.startswith("file:"):
        secret_path = (base / name[5:]).expanduser()
        if not secret_path.is_file():
            raise ConfigError(path, f"secret file '{secret_path}' does not exist", "create it or fix the path")
        mode = secret_path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(path, f"secret file '{secret_path}' is readable by others",
                              f"run: chmod 600 {secret_path}")
        return secret_path.read_text(encoding="utf-8").strip()
    value = env.get(name)
    if value is None or value == "":
        raise ConfigError(path, f"environment variable {name} is not set", f"export {name}=... before running")
    return value


def _first_error(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = []
    for part in err["loc"]:
        if isinstance(part, int):
            loc.append(f"[{part}]")
        elif part in ("shopify", "woocommerce") and loc and loc[-1].startswith("["):
            continue  # discriminator tag after stores[i], not a key the user wrote (limits.woocommerce is)
        else:
            loc.append(("." if loc else "") + str(part))
    key = "".join(loc) or ("stores" if "stores[" in err["msg"] else "(top level)")
    kind = err["type"]
    if kind == "extra_forbidden":
        return ConfigError(key, "unknown key", "remove it or check its spelling against config.example.yaml")
    if kind == "missing":
        return ConfigError(key, "required key is missing", "add it (see config.example.yaml)")
    if kind == "union_tag_invalid":
        return ConfigError(key + ".system" if key else "system", "system must be 'shopify' or 'woocommerce'",
                           "set system: shopify or system: woocommerce")
    message = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else redact_url(f" (got {got!r})")
    return ConfigError(key, message + shown, "correct the value (see config.example.yaml)")


def load_config(path: str | os.PathLike, env: dict | None = None) -> Settings:
    """Read, resolve and validate the config file at ``path``.

    Raises:
        ConfigError: with the key and the fix, for any problem at all.
    """
    env = os.environ if env is None else env
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found", "pass --config PATH or copy config.example.yaml")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), f"not valid YAML{where}", "fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "the file is not a YAML mapping", "start from config.example.yaml")
    resolved = _resolve(raw, "", env, path.parent)
    try:
        settings = Settings.model_validate(resolved)
    except ValidationError as exc:
        raise _first_error(exc) from None
    if settings.ledger_is_sqlite and not Path(settings.ledger_path).is_absolute():
        settings = settings.model_copy(update={"ledger": str(path.parent / settings.ledger_path)})
    return settings
