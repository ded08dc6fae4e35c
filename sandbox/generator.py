"""Seeded generator of realistic orders, in a vendor-neutral "order spec" form.

The spec is what a shopper did (who, what, how much, paid or not); each
emulator renders it into its own vendor's wire shape and does its own
arithmetic, the way that vendor does it. The product never sees a spec: it
only sees what the emulators serve.

An order spec is a plain JSON-able dict::

    {
      "number": 1001,                       # store-visible order number
      "created_at": "2026-11-01T10:00:00Z", # UTC, second resolution
      "updated_at": "2026-11-01T10:05:00Z",
      "currency": "USD",
      "customer": {"first_name", "last_name", "email" (str or None), "phone" (str or None)},
      "billing_address":  {"first_name", "last_name", "company", "address1", "address2",
                           "city", "province", "province_code", "country", "country_code",
                           "zip", "phone"},
      "shipping_address": {... same keys ...},
      "lines": [{"sku", "title", "quantity" (int), "unit_price" ("19.99"),
                 "discount" ("2.00", whole-line amount off, >= 0), "taxable" (bool)}],
      "shipping": [{"title", "code", "price" ("5.00")}],
      "tax_rate": "0.0825",                 # applied per line and to shipping, rounded per line
      "tax_title": "State tax",
      "taxes_included": false,
      "financial_status": "paid" | "pending" | "authorized",
      "gateway": "shopify_payments" | "stripe" | "bacs" | ...,
      "fulfillment_status": "fulfilled" | "unfulfilled",
      "cancelled": false,
      "note": str or None,
    }

Money values are decimal strings with two places; nothing here is a float.

With ``variety=True`` (the default; issue 3's list of cases) a spec may also carry the
keys below; both store emulators render each the way their vendor would
(``variety=False`` gives plain orders only):

    "name": "#LONGSTOREPREFIX-1001-EU",  # explicit order name (some over 21 characters)
    "taxes": [{"title", "rate"}, ...],     # several tax lines; replaces tax_rate/tax_title
    "taxes_included": true,                # prices already include the tax
    "shipping_taxable": false,             # shipping is not taxed (default true)
    "discount_code": "WELCOME10",          # the order-level code whose amount is spread over
                                           # the lines' "discount" values (as both vendors allocate)
    "fees": [{"title", "amount", "taxable"}],  # WooCommerce fee lines / Shopify tips
    "presentment_currency": "EUR", "exchange_rate": "0.9150",  # shopper paid in another currency:
                                           # presentment amount = round(shop amount * rate, 2)
    "payments": [{"gateway", "amount"}],   # split tender, e.g. a gift card then a card
    "paid_at": "2026-11-03T09:00:00Z",     # paid after it was created ("pending" until then)
    "refunds": [{"created_at", "lines": [{"index", "quantity"}], "shipping": "5.00",
                 "note"}],                 # partial or full refunds of lines and shipping
    "cancelled_at": "...",                 # with "cancelled": true
    "guest": true,                         # checkout without an account: no customer record
    "case": "fees",                        # which of CASES this spec illustrates (for tests)
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterator

FIRST_NAMES = [
    "Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Edsger", "Barbara",
    "Dennis", "Frances", "Ken", "Radia", "Tim", "Hedy", "John", "Mary", "Sophie",
    "Zoë", "José", "Ingrid", "Mateo", "Aiko", "Olu", "Priya", "Chen",
]
LAST_NAMES = [
    "Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Dijkstra",
    "Liskov", "Ritchie", "Allen", "Thompson", "Perlman", "Berners-Lee", "Lamarr",
    "O'Neil", "Müller", "García", "Nakamura", "Adeyemi", "Sharma", "Wei",
]
CITIES = [
    ("Austin", "Texas", "TX", "78701"),
    ("Portland", "Oregon", "OR", "97201"),
    ("Brooklyn", "New York", "NY", "11201"),
    ("Denver", "Colorado", "CO", "80202"),
    ("Madison", "Wisconsin", "WI", "53703"),
    ("Raleigh", "North Carolina", "NC", "27601"),
]
STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lake Blvd"]
PRODUCTS = [
    ("TSHIRT-BLK-M", "Organic T-shirt - Black / M", "24.00"),
    ("TSHIRT-WHT-L", "Organic T-shirt - White / L", "24.00"),
    ("MUG-12OZ", "Stoneware mug 12oz", "16.50"),
    ("CAP-NAVY", "Cotton cap - Navy", "19.99"),
    ("TOTE-CANVAS", "Canvas tote bag", "12.95"),
    ("SOCKS-3PK", "Merino socks (3 pack)", "29.00"),
    ("POSTER-A2", "Risograph poster A2", "35.00"),
    ("STICKER-SET", "Sticker set", "4.99"),
    ("HOODIE-GRY-S", "Heavyweight hoodie - Grey / S", "64.00"),
    ("BOTTLE-750", "Insulated bottle 750ml", "31.49"),
    ("NOTEBOOK-A5", "Dot-grid notebook A5", "9.75"),
    ("GIFTBOX", "Gift wrapping", "3.33"),
]
SHIPPING = [("Standard", "standard", "5.00"), ("Express", "express", "12.50"), ("Free shipping", "free", "0.00")]
TAX_RATES = [("State tax", "0.0825"), ("State tax", "0.0725"), ("Sales tax", "0.06"), ("No tax", "0")]
CENT = Decimal("0.01")


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _address(rng: random.Random, first: str, last: str, phone: str | None) -> dict:
    city, province, code, zip_code = rng.choice(CITIES)
    return {
        "first_name": first,
        "last_name": last,
        "company": rng.choice([None, None, None, "Acme Studio", "Northwind LLC"]),
        "address1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
        "address2": rng.choice([None, None, "Apt 2", "Suite 100"]),
        "city": city,
        "province": province,
        "province_code": code,
        "country": "United States",
        "country_code": "US",
        "zip": zip_code,
        "phone": phone,
    }


def generate_customers(rng: random.Random, count: int) -> list[dict]:
    """A pool of shoppers; some buy more than once, a few have no email."""
    customers = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        slug = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
        slug = slug.encode("ascii", "ignore").decode() or "shopper"
        email = f"{slug}.{i}@example.com" if rng.random() > 0.03 else None
        phone = f"+1555{rng.randint(1000000, 9999999)}" if rng.random() > 0.3 else None
        customers.append({"first_name": first, "last_name": last, "email": email, "phone": phone})
    return customers


def generate_orders(
    seed: int,
    count: int,
    *,
    start: datetime | None = None,
    first_number: int = 1001,
    currency: str = "USD",
    gateways: tuple[str, ...] = ("shopify_payments",),
    variety: bool = True,
) -> list[dict]:
    """Return ``count`` order specs, reproducible for a given ``seed``.

    Orders are spread over the days after ``start`` (default: 30 days ago),
    in creation order; about 1 in 4 customers orders more than once.
    """
    return list(iter_orders(seed, count, start=start, first_number=first_number, currency=currency,
                            gateways=gateways, variety=variety))


def iter_orders(
    seed: int,
    count: int,
    *,
    start: datetime | None = None,
    first_number: int = 1001,
    currency: str = "USD",
    gateways: tuple[str, ...] = ("shopify_payments",),
    variety: bool = True,
) -> Iterator[dict]:
    """:func:`generate_orders` one spec at a time: the same specs, without holding them all
    (seeding 100,000 orders for a benchmark)."""
    rng = random.Random(seed)
    start = start or (datetime.now(timezone.utc) - timedelta(days=30)).replace(microsecond=0)
    customers = generate_customers(rng, max(1, int(count * 0.75)))
    moment = start
    for n in range(count):
        moment = moment + timedelta(seconds=rng.randint(60, 3600 * 6))
        customer = rng.choice(customers)
        billing = _address(rng, customer["first_name"], customer["last_name"], customer["phone"])
        shipping_address = billing if rng.random() > 0.2 else _address(
            rng, customer["first_name"], customer["last_name"], customer["phone"]
        )
        lines = []
        for sku, title, price in rng.sample(PRODUCTS, rng.randint(1, 4)):
            quantity = rng.choice([1, 1, 1, 2, 2, 3, 5])
            gross = Decimal(price) * quantity
            discount = Decimal("0")
            if rng.random() < 0.2:
                discount = (gross * Decimal(rng.choice(["0.10", "0.15", "0.20"]))).quantize(CENT)
            lines.append({
                "sku": sku,
                "title": title,
                "quantity": quantity,
                "unit_price": price,
                "discount": _money(discount),
                "taxable": sku != "GIFTBOX",
            })
        ship_title, ship_code, ship_price = rng.choice(SHIPPING)
        tax_title, tax_rate = rng.choice(TAX_RATES)
        roll = rng.random()
        financial_status = "paid" if roll < 0.8 else ("pending" if roll < 0.93 else "authorized")
        updated = moment + timedelta(seconds=rng.randint(0, 900))
        spec = {
            "number": first_number + n,
            "created_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "currency": currency,
            "customer": dict(customer),
            "billing_address": billing,
            "shipping_address": shipping_address,
            "lines": lines,
            "shipping": [{"title": ship_title, "code": ship_code, "price": ship_price}],
            "tax_rate": tax_rate,
            "tax_title": tax_title,
            "taxes_included": False,
            "financial_status": financial_status,
            "gateway": rng.choice(gateways),
            "fulfillment_status": "fulfilled" if rng.random() < 0.6 else "unfulfilled",
            "cancelled": False,
            "note": rng.choice([None, None, None, "Please gift wrap", "Leave at the door"]),
        }
        if variety:
            _add_variety(rng, spec, n)
        yield spec


# One generator case per issue-3 bullet; the n-th order gets case n % len(CASES) so that a
# small seeded batch already contains every case, and a random extra for the rest.
CASES = ("plain", "tax_inclusive", "several_taxes", "order_discount", "fees", "gift_card",
         "multi_currency", "partial_refund", "full_refund", "cancelled", "paid_later", "guest",
         "unicode", "long_name", "zero_total", "many_lines")


def _add_variety(rng: random.Random, spec: dict, n: int) -> None:
    case = CASES[n % len(CASES)]
    created = datetime.fromisoformat(spec["created_at"].replace("Z", "+00:00"))
    later = (created + timedelta(hours=rng.randint(2, 72))).strftime("%Y-%m-%dT%H:%M:%SZ")
    spec["case"] = case
    if case == "tax_inclusive":
        spec["taxes_included"] = True
        spec["taxes"] = [{"title": "VAT", "rate": "0.20"}]
    elif case == "several_taxes":
        spec["taxes"] = [{"title": "State tax", "rate": "0.0625"}, {"title": "County tax", "rate": "0.0125"},
                         {"title": "City tax", "rate": "0.005"}]
        spec["shipping_taxable"] = rng.random() < 0.5
    elif case == "order_discount":
        spec["discount_code"] = "WELCOME10"
        for line in spec["lines"]:
            gross = Decimal(line["unit_price"]) * line["quantity"]
            line["discount"] = _money(gross * Decimal("0.10"))
    elif case == "fees":
        spec["fees"] = [{"title": "Handling", "amount": "2.50", "taxable": True},
                        {"title": "Tip", "amount": rng.choice(["1.00", "3.00", "5.00"]), "taxable": False}]
    elif case == "gift_card":
        spec["financial_status"] = "paid"
        spec["payments"] = [{"gateway": "gift_card", "amount": "10.00"}, {"gateway": spec["gateway"], "amount": "rest"}]
    elif case == "multi_currency":
        spec["presentment_currency"] = "EUR"
        spec["exchange_rate"] = "0.9150"
        spec["financial_status"] = "paid"
    elif case in ("partial_refund", "full_refund"):
        spec["financial_status"] = "paid"
        if case == "partial_refund":
            if len(spec["lines"]) == 1 and spec["lines"][0]["quantity"] == 1:
                spec["lines"][0]["quantity"] = 2  # so that one unit back leaves something paid
            spec["refunds"] = [{"created_at": later, "lines": [{"index": 0, "quantity": 1}], "shipping": "0.00",
                                "note": "Damaged in transit"}]
        else:
            spec["refunds"] = [{"created_at": later,
                                "lines": [{"index": i, "quantity": l["quantity"]} for i, l in enumerate(spec["lines"])],
                                "shipping": spec["shipping"][0]["price"], "note": "Customer changed their mind"}]
        spec["updated_at"] = later
    elif case == "cancelled":
        spec["financial_status"] = "pending"
        spec["cancelled"] = True
        spec["cancelled_at"] = later
        spec["updated_at"] = later
    elif case == "paid_later":
        spec["financial_status"] = "paid"
        spec["paid_at"] = later
        spec["updated_at"] = later
    elif case == "guest":
        spec["guest"] = True
        spec["customer"] = {**spec["customer"], "email": None}
    elif case == "unicode":
        spec["customer"] = {**spec["customer"], "first_name": "Zoë", "last_name": "Ærøskøbing-Núñez",
                            "email": f"zoe.aeroskobing.{n}@example.com"}  # a new shopper, not a renamed one
        spec["billing_address"] = {**spec["billing_address"], "first_name": "Zoë", "last_name": "Ærøskøbing-Núñez",
                                   "city": "Zürich", "address1": "Bahnhofstraße 1"}
    elif case == "long_name":
        spec["name"] = f"#WHOLESALE-EUROPE-{spec['number']}-B2B"  # over QuickBooks' 21-character DocNumber
    elif case == "zero_total":
        spec["lines"] = spec["lines"][:1]
        line = spec["lines"][0]
        line["discount"] = _money(Decimal(line["unit_price"]) * line["quantity"])
        spec["shipping"] = [{"title": "Free shipping", "code": "free", "price": "0.00"}]
        spec["discount_code"] = "FREEBIE100"
        spec["financial_status"] = "paid"
    elif case == "many_lines":
        spec["lines"] = [{"sku": f"BULK-{i:03d}", "title": f"Bulk part {i:03d}", "quantity": 1 + i % 3,
                          "unit_price": _money(Decimal("1.25") + Decimal(i % 7)), "discount": "0.00",
                          "taxable": True} for i in range(120)]
