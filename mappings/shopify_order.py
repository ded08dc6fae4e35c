"""Shopify GraphQL Admin ``Order`` node -> canonical :class:`~connector.model.Order`.

Pure: data in, data out. Field choices follow ../shared/notes/shopify.md §1:
the ``*Set`` MoneyBag fields (the scalar money fields are deprecated), money
as strings parsed straight into ``Decimal``, ids kept as strings (they
exceed 2^53). Which money of the bag books (shop or presentment) is a store
setting; shop money is the default because that is what the merchant's
books are kept in.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from connector.errors import MappingError
from connector.model import (Address, Customer, Discount, FeeLine, FinancialStatus, Fulfillment, FulfillmentStatus,
                             Line, Money, Order, OtherMoney, Refund, RefundLine, ShippingLine, TaxLine, Transaction,
                             TransactionKind)

FINANCIAL = {
    "PENDING": FinancialStatus.PENDING, "AUTHORIZED": FinancialStatus.AUTHORIZED,
    "PARTIALLY_PAID": FinancialStatus.PARTIALLY_PAID, "PAID": FinancialStatus.PAID,
    "PARTIALLY_REFUNDED": FinancialStatus.PARTIALLY_REFUNDED, "REFUNDED": FinancialStatus.REFUNDED,
    "VOIDED": FinancialStatus.VOIDED, "EXPIRED": FinancialStatus.VOIDED,
}
FULFILLMENT = {"FULFILLED": FulfillmentStatus.FULFILLED, "PARTIALLY_FULFILLED": FulfillmentStatus.PARTIAL}
KINDS = {"SALE": TransactionKind.SALE, "AUTHORIZATION": TransactionKind.AUTHORIZATION,
         "CAPTURE": TransactionKind.CAPTURE, "REFUND": TransactionKind.REFUND, "VOID": TransactionKind.VOID}


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _money(bag: dict | None, which: str = "shopMoney") -> Money | None:
    if not bag or not bag.get(which):
        return None
    return Money(Decimal(bag[which]["amount"]), bag[which]["currencyCode"])


def _nodes(connection) -> list[dict]:
    """Accept both connection shapes (``nodes`` or ``edges { node }``) and plain lists."""
    if connection is None:
        return []
    if isinstance(connection, list):
        return connection
    if connection.get("nodes") is not None:
        return connection["nodes"]
    return [edge["node"] for edge in connection.get("edges", [])]


def _tax_lines(items, which: str) -> tuple[TaxLine, ...]:
    return tuple(TaxLine(t.get("title") or "Tax", Decimal(str(t.get("rate") or 0)), _money(t["priceSet"], which))
                 for t in items or [])


def _address(data: dict | None) -> Address | None:
    if not data:
        return None
    return Address(
        first_name=data.get("firstName"), last_name=data.get("lastName"), company=data.get("company"),
        address1=data.get("address1"), address2=data.get("address2"), city=data.get("city"),
        province=data.get("province"), province_code=data.get("provinceCode"), country=data.get("country"),
        country_code=data.get("countryCodeV2"), zip=data.get("zip"), phone=data.get("phone"),
    )


def _customer(node: dict) -> Customer:
    data = node.get("customer") or {}
    email = node.get("email") or ((data.get("defaultEmailAddress") or {}).get("emailAddress"))
    phone = (data.get("defaultPhoneNumber") or {}).get("phoneNumber")
    billing = node.get("billingAddress") or {}
    return Customer(
        email=email.strip().lower() if email else None,
        first_name=data.get("firstName") or billing.get("firstName"),
        last_name=data.get("lastName") or billing.get("lastName"),
        phone=phone or billing.get("phone"),
        company=billing.get("company"),
        source_customer_id=data.get("legacyResourceId"),
    )


def _line(item: dict, which: str) -> Line:
    unit = _money(item["originalUnitPriceSet"], which)
    allocations = tuple(
        Discount(_money(a["allocatedAmountSet"], which))
        for a in item.get("discountAllocations") or []
        if _money(a["allocatedAmountSet"], which) and not _money(a["allocatedAmountSet"], which).is_zero()
    )
    return Line(
        source_line_id=item["id"].rsplit("/", 1)[-1],
        sku=item.get("sku") or (item.get("variant") or {}).get("sku") or None,
        title=item.get("name") or item.get("title") or "",
        quantity=int(item["quantity"]),
        unit_price=unit,
        discounts=allocations,
        tax_lines=_tax_lines(item.get("taxLines"), which),
        taxable=bool(item.get("taxable", True)),
    )


def _shipping(item: dict, which: str) -> ShippingLine:
    price = _money(item["originalPriceSet"], which)
    discounted = _money(item.get("discountedPriceSet"), which) or price
    discount = price - discounted
    return ShippingLine(
        title=item.get("title") or "Shipping", price=price, code=item.get("code"),
        discount=None if discount.is_zero() else discount,
        tax_lines=_tax_lines(item.get("taxLines"), which),
    )


def _transaction(item: dict, which: str) -> Transaction | None:
    kind = KINDS.get(item.get("kind", ""))
    if kind is None:
        return None  # CHANGE, EMV_AUTHORIZATION, SUGGESTED_REFUND move no booked money
    return Transaction(
        source_transaction_id=item["id"].rsplit("/", 1)[-1], kind=kind,
        status=(item.get("status") or "").lower(), amount=_money(item["amountSet"], which),
        gateway=item.get("gateway"), processed_at=_dt(item.get("processedAt") or item.get("createdAt")),
        parent_id=((item.get("parentTransaction") or {}).get("id") or "").rsplit("/", 1)[-1] or None,
    )


def map_order(node: dict, store: str, *, money: str = "shop") -> Order:
    """Map one GraphQL ``Order`` node (the page query's shape) to a canonical order.

    Args:
        node: the ``Order`` as returned by the Admin API (camelCase keys).
        store: the configured store name; part of the order key.
        money: ``"shop"`` or ``"presentment"``: which side of each MoneyBag books.

    Raises:
        MappingError: when a field every order must have is missing.
    """
    which = "presentmentMoney" if money == "presentment" else "shopMoney"
    try:
        total_money = _money(node["totalPriceSet"], which)
        order = Order(
            store=store,
            system="shopify",
            source_order_id=str(node.get("legacyResourceId") or node["id"].rsplit("/", 1)[-1]),
            name=node["name"],
            currency=total_money.currency,
            created_at=_dt(node["createdAt"]),
            updated_at=_dt(node.get("updatedAt") or node["createdAt"]),
            customer=_customer(node),
            lines=tuple(_line(i, which) for i in _nodes(node.get("lineItems"))),
            total=total_money,
            billing_address=_address(node.get("billingAddress")),
            shipping_address=_address(node.get("shippingAddress")),
            shipping_lines=tuple(_shipping(s, which) for s in _nodes(node.get("shippingLines"))),
            fee_lines=_tips(node, which),
            tax_lines=_tax_lines(node.get("taxLines"), which),
            taxes_included=bool(node.get("taxesIncluded")),
            financial_status=FINANCIAL.get(node.get("displayFinancialStatus") or "", FinancialStatus.PENDING),
            fulfillment_status=FULFILLMENT.get(node.get("displayFulfillmentStatus") or "",
                                               FulfillmentStatus.UNFULFILLED),
            transactions=tuple(t for t in (_transaction(x, which) for x in node.get("transactions") or []) if t),
            refunds=tuple(_refund(r, which) for r in node.get("refunds") or []),
            fulfillments=tuple(
                Fulfillment(f["id"].rsplit("/", 1)[-1], (f.get("status") or "").lower(), _dt(f.get("createdAt")),
                            tuple(t["number"] for t in f.get("trackingInfo") or [] if t.get("number")))
                for f in node.get("fulfillments") or []
            ),
            cancelled_at=_dt(node.get("cancelledAt")),
            test=bool(node.get("test")),
            booked_side=money,
            other_money=_other_money(node, "shopMoney" if which == "presentmentMoney" else "presentmentMoney"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise MappingError(
            f"Shopify order {node.get('name') or node.get('id')} is missing {exc}",
            what_to_do="check the page query asks for this field; report it if Shopify omitted it",
            system="shopify",
        ) from exc
    # Order-level discounts Shopify did not allocate to lines are the remainder of totalDiscountsSet.
    listed = _money(node.get("totalDiscountsSet"), which)
    if listed is not None:
        allocated = order.discount_total
        remainder = (listed - allocated).rounded()
        if not remainder.is_zero() and remainder.amount > 0:
            order = _with_order_discount(order, remainder)
    return order


def _refund(refund: dict, which: str) -> Refund:
    """A refund; with the details query, also its lines, shipping and the gateway that paid it back."""
    amount = _money(refund["totalRefundedSet"], which)
    lines = tuple(
        RefundLine(item["lineItem"]["id"].rsplit("/", 1)[-1], int(item["quantity"]), _money(item["subtotalSet"], which),
                   _money(item.get("totalTaxSet"), which))
        for item in _nodes(refund.get("refundLineItems")))
    shipping_lines = _nodes(refund.get("refundShippingLines"))
    shipping = None
    if shipping_lines:
        shipping = Money.zero(amount.currency)
        for ship in shipping_lines:
            shipping = shipping + _money(ship["subtotalAmountSet"], which)
    gateways = [t.get("gateway") for t in _nodes(refund.get("transactions")) if t.get("kind") == "REFUND"]
    return Refund(refund["id"].rsplit("/", 1)[-1], _dt(refund["createdAt"]), amount, refund.get("note"),
                  lines, shipping, gateways[0] if gateways else None)


def _tips(node: dict, which: str) -> tuple[FeeLine, ...]:
    """A tip is part of Shopify's total price but of no line: book it as a fee line."""
    tip = _money(node.get("totalTipReceivedSet"), which)
    return () if tip is None or tip.is_zero() else (FeeLine("Tip", tip),)


def _other_money(node: dict, other: str) -> OtherMoney | None:
    """The totals in the money that does not book, when the shopper paid in another currency."""
    total = _money(node.get("totalPriceSet"), other)
    booked = _money(node.get("totalPriceSet"), "presentmentMoney" if other == "shopMoney" else "shopMoney")
    if total is None or booked is None or total.currency == booked.currency:
        return None
    zero = Money.zero(total.currency)
    return OtherMoney(
        side="shop" if other == "shopMoney" else "presentment", total=total,
        tax=_money(node.get("totalTaxSet"), other) or zero,
        shipping=_money(node.get("totalShippingPriceSet"), other) or zero,
        discounts=_money(node.get("totalDiscountsSet"), other) or zero,
    )


def _with_order_discount(order: Order, amount: Money) -> Order:
    from dataclasses import replace
    return replace(order, order_discounts=order.order_discounts + (Discount(amount, "order"),))
