"""Canonical order -> QuickBooks Online Customer, Invoice and Payment bodies.

Pure: returns JSON-shaped dicts whose money values are ``Decimal`` (the
adapter writes them as exact JSON numbers). Rules from
../shared/notes/quickbooks.md §1: DisplayName is unique across customers,
vendors and employees and may not contain ``:``, tab or newline (max 500);
DocNumber is at most 21 characters; a SalesItemLine's ``Amount`` must equal
``Qty * UnitPrice`` (fault 6070); the store's tax is sent as
``TxnTaxDetail.TotalTax`` so the document's total equals the store's.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

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


def doc_number(order: Order, prefix: str) -> str:
    """``<prefix><order number>``, fitted to QuickBooks' 21 characters the same way every time.

    A number that does not fit keeps its end (where order numbers change)
    and gains a short hash of the whole, so two long names cannot collide:
    ``DS-WHOLESALE-EUROPE-1014-B2B`` -> ``DS-ROPE-1014-B2B~3f0c``. The full
    order name stays in the document's PrivateNote.
    """
    number = prefix + order.name.lstrip("#").strip()
    if len(number) <= DOC_NUMBER_MAX:
        return number
    digest = hashlib.sha1(number.encode()).hexdigest()[:4]
    keep = DOC_NUMBER_MAX - len(prefix) - len(digest) - 1
    if keep < 4:
        raise PermanentError(
            f"the store's doc_number_prefix '{prefix}' leaves no room for order numbers in QuickBooks' "
            f"{DOC_NUMBER_MAX} characters", what_to_do="shorten doc_number_prefix in the config, then replay",
            system="quickbooks", code="doc_number_prefix_too_long")
    return f"{prefix}{number[len(prefix):][-keep:]}~{digest}"


def _sales_line(amount: Decimal, item_id: str, description: str, qty: int, unit: Decimal, taxable: bool) -> dict:
    if unit * qty != amount:
        # The store's line amount is not an exact unit price * qty (e.g. WooCommerce rounding):
        # book one unit at the line amount rather than break Amount == Qty x UnitPrice (6070).
        description, qty, unit = f"{description} (x{qty})", 1, amount
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "Description": description[:4000],
        "SalesItemLineDetail": {
            "ItemRef": {"value": item_id},
            "Qty": qty,
            "UnitPrice": unit,
            "TaxCodeRef": {"value": "TAX" if taxable else "NON"},
        },
    }


def invoice_body(order: Order, customer_id: str, items: ItemRefs, number: str) -> dict:
    """The Invoice for ``order``; its total equals the store's total to the cent.

    Raises:
        PermanentError: a line's SKU has no QuickBooks item and no fallback is configured.
    """
    lines = []
    for line in order.lines:
        item_id = items.by_sku.get(line.sku or "") or items.fallback
        if item_id is None:
            raise PermanentError(
                f"no QuickBooks item for SKU '{line.sku}' ({line.title})",
                what_to_do=f"create an item named '{line.sku}' in QuickBooks, or map it under "
                           "quickbooks.item_map in the config, or set quickbooks.default_item; then replay",
                system="quickbooks", code="unknown_sku")
        lines.append(_sales_line(line.gross.amount, item_id, line.title, line.quantity,
                                 line.unit_price.amount, line.taxable))
    for shipping in order.shipping_lines:
        if shipping.price.is_zero():
            continue
        if items.shipping is None:
            raise PermanentError("no QuickBooks item for shipping", system="quickbooks", code="no_shipping_item",
                                 what_to_do="create the item named in quickbooks.shipping_item, then replay")
        lines.append(_sales_line(shipping.price.amount, items.shipping, shipping.title, 1, shipping.price.amount,
                                 bool(shipping.tax_lines)))
    for fee in order.fee_lines:
        fee_item = items.fallback or items.shipping
        lines.append(_sales_line(fee.amount.amount, fee_item, fee.title, 1, fee.amount.amount, bool(fee.tax_lines)))
    discount = order.discount_total
    if not discount.is_zero():
        lines.append({"DetailType": "DiscountLineDetail", "Amount": discount.amount,
                      "DiscountLineDetail": {"PercentBased": False}})
    body = {
        "DocNumber": number,
        "TxnDate": order.created_at.date().isoformat(),
        "CustomerRef": {"value": customer_id},
        "CurrencyRef": {"value": order.currency},
        "Line": lines,
        "PrivateNote": f"{order.system} order {order.name} ({order.order_key}) via o2c-connector",
    }
    if order.customer.email:
        body["BillEmail"] = {"Address": order.customer.email}
    if not order.taxes_included:
        body["TxnTaxDetail"] = {"TotalTax": order.tax_total.rounded().amount}
    return body


def payment_body(order: Order, customer_id: str, invoice_id: str) -> dict:
    """A Payment applying the captured money to the order's invoice."""
    amount = order.captured_total.rounded()
    if amount.is_zero():
        amount = order.total.rounded()
    captured = [t for t in order.transactions if t.is_captured_money]
    body = {
        "TotalAmt": amount.amount,
        "CustomerRef": {"value": customer_id},
        "CurrencyRef": {"value": order.currency},
        "TxnDate": (captured[0].processed_at or order.created_at).date().isoformat() if captured
        else order.created_at.date().isoformat(),
        "Line": [{"Amount": amount.amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
        "PrivateNote": f"{order.system} order {order.name} ({order.order_key}) via o2c-connector",
    }
    if captured:
        body["PaymentRefNum"] = captured[0].source_transaction_id[:21]
    return body
