"""Canonical order -> QuickBooks identities: customer body, names, DocNumber, requestid.

Pure: returns JSON-shaped dicts whose money values are ``Decimal`` (the
adapter writes them as exact JSON numbers). Rules from
../shared/notes/quickbooks.md §1: DisplayName is unique across customers,
vendors and employees and may not contain ``:``, tab or newline (max 500);
DocNumber is at most 21 characters (§1.3). Document lines and totals are in
:mod:`mappings.quickbooks_sales`; payments and refunds in
:mod:`mappings.quickbooks_money`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from connector.errors import PermanentError
from connector.model import Order

DOC_NUMBER_MAX = 21
DISPLAY_NAME_MAX = 500
REQUEST_ID_NAMESPACE = uuid.UUID("6f1d3c1e-8a57-4c43-9a38-0c2d7f0b9e11")


@dataclass(frozen=True)
class ItemRefs:
    """Resolved QuickBooks item ids: per SKU, plus shipping and the fallback item."""

    by_sku: dict[str, str]
    shipping: str | None
    fallback: str | None = None
    fee: str | None = None
    rounding: str | None = None


def request_id(order_key: str, step: str, generation: int = 0) -> str:
    """A deterministic QuickBooks ``requestid`` (36 chars; the limit is 50).

    The same step of the same order always sends the same id, so a retry
    after a lost answer is replayed by QuickBooks, not booked twice.
    """
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{order_key}|{step}|{generation}"))


def customer_key(order: Order) -> str:
    """Who the QuickBooks customer is, for the ledger binding."""
    if order.customer.email:
        return "email:" + order.customer.email.lower()
    return "name:" + clean_display_name(order.customer.display_name or f"Guest {order.name}").lower()


def clean_display_name(name: str) -> str:
    name = re.sub(r"[:\t\r\n]+", " ", name)
    return re.sub(r"\s+", " ", name).strip()[:DISPLAY_NAME_MAX]


def display_name(order: Order, template: str = "{first_name} {last_name}") -> str:
    c = order.customer
    fields = {"first_name": c.first_name or "", "last_name": c.last_name or "", "email": c.email or "",
              "company": c.company or "", "order_name": order.name}
    name = clean_display_name(template.format(**fields))
    return name or clean_display_name(c.email or f"Guest {order.name}")


def disambiguated_name(name: str, order: Order) -> str:
    """A second, distinct DisplayName for a different person who shares ``name``."""
    suffix = f" ({order.customer.email})" if order.customer.email else f" ({order.order_key})"
    return clean_display_name(name[: DISPLAY_NAME_MAX - len(suffix)] + suffix)


def customer_body(order: Order, name: str) -> dict:
    c = order.customer
    body: dict = {"DisplayName": name}
    if c.first_name:
        body["GivenName"] = c.first_name[:100]
    if c.last_name:
        body["FamilyName"] = c.last_name[:100]
    if c.company:
        body["CompanyName"] = c.company[:100]
    if c.email:
        body["PrimaryEmailAddr"] = {"Address": c.email}
    if c.phone:
        body["PrimaryPhone"] = {"FreeFormNumber": c.phone[:30]}
    address = order.billing_address
    if address:
        body["BillAddr"] = {k: v for k, v in {
            "Line1": address.address1, "Line2": address.address2, "City": address.city,
            "CountrySubDivisionCode": address.province_code or address.province,
            "PostalCode": address.zip, "Country": address.country_code or address.country,
        }.items() if v}
    body["CurrencyRef"] = {"value": order.currency}
    return body


def private_note(order: Order, what: str = "order") -> str:
    """The PrivateNote every document carries: the order key lets a person (and a probe) find the order."""
    return f"{order.system} {what} {order.name} ({order.order_key}) via o2c-connector"


def doc_number(order: Order, prefix: str, suffix: str = "") -> str:
    """``<prefix><order number>``, fitted to QuickBooks' 21 characters the same way every time.

    A number that does not fit keeps its end (where order numbers change)
    and gains a short hash of the whole, so two long names cannot collide:
    ``DS-WHOLESALE-EUROPE-1014-B2B`` -> ``DS-ROPE-1014-B2B~3f0c``. The full
    order name stays in the document's PrivateNote. ``suffix`` (``-R1`` for
    the first refund) is kept whole at the end.
    """
    number = prefix + order.name.lstrip("#").strip() + suffix
    if len(number) <= DOC_NUMBER_MAX:
        return number
    digest = hashlib.sha1(number.encode()).hexdigest()[:4]
    keep = DOC_NUMBER_MAX - len(prefix) - len(digest) - 1
    if keep < 4 + len(suffix):
        raise PermanentError(
            f"the store's doc_number_prefix '{prefix}' leaves no room for order numbers in QuickBooks' "
            f"{DOC_NUMBER_MAX} characters", what_to_do="shorten doc_number_prefix in the config, then replay",
            system="quickbooks", code="doc_number_prefix_too_long")
    return f"{prefix}{number[len(prefix):][-keep:]}~{digest}"
