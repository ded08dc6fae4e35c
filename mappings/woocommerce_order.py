"""WooCommerce REST (wc/v3) order -> canonical :class:`~connector.model.Order`.

Pure. Declared with the :class:`~mappings.mapper.Mapper` shape:
:class:`WooOrderMapper` reads the order; its children map line items,
shipping lines, fee lines and the order's tax summary, each with the
order's currency and tax rates (:meth:`WooOrderMapper.child_options`).
Facts from ../shared/notes/woocommerce.md §1 and §7: money values are
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
from mappings.mapper import Mapper, mapping


def _gmt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def _money(value, currency: str) -> Money:
    return Money(Decimal(str(value or "0")), currency)


def _or_none(value):
    """WooCommerce sends empty strings for unset text fields."""
    return value or None


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


def _single_tax(total_tax: str, rates, taxes, currency: str) -> tuple[TaxLine, ...]:
    amount = _money(total_tax, currency)
    if amount.is_zero():
        return ()
    mapped = _taxes(taxes, rates, currency)
    if len(mapped) == 1:
        return (TaxLine(mapped[0].title, mapped[0].rate, amount),)
    return mapped or (TaxLine("Tax", Decimal("0"), amount),)


class _WooMapper(Mapper):
    """Shared by the WooCommerce child mappers: options ``currency`` and ``rates`` (from :func:`_rates`)."""

    currency: str
    rates: dict[int, tuple[str, Decimal]]

    def money(self, value) -> Money:
        return _money(value, self.currency)


class WooAddressMapper(Mapper):
    target = Address
    direct = (
        ("first_name?", "first_name", _or_none), ("last_name?", "last_name", _or_none),
        ("company?", "company", _or_none), ("address_1?", "address1", _or_none),
        ("address_2?", "address2", _or_none), ("city?", "city", _or_none),
        ("state?", "province_code", _or_none), ("country?", "country_code", _or_none),
        ("postcode?", "zip", _or_none), ("phone?", "phone", _or_none),
    )


class WooCustomerMapper(Mapper):
    """The buyer, from the order: guests have ``customer_id`` 0 and only ``billing`` (notes §1)."""

    target = Customer
    direct = (
        ("billing.email?", "email", lambda email: email.strip().lower() if email else None),
        ("billing.first_name?", "first_name", _or_none), ("billing.last_name?", "last_name", _or_none),
        ("billing.phone?", "phone", _or_none), ("billing.company?", "company", _or_none),
        ("customer_id?", "source_customer_id", lambda v: str(v) if v else None),
    )


class WooLineMapper(_WooMapper):
    target = Line
    direct = (("id", "source_line_id", str), ("sku?", "sku", _or_none), ("name?", "title", lambda v: v or ""),
              ("tax_class?", "taxable", lambda v: (v or "") != "zero-rate"))

    @mapping
    def amounts(self, item: dict) -> dict:
        subtotal = self.money(item["subtotal"])
        net = self.money(item["total"])
        quantity = int(item["quantity"])
        unit = Money(subtotal.amount / quantity, self.currency) if quantity else subtotal
        discount = subtotal - net
        return {"quantity": quantity, "unit_price": unit, "subtotal": subtotal,
                "discounts": () if discount.is_zero() else (Discount(discount),)}

    @mapping
    def taxes(self, item: dict) -> dict:
        taxes = _taxes(item.get("taxes"), self.rates, self.currency)
        # WooCommerce per-line tax entries are unrounded; the line's total_tax is what it books.
        line_tax = self.money(item.get("total_tax"))
        if taxes and sum((t.amount.amount for t in taxes), Decimal(0)) != line_tax.amount and len(taxes) == 1:
            taxes = (TaxLine(taxes[0].title, taxes[0].rate, line_tax),)
        elif not taxes and not line_tax.is_zero():
            taxes = (TaxLine("Tax", Decimal("0"), line_tax),)
        return {"tax_lines": taxes}


class WooShippingMapper(_WooMapper):
    target = ShippingLine
    direct = (("method_title?", "title", lambda v: v or "Shipping"), ("total", "price", "money"),
              ("method_id?", "code", _or_none))

    @mapping
    def taxes(self, item: dict) -> dict:
        return {"tax_lines": _single_tax(item.get("total_tax"), self.rates, item.get("taxes"), self.currency)}


class WooFeeMapper(_WooMapper):
    target = FeeLine
    direct = (("name?", "title", lambda v: v or "Fee"), ("total", "amount", "money"))

    @mapping
    def taxes(self, item: dict) -> dict:
        return {"tax_lines": _single_tax(item.get("total_tax"), self.rates, item.get("taxes"), self.currency)}


class WooOrderTaxMapper(_WooMapper):
    """One rate of the order's tax summary: its line tax plus its shipping tax."""

    target = TaxLine

    @mapping
    def rate(self, tax: dict) -> dict:
        label, rate = self.rates[int(tax["rate_id"])]
        return {"title": label, "rate": rate,
                "amount": self.money(tax.get("tax_total")) + self.money(tax.get("shipping_tax_total"))}


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


class WooOrderMapper(Mapper):
    """A wc/v3 order object; option ``store``."""

    catch = (KeyError, TypeError, ValueError, ArithmeticError)
    direct = (
        ("currency", "currency"), ("id", "source_order_id", str),
        ("date_created_gmt", "created_at", _gmt), ("date_modified_gmt", "updated_at", _gmt),
        ("billing?", "billing_address", WooAddressMapper.one),
        ("shipping?", "shipping_address", WooAddressMapper.one),
        ("status?", "fulfillment_status",
         lambda v: FulfillmentStatus.FULFILLED if v == "completed" else FulfillmentStatus.UNFULFILLED),
        ("customer_note?", "note", _or_none),
    )
    children = (
        ("line_items", "lines", WooLineMapper),
        ("shipping_lines", "shipping_lines", WooShippingMapper),
        ("fee_lines", "fee_lines", WooFeeMapper),
        ("tax_lines", "tax_lines", WooOrderTaxMapper),
    )

    def child_options(self, data: dict) -> dict:
        return {"currency": data["currency"], "rates": _rates(data)}

    @mapping
    def identity(self, data: dict) -> dict:
        return {"store": self.store, "system": "woocommerce", "name": f"#{data.get('number') or data['id']}",
                "customer": WooCustomerMapper().build(data),
                # WooCommerce's REST amounts are ex-tax even when the shop enters prices with tax
                # ("prices_include_tax"): the lines as given exclude tax, and total_tax is added on top.
                "taxes_included": False,
                "cancelled_at": _gmt(data.get("date_modified_gmt")) if data.get("status") == "cancelled" else None}

    @mapping
    def payments(self, data: dict) -> dict:
        currency = data["currency"]
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
        return {"total": total_money, "refunds": refunds, "transactions": transactions,
                "financial_status": _financial(data, refunded, total_money)}

    def error(self, data: dict, exc: BaseException) -> MappingError:
        return MappingError(
            f"WooCommerce order {data.get('id')} could not be read: {exc!r}",
            what_to_do="check the store returns standard wc/v3 order objects; report the payload",
            system="woocommerce",
        )


def map_order(data: dict, store: str) -> Order:
    """Map one WooCommerce order object (as ``GET /wc/v3/orders`` returns it).

    Raises:
        MappingError: when a field every order has is missing.
    """
    return Order(**WooOrderMapper(store=store).map(data))
