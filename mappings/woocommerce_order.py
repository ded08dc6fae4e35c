"""WooCommerce REST (wc/v3) order -> canonical :class:`~connector.model.Order`.

Pure. Facts from ../shared/notes/woocommerce.md §1 and §7: money values are
strings formatted to the store's decimals (parse with ``Decimal``; never use
the float ``price`` field), dates without offset (``*_gmt`` are UTC), line
``subtotal`` is before coupons and ``total`` after, guests have
``customer_id`` 0 and their email only in ``billing.email`` (may be null),
``completed`` does not mean paid (``date_paid`` does).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from connector.errors import MappingError
from connector.model import (Address, Customer, Discount, FeeLine, FinancialStatus, FulfillmentStatus, Line,
                             Money, Order, Refund, RefundLine, ShippingLine, TaxLine, Transaction, TransactionKind)


def _gmt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def _money(value, currency: str) -> Money:
    return Money(Decimal(str(value or "0")), currency)


def _rates(order: dict) -> dict[int, tuple[str, Decimal]]:
    """rate id -> (label, rate as a fraction), from the order's ``tax_lines``."""
    rates = {}
    for t in order.get("tax_lines") or []:
        percent = t.get("rate_percent")
        rate = Decimal(str(percent)) / 100 if percent is not None else Decimal("0")
        rates[int(t["rate_id"])] = (t.get("label") or t.get("rate_code") or "Tax", rate)
    return rates


def _taxes(items, rates, currency: str, key: str = "total") -> tuple[TaxLine, ...]:
    result = []
    for tax in items or []:
        amount = _money(tax.get(key), currency).rounded()
        if amount.is_zero():
            continue
        label, rate = rates.get(int(tax["id"]), ("Tax", Decimal("0")))
        result.append(TaxLine(label, rate, amount))
    return tuple(result)


def _address(data: dict | None) -> Address | None:
    if not data:
        return None
    return Address(
        first_name=data.get("first_name") or None, last_name=data.get("last_name") or None,
        company=data.get("company") or None, address1=data.get("address_1") or None,
        address2=data.get("address_2") or None, city=data.get("city") or None,
        province_code=data.get("state") or None, country_code=data.get("country") or None,
        zip=data.get("postcode") or None, phone=data.get("phone") or None,
    )


def _line(item: dict, rates, currency: str) -> Line:
    subtotal = _money(item["subtotal"], currency)
    net = _money(item["total"], currency)
    quantity = int(item["quantity"])
    unit = Money(subtotal.amount / quantity, currency) if quantity else subtotal
    discount = subtotal - net
    taxes = _taxes(item.get("taxes"), rates, currency)
    # WooCommerce per-line tax entries are unrounded; the line's total_tax is what it books.
    line_tax = _money(item.get("total_tax"), currency)
    if taxes and sum((t.amount.amount for t in taxes), Decimal(0)) != line_tax.amount and len(taxes) == 1:
        taxes = (TaxLine(taxes[0].title, taxes[0].rate, line_tax),)
    elif not taxes and not line_tax.is_zero():
        taxes = (TaxLine("Tax", Decimal("0"), line_tax),)
    return Line(
        source_line_id=str(item["id"]),
        sku=item.get("sku") or None,
        title=item.get("name") or "",
        quantity=quantity,
        unit_price=unit,
        discounts=() if discount.is_zero() else (Discount(discount),),
        tax_lines=taxes,
        taxable=(item.get("tax_class") or "") != "zero-rate",
        subtotal=subtotal,
    )


def _single_tax(total_tax: str, rates, taxes, currency: str) -> tuple[TaxLine, ...]:
    amount = _money(total_tax, currency)
    if amount.is_zero():
        return ()
    mapped = _taxes(taxes, rates, currency)
    if len(mapped) == 1:
        return (TaxLine(mapped[0].title, mapped[0].rate, amount),)
    return mapped or (TaxLine("Tax", Decimal("0"), amount),)


def _refunded_line_id(item: dict, order: dict) -> str:
    """The order line a refund line gives back: WC's ``_refunded_item_id`` meta, else the same product."""
    for meta in item.get("meta_data") or []:
        if meta.get("key") == "_refunded_item_id":
            return str(meta.get("value"))
    for line in order.get("line_items") or []:
        if (line.get("product_id"), line.get("variation_id"), line.get("sku")) == \
                (item.get("product_id"), item.get("variation_id"), item.get("sku")):
            return str(line["id"])
    return str(item.get("id"))


def _refunds(order: dict, currency: str) -> tuple[Refund, ...]:
    """Full refund objects when the adapter fetched them (``o2c_refunds``), else the order's summary.

    A refund's ``amount`` is positive; its line items carry negative quantities and totals
    (notes §1 "Refund object"). What the lines and their tax do not explain was shipping
    or a plain amount refund.
    """
    detailed = order.get("o2c_refunds")
    if detailed is None:
        return tuple(Refund(str(r["id"]), _gmt(order.get("date_modified_gmt")),
                            Money(-Decimal(str(r["total"])), currency), r.get("reason") or r.get("refund") or None)
                     for r in order.get("refunds") or [])
    refunds = []
    for r in detailed:
        amount = _money(r["amount"], currency)
        lines = tuple(
            RefundLine(_refunded_line_id(item, order), abs(int(item.get("quantity") or 0)),
                       Money(abs(Decimal(str(item["total"]))), currency),
                       Money(abs(Decimal(str(item.get("total_tax") or "0"))), currency))
            for item in r.get("line_items") or [])
        explained = sum((x.amount.amount + x.tax.amount for x in lines), Decimal(0))
        rest = amount.amount - explained
        refunds.append(Refund(str(r["id"]), _gmt(r.get("date_created_gmt")), amount, r.get("reason") or None,
                              lines, Money(rest, currency) if rest > 0 else None))
    return tuple(refunds)


FINANCIAL = {
    "pending": FinancialStatus.PENDING, "on-hold": FinancialStatus.PENDING, "failed": FinancialStatus.PENDING,
    "checkout-draft": FinancialStatus.PENDING, "refunded": FinancialStatus.REFUNDED,
    "cancelled": FinancialStatus.VOIDED,
}


def _financial(order: dict, refunded: Money, total_money: Money) -> FinancialStatus:
    status = order.get("status", "pending")
    if order.get("date_paid_gmt") or order.get("date_paid"):
        if status == "refunded" or (not refunded.is_zero() and refunded.amount >= total_money.amount):
            return FinancialStatus.REFUNDED
        if not refunded.is_zero():
            return FinancialStatus.PARTIALLY_REFUNDED
        return FinancialStatus.PAID
    return FINANCIAL.get(status, FinancialStatus.PENDING)


def map_order(data: dict, store: str) -> Order:
    """Map one WooCommerce order object (as ``GET /wc/v3/orders`` returns it).

    Raises:
        MappingError: when a field every order has is missing.
    """
    try:
        currency = data["currency"]
        rates = _rates(data)
        billing = data.get("billing") or {}
        email = billing.get("email")
        refunds = _refunds(data, currency)
        total_money = _money(data["total"], currency)
        refunded = Money(sum((r.amount.amount for r in refunds), Decimal(0)), currency)
        paid_at = _gmt(data.get("date_paid_gmt"))
        transactions = ()
        if paid_at:
            transactions = (Transaction(
                source_transaction_id=data.get("transaction_id") or f"{data['id']}-payment",
                kind=TransactionKind.SALE, status="success", amount=total_money,
                gateway=data.get("payment_method") or None, processed_at=paid_at),)
        return Order(
            store=store,
            system="woocommerce",
            source_order_id=str(data["id"]),
            name=f"#{data.get('number') or data['id']}",
            currency=currency,
            created_at=_gmt(data["date_created_gmt"]),
            updated_at=_gmt(data["date_modified_gmt"]),
            customer=Customer(
                email=email.strip().lower() if email else None,
                first_name=billing.get("first_name") or None,
                last_name=billing.get("last_name") or None,
                phone=billing.get("phone") or None,
                company=billing.get("company") or None,
                source_customer_id=str(data["customer_id"]) if data.get("customer_id") else None,
            ),
            lines=tuple(_line(i, rates, currency) for i in data.get("line_items") or []),
            total=total_money,
            billing_address=_address(billing),
            shipping_address=_address(data.get("shipping")),
            shipping_lines=tuple(
                ShippingLine(s.get("method_title") or "Shipping", _money(s["total"], currency),
                             s.get("method_id") or None,
                             tax_lines=_single_tax(s.get("total_tax"), rates, s.get("taxes"), currency))
                for s in data.get("shipping_lines") or []
            ),
            fee_lines=tuple(
                FeeLine(f.get("name") or "Fee", _money(f["total"], currency),
                        _single_tax(f.get("total_tax"), rates, f.get("taxes"), currency))
                for f in data.get("fee_lines") or []
            ),
            tax_lines=tuple(
                TaxLine(rates[int(t["rate_id"])][0], rates[int(t["rate_id"])][1],
                        _money(t.get("tax_total"), currency) + _money(t.get("shipping_tax_total"), currency))
                for t in data.get("tax_lines") or []
            ),
            # WooCommerce's REST amounts are ex-tax even when the shop enters prices with tax
            # ("prices_include_tax"): the lines as given exclude tax, and total_tax is added on top.
            taxes_included=False,
            financial_status=_financial(data, refunded, total_money),
            fulfillment_status=(FulfillmentStatus.FULFILLED if data.get("status") == "completed"
                                else FulfillmentStatus.UNFULFILLED),
            transactions=transactions,
            refunds=refunds,
            cancelled_at=_gmt(data.get("date_modified_gmt")) if data.get("status") == "cancelled" else None,
            note=data.get("customer_note") or None,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise MappingError(
            f"WooCommerce order {data.get('id')} could not be read: {exc!r}",
            what_to_do="check the store returns standard wc/v3 order objects; report the payload",
            system="woocommerce",
        ) from exc
