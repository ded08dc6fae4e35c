"""Shopify GraphQL Admin ``Order`` node -> canonical :class:`~connector.model.Order`.

Pure: data in, data out. Declared with the :class:`~mappings.mapper.Mapper`
shape: :class:`ShopifyOrderMapper` reads the node, its children map lines,
shipping lines, tax lines, transactions, refunds and fulfillments, and its
finalize adds the special lines (tip as a fee, order-level discount).
Field choices follow ../shared/notes/shopify.md §1:
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
                             TransactionKind, total)
from mappings.mapper import Mapper, mapping

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


def _tail(gid: str) -> str:
    """The numeric tail of a global id (``gid://shopify/Order/123`` -> ``"123"``)."""
    return gid.rsplit("/", 1)[-1]


def _lower(value: str | None) -> str:
    return (value or "").lower()


class _ShopifyMapper(Mapper):
    """Shared by the Shopify mappers: the option ``which`` names the side of each MoneyBag that books."""

    catch = (KeyError, TypeError, AttributeError)
    which: str

    def money(self, bag: dict | None) -> Money | None:
        return _money(bag, self.which)


class ShopifyAddressMapper(Mapper):
    target = Address
    direct = (
        ("firstName?", "first_name"), ("lastName?", "last_name"), ("company?", "company"),
        ("address1?", "address1"), ("address2?", "address2"), ("city?", "city"),
        ("province?", "province"), ("provinceCode?", "province_code"), ("country?", "country"),
        ("countryCodeV2?", "country_code"), ("zip?", "zip"), ("phone?", "phone"),
    )


class ShopifyCustomerMapper(Mapper):
    """The buyer, from the order node: the customer record, else the order's email and billing address."""

    target = Customer
    direct = (("billingAddress.company?", "company"), ("customer.legacyResourceId?", "source_customer_id"))

    @mapping
    def contact(self, node: dict) -> dict:
        data = node.get("customer") or {}
        email = node.get("email") or ((data.get("defaultEmailAddress") or {}).get("emailAddress"))
        phone = (data.get("defaultPhoneNumber") or {}).get("phoneNumber")
        billing = node.get("billingAddress") or {}
        return {"email": email.strip().lower() if email else None,
                "first_name": data.get("firstName") or billing.get("firstName"),
                "last_name": data.get("lastName") or billing.get("lastName"),
                "phone": phone or billing.get("phone")}


class ShopifyTaxLineMapper(_ShopifyMapper):
    target = TaxLine
    direct = (("title?", "title", lambda v: v or "Tax"), ("rate?", "rate", lambda v: Decimal(str(v or 0))),
              ("priceSet", "amount", "money"))


class ShopifyLineMapper(_ShopifyMapper):
    target = Line
    children = (("taxLines", "tax_lines", ShopifyTaxLineMapper),)

    @mapping
    def prices(self, item: dict) -> dict:
        unit = self.money(item["originalUnitPriceSet"])
        allocations = tuple(
            Discount(self.money(a["allocatedAmountSet"]))
            for a in item.get("discountAllocations") or []
            if self.money(a["allocatedAmountSet"]) and not self.money(a["allocatedAmountSet"]).is_zero()
        )
        return {"unit_price": unit, "discounts": allocations}

    @mapping
    def describe(self, item: dict) -> dict:
        return {"source_line_id": _tail(item["id"]),
                "sku": item.get("sku") or (item.get("variant") or {}).get("sku") or None,
                "title": item.get("name") or item.get("title") or "",
                "quantity": int(item["quantity"]),
                "taxable": bool(item.get("taxable", True))}


class ShopifyShippingMapper(_ShopifyMapper):
    target = ShippingLine
    direct = (("title?", "title", lambda v: v or "Shipping"), ("code?", "code"))
    children = (("taxLines", "tax_lines", ShopifyTaxLineMapper),)

    @mapping
    def price(self, item: dict) -> dict:
        price = self.money(item["originalPriceSet"])
        discounted = self.money(item.get("discountedPriceSet")) or price
        discount = price - discounted
        return {"price": price, "discount": None if discount.is_zero() else discount}


class ShopifyTransactionMapper(_ShopifyMapper):
    target = Transaction
    direct = (("id", "source_transaction_id", _tail), ("kind?", "kind", KINDS.get), ("status?", "status", _lower),
              ("amountSet", "amount", "money"), ("gateway?", "gateway"),
              ("parentTransaction.id?", "parent_id", lambda v: _tail(v or "") or None))

    def skip(self, item: dict) -> bool:
        # CHANGE, EMV_AUTHORIZATION, SUGGESTED_REFUND move no booked money
        return KINDS.get(item.get("kind", "")) is None

    @mapping
    def processed_at(self, item: dict) -> dict:
        return {"processed_at": _dt(item.get("processedAt") or item.get("createdAt"))}


class ShopifyRefundLineMapper(_ShopifyMapper):
    target = RefundLine
    direct = (("lineItem.id", "source_line_id", _tail), ("quantity", "quantity", int),
              ("subtotalSet", "amount", "money"), ("totalTaxSet?", "tax", "money"))


class ShopifyRefundMapper(_ShopifyMapper):
    """A refund; with the details query, also its lines, shipping and the gateway that paid it back."""

    target = Refund
    direct = (("totalRefundedSet", "amount", "money"), ("id", "source_refund_id", _tail),
              ("createdAt", "created_at", _dt), ("note?", "note"))
    children = (("refundLineItems", "lines", ShopifyRefundLineMapper, _nodes),)

    @mapping
    def shipping_and_gateway(self, refund: dict) -> dict:
        shipping_lines = _nodes(refund.get("refundShippingLines"))
        shipping = None
        if shipping_lines:
            shipping = Money.zero(self.money(refund["totalRefundedSet"]).currency)
            for ship in shipping_lines:
                shipping = shipping + self.money(ship["subtotalAmountSet"])
        gateways = [t.get("gateway") for t in _nodes(refund.get("transactions")) if t.get("kind") == "REFUND"]
        return {"shipping": shipping, "gateway": gateways[0] if gateways else None}


class ShopifyFulfillmentMapper(Mapper):
    target = Fulfillment
    direct = (("id", "source_fulfillment_id", _tail), ("status?", "status", _lower),
              ("createdAt?", "created_at", _dt))

    @mapping
    def tracking(self, item: dict) -> dict:
        return {"tracking_numbers": tuple(t["number"] for t in item.get("trackingInfo") or [] if t.get("number"))}


class ShopifyOrderMapper(_ShopifyMapper):
    """A GraphQL ``Order`` node; options ``store``, ``money`` (``"shop"``/``"presentment"``) and ``which``."""

    direct = (
        ("billingAddress?", "billing_address", ShopifyAddressMapper.one),
        ("shippingAddress?", "shipping_address", ShopifyAddressMapper.one),
        ("taxesIncluded?", "taxes_included", bool),
        ("displayFinancialStatus?", "financial_status", lambda v: FINANCIAL.get(v or "", FinancialStatus.PENDING)),
        ("displayFulfillmentStatus?", "fulfillment_status",
         lambda v: FULFILLMENT.get(v or "", FulfillmentStatus.UNFULFILLED)),
        ("cancelledAt?", "cancelled_at", _dt), ("test?", "test", bool),
    )
    children = (
        ("lineItems", "lines", ShopifyLineMapper, _nodes),
        ("shippingLines", "shipping_lines", ShopifyShippingMapper, _nodes),
        ("taxLines", "tax_lines", ShopifyTaxLineMapper),
        ("transactions", "transactions", ShopifyTransactionMapper),
        ("refunds", "refunds", ShopifyRefundMapper),
        ("fulfillments", "fulfillments", ShopifyFulfillmentMapper),
    )

    @mapping
    def identity(self, node: dict) -> dict:
        # The required fields, read in this order so the first one missing is the one named.
        total_money = self.money(node["totalPriceSet"])
        return {"store": self.store, "system": "shopify", "booked_side": self.money_side,
                "source_order_id": str(node.get("legacyResourceId") or _tail(node["id"])),
                "name": node["name"], "currency": total_money.currency, "total": total_money,
                "created_at": _dt(node["createdAt"]),
                "updated_at": _dt(node.get("updatedAt") or node["createdAt"])}

    @mapping
    def customer(self, node: dict) -> dict:
        return {"customer": ShopifyCustomerMapper().build(node)}

    @mapping
    def other_money(self, node: dict) -> dict:
        """The totals in the money that does not book, when the shopper paid in another currency."""
        other = "shopMoney" if self.which == "presentmentMoney" else "presentmentMoney"
        total_other = _money(node.get("totalPriceSet"), other)
        booked = _money(node.get("totalPriceSet"), self.which)
        if total_other is None or booked is None or total_other.currency == booked.currency:
            return {"other_money": None}
        zero = Money.zero(total_other.currency)
        return {"other_money": OtherMoney(
            side="shop" if other == "shopMoney" else "presentment", total=total_other,
            tax=_money(node.get("totalTaxSet"), other) or zero,
            shipping=_money(node.get("totalShippingPriceSet"), other) or zero,
            discounts=_money(node.get("totalDiscountsSet"), other) or zero,
        )}

    @mapping
    def tips(self, node: dict) -> dict:
        """A tip is part of Shopify's total price but of no line: book it as a fee line."""
        tip = self.money(node.get("totalTipReceivedSet"))
        return {"fee_lines": () if tip is None or tip.is_zero() else (FeeLine("Tip", tip),)}

    def finalize(self, node: dict, fields: dict) -> dict:
        # Order-level discounts Shopify did not allocate to lines are the remainder of totalDiscountsSet.
        fields["order_discounts"] = ()
        listed = self.money(node.get("totalDiscountsSet"))
        if listed is not None:
            currency = fields["currency"]
            allocated = (total((line.discount_total for line in fields["lines"]), currency)
                         + total((s.discount for s in fields["shipping_lines"] if s.discount), currency))
            remainder = (listed - allocated).rounded()
            if not remainder.is_zero() and remainder.amount > 0:
                fields["order_discounts"] = (Discount(remainder, "order"),)
        return fields

    def error(self, node: dict, exc: BaseException) -> MappingError:
        return MappingError(
            f"Shopify order {node.get('name') or node.get('id')} is missing {exc}",
            what_to_do="check the page query asks for this field; report it if Shopify omitted it",
            system="shopify",
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
    return Order(**ShopifyOrderMapper(store=store, money_side=money, which=which).map(node))
