"""Render a vendor-neutral order spec (sandbox/generator.py) as a WC v3 order.

Field list and order follow notes §1 "Order object" (WC v2 orders controller
``get_formatted_item_data``). Arithmetic is WooCommerce's default cart maths
with prices exclusive of tax and "round tax at subtotal" off: tax is computed
and rounded per line and per shipping line, coupons are spread into line
totals, and every order total is a sum of those rounded pieces. All money is
``Decimal``; the only float is ``line_items[].price``, which WC sends as a JSON
number (notes §1 "line_items").
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from sandbox.woocommerce.store import Site

CENT = Decimal("0.01")
ZERO = Decimal("0")
GATEWAY_TITLES = {
    "stripe": "Credit Card (Stripe)", "bacs": "Direct bank transfer", "cheque": "Check payments",
    "cod": "Cash on delivery", "paypal": "PayPal", "ppcp-gateway": "PayPal",
    "woocommerce_payments": "Credit card / debit card", "square_credit_card": "Credit Card",
}
OFFLINE_GATEWAYS = {"bacs", "cheque", "cod"}   # no transaction id from an offline gateway
SHIPPING_METHODS = {"standard": ("flat_rate", "1"), "express": ("flat_rate", "2"), "free": ("free_shipping", "3")}


def money(value: Decimal) -> str:
    # PHP round() is half away from zero; wc_format_decimal(.., dp) pads to dp.
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def raw_tax(value: Decimal) -> str:
    """Unrounded tax as WC keeps it in ``taxes[]`` (e.g. "6.324111"): no
    trailing zeros beyond two places."""
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def wc_date(moment: datetime | None) -> str | None:
    """wc_rest_prepare_date_response: ``YYYY-MM-DDTHH:MM:SS``, no offset, no Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def parse_spec_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)


def date_pair(name: str, gmt: datetime | None, offset: timedelta) -> dict:
    return {name: wc_date(gmt + offset) if gmt else None, f"{name}_gmt": wc_date(gmt)}


def status_for(spec: dict) -> str:
    if spec.get("cancelled"):
        return "cancelled"
    financial = spec.get("financial_status")
    if financial == "paid":
        return "completed" if spec.get("fulfillment_status") == "fulfilled" else "processing"
    return {"pending": "pending", "authorized": "on-hold"}.get(financial, "pending")


def _digest(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _address(addr: dict | None, email=..., phone_fallback: str | None = None) -> dict:
    addr = addr or {}
    out = {
        "first_name": addr.get("first_name") or "", "last_name": addr.get("last_name") or "",
        "company": addr.get("company") or "", "address_1": addr.get("address1") or "",
        "address_2": addr.get("address2") or "", "city": addr.get("city") or "",
        "state": addr.get("province_code") or "", "postcode": addr.get("zip") or "",
        "country": addr.get("country_code") or "",
    }
    if email is not ...:
        out["email"] = email  # billing.email may be null (notes §1)
    out["phone"] = addr.get("phone") or phone_fallback or ""
    return out


def _line_items(site: Site, spec: dict, rate: Decimal, rate_id: int | None) -> tuple[list, dict]:
    items, sums = [], {"subtotal": ZERO, "total": ZERO, "discount": ZERO, "subtotal_tax": ZERO, "tax": ZERO}
    for line in spec["lines"]:
        qty = int(line["quantity"])
        subtotal = (Decimal(line["unit_price"]) * qty).quantize(CENT)
        discount = Decimal(line.get("discount") or "0")
        total = subtotal - discount                        # coupons are spread into line totals
        taxable = bool(line.get("taxable", True)) and rate_id is not None
        sub_raw, tot_raw = (subtotal * rate, total * rate) if taxable else (ZERO, ZERO)
        subtotal_tax = sub_raw.quantize(CENT, rounding=ROUND_HALF_UP)
        total_tax = tot_raw.quantize(CENT, rounding=ROUND_HALF_UP)
        items.append({
            "id": site.item_id(), "name": line["title"], "product_id": site.product_id(line["sku"]),
            "variation_id": 0, "quantity": qty, "tax_class": "",
            "subtotal": money(subtotal), "subtotal_tax": money(subtotal_tax),
            "total": money(total), "total_tax": money(total_tax),
            "taxes": [{"id": rate_id, "total": raw_tax(tot_raw), "subtotal": raw_tax(sub_raw)}] if taxable else [],
            "meta_data": [], "sku": line.get("sku"),
            # WC: get_item_total($item, false, false) = total / qty, a PHP float.
            "price": float(total / qty) if qty else 0,
            "image": {"id": "", "src": ""}, "parent_name": None,
        })
        sums["subtotal"] += subtotal
        sums["total"] += total
        sums["discount"] += discount
        sums["subtotal_tax"] += subtotal_tax
        sums["tax"] += total_tax
    return items, sums


def _shipping_lines(site: Site, spec: dict, rate: Decimal, rate_id: int | None) -> tuple[list, Decimal, Decimal]:
    lines, total, tax = [], ZERO, ZERO
    for ship in spec.get("shipping") or []:
        price = Decimal(ship["price"])
        raw = price * rate if rate_id is not None else ZERO
        line_tax = raw.quantize(CENT, rounding=ROUND_HALF_UP)
        method_id, instance_id = SHIPPING_METHODS.get(ship.get("code"), (ship.get("code") or "flat_rate", "1"))
        lines.append({
            "id": site.item_id(), "method_title": ship["title"], "method_id": method_id,
            "instance_id": instance_id, "total": money(price), "total_tax": money(line_tax),
            "taxes": [{"id": rate_id, "total": raw_tax(raw)}] if rate_id is not None and price else [],
            "meta_data": [],
        })
        total += price
        tax += line_tax
    return lines, total, tax


def render_order(site: Site, spec: dict) -> dict:
    """Build the stored order (``_links`` are added per response by the app)."""
    if spec.get("taxes_included"):
        raise ValueError("taxes_included specs are not supported by the WooCommerce emulator yet")
    order_id = site.post_id(int(spec["number"]) if spec.get("number") else None)
    offset = site.tz_offset
    created, modified = parse_spec_time(spec["created_at"]), parse_spec_time(spec.get("updated_at") or spec["created_at"])
    status = status_for(spec)
    ship_addr = spec.get("shipping_address") or spec.get("billing_address") or {}
    rate = Decimal(spec.get("tax_rate") or "0")
    rate_id = None
    if rate > 0:
        key = (ship_addr.get("country_code") or "", ship_addr.get("province_code") or "", spec.get("tax_title") or "Tax", str(rate))
        rate_id = site.tax_rate_id(key)
    items, sums = _line_items(site, spec, rate, rate_id)
    shipping_lines, shipping_total, shipping_tax = _shipping_lines(site, spec, rate, rate_id)
    cart_tax = sums["tax"]
    total_tax = cart_tax + shipping_tax
    total = sums["total"] + shipping_total + total_tax
    discount_tax = sums["subtotal_tax"] - sums["tax"]
    customer = spec.get("customer") or {}
    gateway = spec.get("gateway") or ""
    paid = spec.get("financial_status") == "paid"
    digest = _digest(site.name, order_id, spec.get("created_at"))
    order_key = "wc_order_" + "".join(c for c in digest if c.isalnum())[:13]
    tax_lines = []
    if rate_id is not None:
        country, state, label, _ = key
        tax_lines.append({
            "id": site.item_id(), "rate_code": f"{country}-{state}-{label.upper()}-1".replace("--", "-"),
            "rate_id": rate_id, "label": label, "compound": False, "tax_total": money(cart_tax),
            "shipping_tax_total": money(shipping_tax), "rate_percent": float(rate * 100), "meta_data": [],
        })
    coupon_lines = []
    if sums["discount"] > 0:
        coupon_lines.append({"id": site.item_id(), "code": "o2c-promo", "discount": money(sums["discount"]),
                             "discount_tax": money(discount_tax), "meta_data": []})
    transaction_id = ""
    if gateway and gateway not in OFFLINE_GATEWAYS and spec.get("financial_status") in ("paid", "authorized"):
        transaction_id = ("pi_" if gateway == "stripe" else "") + digest[:24]
    needs_payment = status in ("pending", "failed") and total > 0
    order = {
        "id": order_id, "parent_id": 0, "status": status, "currency": spec.get("currency", "USD"),
        "version": site.wc_version, "prices_include_tax": False,
        **date_pair("date_created", created, offset), **date_pair("date_modified", modified, offset),
        "discount_total": money(sums["discount"]), "discount_tax": money(discount_tax),
        "shipping_total": money(shipping_total), "shipping_tax": money(shipping_tax),
        "cart_tax": money(cart_tax), "total": money(total), "total_tax": money(total_tax),
        "customer_id": site.customer_id(customer.get("email")), "order_key": order_key,
        "billing": _address(spec.get("billing_address"), email=customer.get("email"), phone_fallback=customer.get("phone")),
        "shipping": _address(ship_addr),
        "payment_method": gateway, "payment_method_title": GATEWAY_TITLES.get(gateway, gateway.replace("_", " ").title()),
        "transaction_id": transaction_id, "customer_ip_address": "", "customer_user_agent": "",
        "created_via": "checkout", "customer_note": spec.get("note") or "",
        **date_pair("date_completed", modified if status == "completed" else None, offset),
        **date_pair("date_paid", created if paid else None, offset),
        "cart_hash": digest[32:64], "number": str(order_id),
        "meta_data": [{"id": site.meta_id(), "key": "is_vat_exempt", "value": "no"}],
        "line_items": items, "tax_lines": tax_lines, "shipping_lines": shipping_lines,
        "fee_lines": [], "coupon_lines": coupon_lines, "refunds": [],
        # The app prefixes the home URL per response (the port is only known then).
        "payment_url": f"/checkout/order-pay/{order_id}/?pay_for_order=true&key={order_key}",
        "is_editable": status in ("pending", "on-hold", "auto-draft"),
        "needs_payment": needs_payment, "needs_processing": True,
    }
    return order


def links(order: dict, home_url: str) -> dict:
    """``_links`` as WC prepare_links builds them (notes §1)."""
    api = f"{home_url}/wp-json/wc/v3"
    out = {"self": [{"href": f"{api}/orders/{order['id']}"}], "collection": [{"href": f"{api}/orders"}]}
    if order.get("customer_id"):
        out["customer"] = [{"href": f"{api}/customers/{order['customer_id']}"}]
    if order.get("parent_id"):
        out["up"] = [{"href": f"{api}/orders/{order['parent_id']}"}]
    return out
