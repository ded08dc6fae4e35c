"""HubSpot deal mappings and settings, without the network."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connector.config import HubSpotSettings
from connector.model import (Customer, Discount, FinancialStatus, FulfillmentStatus, Line, Money, Order)
from mappings.hubspot_deal import booking_properties, deal_properties, line_items, stage_key

USD = "USD"


def order(**changes) -> Order:
    base = Order(
        store="demo-shop", system="shopify", source_order_id="42", name="#1042", currency=USD,
        created_at=datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc),
        updated_at=datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc),
        customer=Customer(email="Ada@Example.com", first_name="Ada"),
        lines=(Line("1", "TEE-1", "Tee", 2, Money.of("10.005", USD),
                    discounts=(Discount(Money.of("2.00", USD)),)),
               Line("2", None, "Refund adjustment", 1, Money.of("-5.00", USD)),
               Line("3", "GONE", "Removed", 0, Money.of("3.00", USD))),
        total=Money.of("13.01", USD), financial_status=FinancialStatus.PAID,
        fulfillment_status=FulfillmentStatus.UNFULFILLED)
    return dataclasses.replace(base, **changes)


def settings(**values) -> HubSpotSettings:
    return HubSpotSettings(access_token="pat-x", **values)


def test_deal_carries_the_total_with_two_decimals_the_currency_and_the_stage_of_its_status():
    props = deal_properties(order(), stages=settings().stage_map(), pipeline="default", key_property="o2c_order_key")
    assert props == {"o2c_order_key": "demo-shop:42", "dealname": "#1042 (demo-shop)", "amount": "13.01",
                     "deal_currency_code": "USD", "closedate": "2026-11-01T09:30:00.000Z", "pipeline": "default",
                     "dealstage": "closedwon"}
    assert all(isinstance(v, str) for v in props.values())


def test_stage_map_prefers_financial_plus_fulfillment_and_cancellation_wins():
    stages = settings(deal_stages={"paid+unfulfilled": "contractsent"}).stage_map()
    assert stage_key(order(), stages) == "paid+unfulfilled"
    assert stage_key(order(fulfillment_status=FulfillmentStatus.FULFILLED), stages) == "paid"
    assert stage_key(order(cancelled_at=datetime(2026, 11, 2, tzinfo=timezone.utc)), stages) == "cancelled"
    assert stages["pending"] == "contractsent" and stages["refunded"] == "closedlost"


def test_line_items_never_carry_a_negative_price_or_a_removed_line():
    items = line_items(order(), "o2c_line_key")
    assert list(items) == ["demo-shop:42:1"]
    assert items["demo-shop:42:1"] == {"o2c_line_key": "demo-shop:42:1", "name": "Tee", "quantity": "2",
                                       "price": "10.005", "discount": "2.00", "hs_line_item_currency_code": "USD",
                                       "hs_sku": "TEE-1"}


def test_booking_write_back_reads_doc_number_and_balance_and_names_the_status():
    assert booking_properties("invoice", {"DocNumber": "DS-1", "TotalAmt": "10.00", "Balance": "10"}) == {
        "o2c_qbo_doc_number": "DS-1", "o2c_qbo_balance": "10.00", "o2c_qbo_status": "open"}
    assert booking_properties("invoice", {"DocNumber": "DS-1", "TotalAmt": "10", "Balance": "4.5"})[
        "o2c_qbo_status"] == "partially_paid"
    assert booking_properties("sales_receipt", {"DocNumber": "DS-2", "TotalAmt": "5"})["o2c_qbo_balance"] == "0.00"
    assert booking_properties("invoice", {"DocNumber": "DS-3", "Balance": "0"}, voided=True)["o2c_qbo_status"] == \
        "voided"


@pytest.mark.parametrize("values, message", [
    ({"deal_stages": {"shipped": "closedwon"}}, "unknown order status 'shipped'"),
    ({"deal_stages": {"paid": " "}}, "deal_stages.paid is empty"),
    ({"api_version": "v5"}, "api_version"),
    ({"no_email_rule": "guess"}, "no_email_rule"),
    ({"deal_name_template": "{order_number}"}, "unknown field"),
])
def test_bad_hubspot_settings_are_refused_with_the_reason(values, message):
    with pytest.raises(Exception) as caught:
        settings(**values)
    assert message in str(caught.value)
