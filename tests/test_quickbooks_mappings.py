"""Pure QuickBooks mappings: lines and totals, taxes (US and non-US), DocNumber, currency, payments, refunds."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connector.errors import PermanentError
from connector.model import (
    Customer,
    Discount,
    FeeLine,
    Line,
    Money,
    Order,
    OtherMoney,
    Refund,
    RefundLine,
    ShippingLine,
    TaxLine,
    Transaction,
    TransactionKind,
)
from mappings.quickbooks_documents import ItemRefs, doc_number
from mappings.quickbooks_money import GatewayRefs, payment_body, refund_body
from mappings.quickbooks_sales import (
    TaxPolicy,
    document_body,
    exchange_rate,
    sales_line,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
ITEMS = ItemRefs(by_sku={"MUG": "11", "CAP": "12"}, shipping="2", fallback="1", fee="1")


def usd(value: str) -> Money:
    return Money.of(value, "USD")


def order(**changes) -> Order:
    base = dict(
        store="s", system="shopify", source_order_id="1", name="#1001", currency="USD", created_at=NOW,
        updated_at=NOW, customer=Customer(email="ada@example.com", first_name="Ada", last_name="Lovelace"),
        lines=(
            Line("1", "MUG", "Mug", 2, usd("16.50"), discounts=(Discount(usd("3.30"), "SAVE10"),),
                 tax_lines=(TaxLine("State", Decimal("0.0825"), usd("2.45")),)),
            Line("2", "CAP", "Cap", 1, usd("19.99"), tax_lines=(TaxLine("State", Decimal("0.0825"), usd("1.65")),)),
        ),
        shipping_lines=(ShippingLine("Standard", usd("5.00"), tax_lines=(TaxLine("State", Decimal("0.0825"),
                                                                                 usd("0.41")),)),),
        fee_lines=(FeeLine("Handling", usd("2.50")),),
        total=usd("61.70"),
    )
    base.update(changes)
    return Order(**base)


def qbo_total(body: dict) -> Decimal:
    """What QuickBooks computes: Σ sales lines - discounts + TotalTax (notes §1.3)."""
    sales = sum(line["Amount"] for line in body["Line"] if line["DetailType"] == "SalesItemLineDetail")
    discounts = sum(line["Amount"] for line in body["Line"] if line["DetailType"] == "DiscountLineDetail")
    return sales - discounts + body["TxnTaxDetail"]["TotalTax"]


def test_us_invoice_has_product_shipping_fee_and_discount_lines_and_the_stores_tax():
    body = document_body(order(), "7", ITEMS, "S-1001", TaxPolicy("us", us_tax_code="2"))
    kinds = [(line["DetailType"], line.get("Description")) for line in body["Line"]]
    assert kinds == [("SalesItemLineDetail", "Mug"), ("SalesItemLineDetail", "Cap"),
                     ("SalesItemLineDetail", "Shipping: Standard"), ("SalesItemLineDetail", "Handling"),
                     ("DiscountLineDetail", "Discount SAVE10")]
    assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in body["Line"][:4]] == \
        ["TAX", "TAX", "TAX", "NON"]
    assert body["TxnTaxDetail"] == {"TotalTax": Decimal("4.51"), "TxnTaxCodeRef": {"value": "2"}}
    assert "GlobalTaxCalculation" not in body
    assert qbo_total(body) == Decimal("61.70")
    assert "(s:1)" in body["PrivateNote"]


def test_us_company_books_a_tax_inclusive_order_net_of_its_tax_and_keeps_the_total():
    inclusive = order(taxes_included=True, total=usd("54.69"), fee_lines=())
    body = document_body(inclusive, "7", ITEMS, "S-1001", TaxPolicy("us"))
    mug = body["Line"][0]
    assert mug["Amount"] == Decimal("30.55") and mug["SalesItemLineDetail"]["TaxInclusiveAmt"] == Decimal("33.00")
    assert body["TxnTaxDetail"]["TotalTax"] == Decimal("4.51")
    assert qbo_total(body) == Decimal("54.69")


def test_non_us_company_gets_tax_codes_per_line_and_global_tax_calculation():
    eur = lambda v: Money.of(v, "EUR")  # noqa: E731
    vat = (TaxLine("VAT", Decimal("0.20"), eur("4.00")),)
    o = order(currency="EUR", taxes_included=True, total=eur("24.00"), fee_lines=(), shipping_lines=(),
              lines=(Line("1", "MUG", "Mug", 2, eur("12.00"), tax_lines=vat),))
    policy = TaxPolicy("non_us", codes={"20": "5"}, exempt_code="9")
    body = document_body(o, "7", ITEMS, "S-1001", policy)
    assert body["GlobalTaxCalculation"] == "TaxInclusive"
    assert body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "5"}
    assert qbo_total(body) == Decimal("24.00")
    exclusive = document_body(_replace(o, taxes_included=False, total=eur("28.00")), "7", ITEMS, "S-1001", policy)
    assert exclusive["GlobalTaxCalculation"] == "TaxExcluded"
    with pytest.raises(PermanentError) as missing:
        document_body(o, "7", ITEMS, "S-1001", TaxPolicy("non_us"))
    assert "quickbooks.tax_codes" in missing.value.what_to_do


def _replace(o: Order, **changes) -> Order:
    from dataclasses import replace
    return replace(o, **changes)


def test_a_line_amount_that_is_not_qty_times_unit_price_books_one_unit_to_avoid_6070():
    line = sales_line(Decimal("10.01"), "11", "Mug", 3, Decimal("3.34"), {"value": "TAX"})
    assert line["SalesItemLineDetail"]["Qty"] == 1
    assert line["SalesItemLineDetail"]["UnitPrice"] == Decimal("10.01")
    assert line["Description"] == "Mug (x3)"


def test_a_sku_without_item_names_the_sku():
    with pytest.raises(PermanentError) as failure:
        document_body(order(), "7", ItemRefs(by_sku={"MUG": "11"}, shipping="2"), "S-1", TaxPolicy())
    assert "SKU 'CAP'" in str(failure.value)


def test_doc_number_is_fitted_to_21_characters_the_same_way_every_time():
    long = order(name="#WHOLESALE-EUROPE-1014-B2B")
    first, again = doc_number(long, "DS-"), doc_number(long, "DS-")
    assert first == again and len(first) <= 21 and first.startswith("DS-")
    other = doc_number(order(name="#WHOLESALE-ASIA-1014-B2B"), "DS-")
    assert other != first
    refund = doc_number(long, "DS-", "-R1")
    assert len(refund) <= 21 and "-R1" in refund and refund != first
    with pytest.raises(PermanentError):
        doc_number(long, "A-VERY-LONG-PREFIX-")


def test_exchange_rate_comes_from_the_orders_home_currency_money():
    eur = order(currency="EUR", total=Money.of("100.00", "EUR"), other_money=OtherMoney(
        "shop", usd("109.29"), usd("0"), usd("0"), usd("0")), fee_lines=(), shipping_lines=(), lines=())
    assert exchange_rate(eur, "USD") == Decimal("1.092900")
    assert exchange_rate(eur, "EUR") is None
    assert exchange_rate(order(), "USD") is None


def test_payment_applies_one_transaction_to_the_invoice_with_its_gateway_refs():
    txn = Transaction("gid-99", TransactionKind.SALE, "success", usd("10.00"), gateway="gift_card")
    body = payment_body(order(), txn, "7", "42", GatewayRefs("3", "35", None))
    assert body["TotalAmt"] == Decimal("10.00")
    assert body["Line"] == [{"Amount": Decimal("10.00"), "LinkedTxn": [{"TxnId": "42", "TxnType": "Invoice"}]}]
    assert body["PaymentMethodRef"] == {"value": "3"} and body["DepositToAccountRef"] == {"value": "35"}
    assert body["PaymentRefNum"] == "gid-99"


def test_refund_receipt_totals_the_refund_and_needs_an_account():
    refund = Refund("r1", NOW, usd("17.86"), lines=(RefundLine("1", 1, usd("16.50"), usd("1.36")),))
    body = refund_body(order(), refund, "RefundReceipt", "7", ITEMS, "S-1001-R1", TaxPolicy(),
                       GatewayRefs(None, None, "5"), {"kind": "Invoice", "DocNumber": "S-1001"})
    assert qbo_total(body) == Decimal("17.86")
    assert body["DepositToAccountRef"] == {"value": "5"} and "S-1001" in body["PrivateNote"]
    memo = refund_body(order(), refund, "CreditMemo", "7", ITEMS, "S-1001-R1", TaxPolicy(), GatewayRefs(),
                       {"kind": "Invoice", "DocNumber": "S-1001"})
    assert "DepositToAccountRef" not in memo and qbo_total(memo) == Decimal("17.86")
    with pytest.raises(PermanentError) as missing:
        refund_body(order(), refund, "RefundReceipt", "7", ITEMS, "S-1001-R1", TaxPolicy(), GatewayRefs(), {})
    assert "refund_account" in missing.value.what_to_do


def test_refund_numbers_follow_when_refunds_happened_not_the_stores_list_order():
    import dataclasses
    from datetime import timedelta

    from mappings.quickbooks_money import refund_index
    first = Refund("7015", NOW, usd("1.00"))
    second = Refund("7022", NOW + timedelta(minutes=5), usd("2.00"))
    same_second = Refund("7100", NOW + timedelta(minutes=5), usd("3.00"))
    # WooCommerce lists an order's refunds newest first: the second refund must not become "R1".
    newest_first = dataclasses.replace(order(), refunds=(same_second, second, first))
    assert [refund_index(newest_first, r) for r in (first, second, same_second)] == [1, 2, 3]
    only_first = dataclasses.replace(order(), refunds=(first,))
    assert refund_index(only_first, first) == refund_index(newest_first, first)
