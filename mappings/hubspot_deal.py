"""Canonical order -> HubSpot deal, line items and QuickBooks write-back properties.

Pure functions of data (no I/O). Every value is a string (../shared/notes/hubspot.md
§2: "All property values are strings on the wire"); money is the order's booked
currency with two decimals, never a float. A deal is keyed by the order key and
each line item by ``<order key>:<source line id>``, both held in unique custom
properties so a retried upsert updates rather than duplicates (notes §2.1).
"""

from __future__ import annotations

from datetime import timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from connector.model import CENT, Line, Order


def money(amount: Decimal) -> str:
    """``Decimal`` -> ``"12.30"`` (two decimals, half up as the stores print totals)."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def price(amount: Decimal) -> str:
    """A unit price: at least two decimals, never rounded away (``3.3333`` stays, ``10`` is ``10.00``)."""
    return money(amount) if amount == amount.quantize(CENT) else format(amount.normalize(), "f")


def hubspot_time(moment) -> str:
    """An ISO-8601 UTC instant with milliseconds and ``Z``, as HubSpot writes its own."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stage_key(order: Order, stages: dict[str, str]) -> str:
    """Which entry of the stage map applies: ``cancelled``, ``<financial>+<fulfillment>``, or ``<financial>``."""
    if order.cancelled_at is not None:
        return "cancelled"
    precise = f"{order.financial_status.value}+{order.fulfillment_status.value}"
    return precise if precise in stages else order.financial_status.value


def deal_properties(order: Order, *, stages: dict[str, str], pipeline: str, key_property: str,
                    name_template: str = "{order_name} ({store})") -> dict[str, str]:
    """Properties for ``deals/batch/upsert`` with ``idProperty`` = ``key_property``."""
    return {
        key_property: order.order_key,
        "dealname": name_template.format(order_name=order.name, store=order.store,
                                         source_order_id=order.source_order_id,
                                         email=order.customer.email or ""),
        "amount": money(order.total.amount),
        "deal_currency_code": order.currency,
        "closedate": hubspot_time(order.created_at),
        "pipeline": pipeline,
        "dealstage": stages[stage_key(order, stages)],
    }


def line_key(order: Order, line: Line) -> str:
    return f"{order.order_key}:{line.source_line_id}"


def line_item_properties(order: Order, line: Line, key_property: str) -> dict[str, str]:
    """One line item: name, SKU, quantity, unit price before discounts, the discount amount.

    HubSpot computes the line's amount itself (price x quantity - discount).
    """
    props = {
        key_property: line_key(order, line),
        "name": (line.title or line.sku or f"Line {line.source_line_id}")[:250],
        "quantity": str(line.quantity),
        "price": price(line.unit_price.amount),
        "discount": money(line.discount_total.amount),
        "hs_line_item_currency_code": order.currency,
    }
    if line.sku:
        props["hs_sku"] = line.sku
    return props


def line_items(order: Order, key_property: str) -> dict[str, dict[str, str]]:
    """``{line key: properties}`` for the lines HubSpot can hold.

    Notes §2.3: "price cannot be negative". A negative amount (a refund, a store's
    adjustment line) is never a line item, and neither is a line of quantity 0
    (removed by an order edit); the deal's amount is the order total all the same.
    """
    return {line_key(order, line): line_item_properties(order, line, key_property)
            for line in order.lines if line.quantity > 0 and line.unit_price.amount >= 0}


def booking_properties(kind: str, details: dict | None, voided: bool = False) -> dict[str, str]:
    """QuickBooks write-back: document number, balance and status of the order's document.

    Args:
        kind: the ledger binding kind, ``invoice`` or ``sales_receipt``.
        details: that binding's details (``DocNumber``, ``TotalAmt``, ``Balance``), kept
            current by the QuickBooks runner.
        voided: the order's QuickBooks void step is done.
    """
    details = details or {}
    balance = _decimal(details.get("Balance"))
    if balance is None and kind == "sales_receipt":
        balance = Decimal("0")  # a sales receipt is paid when it is written
    if voided:
        status = "voided"
    elif balance is None:
        status = "booked"
    elif balance == 0:
        status = "paid"
    else:
        total = _decimal(details.get("TotalAmt"))
        status = "partially_paid" if total is not None and balance < total else "open"
    props = {"o2c_qbo_doc_number": str(details.get("DocNumber") or ""), "o2c_qbo_status": status}
    if balance is not None:
        props["o2c_qbo_balance"] = money(balance)
    return props


def _decimal(value) -> Decimal | None:
    if value in (None, "", "None"):
        return None
    try:
        return Decimal(str(value))
    except (ArithmeticError, InvalidOperation):
        return None
