"""The WooCommerce source over both of WooCommerce's auth schemes, through the official library.

Over https the library sends Basic auth; over plain http it signs OAuth 1.0a
(../shared/notes/woocommerce.md §2, §4). The sandbox serves the same site
on both, with a self-signed certificate the store config trusts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from pydantic import SecretStr

from adapters.woocommerce import WooCommerceSource
from connector.config import WooCommerceStore
from connector.errors import SourceError
from sandbox.seed import CREDENTIALS, SITE, seed

FAR_PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)


def store(url: str, secret: str | None = None, ca_bundle: str | None = None) -> WooCommerceStore:
    return WooCommerceStore(name="woo", system="woocommerce", url=url,
                            consumer_key=SecretStr(CREDENTIALS["woocommerce"]["consumer_key"]),
                            consumer_secret=SecretStr(secret or CREDENTIALS["woocommerce"]["consumer_secret"]),
                            ca_bundle=ca_bundle)


def pull_all(source: WooCommerceSource) -> list[dict]:
    until = datetime.now(timezone.utc) + timedelta(minutes=1)  # changes made this second are in the window
    return [o for page in source.fetch_changed(FAR_PAST, until) for o in page]


def test_https_site_is_read_with_basic_auth_and_http_site_with_oauth1(sandbox):
    seed(sandbox.urls, orders=50)
    over_https = pull_all(WooCommerceSource(store(f"{sandbox.https_urls['woocommerce']}/site/{SITE}",
                                                  ca_bundle=sandbox.ca_file)))
    over_http = pull_all(WooCommerceSource(store(f"{sandbox.urls['woocommerce']}/site/{SITE}")))
    assert len(over_https) == len(over_http) == 25
    assert sorted(o["id"] for o in over_https) == sorted(o["id"] for o in over_http)


def test_wrong_secret_is_reported_with_woocommerces_own_message_for_each_scheme(sandbox):
    seed(sandbox.urls, orders=2)
    with pytest.raises(SourceError) as basic:
        pull_all(WooCommerceSource(store(f"{sandbox.https_urls['woocommerce']}/site/{SITE}", secret="cs_wrong",
                                         ca_bundle=sandbox.ca_file)))
    assert "Consumer secret is invalid" in str(basic.value)  # the Basic-auth check
    with pytest.raises(SourceError) as oauth:
        pull_all(WooCommerceSource(store(f"{sandbox.urls['woocommerce']}/site/{SITE}", secret="cs_wrong")))
    assert "Invalid signature" in str(oauth.value)  # the OAuth 1.0a check
    assert "consumer_key/consumer_secret" in str(oauth.value)  # and what to do


def test_untrusted_certificate_is_a_clear_error_not_a_silent_downgrade(sandbox):
    seed(sandbox.urls, orders=2)
    with pytest.raises(SourceError) as caught:
        pull_all(WooCommerceSource(store(f"{sandbox.https_urls['woocommerce']}/site/{SITE}")))
    assert "certificate" in str(caught.value).lower() or "ssl" in str(caught.value).lower()


def test_orders_with_refunds_carry_the_full_refund_objects(sandbox):
    seed(sandbox.urls, orders=10)
    woo = sandbox.urls["woocommerce"]
    order = sandbox.state("woocommerce")["sites"][SITE]["orders"][0]
    httpx.post(f"{woo}/_sandbox/sites/{SITE}/orders/{order['id']}/refunds",
               json={"line_items": [{"id": order["line_items"][0]["id"], "quantity": 1}], "reason": "broken"},
               timeout=10).raise_for_status()
    source = WooCommerceSource(store(f"{woo}/site/{SITE}"))
    payload = next(o for o in pull_all(source) if o["id"] == order["id"])
    canonical = source.to_order(payload)
    assert len(canonical.refunds) == 1
    refund = canonical.refunds[0]
    assert refund.note == "broken"
    assert [line.source_line_id for line in refund.lines] == [str(order["line_items"][0]["id"])]
    assert refund.lines[0].quantity == 1


def test_an_order_modified_while_the_poll_pages_through_does_not_hide_another(sandbox):
    # Paging by page number, an order of page 1 modified before page 2 is asked for leaves the
    # window, page 2 starts one order later, and the order that moved onto page 1 is never read.
    seed(sandbox.urls, orders=500)  # about 150 WooCommerce orders of a listed status: two pages
    woo = f"{sandbox.urls['woocommerce']}/_sandbox/sites/{SITE}/orders"
    source = WooCommerceSource(store(f"{sandbox.urls['woocommerce']}/site/{SITE}"))
    until = datetime.now(timezone.utc) + timedelta(seconds=1)
    pages = source.fetch_changed(FAR_PAST, until)
    read = [o["id"] for o in next(pages)]
    later = (until + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    for order_id in read[:3]:  # modified now: after the poll's window, so out of it from now on
        httpx.post(f"{woo}/{order_id}/touch", json={"date_modified_gmt": later}).raise_for_status()
    read += [o["id"] for page in pages for o in page]
    everything = [o["id"] for o in pull_all(WooCommerceSource(store(f"{sandbox.urls['woocommerce']}/site/{SITE}")))]
    assert sorted(set(read)) == sorted(set(everything)) and len(everything) > 100  # more than one page
    assert len(read) == len(set(read)), "an order was yielded twice in one poll"


def _refund(woo: str, order: dict, reason: str, amount: str | None = None) -> None:
    body = {"amount": amount} if amount else {"line_items": [{"id": order["line_items"][0]["id"], "quantity": 1}]}
    httpx.post(f"{woo}/_sandbox/sites/{SITE}/orders/{order['id']}/refunds", json={**body, "reason": reason},
               timeout=10).raise_for_status()


def _refund_requests(woo: str) -> dict[str, int]:
    by_endpoint = httpx.get(f"{woo}/_sandbox/counters", timeout=10).json()["by_endpoint"]
    return {label: sum(statuses.values()) for label, statuses in by_endpoint.items() if "refunds" in label}


def _site_version(woo: str, version: str) -> None:
    httpx.post(f"{woo}/_sandbox/sites/{SITE}/orders", json={"settings": {"wc_version": version}, "orders": []},
               timeout=10).raise_for_status()


def test_a_woocommerce_9_site_gives_a_pages_refunds_in_one_request_and_the_same_orders(sandbox):
    seed(sandbox.urls, orders=40)
    woo = sandbox.urls["woocommerce"]
    orders = [o for o in sandbox.state("woocommerce")["sites"][SITE]["orders"] if o["line_items"]][:4]
    for n, order in enumerate(orders):
        _refund(woo, order, f"first {n}")
    _refund(woo, orders[0], "second", amount="1.00")  # an order with two refunds keeps both, newest first
    _site_version(woo, "9.0.0")
    refunded = sum(1 for o in sandbox.state("woocommerce")["sites"][SITE]["orders"] if o["refunds"])
    assert refunded >= len(orders)
    before = _refund_requests(woo)
    newer = WooCommerceSource(store(f"{woo}/site/{SITE}"))
    by_one_request = {o["id"]: newer.to_order(o) for o in pull_all(newer)}
    asked = {k: v - before.get(k, 0) for k, v in _refund_requests(woo).items()}
    assert asked.get("GET /wc/v3/refunds") == 1 and not asked.get("GET /wc/v3/orders/<id>/refunds")

    _site_version(woo, "8.9.3")  # the route is gone: the same orders, read order by order
    before = _refund_requests(woo)
    older = WooCommerceSource(store(f"{woo}/site/{SITE}"))
    by_order = {o["id"]: older.to_order(o) for o in pull_all(older)}
    asked = {k: v - before.get(k, 0) for k, v in _refund_requests(woo).items()}
    assert asked.get("GET /wc/v3/refunds") == 1  # asked once, answered 404 rest_no_route ...
    assert asked.get("GET /wc/v3/orders/<id>/refunds") == refunded
    assert by_one_request == by_order
    assert [r.note for r in by_order[orders[0]["id"]].refunds] == ["second", "first 0"]

    before = _refund_requests(woo)
    pull_all(older)  # ... and not asked again
    asked = {k: v - before.get(k, 0) for k, v in _refund_requests(woo).items()}
    assert not asked.get("GET /wc/v3/refunds") and asked.get("GET /wc/v3/orders/<id>/refunds") == refunded
