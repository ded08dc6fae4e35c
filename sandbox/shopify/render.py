"""Render a vendor-neutral order spec (sandbox/generator.py) into a Shopify ``Order`` node.

The result is a plain dict with the camelCase keys of the 2026-01 Admin schema,
so graphql-core's default resolver reads it directly; abstract types carry a
``__typename``. Connection fields (``lineItems``, ``shippingLines``,
``discountApplications``) hold plain lists here and are paginated by the
resolvers in schema.py.

Arithmetic is Shopify's (notes §1 "Page query for invoicing"): tax is computed
per line on the discounted line amount and rounded half-up per line, shipping
is taxed on its own line, and the order totals are sums of those rounded
parts, so lines - discounts + shipping + tax == total to the cent.
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
    text = f"{round_cents(value):f}"
    text = text.rstrip("0")
    return text + "0" if text.endswith(".") else text


def money(value: Decimal, currency: str) -> dict:
    return {"amount": amount(value), "currencyCode": currency}


def money_bag(value: Decimal, currency: str) -> dict:
    """``MoneyBag``; the spec has one currency, so shop and presentment are equal."""
    text = amount(value)
    return {"shopMoney": {"amount": text, "currencyCode": currency},
            "presentmentMoney": {"amount": text, "currencyCode": currency}}


def iso(moment: str) -> str:
    """Normalise any ISO-8601 instant to Shopify's ``2019-09-07T15:50:00Z`` form."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _tax_line(title: str, rate: Decimal, tax: Decimal, currency: str) -> dict:
    # TaxLine.rate is a Float in the schema (a ratio, not money).
    return {"title": title, "rate": float(rate), "ratePercentage": float(rate * 100),
            "priceSet": money_bag(tax, currency), "channelLiable": False, "source": "Shopify"}


def _tax(net: Decimal, rate: Decimal, included: bool) -> Decimal:
    if included:  # tax is inside the price: extract it (price * rate / (1 + rate))
        return round_cents(net * rate / (1 + rate))
    return round_cents(net * rate)


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


def render_order(store, shop, spec: dict) -> dict:
    """Build the Order node for ``spec``; ids are drawn from ``store``'s counter."""
    cur = spec.get("currency", "USD")
    rate = Decimal(spec.get("tax_rate") or "0")
    tax_title = spec.get("tax_title") or "Tax"
    included = bool(spec.get("taxes_included"))
    created, updated = iso(spec["created_at"]), iso(spec.get("updated_at") or spec["created_at"])
    fulfilled = spec.get("fulfillment_status") == "fulfilled"
    financial = spec.get("financial_status", "paid")
    order_number = store.next_id()
    customer = _customer(store, shop, spec.get("customer"), created)
    tax_totals: dict[tuple[str, Decimal], Decimal] = {}

    lines, applications = [], []
    subtotal_gross = total_discounts = total_tax = ZERO
    for spec_line in spec.get("lines", []):
        qty, unit = int(spec_line["quantity"]), Decimal(spec_line["unit_price"])
        discount = Decimal(spec_line.get("discount") or "0")
        gross, net = unit * qty, unit * qty - discount
        taxable = bool(spec_line.get("taxable", True))
        tax_lines = []
        if taxable and rate > 0:
            tax = _tax(net, rate, included)
            tax_totals[(tax_title, rate)] = tax_totals.get((tax_title, rate), ZERO) + tax
            total_tax += tax
            tax_lines.append(_tax_line(tax_title, rate, tax, cur))
        allocations = []
        if discount > 0:
            value = money(discount, cur) | {"__typename": "MoneyV2"}
            application = {"__typename": "ManualDiscountApplication", "index": len(applications),
                           "title": "Line discount", "description": None, "allocationMethod": "EACH",
                           "targetSelection": "EXPLICIT", "targetType": "LINE_ITEM", "value": value}
            applications.append(application)
            allocations.append({"allocatedAmountSet": money_bag(discount, cur), "discountApplication": application})
        subtotal_gross += gross
        total_discounts += discount
        number = store.next_id()
        title = spec_line["title"]
        lines.append({
            "__typename": "LineItem", "id": gid("LineItem", number),
            "sku": spec_line.get("sku"), "name": title,
            "title": title.split(" - ", 1)[0], "variantTitle": title.split(" - ", 1)[1] if " - " in title else None,
            "quantity": qty, "currentQuantity": qty,
            "unfulfilledQuantity": 0 if fulfilled else qty, "fulfillableQuantity": 0 if fulfilled else qty,
            "refundableQuantity": qty, "nonFulfillableQuantity": 0,
            "fulfillmentStatus": "fulfilled" if fulfilled else "unfulfilled",
            "taxable": taxable, "requiresShipping": True, "isGiftCard": False, "vendor": None,
            "merchantEditable": True, "restockable": True, "canRestock": True,
            "originalUnitPriceSet": money_bag(unit, cur), "originalTotalSet": money_bag(gross, cur),
            # Shopify's discounted unit price is the approximate (rounded) per-unit share.
            "discountedUnitPriceSet": money_bag(round_cents(net / qty), cur),
            "discountedUnitPriceAfterAllDiscountsSet": money_bag(round_cents(net / qty), cur),
            "discountedTotalSet": money_bag(net, cur), "totalDiscountSet": money_bag(discount, cur),
            "unfulfilledDiscountedTotalSet": money_bag(ZERO if fulfilled else net, cur),
            "unfulfilledOriginalTotalSet": money_bag(ZERO if fulfilled else gross, cur),
            "discountAllocations": allocations, "taxLines": tax_lines,
            "variant": _variant(store, shop, spec_line.get("sku") or f"line-{number}", title, spec_line["unit_price"]),
            "product": None, "customAttributes": [], "duties": [],
        })

    shipping_lines, total_shipping = [], ZERO
    for spec_ship in spec.get("shipping", []):
        price = Decimal(spec_ship["price"])
        tax_lines = []
        if rate > 0 and price > 0:
            tax = _tax(price, rate, included)
            tax_totals[(tax_title, rate)] = tax_totals.get((tax_title, rate), ZERO) + tax
            total_tax += tax
            tax_lines.append(_tax_line(tax_title, rate, tax, cur))
        total_shipping += price
        shipping_lines.append({
            "__typename": "ShippingLine", "id": gid("ShippingLine", store.next_id()),
            "title": spec_ship["title"], "code": spec_ship.get("code"), "source": "shopify",
            "carrierIdentifier": None, "custom": False, "isRemoved": False, "shippingRateHandle": None,
            "originalPriceSet": money_bag(price, cur), "discountedPriceSet": money_bag(price, cur),
            "currentDiscountedPriceSet": money_bag(price, cur), "discountAllocations": [], "taxLines": tax_lines,
        })

    subtotal = subtotal_gross - total_discounts
    total = subtotal + total_shipping + (ZERO if included else total_tax)
    paid = financial == "paid"
    transactions = []
    if financial in ("paid", "authorized"):
        number = store.next_id()
        transactions.append({
            "__typename": "OrderTransaction", "id": gid("OrderTransaction", number),
            "kind": "SALE" if paid else "AUTHORIZATION", "status": "SUCCESS",
            "gateway": spec.get("gateway") or "manual", "test": False, "processedAt": created,
            "createdAt": created, "amountSet": money_bag(total, cur), "parentTransaction": None,
            "errorCode": None, "authorizationCode": f"AUTH{number % 1000000:06d}", "fees": [],
            "manualPaymentGateway": False, "formattedGateway": spec.get("gateway"),
        })
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
    cancelled = bool(spec.get("cancelled"))
    order_tax_lines = [_tax_line(t, r, v, cur) for (t, r), v in tax_totals.items()]
    outstanding = ZERO if paid else total
    quantity = sum(line["quantity"] for line in lines)
    return {
        "__typename": "Order", "id": gid("Order", order_number), "legacyResourceId": str(order_number),
        "name": f"#{spec['number']}", "number": int(spec["number"]) - 1000 if int(spec["number"]) > 1000 else int(spec["number"]),
        "email": (spec.get("customer") or {}).get("email"), "phone": None,
        "createdAt": created, "updatedAt": updated, "processedAt": created,
        "cancelledAt": updated if cancelled else None, "cancelReason": "CUSTOMER" if cancelled else None,
        "closed": cancelled, "closedAt": updated if cancelled else None, "confirmed": True, "test": False,
        "currencyCode": cur, "presentmentCurrencyCode": cur, "taxesIncluded": included, "taxExempt": False,
        "note": spec.get("note"), "tags": [], "sourceName": "web", "poNumber": None,
        "displayFinancialStatus": FINANCIAL_STATUS.get(financial, "PENDING"),
        "displayFulfillmentStatus": FULFILLMENT_STATUS.get(spec.get("fulfillment_status"), "UNFULFILLED"),
        "fullyPaid": paid, "unpaid": not paid and financial != "authorized", "capturable": financial == "authorized",
        "paymentGatewayNames": [spec.get("gateway")] if spec.get("gateway") else [],
        "customer": customer,
        "billingAddress": _address(store, spec.get("billing_address")),
        "shippingAddress": _address(store, spec.get("shipping_address")),
        "subtotalLineItemsQuantity": quantity, "currentSubtotalLineItemsQuantity": quantity,
        "subtotalPriceSet": money_bag(subtotal, cur), "currentSubtotalPriceSet": money_bag(subtotal, cur),
        "totalDiscountsSet": money_bag(total_discounts, cur), "currentTotalDiscountsSet": money_bag(total_discounts, cur),
        "cartDiscountAmountSet": None,
        "totalShippingPriceSet": money_bag(total_shipping, cur), "currentShippingPriceSet": money_bag(total_shipping, cur),
        "totalTaxSet": money_bag(total_tax, cur), "currentTotalTaxSet": money_bag(total_tax, cur),
        "totalPriceSet": money_bag(total, cur), "currentTotalPriceSet": money_bag(total, cur),
        "originalTotalPriceSet": money_bag(total, cur),
        "totalOutstandingSet": money_bag(outstanding, cur),
        "totalReceivedSet": money_bag(total if paid else ZERO, cur),
        "netPaymentSet": money_bag(total if paid else ZERO, cur),
        "totalCapturableSet": money_bag(total if financial == "authorized" else ZERO, cur),
        "totalRefundedSet": money_bag(ZERO, cur), "totalRefundedShippingSet": money_bag(ZERO, cur),
        "taxLines": order_tax_lines, "currentTaxLines": order_tax_lines,
        "lineItems": lines, "shippingLines": shipping_lines, "discountApplications": applications,
        "discountCodes": [], "transactions": transactions, "refunds": [], "fulfillments": fulfillments,
        "requiresShipping": True, "edited": False, "customAttributes": [],
    }
