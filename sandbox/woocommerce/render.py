"""Render a vendor-neutral order spec (sandbox/generator.py) as a WC v3 order.

Field list and order follow notes §1 "Order object" (WC v2 orders controller
``get_formatted_item_data``). Arithmetic is WooCommerce's default cart maths
with prices exclusive of tax and "round tax at subtotal" off: tax is computed
and rounded per line and per shipping line, coupons are spread into line
totals, and every order total is a sum of those rounded pieces. All money is
``Decimal``; the only float is ``line_items[].price``, which WC sends as a JSON
number (notes §1 "line_items").

The optional "variety" keys of a spec (generator docstring), as WC core stores them:
several ``taxes`` are stacked rates (one ``tax_lines`` row and one ``taxes[]`` entry per
rate); ``taxes_included`` sets ``prices_include_tax`` and the line ``subtotal``/``total`` are
the ex-tax amounts (price minus its rounded tax) while shipping and fees stay ex-tax, so
``total = sum(line totals) + shipping + fees + total_tax`` always; ``discount_code`` is the
coupon line's code (lowercase, as WC stores codes); ``fees`` are ``fee_lines`` (a tip is just
a fee); ``payments`` with a gift card: WC core has one payment method and no gift cards, so the
card gateway pays and ``meta_data`` notes ``gift_card_amount``; ``presentment_currency``: the
order is stored in the shopper's currency (in_presentment); ``paid_at`` is ``date_paid``;
``refunds`` are made with refunds.create_refund at seeding; a zero total has no payment
method; ``name`` is ignored (``number`` stays the numeric id, as without a plugin).
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


SIX = Decimal("0.000001")


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _rates(site: Site, spec: dict, ship_addr: dict) -> list[dict]:
    """The order's tax rates, one WC tax rate row each (a distinct priority so they stack)."""
    if spec.get("taxes"):
        pairs = [(t["title"], Decimal(t["rate"])) for t in spec["taxes"]]
    else:
        pairs = [(spec.get("tax_title") or "Tax", Decimal(spec.get("tax_rate") or "0"))]
    country, state = ship_addr.get("country_code") or "", ship_addr.get("province_code") or ""
    out = []
    for priority, (label, rate) in enumerate(((t, r) for t, r in pairs if r > 0), 1):
        out.append({"id": site.tax_rate_id((country, state, label, str(rate))), "label": label, "rate": rate,
                    "code": f"{country}-{state}-{label.upper()}-{priority}".replace("--", "-")})
    return out


def _calc(base: Decimal, rates: list[dict], inclusive: bool) -> list[tuple[dict, Decimal, Decimal]]:
    """WC_Tax::calc_tax per rate: (rate, unrounded, rounded); inclusive extracts
    base * rate / (1 + sum of rates), exclusive adds base * rate."""
    everything = sum((r["rate"] for r in rates), ZERO)
    out = []
    for r in rates:
        raw = base * r["rate"] / (1 + everything) if inclusive else base * r["rate"]
        out.append((r, raw.quantize(SIX, rounding=ROUND_HALF_UP), _round(raw)))
    return out


def _line_items(site: Site, spec: dict, rates: list[dict], inclusive: bool, per_rate: dict) -> tuple[list, dict]:
    """Line items; with prices including tax, ``subtotal``/``total`` are the ex-tax amounts
    WC stores (entered price minus the rounded tax), as the REST payload shows them."""
    items, sums = [], {"subtotal": ZERO, "total": ZERO, "subtotal_tax": ZERO, "tax": ZERO}
    for line in spec["lines"]:
        qty = int(line["quantity"])
        gross = (Decimal(line["unit_price"]) * qty).quantize(CENT)
        net = gross - Decimal(line.get("discount") or "0")   # coupons are spread into line totals
        taxable = bool(line.get("taxable", True)) and rates
        sub_taxes = _calc(gross, rates, inclusive) if taxable else []
        tot_taxes = _calc(net, rates, inclusive) if taxable else []
        subtotal_tax = sum((t[2] for t in sub_taxes), ZERO)
        total_tax = sum((t[2] for t in tot_taxes), ZERO)
        subtotal, total = (gross - subtotal_tax, net - total_tax) if inclusive else (gross, net)
        for r, _, rounded in tot_taxes:
            per_rate[r["id"]]["tax"] += rounded
        items.append({
            "id": site.item_id(), "name": line["title"], "product_id": site.product_id(line["sku"]),
            "variation_id": 0, "quantity": qty, "tax_class": "",
            "subtotal": money(subtotal), "subtotal_tax": money(subtotal_tax),
            "total": money(total), "total_tax": money(total_tax),
            "taxes": [{"id": t[0]["id"], "total": raw_tax(t[1]), "subtotal": raw_tax(s[1])}
                      for t, s in zip(tot_taxes, sub_taxes)],
            "meta_data": [], "sku": line.get("sku"),
            # WC: get_item_total($item, false, false) = total / qty, a PHP float.
            "price": float(total / qty) if qty else 0,
            "image": {"id": "", "src": ""}, "parent_name": None,
        })
        sums["subtotal"] += subtotal
        sums["total"] += total
        sums["subtotal_tax"] += subtotal_tax
        sums["tax"] += total_tax
    return items, sums


def _shipping_lines(site: Site, spec: dict, rates: list[dict], per_rate: dict) -> tuple[list, Decimal, Decimal]:
    """Shipping costs are entered excluding tax in WC (flat rate "Cost (excl. tax)"), whatever
    ``prices_include_tax`` says, so their tax is always added on top."""
    lines, total, tax = [], ZERO, ZERO
    if not spec.get("shipping_taxable", True):
        rates = []
    for ship in spec.get("shipping") or []:
        price = Decimal(ship["price"])
        taxes = _calc(price, rates, False) if price else []
        line_tax = sum((t[2] for t in taxes), ZERO)
        for r, _, rounded in taxes:
            per_rate[r["id"]]["shipping"] += rounded
        method_id, instance_id = SHIPPING_METHODS.get(ship.get("code"), (ship.get("code") or "flat_rate", "1"))
        lines.append({
            "id": site.item_id(), "method_title": ship["title"], "method_id": method_id,
            "instance_id": instance_id, "total": money(price), "total_tax": money(line_tax),
            "taxes": [{"id": r["id"], "total": raw_tax(raw)} for r, raw, _ in taxes],
            "meta_data": [],
        })
        total += price
        tax += line_tax
    return lines, total, tax


def _fee_lines(site: Site, spec: dict, rates: list[dict], per_rate: dict) -> tuple[list, Decimal, Decimal]:
    """``fee_lines`` (WC_Order_Item_Fee): fees are added excluding tax, taxed on top when
    ``tax_status`` is ``taxable``. A tip is just another fee in WC core."""
    lines, total, tax = [], ZERO, ZERO
    for fee in spec.get("fees") or []:
        value = Decimal(fee["amount"])
        taxes = _calc(value, rates, False) if fee.get("taxable") else []
        fee_tax = sum((t[2] for t in taxes), ZERO)
        for r, _, rounded in taxes:
            per_rate[r["id"]]["tax"] += rounded
        lines.append({
            "id": site.item_id(), "name": fee["title"], "tax_class": "",
            "tax_status": "taxable" if fee.get("taxable") else "none",
            "total": money(value), "total_tax": money(fee_tax),
            "taxes": [{"id": r["id"], "total": raw_tax(raw), "subtotal": ""} for r, raw, _ in taxes],
            "meta_data": [],
        })
        total += value
        tax += fee_tax
    return lines, total, tax


def in_presentment(spec: dict) -> dict:
    """WC core keeps one currency per order: a multi-currency plugin prices the cart in the
    shopper's currency, so the stored order is in the presentment currency. Each amount is
    converted once (round(amount * rate, 2)) and WC's own arithmetic runs on those."""
    rate = Decimal(spec["exchange_rate"])

    def conv(value) -> Decimal:
        return _round(Decimal(value) * rate)

    out = dict(spec, currency=spec["presentment_currency"])
    out["lines"] = []
    for line in spec["lines"]:
        qty = int(line["quantity"])
        gross, unit = Decimal(line["unit_price"]) * qty, conv(line["unit_price"])
        discount = Decimal(line.get("discount") or "0")
        discount = unit * qty if discount and discount == gross else conv(discount)  # a full discount stays full
        out["lines"].append(dict(line, unit_price=money(unit), discount=money(discount)))
    out["shipping"] = [dict(s, price=money(conv(s["price"]))) for s in spec.get("shipping") or []]
    out["fees"] = [dict(f, amount=money(conv(f["amount"]))) for f in spec.get("fees") or []]
    out["payments"] = [dict(p, amount=p["amount"] if p["amount"] == "rest" else money(conv(p["amount"])))
                       for p in spec.get("payments") or []] or None
    return out


def render_order(site: Site, spec: dict) -> dict:
    """Build the stored order (``_links`` are added per response by the app)."""
    if spec.get("presentment_currency") and spec.get("exchange_rate"):
        spec = in_presentment(spec)
    inclusive = bool(spec.get("taxes_included"))
    order_id = site.post_id(int(spec["number"]) if spec.get("number") else None)
    offset = site.tz_offset
    created, modified = parse_spec_time(spec["created_at"]), parse_spec_time(spec.get("updated_at") or spec["created_at"])
    status = status_for(spec)
    ship_addr = spec.get("shipping_address") or spec.get("billing_address") or {}
    rates = _rates(site, spec, ship_addr)
    per_rate = {r["id"]: {"tax": ZERO, "shipping": ZERO} for r in rates}
    items, sums = _line_items(site, spec, rates, inclusive, per_rate)
    shipping_lines, shipping_total, shipping_tax = _shipping_lines(site, spec, rates, per_rate)
    fee_lines, fee_total, fee_tax = _fee_lines(site, spec, rates, per_rate)
    cart_tax = sums["tax"] + fee_tax
    total_tax = cart_tax + shipping_tax
    total = sums["total"] + shipping_total + fee_total + total_tax
    discount_total = sums["subtotal"] - sums["total"]
    discount_tax = sums["subtotal_tax"] - sums["tax"]
    customer = spec.get("customer") or {}
    paid = spec.get("financial_status") == "paid"
    # A free order needs no payment: checkout skips the gateway (no method, no transaction).
    gateway = (spec.get("gateway") or "") if total > 0 else ""
    payments = spec.get("payments") or []
    main = [p for p in payments if p.get("gateway") != "gift_card"]
    if main:
        gateway = main[0].get("gateway") or gateway
    digest = _digest(site.name, order_id, spec.get("created_at"))
    order_key = "wc_order_" + "".join(c for c in digest if c.isalnum())[:13]
    tax_lines = [{
        "id": site.item_id(), "rate_code": r["code"], "rate_id": r["id"], "label": r["label"], "compound": False,
        "tax_total": money(per_rate[r["id"]]["tax"]), "shipping_tax_total": money(per_rate[r["id"]]["shipping"]),
        "rate_percent": float(r["rate"] * 100), "meta_data": [],
    } for r in rates]
    coupon_lines = []
    if discount_total > 0:
        coupon_lines.append({"id": site.item_id(), "code": (spec.get("discount_code") or "o2c-promo").lower(),
                             "discount": money(discount_total), "discount_tax": money(discount_tax), "meta_data": []})
    transaction_id = ""
    if gateway and gateway not in OFFLINE_GATEWAYS and spec.get("financial_status") in ("paid", "authorized"):
        transaction_id = ("pi_" if gateway == "stripe" else "") + digest[:24]
    meta = [{"id": site.meta_id(), "key": "is_vat_exempt", "value": "no"}]
    for payment in payments:
        # WC core has one payment method per order and no gift cards: the card gateway is the
        # payment method and the gift card part is noted in meta_data.
        if payment.get("gateway") == "gift_card" and payment.get("amount") != "rest":
            meta.append({"id": site.meta_id(), "key": "gift_card_amount",
                         "value": money(min(Decimal(payment["amount"]), total))})
    paid_at = parse_spec_time(spec["paid_at"]) if paid and spec.get("paid_at") else (created if paid else None)
    needs_payment = status in ("pending", "failed") and total > 0
    order = {
        "id": order_id, "parent_id": 0, "status": status, "currency": spec.get("currency", "USD"),
        "version": site.wc_version, "prices_include_tax": inclusive,
        **date_pair("date_created", created, offset), **date_pair("date_modified", modified, offset),
        "discount_total": money(discount_total), "discount_tax": money(discount_tax),
        "shipping_total": money(shipping_total), "shipping_tax": money(shipping_tax),
        "cart_tax": money(cart_tax), "total": money(total), "total_tax": money(total_tax),
        "customer_id": site.customer_id(customer.get("email")), "order_key": order_key,
        "billing": _address(spec.get("billing_address"), email=customer.get("email"), phone_fallback=customer.get("phone")),
        "shipping": _address(ship_addr),
        "payment_method": gateway,
        "payment_method_title": GATEWAY_TITLES.get(gateway, gateway.replace("_", " ").title()) if gateway else "",
        "transaction_id": transaction_id, "customer_ip_address": "", "customer_user_agent": "",
        "created_via": "checkout", "customer_note": spec.get("note") or "",
        **date_pair("date_completed", modified if status == "completed" else None, offset),
        **date_pair("date_paid", paid_at, offset),
        "cart_hash": digest[32:64], "number": str(order_id),
        "meta_data": meta,
        "line_items": items, "tax_lines": tax_lines, "shipping_lines": shipping_lines,
        "fee_lines": fee_lines, "coupon_lines": coupon_lines, "refunds": [],
        # The app prefixes the home URL per response (the port is only known then).
        "payment_url": f"/checkout/order-pay/{order_id}/?pay_for_order=true&key={order_key}",
        "is_editable": status in ("pending", "on-hold", "auto-draft"),
        "needs_payment": needs_payment, "needs_processing": True,
    }
    _apply_refunds(site, spec, order)
    return order


def _apply_refunds(site: Site, spec: dict, order: dict) -> None:
    """The spec's refunds, made with the control API's own code (refunds.create_refund): line
    items pro rata, plus the shipping (with its tax) when the refund gives it back."""
    from sandbox.woocommerce.refunds import create_refund  # it imports this module

    for refund in spec.get("refunds") or []:
        wanted, amount = [], ZERO
        for want in refund["lines"]:
            item, qty = order["line_items"][want["index"]], int(want["quantity"])
            share = Decimal(qty) / Decimal(item["quantity"])
            amount += _round(Decimal(item["total"]) * share) + _round(Decimal(item["total_tax"]) * share)
            wanted.append({"id": item["id"], "quantity": qty})
        if Decimal(refund.get("shipping") or "0") > 0:
            amount += sum((Decimal(s["total"]) + Decimal(s["total_tax"]) for s in order["shipping_lines"]), ZERO)
        create_refund(site, order, {"amount": money(amount), "reason": refund.get("note") or "",
                                    "line_items": wanted, "refunded_payment": True,
                                    "date_created_gmt": refund.get("created_at")})


def serialize(order: dict, home: str, fields: list[str] | None = None) -> dict:
    """The REST order object: the stored order plus the home-URL-dependent
    ``payment_url`` and ``_links`` (also the webhook payload, notes §3)."""
    out = dict(order)
    out["payment_url"] = home + order["payment_url"]
    out["_links"] = links(order, home)
    if fields:
        # rest_filter_response_fields: top-level keys named in _fields.
        wanted = {f.split(".")[0] for f in fields}
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def links(order: dict, home_url: str) -> dict:
    """``_links`` as WC prepare_links builds them (notes §1)."""
    api = f"{home_url}/wp-json/wc/v3"
    out = {"self": [{"href": f"{api}/orders/{order['id']}"}], "collection": [{"href": f"{api}/orders"}]}
    if order.get("customer_id"):
        out["customer"] = [{"href": f"{api}/customers/{order['customer_id']}"}]
    if order.get("parent_id"):
        out["up"] = [{"href": f"{api}/orders/{order['parent_id']}"}]
    return out
