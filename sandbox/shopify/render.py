"""Render a vendor-neutral order spec (sandbox/generator.py) into a Shopify ``Order`` node.

The result is a plain dict with the camelCase keys of the 2026-01 Admin schema,
so graphql-core's default resolver reads it directly; abstract types carry a
``__typename``. Connection fields (``lineItems``, ``shippingLines``,
``discountApplications``) hold plain lists here and are paginated by the
resolvers in schema.py.

Arithmetic is Shopify's (notes §1 "Page query for invoicing"): tax is computed
per line on the discounted line amount and rounded half-up per line, shipping
is taxed on its own line, and the order totals are sums of those rounded
parts, so lines - discounts + shipping + tax (+ tip) == total to the cent.

The optional "variety" keys of the spec (generator docstring) are rendered as
Shopify shows them; the per-case choices are in render_variety.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0")

FINANCIAL_STATUS = {"paid": "PAID", "pending": "PENDING", "authorized": "AUTHORIZED"}
FULFILLMENT_STATUS = {"fulfilled": "FULFILLED", "unfulfilled": "UNFULFILLED"}


def round_cents(value: Decimal) -> Decimal:
    """Half-up to the cent, as Shopify rounds each tax line."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def amount(value: Decimal) -> str:
    """Shopify's ``Decimal`` scalar text: ``"2000.0"``, ``"29.99"``, ``"5.5"``.

    Shopify prints the shortest decimal with at least one fraction digit
    (fixture graphql/orders_details.example.json has ``"amount": "2000.0"``);
    clients must parse it as a Decimal and not assume two places.
    """
    text = _AMOUNTS.get(value) if value else None  # a zero's sign shows ("-0.0"): not cached
    if text is None:
        text = f"{round_cents(value):f}".rstrip("0")
        if text.endswith("."):
            text += "0"
        if value and len(_AMOUNTS) < 100_000:
            _AMOUNTS[value] = text
    return text


# Equal Decimals print equal once rounded to the cent, so the text of an amount is cached: an order
# renders hundreds of amounts, mostly the same few prices (seeding 100,000 orders spends its time here).
_AMOUNTS: dict[Decimal, str] = {}


def money(value: Decimal, currency: str) -> dict:
    return {"amount": amount(value), "currencyCode": currency}


def money_bag(value: Decimal, currency: str) -> dict:
    """``MoneyBag`` of a single-currency order: shop and presentment money are equal."""
    text = amount(value)
    return {"shopMoney": {"amount": text, "currencyCode": currency},
            "presentmentMoney": {"amount": text, "currencyCode": currency}}


class Pair(tuple):
    """An amount in the shop currency and in the presentment currency (what the buyer saw)."""

    def __new__(cls, shop: Decimal, pres: Decimal):
        return tuple.__new__(cls, (shop, pres))

    shop = property(lambda self: self[0])
    pres = property(lambda self: self[1])

    def __add__(self, other):
        return Pair(self[0] + other[0], self[1] + other[1])

    def __radd__(self, other):  # sum() starts from 0
        return self if other == 0 else Pair(self[0] + other[0], self[1] + other[1])

    def __sub__(self, other):
        return Pair(self[0] - other[0], self[1] - other[1])

    def __mul__(self, n: int):
        return Pair(self[0] * n, self[1] * n)


class Money:
    """One order's currencies: ``conv`` turns a shop amount into a Pair (presentment =
    round(shop * rate, 2), each component on its own so both sides are sums of rounded
    parts and balance), ``bag`` a Pair into a ``MoneyBag``."""

    def __init__(self, currency: str, presentment: str | None = None, rate: str | None = None):
        self.cur, self.pcur = currency, presentment or currency
        self.rate = Decimal(rate) if presentment and rate else None

    def conv(self, value: Decimal) -> Pair:
        return Pair(value, round_cents(value * self.rate) if self.rate is not None else value)

    def bag(self, pair: Pair) -> dict:
        """The ``MoneyBag`` of ``pair``: one shared dict per distinct amount and currencies (see _BAGS)."""
        # Equal Decimals are one key, but a zero's sign shows in its text ("-0.0"): zeros key by their text.
        key = (pair[0], pair[1], self.cur, self.pcur) if pair[0] and pair[1] else \
            (str(pair[0]), str(pair[1]), self.cur, self.pcur)
        bag = _BAGS.get(key)
        if bag is None:
            bag = {"shopMoney": {"amount": amount(pair[0]), "currencyCode": self.cur},
                   "presentmentMoney": {"amount": amount(pair[1]), "currencyCode": self.pcur}}
            if len(_BAGS) < 200_000:
                _BAGS[key] = bag
        return bag


# An order holds about a hundred MoneyBags, mostly of the same few amounts; building each anew was over
# a third of seeding 100,000 orders (the dicts all stay alive, so each one was fresh memory). Equal bags
# are one dict, shared by every node that shows that amount: a bag is never changed in place (an action
# that changes an amount puts a new bag in the node), which tests/sandbox/test_shopify_emulator.py checks.
_BAGS: dict[tuple, dict] = {}


P0 = Pair(ZERO, ZERO)


def iso(moment: str) -> str:
    """Normalise any ISO-8601 instant to Shopify's ``2019-09-07T15:50:00Z`` form."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def line_discount(m: Money, line: dict) -> Pair:
    """A line's discount in both currencies: each converted on its own, a full discount stays full."""
    qty, discount = int(line["quantity"]), Decimal(line.get("discount") or "0")
    if discount and discount == Decimal(line["unit_price"]) * qty:
        return m.conv(Decimal(line["unit_price"])) * qty
    return m.conv(discount)


def _tax_line(title: str, rate: Decimal, tax: Pair, m: Money) -> dict:
    # TaxLine.rate is a Float in the schema (a ratio, not money).
    return {"title": title, "rate": float(rate), "ratePercentage": float(rate * 100),
            "priceSet": m.bag(tax), "channelLiable": False, "source": "Shopify"}


def _tax(net: Decimal, rate: Decimal, included: bool, all_rates: Decimal) -> Decimal:
    if included:  # tax is inside the price: price * rate / (1 + sum of the rates), per rate
        return round_cents(net * rate / (1 + all_rates))
    return round_cents(net * rate)


def _taxes(spec: dict) -> list[tuple[str, Decimal]]:
    """The spec's tax rates: ``taxes`` (several) or ``tax_rate``/``tax_title`` (one)."""
    if spec.get("taxes"):
        return [(t["title"], Decimal(t["rate"])) for t in spec["taxes"] if Decimal(t["rate"]) > 0]
    rate = Decimal(spec.get("tax_rate") or "0")
    return [(spec.get("tax_title") or "Tax", rate)] if rate > 0 else []


def _apply_taxes(base: Decimal, rates, included: bool, m: Money, totals: dict) -> tuple[list, Pair]:
    """Tax lines of one line/shipping line; adds each to ``totals`` (per title and rate)."""
    all_rates = sum((r for _, r in rates), ZERO)
    lines, sum_tax = [], P0
    for title, rate in rates:
        tax = m.conv(_tax(base, rate, included, all_rates))
        totals[(title, rate)] = totals.get((title, rate), P0) + tax
        sum_tax += tax
        lines.append(_tax_line(title, rate, tax, m))
    return lines, sum_tax


def _address(store, spec: dict | None) -> dict | None:
    if not spec:
        return None
    parts = [spec.get("address1"), spec.get("address2"), spec.get("city"),
             " ".join(p for p in (spec.get("province_code"), spec.get("zip")) if p), spec.get("country")]
    name = " ".join(p for p in (spec.get("first_name"), spec.get("last_name")) if p)
    return {
        "__typename": "MailingAddress",
        "id": gid("MailingAddress", store.next_id()) + "?model_name=Address",
        "firstName": spec.get("first_name"), "lastName": spec.get("last_name"), "name": name,
        "company": spec.get("company"), "address1": spec.get("address1"), "address2": spec.get("address2"),
        "city": spec.get("city"), "province": spec.get("province"), "provinceCode": spec.get("province_code"),
        "country": spec.get("country"), "countryCodeV2": spec.get("country_code"),
        "zip": spec.get("zip"), "phone": spec.get("phone"),
        "formatted": [p for p in parts if p], "formattedArea": ", ".join(
            p for p in (spec.get("city"), spec.get("province_code"), spec.get("country")) if p),
        "coordinatesValidated": False, "latitude": None, "longitude": None, "timeZone": None,
        "validationResultSummary": None,
    }


def _customer(store, shop, spec: dict, created_at: str) -> dict | None:
    """One Customer per shopper (email, else name+phone), shared by their orders."""
    if not spec:
        return None
    key = (spec.get("email") or "").lower() or f"{spec.get('first_name')}|{spec.get('last_name')}|{spec.get('phone')}"
    customer = shop.customers.get(key)
    if customer is None:
        number = store.next_id()
        email, phone = spec.get("email"), spec.get("phone")
        customer = {
            "__typename": "Customer", "id": gid("Customer", number), "legacyResourceId": str(number),
            "firstName": spec.get("first_name"), "lastName": spec.get("last_name"),
            "displayName": " ".join(p for p in (spec.get("first_name"), spec.get("last_name")) if p) or (email or ""),
            # Deprecated but still served; the notes say use defaultEmailAddress/defaultPhoneNumber.
            "email": email, "phone": phone,
            "defaultEmailAddress": {"emailAddress": email, "marketingState": "NOT_SUBSCRIBED",
                                    "validFormat": True} if email else None,
            "defaultPhoneNumber": {"phoneNumber": phone, "marketingState": "NOT_SUBSCRIBED"} if phone else None,
            "createdAt": created_at, "updatedAt": created_at, "note": None, "tags": [],
            "state": "DISABLED", "taxExempt": False, "verifiedEmail": bool(email), "numberOfOrders": "0",
        }
        shop.customers[key] = customer
    customer["numberOfOrders"] = str(int(customer["numberOfOrders"]) + 1)
    return customer


def _variant(store, shop, sku: str, title: str, price: str) -> dict:
    variant = shop.variants.get(sku)
    if variant is None:
        number = store.next_id()
        variant = {"__typename": "ProductVariant", "id": gid("ProductVariant", number),
                   "legacyResourceId": str(number), "sku": sku,
                   "title": title.split(" - ", 1)[1] if " - " in title else "Default Title",
                   "displayName": title, "price": amount(Decimal(price)), "taxable": True}
        shop.variants[sku] = variant
    return variant


def _line_item(store, shop, m: Money, fulfilled: bool, *, title: str, sku, qty: int, unit: Pair, net: Pair,
               taxable: bool, tax_lines: list, allocations: list, variant: bool = True) -> dict:
    gross = unit * qty
    discount = gross - net
    number = store.next_id()
    unit_net = Pair(round_cents(net[0] / qty), round_cents(net[1] / qty))
    return {
        "__typename": "LineItem", "id": gid("LineItem", number),
        "sku": sku, "name": title,
        "title": title.split(" - ", 1)[0], "variantTitle": title.split(" - ", 1)[1] if " - " in title else None,
        "quantity": qty, "currentQuantity": qty,
        "unfulfilledQuantity": 0 if fulfilled else qty, "fulfillableQuantity": 0 if fulfilled else qty,
        "refundableQuantity": qty, "nonFulfillableQuantity": 0,
        "fulfillmentStatus": "fulfilled" if fulfilled else "unfulfilled",
        "taxable": taxable, "requiresShipping": variant, "isGiftCard": False, "vendor": None,
        "merchantEditable": True, "restockable": variant, "canRestock": variant,
        "originalUnitPriceSet": m.bag(unit), "originalTotalSet": m.bag(gross),
        # Shopify's discounted unit price is the approximate (rounded) per-unit share.
        "discountedUnitPriceSet": m.bag(unit_net), "discountedUnitPriceAfterAllDiscountsSet": m.bag(unit_net),
        "discountedTotalSet": m.bag(net), "totalDiscountSet": m.bag(discount),
        "unfulfilledDiscountedTotalSet": m.bag(P0 if fulfilled else net),
        "unfulfilledOriginalTotalSet": m.bag(P0 if fulfilled else gross),
        "discountAllocations": allocations, "taxLines": tax_lines,
        # A custom line item (a fee rendered as a line) has no variant.
        "variant": _variant(store, shop, sku or f"line-{number}", title, amount(unit[0])) if variant else None,
        "product": None, "customAttributes": [], "duties": [],
    }


def render_order(store, shop, spec: dict) -> dict:
    """Build the Order node for ``spec``; ids are drawn from ``store``'s counter."""
    from sandbox.shopify import render_variety as variety  # it imports this module

    cur = spec.get("currency", "USD")
    m = Money(cur, spec.get("presentment_currency"), spec.get("exchange_rate"))
    rates = _taxes(spec)
    included = bool(spec.get("taxes_included"))
    created, updated = iso(spec["created_at"]), iso(spec.get("updated_at") or spec["created_at"])
    fulfilled = spec.get("fulfillment_status") == "fulfilled"
    financial = spec.get("financial_status", "paid")
    order_number = store.next_id()
    customer = None if spec.get("guest") else _customer(store, shop, spec.get("customer"), created)
    tax_totals: dict[tuple[str, Decimal], Pair] = {}
    code = spec.get("discount_code")

    lines, applications = [], []
    code_application = variety.code_application(spec, m) if code else None
    if code_application:
        applications.append(code_application)
    subtotal_gross = total_discounts = total_tax = P0
    for spec_line in spec.get("lines", []):
        qty = int(spec_line["quantity"])
        unit = m.conv(Decimal(spec_line["unit_price"]))
        discount = Decimal(spec_line.get("discount") or "0")
        net = unit * qty - line_discount(m, spec_line)
        taxable = bool(spec_line.get("taxable", True))
        tax_lines, tax = _apply_taxes(net[0], rates if taxable else [], included, m, tax_totals)
        total_tax += tax
        allocations = []
        if discount > 0:
            application = code_application or variety.manual_application(len(applications), discount, m)
            if application is not code_application:
                applications.append(application)
            allocations.append({"allocatedAmountSet": m.bag(unit * qty - net), "discountApplication": application})
        subtotal_gross += unit * qty
        total_discounts += unit * qty - net
        lines.append(_line_item(store, shop, m, fulfilled, title=spec_line["title"], sku=spec_line.get("sku"),
                                qty=qty, unit=unit, net=net, taxable=taxable, tax_lines=tax_lines,
                                allocations=allocations))
    # Fees: Shopify has no fee lines. A tip is the order's tip; any other fee is a custom line item.
    tip = P0
    for fee in spec.get("fees") or []:
        value = m.conv(Decimal(fee["amount"]))
        if variety.is_tip(fee):
            tip += value
            continue
        taxable = bool(fee.get("taxable"))
        tax_lines, tax = _apply_taxes(value[0], rates if taxable else [], included, m, tax_totals)
        total_tax += tax
        subtotal_gross += value
        lines.append(_line_item(store, shop, m, fulfilled, title=fee["title"], sku=None, qty=1, unit=value,
                                net=value, taxable=taxable, tax_lines=tax_lines, allocations=[], variant=False))

    shipping_lines, total_shipping = [], P0
    ship_rates = rates if spec.get("shipping_taxable", True) else []
    for spec_ship in spec.get("shipping", []):
        price = m.conv(Decimal(spec_ship["price"]))
        tax_lines, tax = _apply_taxes(price[0], ship_rates if price[0] > 0 else [], included, m, tax_totals)
        total_tax += tax
        total_shipping += price
        shipping_lines.append({
            "__typename": "ShippingLine", "id": gid("ShippingLine", store.next_id()),
            "title": spec_ship["title"], "code": spec_ship.get("code"), "source": "shopify",
            "carrierIdentifier": None, "custom": False, "isRemoved": False, "shippingRateHandle": None,
            "originalPriceSet": m.bag(price), "discountedPriceSet": m.bag(price),
            "currentDiscountedPriceSet": m.bag(price), "discountAllocations": [], "taxLines": tax_lines,
        })

    subtotal = subtotal_gross - total_discounts
    total = subtotal + total_shipping + (P0 if included else total_tax) + tip
    paid = financial == "paid"
    transactions = variety.transactions(store, spec, m, total, created)
    fulfillments = []
    if fulfilled:
        number = store.next_id()
        fulfillments.append({
            "__typename": "Fulfillment", "id": gid("Fulfillment", number), "legacyResourceId": str(number),
            "name": f"#{spec['number']}-F1", "status": "SUCCESS", "displayStatus": "FULFILLED",
            "createdAt": updated, "updatedAt": updated, "deliveredAt": None, "requiresShipping": True,
            "totalQuantity": sum(line["quantity"] for line in lines),
            "trackingInfo": [{"company": "UPS", "number": f"1Z{number % 10**12:012d}",
                              "url": f"https://www.ups.com/track?tracknum=1Z{number % 10**12:012d}"}],
        })
    order_tax_lines = [_tax_line(t, r, v, m) for (t, r), v in tax_totals.items()]
    outstanding = P0 if paid else total
    quantity = sum(line["quantity"] for line in lines)
    bag = m.bag
    order = {
        "__typename": "Order", "id": gid("Order", order_number), "legacyResourceId": str(order_number),
        "name": spec.get("name") or f"#{spec['number']}",
        "number": int(spec["number"]) - 1000 if int(spec["number"]) > 1000 else int(spec["number"]),
        "email": None if spec.get("guest") else (spec.get("customer") or {}).get("email"), "phone": None,
        "createdAt": created, "updatedAt": updated, "processedAt": created,
        "cancelledAt": None, "cancelReason": None, "closed": False, "closedAt": None, "confirmed": True, "test": False,
        "currencyCode": m.cur, "presentmentCurrencyCode": m.pcur, "taxesIncluded": included, "taxExempt": False,
        "note": spec.get("note"), "tags": [], "sourceName": "web", "poNumber": None,
        "displayFinancialStatus": FINANCIAL_STATUS.get(financial, "PENDING"),
        "displayFulfillmentStatus": FULFILLMENT_STATUS.get(spec.get("fulfillment_status"), "UNFULFILLED"),
        "fullyPaid": paid, "unpaid": not paid and financial != "authorized", "capturable": financial == "authorized",
        "paymentGatewayNames": variety.gateway_names(spec, transactions),
        "customer": customer,
        "billingAddress": _address(store, spec.get("billing_address")),
        "shippingAddress": _address(store, spec.get("shipping_address")),
        "subtotalLineItemsQuantity": quantity, "currentSubtotalLineItemsQuantity": quantity,
        "subtotalPriceSet": bag(subtotal), "currentSubtotalPriceSet": bag(subtotal),
        "totalDiscountsSet": bag(total_discounts), "currentTotalDiscountsSet": bag(total_discounts),
        "cartDiscountAmountSet": bag(total_discounts) if code else None,
        "currentCartDiscountAmountSet": bag(total_discounts if code else P0),
        "discountCode": code, "discountCodes": [code] if code else [],
        "totalShippingPriceSet": bag(total_shipping), "currentShippingPriceSet": bag(total_shipping),
        "totalTaxSet": bag(total_tax), "currentTotalTaxSet": bag(total_tax),
        "totalTipReceivedSet": bag(tip),
        "totalPriceSet": bag(total), "currentTotalPriceSet": bag(total), "originalTotalPriceSet": bag(total),
        "totalOutstandingSet": bag(outstanding),
        "totalReceivedSet": bag(total if paid else P0), "netPaymentSet": bag(total if paid else P0),
        "totalCapturableSet": bag(total if financial == "authorized" else P0),
        "totalRefundedSet": bag(P0), "totalRefundedShippingSet": bag(P0),
        "taxLines": order_tax_lines, "currentTaxLines": order_tax_lines,
        "lineItems": lines, "shippingLines": shipping_lines, "discountApplications": applications,
        "transactions": transactions, "refunds": [], "fulfillments": fulfillments,
        "requiresShipping": True, "edited": False, "customAttributes": [],
    }
    variety.after_sale(store, shop, spec, order)
    return order
