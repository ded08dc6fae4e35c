"""Order snapshots: canonical JSON in the ledger, and the content hash that says "nothing changed".

The JSON has sorted keys and Decimal amounts as strings, so equal orders give
byte-equal snapshots and equal hashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from decimal import Decimal
from enum import Enum

from connector.model import (Address, Customer, Discount, FeeLine, FinancialStatus, Fulfillment, FulfillmentStatus,
                             Line, Money, Order, OtherMoney, Refund, RefundLine, ShippingLine, TaxLine, Transaction,
                             TransactionKind)


def content_hash(order: Order) -> str:
    """A stable hash of everything in the order: equal hash, nothing to re-sync."""
    return hash_of(to_json(order))


def _encode(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_dict(order: Order) -> dict:
    """``dataclasses.asdict(order)``, without its deep copy of every leaf value.

    The order is frozen and its leaves (str, Decimal, datetime, enums) immutable, so copying
    them buys nothing; the copy was most of the time a backfill spent per order.
    """
    return _plain(order)


_FIELDS: dict[type, tuple[str, ...] | None] = {}  # a dataclass's field names; None: not a dataclass


def _plain(value):
    cls = type(value)
    try:
        names = _FIELDS[cls]
    except KeyError:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)) \
            if dataclasses.is_dataclass(cls) else None
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if cls is tuple or cls is list:
        return cls(_plain(item) for item in value)
    if cls is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def to_json(order: Order) -> str:
    """Canonical JSON (sorted keys): the ledger's order snapshot."""
    return json.dumps(to_dict(order), default=_encode, sort_keys=True, separators=(",", ":"))


def hash_of(snapshot: str) -> str:
    """:func:`content_hash` of an order whose :func:`to_json` is ``snapshot``."""
    return hashlib.sha256(snapshot.encode()).hexdigest()


def money_from(data: dict | None) -> Money | None:
    if data is None:
        return None
    return Money(Decimal(data["amount"]), data["currency"])


def _tax_lines(items) -> tuple[TaxLine, ...]:
    return tuple(TaxLine(t["title"], Decimal(t["rate"]), money_from(t["amount"])) for t in items)


def _discounts(items) -> tuple[Discount, ...]:
    return tuple(Discount(money_from(d["amount"]), d.get("code")) for d in items)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def from_json(text: str) -> Order:
    """Rebuild an :class:`Order` from :func:`to_json` output (ledger snapshots)."""
    d = json.loads(text)
    return Order(
        store=d["store"],
        system=d["system"],
        source_order_id=d["source_order_id"],
        name=d["name"],
        currency=d["currency"],
        created_at=_dt(d["created_at"]),
        updated_at=_dt(d["updated_at"]),
        customer=Customer(**d["customer"]),
        lines=tuple(
            Line(
                source_line_id=x["source_line_id"], sku=x["sku"], title=x["title"],
                quantity=x["quantity"], unit_price=money_from(x["unit_price"]),
                discounts=_discounts(x["discounts"]), tax_lines=_tax_lines(x["tax_lines"]),
                taxable=x["taxable"], subtotal=money_from(x.get("subtotal")),
            )
            for x in d["lines"]
        ),
        total=money_from(d["total"]),
        billing_address=Address(**d["billing_address"]) if d["billing_address"] else None,
        shipping_address=Address(**d["shipping_address"]) if d["shipping_address"] else None,
        shipping_lines=tuple(
            ShippingLine(s["title"], money_from(s["price"]), s["code"], money_from(s["discount"]),
                         _tax_lines(s["tax_lines"]))
            for s in d["shipping_lines"]
        ),
        fee_lines=tuple(FeeLine(f["title"], money_from(f["amount"]), _tax_lines(f["tax_lines"]))
                        for f in d["fee_lines"]),
        order_discounts=_discounts(d["order_discounts"]),
        tax_lines=_tax_lines(d["tax_lines"]),
        taxes_included=d["taxes_included"],
        financial_status=FinancialStatus(d["financial_status"]),
        fulfillment_status=FulfillmentStatus(d["fulfillment_status"]),
        transactions=tuple(
            Transaction(t["source_transaction_id"], TransactionKind(t["kind"]), t["status"],
                        money_from(t["amount"]), t["gateway"], _dt(t["processed_at"]), t["parent_id"])
            for t in d["transactions"]
        ),
        refunds=tuple(
            Refund(r["source_refund_id"], _dt(r["created_at"]), money_from(r["amount"]), r["note"],
                   tuple(RefundLine(x["source_line_id"], x["quantity"], money_from(x["amount"]), money_from(x["tax"]))
                         for x in r["lines"]),
                   money_from(r["shipping"]), r["gateway"])
            for r in d["refunds"]),
        fulfillments=tuple(Fulfillment(f["source_fulfillment_id"], f["status"], _dt(f["created_at"]),
                                       tuple(f["tracking_numbers"]))
                           for f in d["fulfillments"]),
        cancelled_at=_dt(d["cancelled_at"]),
        note=d["note"],
        test=d["test"],
        booked_side=d["booked_side"],
        other_money=OtherMoney(d["other_money"]["side"], *(money_from(d["other_money"][k])
                                                          for k in ("total", "tax", "shipping", "discounts")))
        if d["other_money"] else None,
    )
