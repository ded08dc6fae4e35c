"""Canonical order -> the lines, tax and currency of a QuickBooks sales document.

Pure (no I/O). Builds the body of an Invoice or a SalesReceipt, and the
totals QuickBooks should answer with, so the runner can compare them after
the write (DESIGN.md guarantee 4). Rules from ../shared/notes/quickbooks.md:

- §1.3 a SalesItemLine's ``Amount`` must equal ``Qty x UnitPrice`` (6070):
  a line whose store amount is not an exact multiple books one unit at the
  line amount, the quantity kept in the description.
- §1.3 US companies: line ``TaxCodeRef`` is ``TAX``/``NON`` (6100); the
  store's tax goes in ``TxnTaxDetail.TotalTax`` (kept as sent, so QuickBooks'
  automated sales tax does not recompute it; peers.md pain point 10), with
  an optional ``TxnTaxCodeRef``. US QuickBooks has no tax-inclusive prices,
  so a tax-inclusive order books its lines net of their tax.
- §1.3 non-US companies: ``TaxCodeRef`` per line (configured codes) and
  ``GlobalTaxCalculation`` ``TaxInclusive``/``TaxExcluded``; line ``Amount``
  is the net amount and ``TaxInclusiveAmt`` the gross one when inclusive.
- §1.3 multicurrency: ``CurrencyRef`` plus ``ExchangeRate`` (home units per
  one foreign unit), from the order's other money when it is in the home
  currency (peers.md pain point 13: never a silent 1:1).

Totals: ``Σ line Amount - discount + TotalTax`` equals the store's total to
the cent in every mode, because each line books ``gross - its tax`` when
the tax is inside the price and the tax is added back once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from connector.errors import PermanentError
from connector.model import CENT, Order, TaxLine
from mappings.quickbooks_documents import ItemRefs, private_note

RATE_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class TaxPolicy:
    """How the company books tax: ``us`` or ``non_us`` (with its TaxCode ids)."""

    mode: str = "us"
    us_tax_code: str | None = None
    codes: dict[str, str] = field(default_factory=dict)  # rate percent ("20") or tax title -> TaxCode id
    exempt_code: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "TaxPolicy":
        return cls(settings.tax, settings.us_tax_code, dict(settings.tax_codes), settings.exempt_tax_code)


@dataclass(frozen=True)
class Expected:
    """What the document should total in QuickBooks, in the document's currency."""

    total: Decimal
    tax: Decimal


def _rate_key(rate: Decimal) -> str:
    percent = (rate * 100) if rate < 1 else rate
    return format(percent.normalize(), "f")


def line_tax_code(policy: TaxPolicy, tax_lines: tuple[TaxLine, ...], taxable: bool) -> dict:
    """The line's ``TaxCodeRef``: TAX/NON for US, the configured code for non-US."""
    taxed = taxable and any(not t.amount.is_zero() for t in tax_lines)
    if policy.mode == "us":
        return {"value": "TAX" if taxed else "NON"}
    if not taxed:
        if policy.exempt_code is None:
            raise PermanentError("a line without tax needs a QuickBooks tax code (non-US company)",
                                 system="quickbooks", code="no_tax_code",
                                 what_to_do="set quickbooks.exempt_tax_code to the TaxCode id for untaxed "
                                            "sales, then replay")
        return {"value": policy.exempt_code}
    keys = [t.title for t in tax_lines] + [_rate_key(t.rate) for t in tax_lines]
    for key in keys:
        if key in policy.codes:
            return {"value": policy.codes[key]}
    raise PermanentError(f"no QuickBooks tax code for the store's tax {keys[0]!r} (rate {keys[-1]}%)",
                         system="quickbooks", code="no_tax_code",
                         what_to_do=f"map it under quickbooks.tax_codes ('{keys[-1]}': <TaxCode id>), then replay")


def sales_line(amount: Decimal, item_id: str, description: str, qty: int, unit: Decimal, tax_code: dict,
               gross: Decimal | None = None) -> dict:
    """One SalesItemLine; keeps ``Amount == Qty x UnitPrice`` (6070) exact."""
    if qty <= 0 or unit * qty != amount:
        # Not an exact unit price (WooCommerce rounding, tax taken out): one unit at the line amount.
        description, qty, unit = (f"{description} (x{qty})" if qty != 1 else description), 1, amount
    detail = {"ItemRef": {"value": item_id}, "Qty": qty, "UnitPrice": unit, "TaxCodeRef": tax_code}
    if gross is not None and gross != amount:
        detail["TaxInclusiveAmt"] = gross
    return {"DetailType": "SalesItemLineDetail", "Amount": amount, "Description": description[:4000],
            "SalesItemLineDetail": detail}


def _tax_of(tax_lines) -> Decimal:
    return sum((t.amount.amount for t in tax_lines), Decimal(0))


def _net(order: Order, gross: Decimal, tax_lines) -> Decimal:
    """The amount a line books: gross minus its tax when the tax is inside the price."""
    return gross - _tax_of(tax_lines) if order.taxes_included else gross


def _item_for(items: ItemRefs, sku: str | None, title: str) -> str:
    item_id = items.by_sku.get(sku or "") or items.fallback
    if item_id is None and not sku:
        raise PermanentError(
            f"the line '{title}' has no SKU and no fallback item is configured", system="quickbooks",
            code="unknown_sku", what_to_do="set quickbooks.default_item to the item for lines without a SKU, "
                                           "then replay")
    if item_id is None:
        raise PermanentError(
            f"no QuickBooks item for SKU '{sku}' ({title})", system="quickbooks", code="unknown_sku",
            what_to_do=f"create an item named '{sku}' in QuickBooks, map it under quickbooks.item_map, set "
                       "quickbooks.create_missing_items: true, or set quickbooks.default_item; then replay")
    return item_id


def lines_for(order: Order, items: ItemRefs, policy: TaxPolicy) -> list[dict]:
    """Product, shipping, fee and discount lines of ``order``."""
    inclusive = order.taxes_included
    lines = []
    for line in order.lines:
        gross = line.gross.amount
        net = _net(order, gross, line.tax_lines)
        lines.append(sales_line(net, _item_for(items, line.sku, line.title), line.title, line.quantity,
                                line.unit_price.amount, line_tax_code(policy, line.tax_lines, line.taxable),
                                gross if inclusive else None))
    for shipping in order.shipping_lines:
        if shipping.price.is_zero():
            continue
        if items.shipping is None:
            raise PermanentError("no QuickBooks item for shipping", system="quickbooks", code="no_shipping_item",
                                 what_to_do="create the item named in quickbooks.shipping_item, then replay")
        gross = shipping.price.amount
        net = _net(order, gross, shipping.tax_lines)
        lines.append(sales_line(net, items.shipping, f"Shipping: {shipping.title}", 1, net,
                                line_tax_code(policy, shipping.tax_lines, True), gross if inclusive else None))
    for fee in order.fee_lines:
        fee_item = items.fee or items.fallback
        if fee_item is None:
            raise PermanentError(f"no QuickBooks item for the fee '{fee.title}'", system="quickbooks",
                                 code="no_fee_item",
                                 what_to_do="set quickbooks.fee_item or quickbooks.default_item, then replay")
        gross = fee.amount.amount
        net = _net(order, gross, fee.tax_lines)
        lines.append(sales_line(net, fee_item, fee.title, 1, net, line_tax_code(policy, fee.tax_lines, True),
                                gross if inclusive else None))
    discount = order.discount_total.amount
    if discount:
        codes = sorted({d.code for line in order.lines for d in line.discounts if d.code}
                       | {d.code for d in order.order_discounts if d.code})
        lines.append({"DetailType": "DiscountLineDetail", "Amount": discount,
                      "Description": ("Discount " + ", ".join(codes)) if codes else "Discount",
                      "DiscountLineDetail": {"PercentBased": False}})
    return lines


def expected(order: Order) -> Expected:
    """The document's total and tax as the store has them (rounded to the cent)."""
    return Expected(order.total.rounded().amount, order.tax_total.rounded().amount)


def exchange_rate(order: Order, home_currency: str | None) -> Decimal | None:
    """Home-currency units per one unit of the order's currency, when the order says so.

    Only the order's other money can give the rate the store used; without it
    QuickBooks applies its own rate for the day (never a silent 1:1 from us).
    """
    other = order.other_money
    if home_currency is None or order.currency == home_currency or other is None:
        return None
    if other.total.currency != home_currency or order.total.is_zero():
        return None
    return (other.total.amount / order.total.amount).quantize(RATE_PLACES)


def document_body(order: Order, customer_id: str, items: ItemRefs, number: str, policy: TaxPolicy, *,
                  home_currency: str | None = None, ship: dict | None = None) -> dict:
    """The Invoice or SalesReceipt body for ``order`` (the caller adds payment fields for a receipt).

    Raises:
        PermanentError: a SKU without item, a tax without code, no shipping item.
    """
    body = {
        "DocNumber": number,
        "TxnDate": order.created_at.date().isoformat(),
        "CustomerRef": {"value": customer_id},
        "CurrencyRef": {"value": order.currency},
        "Line": lines_for(order, items, policy),
        "PrivateNote": private_note(order),
    }
    rate = exchange_rate(order, home_currency)
    if rate is not None:
        body["ExchangeRate"] = rate
    if order.customer.email:
        body["BillEmail"] = {"Address": order.customer.email}
    tax = order.tax_total.rounded().amount
    detail: dict = {"TotalTax": tax}
    if policy.mode == "us":
        if policy.us_tax_code and tax:
            detail["TxnTaxCodeRef"] = {"value": policy.us_tax_code}
    else:
        body["GlobalTaxCalculation"] = "TaxInclusive" if order.taxes_included else "TaxExcluded"
    body["TxnTaxDetail"] = detail
    if ship:
        body.update(ship)
    return body


def shipping_details(order: Order) -> dict:
    """Ship date and tracking number from the order's fulfillments (empty when unfulfilled)."""
    done = [f for f in order.fulfillments if f.status.lower() in ("success", "fulfilled", "completed")]
    if not done:
        return {}
    details: dict = {}
    dates = [f.created_at for f in done if f.created_at]
    if dates:
        details["ShipDate"] = min(dates).date().isoformat()
    numbers = [n for f in done for n in f.tracking_numbers if n]
    if numbers:
        details["TrackingNum"] = ", ".join(numbers)[:31]
    return details


def cents(value) -> Decimal:
    """A QuickBooks amount as a Decimal rounded to the cent (answers carry exact decimals)."""
    return Decimal(str(value if value not in (None, "") else 0)).quantize(CENT)
