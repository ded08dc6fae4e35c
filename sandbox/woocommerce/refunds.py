"""Order refunds: creating them (control API) and their REST shape.

Refund object per notes §1 "Refund object" (DOCS ``_order-refunds.md``):
positive ``amount``, line items with negative quantity and totals, ``_links``
{self, collection, up}. Creating one also updates the order the way
``wc_create_refund`` does: ``refunds[]`` gains ``{id, reason, total: "-x"}``
(newest first), ``date_modified`` moves, and a fully refunded order becomes
``refunded`` (``wc_order_fully_refunded``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

from sandbox.woocommerce.render import CENT, money, raw_tax, wc_date
from sandbox.woocommerce.store import Site


class RefundError(ValueError):
    pass


def _neg(value: Decimal) -> str:
    return money(-value) if value else "0.00"


def _refund_line(site: Site, item: dict, quantity: int) -> tuple[dict, Decimal]:
    """A refund line for ``quantity`` units of ``item``, pro rata per unit."""
    qty = item["quantity"]
    if not 0 < quantity <= qty:
        raise RefundError(f"quantity {quantity} out of range for line item {item['id']}")
    share = Decimal(quantity) / Decimal(qty)
    total = (Decimal(item["total"]) * share).quantize(CENT, rounding=ROUND_HALF_UP)
    subtotal = (Decimal(item["subtotal"]) * share).quantize(CENT, rounding=ROUND_HALF_UP)
    tax = (Decimal(item["total_tax"]) * share).quantize(CENT, rounding=ROUND_HALF_UP)
    subtotal_tax = (Decimal(item["subtotal_tax"]) * share).quantize(CENT, rounding=ROUND_HALF_UP)
    line = {
        "id": site.item_id(), "name": item["name"], "product_id": item["product_id"],
        "variation_id": item["variation_id"], "quantity": -quantity, "tax_class": item["tax_class"],
        "subtotal": _neg(subtotal), "subtotal_tax": _neg(subtotal_tax),
        "total": _neg(total), "total_tax": _neg(tax),
        "taxes": [{"id": t["id"], "total": raw_tax(-tax) if tax else "0.00",
                   "subtotal": raw_tax(-subtotal_tax) if subtotal_tax else "0.00"} for t in item["taxes"]],
        "meta_data": [], "sku": item["sku"], "price": float(-total / quantity),
        "image": item.get("image", {"id": "", "src": ""}), "parent_name": item.get("parent_name"),
    }
    return line, total + tax


def create_refund(site: Site, order: dict, body: dict) -> dict:
    """Body: {"amount"?: "10.00", "reason"?: str, "line_items"?: [{"id": line item id, "quantity": n}],
    "refunded_payment"?: bool, "date_created_gmt"?: ISO}. Amount defaults to the lines' total incl. tax."""
    by_id = {li["id"]: li for li in order["line_items"]}
    lines, lines_total = [], Decimal("0")
    for wanted in body.get("line_items") or []:
        item = by_id.get(int(wanted["id"]))
        if item is None:
            raise RefundError(f"line item {wanted['id']} is not in order {order['id']}")
        line, amount = _refund_line(site, item, int(wanted.get("quantity", item["quantity"])))
        lines.append(line)
        lines_total += amount
    amount = Decimal(str(body["amount"])) if body.get("amount") is not None else lines_total
    already = sum((-Decimal(r["total"]) for r in order["refunds"]), Decimal("0"))
    remaining = Decimal(order["total"]) - already
    if amount <= 0 or amount > remaining:
        # wc_create_refund: "Invalid refund amount." when over the remaining total.
        raise RefundError("Invalid refund amount.")
    text = body.get("date_created_gmt")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else datetime.now(timezone.utc)
    if moment.tzinfo:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    moment = moment.replace(microsecond=0)
    refund = {
        "id": site.post_id(), "parent_id": order["id"],
        "date_created": wc_date(moment + site.tz_offset), "date_created_gmt": wc_date(moment),
        "amount": money(amount), "reason": body.get("reason") or "", "refunded_by": 1,
        "refunded_payment": bool(body.get("refunded_payment", False)), "meta_data": [], "line_items": lines,
    }
    site.refunds[refund["id"]] = refund
    order["refunds"].insert(0, {"id": refund["id"], "reason": refund["reason"], "total": "-" + refund["amount"]})
    order["date_modified_gmt"] = wc_date(moment)
    order["date_modified"] = wc_date(moment + site.tz_offset)
    if amount == remaining:
        order["status"] = "refunded"
    return refund


def serialize_refund(refund: dict, home: str, with_parent: bool) -> dict:
    """Per-order listing omits ``parent_id``; GET /refunds (WC >= 9.0) includes it."""
    out = {k: v for k, v in refund.items() if with_parent or k != "parent_id"}
    api = f"{home}/wp-json/wc/v3/orders/{refund['parent_id']}"
    out["_links"] = {"self": [{"href": f"{api}/refunds/{refund['id']}"}],
                     "collection": [{"href": f"{api}/refunds"}], "up": [{"href": api}]}
    return out


def select(refunds: list[dict], q: dict, parents: list[int]) -> list[dict]:
    """Filter on created date (exclusive bounds) and parent, sort by date/id."""
    out = []
    for refund in refunds:
        if parents and refund["parent_id"] not in parents:
            continue
        moment = datetime.fromisoformat(refund["date_created_gmt" if q["dates_are_gmt"] else "date_created"])
        if q.get("after") and not moment > q["after"]:
            continue
        if q.get("before") and not moment < q["before"]:
            continue
        if q["include"] and refund["id"] not in q["include"]:
            continue
        out.append(refund)
    key = (lambda r: r["id"]) if q["orderby"] == "id" else (lambda r: (r["date_created_gmt"], r["id"]))
    return sorted(out, key=key, reverse=q["order"] == "desc")
