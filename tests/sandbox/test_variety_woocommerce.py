"""Every "variety" case of the generator, as the WooCommerce emulator serves it to the official
``woocommerce`` client (GET orders, GET orders/<id>/refunds; OAuth1 over loopback, notes §4):
balanced in WC's own arithmetic and each case with WC core's marks."""

from __future__ import annotations

from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest
from woocommerce import API

from sandbox.generator import CASES, generate_orders

SITE = "variety"
CK, CS = "ck_variety0123456789abcdef0123456789abcdef", "cs_variety0123456789abcdef0123456789abcdef"
CENT = Decimal("0.01")


def D(text) -> Decimal:
    return Decimal(text)


@pytest.fixture(scope="module")
def served(sandbox_process):
    sandbox_process.reset()
    url = sandbox_process.url("woocommerce")
    specs = generate_orders(seed=41, count=200)   # variety is the default
    response = httpx.post(f"{url}/_sandbox/sites/{SITE}/orders", timeout=120, json={
        "credentials": {"consumer_key": CK, "consumer_secret": CS}, "orders": specs})
    response.raise_for_status()
    ids = response.json()["ids"]
    wcapi = API(url=f"{url}/site/{SITE}", consumer_key=CK, consumer_secret=CS, version="wc/v3", timeout=30)
    orders, page = [], 1
    while True:
        r = wcapi.get("orders", params={"per_page": 100, "page": page, "orderby": "id", "order": "asc"})
        assert r.status_code == 200, r.text
        orders += r.json()
        if page >= int(r.headers["X-WP-TotalPages"]):
            break
        page += 1
    refunds = {}
    for order in orders:
        if order["refunds"]:
            r = wcapi.get(f"orders/{order['id']}/refunds")
            assert r.status_code == 200, r.text
            refunds[order["id"]] = r.json()
    by_id = {o["id"]: o for o in orders}
    return [(spec, by_id[oid], refunds.get(oid, [])) for spec, oid in zip(specs, ids)]


def _cases(served, case):
    found = [x for x in served if x[0]["case"] == case]
    assert found, case
    return found


def test_every_case_is_served_and_every_order_balances(served):
    assert len(served) == 200 and Counter(s["case"] for s, _, _ in served).keys() == set(CASES)
    for spec, order, _ in served:
        subtotal = sum((D(li["subtotal"]) for li in order["line_items"]), Decimal(0))
        fees = sum((D(f["total"]) for f in order["fee_lines"]), Decimal(0))
        assert subtotal - D(order["discount_total"]) + D(order["shipping_total"]) + fees + D(order["total_tax"]) \
            == D(order["total"]), (spec["case"], order["id"])
        assert D(order["discount_total"]) == sum((D(li["subtotal"]) - D(li["total"]) for li in order["line_items"]), Decimal(0))
        item_tax = sum((D(x["total_tax"]) for x in order["line_items"] + order["fee_lines"]), Decimal(0))
        ship_tax = sum((D(x["total_tax"]) for x in order["shipping_lines"]), Decimal(0))
        assert D(order["cart_tax"]) == item_tax == sum((D(t["tax_total"]) for t in order["tax_lines"]), Decimal(0))
        assert D(order["shipping_tax"]) == ship_tax == sum((D(t["shipping_tax_total"]) for t in order["tax_lines"]), Decimal(0))
        assert D(order["total_tax"]) == item_tax + ship_tax
        for x in order["line_items"] + order["fee_lines"] + order["shipping_lines"]:
            ids = [t["id"] for t in x["taxes"]]
            assert set(ids) <= {t["rate_id"] for t in order["tax_lines"]} and len(ids) == len(set(ids))


def test_tax_inclusive_stores_ex_tax_line_amounts(served):
    for spec, order, _ in _cases(served, "tax_inclusive"):
        assert order["prices_include_tax"] is True
        for li, line in zip(order["line_items"], spec["lines"]):
            entered = D(line["unit_price"]) * line["quantity"] - D(line["discount"])
            assert D(li["total"]) + D(li["total_tax"]) == entered          # ex-tax + tax = the price paid
            if line["taxable"]:
                assert D(li["total_tax"]) == (entered * D("0.20") / D("1.20")).quantize(CENT, ROUND_HALF_UP)


def test_several_taxes_are_stacked_rates(served):
    for spec, order, _ in _cases(served, "several_taxes"):
        assert [t["label"] for t in order["tax_lines"]] == ["State tax", "County tax", "City tax"]
        assert [t["rate_code"].rsplit("-", 1)[1] for t in order["tax_lines"]] == ["1", "2", "3"]
        for li, line in zip(order["line_items"], spec["lines"]):
            assert len(li["taxes"]) == (3 if line["taxable"] else 0)
        if not spec["shipping_taxable"]:
            assert order["shipping_tax"] == "0.00" and all(s["taxes"] == [] for s in order["shipping_lines"])
        elif D(order["shipping_total"]) > 0:
            assert len(order["shipping_lines"][0]["taxes"]) == 3


def test_order_discount_is_a_coupon_spread_into_line_totals(served):
    for spec, order, _ in _cases(served, "order_discount") + _cases(served, "zero_total"):
        [coupon] = order["coupon_lines"]
        assert coupon["code"] == spec["discount_code"].lower() and coupon["discount"] == order["discount_total"]
        assert all(D(li["total"]) < D(li["subtotal"]) for li in order["line_items"])


def test_fees_are_fee_lines(served):
    for spec, order, _ in _cases(served, "fees"):
        assert [(f["name"], f["total"], f["tax_status"]) for f in order["fee_lines"]] == [
            (fee["title"], fee["amount"], "taxable" if fee["taxable"] else "none") for fee in spec["fees"]]
        tip = order["fee_lines"][1]
        assert tip["total_tax"] == "0.00" and tip["taxes"] == []


def test_gift_card_is_noted_and_the_card_gateway_pays(served):
    for spec, order, _ in _cases(served, "gift_card"):
        assert order["payment_method"] == spec["gateway"]
        [note] = [m for m in order["meta_data"] if m["key"] == "gift_card_amount"]
        assert D(note["value"]) == min(D("10.00"), D(order["total"]))


def test_multi_currency_order_is_in_the_presentment_currency(served):
    for spec, order, _ in _cases(served, "multi_currency"):
        assert order["currency"] == "EUR"
        rate = D(spec["exchange_rate"])
        for li, line in zip(order["line_items"], spec["lines"]):
            assert D(li["subtotal"]) == (D(line["unit_price"]) * rate).quantize(CENT, ROUND_HALF_UP) * line["quantity"]


def test_refunds_summary_objects_and_status(served):
    for case in ("partial_refund", "full_refund"):
        for spec, order, refunds in _cases(served, case):
            [summary] = order["refunds"]
            [refund] = refunds
            assert summary == {"id": refund["id"], "reason": spec["refunds"][0]["note"], "total": "-" + refund["amount"]}
            assert refund["date_created_gmt"] == spec["refunds"][0]["created_at"].rstrip("Z")
            assert all(li["quantity"] < 0 and D(li["total"]) < 0 for li in refund["line_items"])
            assert [-li["quantity"] for li in refund["line_items"]] == [w["quantity"] for w in spec["refunds"][0]["lines"]]
            if case == "full_refund":
                assert order["status"] == "refunded" and refund["amount"] == order["total"]
            else:
                assert order["status"] in ("processing", "completed") and D(refund["amount"]) < D(order["total"])


def test_cancelled_paid_later_guest_long_name_zero_total_many_lines(served):
    for spec, order, _ in _cases(served, "cancelled"):
        assert order["status"] == "cancelled" and order["date_paid_gmt"] is None
        assert order["date_modified_gmt"] == spec["cancelled_at"].rstrip("Z")
    for spec, order, _ in _cases(served, "paid_later"):
        assert order["date_paid_gmt"] == order["date_modified_gmt"] == spec["paid_at"].rstrip("Z")
        assert order["date_created_gmt"] < order["date_paid_gmt"]
    for _, order, _ in _cases(served, "guest"):
        assert order["customer_id"] == 0 and not order["billing"]["email"] and "customer" not in order["_links"]
    for _, order, _ in _cases(served, "unicode"):
        assert order["billing"]["last_name"] == "Ærøskøbing-Núñez" and order["billing"]["city"] == "Zürich"
    for spec, order, _ in _cases(served, "long_name"):
        assert order["number"] == str(order["id"])     # WC numbers are numeric without a plugin
    for _, order, _ in _cases(served, "zero_total"):
        assert order["total"] == "0.00" and order["status"] in ("processing", "completed")
        assert order["date_paid"] is not None and order["needs_payment"] is False and order["payment_method"] == ""
    for _, order, _ in _cases(served, "many_lines"):
        assert len(order["line_items"]) == 120
