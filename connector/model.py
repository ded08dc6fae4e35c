"""The canonical order: one vendor-neutral model every source maps into.

Money is always :class:`Money` (a ``Decimal`` amount with an ISO 4217
currency); nothing here is ever a float. The model is plain frozen
dataclasses so a snapshot can be hashed, stored and compared.

The balance rule (DESIGN.md guarantee 4)::

    sum(line gross) - discounts + shipping + tax + fees (- tip handled as fee) == total

checked to the cent by :func:`balance_difference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum

CENT = Decimal("0.01")
_CHECKED_CURRENCIES: set[str] = set()  # codes that passed Money's check once (see __post_init__)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        # Fast path: an order's totals build hundreds of Money values, nearly all of them a Decimal in a
        # currency already checked (this check was a tenth of a bulk backfill's CPU).
        if self.amount.__class__ is Decimal and self.currency in _CHECKED_CURRENCIES:
            return
        if isinstance(self.amount, float):
            raise TypeError("Money amounts must be Decimal or str, never float")
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", Decimal(str(self.amount)))
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"currency must be an ISO 4217 code like 'USD', got {self.currency!r}")
        if len(_CHECKED_CURRENCIES) < 1000:  # bounded: a bad feed cannot grow it without end
            _CHECKED_CURRENCIES.add(self.currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> "Money":
        return cls(Decimal(str(amount)), currency)

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(Decimal("0"), currency)

    def _check(self, other: "Money") -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def times(self, factor: int | Decimal) -> "Money":
        return Money(self.amount * Decimal(factor), self.currency)

    def rounded(self) -> "Money":
        """Round half up to the cent, the way stores and QuickBooks print totals."""
        return Money(self.amount.quantize(CENT, rounding=ROUND_HALF_UP), self.currency)

    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount.quantize(CENT)} {self.currency}"


def total(items, currency: str) -> Money:
    """Sum Money values (an empty sum is zero in ``currency``), all in ``currency``.

    Sums the amounts and makes one Money, not one per addition: an order's totals and its balance
    check call this a few hundred times per order (a seventh of a backfill's CPU went to them).
    """
    result = Money.zero(currency)
    amount = result.amount
    for item in items:
        result._check(item)
        amount += item.amount
    return Money(amount, currency)


class FinancialStatus(str, Enum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"


class FulfillmentStatus(str, Enum):
    UNFULFILLED = "unfulfilled"
    PARTIAL = "partial"
    FULFILLED = "fulfilled"


class TransactionKind(str, Enum):
    SALE = "sale"
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"


@dataclass(frozen=True, slots=True)
class Address:
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    country: str | None = None
    country_code: str | None = None
    zip: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """Who bought. ``source_customer_id`` is None for guest checkouts."""

    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None
    source_customer_id: str | None = None

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or (self.email or "")


@dataclass(frozen=True, slots=True)
class TaxLine:
    title: str
    rate: Decimal
    amount: Money


@dataclass(frozen=True, slots=True)
class Discount:
    """An amount taken off; ``code`` is the coupon or discount title when known."""

    amount: Money
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One order line. ``unit_price`` is before discounts; taxes are per line."""

    source_line_id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Money
    discounts: tuple[Discount, ...] = ()
    tax_lines: tuple[TaxLine, ...] = ()
    taxable: bool = True
    # The store's own line amount before discounts, when it is not exactly
    # unit_price * quantity (WooCommerce stores a line subtotal, not a unit price).
    subtotal: Money | None = None

    @property
    def gross(self) -> Money:
        return self.subtotal if self.subtotal is not None else self.unit_price.times(self.quantity)

    @property
    def discount_total(self) -> Money:
        return total((d.amount for d in self.discounts), self.unit_price.currency)

    @property
    def net(self) -> Money:
        return self.gross - self.discount_total

    @property
    def tax_total(self) -> Money:
        return total((t.amount for t in self.tax_lines), self.unit_price.currency)


@dataclass(frozen=True, slots=True)
class ShippingLine:
    title: str
    price: Money
    code: str | None = None
    discount: Money | None = None
    tax_lines: tuple[TaxLine, ...] = ()

    @property
    def net(self) -> Money:
        return self.price - self.discount if self.discount else self.price


@dataclass(frozen=True, slots=True)
class FeeLine:
    """A fee charged on top of lines (WooCommerce fee lines, tips)."""

    title: str
    amount: Money
    tax_lines: tuple[TaxLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Transaction:
    source_transaction_id: str
    kind: TransactionKind
    status: str  # success | pending | failure | error
    amount: Money
    gateway: str | None = None
    processed_at: datetime | None = None
    parent_id: str | None = None

    @property
    def is_captured_money(self) -> bool:
        """True when money actually moved from the shopper to the merchant."""
        return self.status == "success" and self.kind in (TransactionKind.SALE, TransactionKind.CAPTURE)


@dataclass(frozen=True, slots=True)
class RefundLine:
    """Part of an order line given back: ``amount`` is the money for it, tax excluded."""

    source_line_id: str
    quantity: int
    amount: Money
    tax: Money | None = None


@dataclass(frozen=True, slots=True)
class Refund:
    """Money returned to the shopper. ``amount`` is the total refunded (lines, shipping, tax)."""

    source_refund_id: str
    created_at: datetime
    amount: Money
    note: str | None = None
    lines: tuple[RefundLine, ...] = ()
    shipping: Money | None = None
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class OtherMoney:
    """The order's totals in the money that does not book (shop vs presentment currency).

    Both are kept; which one books is a per-store setting (``money: shop | presentment``).
    """

    side: str  # "shop" or "presentment"
    total: Money
    tax: Money
    shipping: Money
    discounts: Money


@dataclass(frozen=True, slots=True)
class Fulfillment:
    source_fulfillment_id: str
    status: str
    created_at: datetime | None = None
    tracking_numbers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    """A store's order, in canonical form. ``order_key`` = ``<store>:<source_order_id>``."""

    store: str
    system: str  # shopify | woocommerce
    source_order_id: str
    name: str  # what the merchant and shopper see, e.g. "#1001"
    currency: str
    created_at: datetime
    updated_at: datetime
    customer: Customer
    lines: tuple[Line, ...]
    total: Money
    billing_address: Address | None = None
    shipping_address: Address | None = None
    shipping_lines: tuple[ShippingLine, ...] = ()
    fee_lines: tuple[FeeLine, ...] = ()
    order_discounts: tuple[Discount, ...] = ()  # discounts not allocated to a line
    tax_lines: tuple[TaxLine, ...] = ()  # order-level summary per rate
    taxes_included: bool = False
    financial_status: FinancialStatus = FinancialStatus.PENDING
    fulfillment_status: FulfillmentStatus = FulfillmentStatus.UNFULFILLED
    transactions: tuple[Transaction, ...] = ()
    refunds: tuple[Refund, ...] = ()
    fulfillments: tuple[Fulfillment, ...] = ()
    cancelled_at: datetime | None = None
    note: str | None = None
    test: bool = False
    booked_side: str = "shop"  # which money of the order books: "shop" or "presentment"
    other_money: OtherMoney | None = None  # the other side's totals, when the currencies differ

    @property
    def order_key(self) -> str:
        return f"{self.store}:{self.source_order_id}"

    def zero(self) -> Money:
        return Money.zero(self.currency)

    @property
    def line_total(self) -> Money:
        return total((line.gross for line in self.lines), self.currency)

    @property
    def discount_total(self) -> Money:
        line_discounts = total((line.discount_total for line in self.lines), self.currency)
        shipping_discounts = total((s.discount for s in self.shipping_lines if s.discount), self.currency)
        order_level = total((d.amount for d in self.order_discounts), self.currency)
        return line_discounts + shipping_discounts + order_level

    @property
    def shipping_total(self) -> Money:
        return total((s.price for s in self.shipping_lines), self.currency)

    @property
    def fee_total(self) -> Money:
        return total((f.amount for f in self.fee_lines), self.currency)

    @property
    def tax_total(self) -> Money:
        line_tax = total((line.tax_total for line in self.lines), self.currency)
        shipping_tax = total((t.amount for s in self.shipping_lines for t in s.tax_lines), self.currency)
        fee_tax = total((t.amount for f in self.fee_lines for t in f.tax_lines), self.currency)
        return line_tax + shipping_tax + fee_tax

    @property
    def captured_total(self) -> Money:
        return total((t.amount for t in self.transactions if t.is_captured_money), self.currency)

    @property
    def refunded_total(self) -> Money:
        return total((r.amount for r in self.refunds), self.currency)

    @property
    def is_paid(self) -> bool:
        return self.financial_status in (
            FinancialStatus.PAID, FinancialStatus.PARTIALLY_REFUNDED, FinancialStatus.REFUNDED,
        )


def require_balanced(order: Order) -> Order:
    """Return ``order`` if it balances to the cent; otherwise raise, naming the order and the difference."""
    difference = balance_difference(order)
    if not difference.is_zero():
        from connector.errors import MappingError
        raise MappingError(
            f"{order.system} order {order.name} ({order.order_key}) does not balance: lines - discounts + shipping"
            f" + fees + tax = {(order.total + difference).amount}, the store says {order.total.amount}"
            f" (difference {difference.amount} {order.currency})",
            what_to_do="report this order's payload: the mapping misses an amount; nothing was rounded away",
            system=order.system, code="unbalanced")
    return order


def balance_difference(order: Order) -> Money:
    """``computed - store total``; zero when the order balances to the cent.

    With tax-inclusive prices the tax is already inside the line prices, so it
    is not added again.
    """
    computed = order.line_total - order.discount_total + order.shipping_total + order.fee_total
    if not order.taxes_included:
        computed = computed + order.tax_total
    return (computed - order.total).rounded()
