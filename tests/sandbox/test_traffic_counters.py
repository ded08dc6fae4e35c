"""``GET /_sandbox/traffic``: per account, what the clients sent in the busiest window of each limit.

The figure that proves N workers kept to a limit together is ``max_offered_in_window`` (every
request that reached the limiter, refused or not) against ``limit``; ``max_in_window`` (what was
let through) shows how close to the limit they ran. Driven over HTTP against the shared sandbox.
"""

from __future__ import annotations

import threading

import httpx

from sandbox.traffic import RollingPeak, token_label
from tests.sandbox.test_quickbooks_emulator import REALM, TOKEN, connect, raw

HUBSPOT_TOKEN = "pat-sandbox"


def traffic(sandbox, system: str) -> dict:
    return sandbox.control(system, "GET", "traffic")["accounts"]


def in_parallel(count: int, call) -> list:
    results: list = [None] * count

    def run(n):
        results[n] = call()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# -- QuickBooks ---------------------------------------------------------------------------------------
def test_quickbooks_reports_the_busiest_minute_of_thirty_quick_requests(sandbox):
    qbo = connect(sandbox)
    for _ in range(30):
        assert raw(qbo, "GET", "item/1").status_code == 200
    realm = traffic(sandbox, "quickbooks")[REALM]
    assert realm["requests"] == 30 and realm["units"] == 30 and realm["throttled"] == 0
    assert realm["limits"]["requests_per_minute"] == {"limit": 500, "seconds": 60.0, "max_in_window": 30,
                                                      "max_offered_in_window": 30}
    assert realm["concurrent"] == {"limit": 10, "max": 1, "max_offered": 1}


def test_quickbooks_tells_what_was_offered_over_the_limit_from_what_it_let_through(sandbox):
    qbo = connect(sandbox)
    qbo.control("POST", "options", json={"requests_per_minute": 20})
    statuses = [raw(qbo, "GET", "item/1").status_code for _ in range(30)]
    assert statuses.count(429) == 10
    realm = traffic(sandbox, "quickbooks")[REALM]
    assert realm["limits"]["requests_per_minute"] == {"limit": 20, "seconds": 60.0, "max_in_window": 20,
                                                      "max_offered_in_window": 30}
    assert realm["requests"] == 30 and realm["units"] == 20 and realm["throttled"] == 10


def test_quickbooks_counts_a_batch_per_item_and_each_batch_limit_per_app(sandbox):
    qbo = connect(sandbox)
    items = [{"bId": str(n), "Query": "select * from Item"} for n in range(10)]
    assert raw(qbo, "POST", "batch", json={"BatchItemRequest": items}).status_code == 200
    limits = traffic(sandbox, "quickbooks")[REALM]["limits"]
    assert limits["requests_per_minute"]["max_in_window"] == 10  # each item, as the limiter counts it
    assert limits[f"batch_requests_per_minute:{token_label(TOKEN)}"] == {
        "limit": 40, "seconds": 60.0, "max_in_window": 1, "max_offered_in_window": 1}
    assert limits["batch_requests_per_realm_per_minute"]["max_in_window"] == 1
    assert TOKEN not in str(traffic(sandbox, "quickbooks"))  # a control-API token is named by a hash


def test_quickbooks_reports_the_most_concurrent_requests_let_through_and_offered(sandbox):
    qbo = connect(sandbox)
    qbo.control("POST", "options", json={"latency_ms": 300, "max_concurrent": 2, "requests_per_second": 100})
    statuses = in_parallel(5, lambda: raw(qbo, "GET", "item/1").status_code)
    assert sorted(statuses) == [200, 200, 429, 429, 429]
    realm = traffic(sandbox, "quickbooks")[REALM]
    assert realm["concurrent"] == {"limit": 2, "max": 2, "max_offered": 3}
    assert realm["limits"][f"requests_per_second:{token_label(TOKEN)}"]["max_offered_in_window"] == 5


# -- HubSpot -----------------------------------------------------------------------------------------------
def hubspot_get(sandbox, path: str) -> int:
    return httpx.get(f"{sandbox.url('hubspot')}{path}", headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
                     timeout=10).status_code


def test_hubspot_reports_the_busiest_ten_seconds_per_token_and_the_search_second(sandbox):
    sandbox.control("hubspot", "POST", "config", json={"ten_second_limit": 20})
    statuses = [hubspot_get(sandbox, "/crm/v3/objects/contacts?limit=1") for _ in range(30)]
    assert statuses.count(429) == 10
    (portal, account), = traffic(sandbox, "hubspot").items()
    assert account["limits"][f"ten_second_limit:{token_label(HUBSPOT_TOKEN)}"] == {
        "limit": 20, "seconds": 10.0, "max_in_window": 20, "max_offered_in_window": 30}
    assert account["requests"] == 30 and account["throttled"] == 10 and account["units"] == 20
    assert account["daily"]["used"] == 20 and "concurrent" not in account

    search = httpx.post(f"{sandbox.url('hubspot')}/crm/v3/objects/contacts/search", json={"limit": 1},
                        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"}, timeout=10)
    assert search.status_code == 200
    account = traffic(sandbox, "hubspot")[portal]
    assert account["limits"]["search_per_second"]["max_in_window"] == 1
    assert account["limits"]["search_per_second"]["limit"] == 5


# -- the stores ---------------------------------------------------------------------------------------------
def test_woocommerce_meters_the_busiest_second_with_no_limit_beside_it(sandbox):
    for _ in range(4):
        httpx.get(f"{sandbox.url('woocommerce')}/site/traffic-site/wp-json/wc/v3/orders", timeout=10)
    site = traffic(sandbox, "woocommerce")["traffic-site"]
    assert site["requests"] == 4 and site["throttled"] == 0
    assert site["limits"]["requests_per_second"] == {"limit": None, "seconds": 1.0, "max_in_window": 4,
                                                     "max_offered_in_window": 4}


def test_shopify_reports_how_low_the_cost_bucket_ran_and_the_throttled_answers(sandbox):
    sandbox.control("shopify", "POST", "shops/traffic-shop/config",
                    json={"access_token": "shpat_traffic", "bucket_size": 10, "restore_rate": 1, "fill": True})
    url = f"{sandbox.url('shopify')}/shop/traffic-shop/admin/api/2026-01/graphql.json"
    # Requested cost 2 + 5 = 7, actual 2 (no orders): the second leaves about 1 (then the refund),
    # the third finds about 6 and is throttled.
    query = {"query": "{ orders(first: 5) { nodes { id } } }"}
    answers = [httpx.post(url, json=query, headers={"X-Shopify-Access-Token": "shpat_traffic"}, timeout=30).json()
               for _ in range(4)]
    throttled = sum(1 for a in answers if any(e.get("extensions", {}).get("code") == "THROTTLED"
                                              for e in a.get("errors", [])))
    shop = traffic(sandbox, "shopify")["traffic-shop"]
    assert shop["requests"] == 4 and shop["throttled"] == throttled >= 1
    assert shop["bucket"]["size"] == 10 and shop["bucket"]["min_available"] < 2


# -- the meter itself -------------------------------------------------------------------------------------
def test_the_rolling_peak_counts_a_window_as_the_emulators_do():
    peak = RollingPeak(10.0)
    assert [peak.add(t) for t in (0.0, 1.0, 9.9)] == [1, 2, 3]
    assert peak.add(10.0) == 3  # the unit at 0 left: (0, 10]
    assert peak.add(10.5, units=5) == 8 and peak.peak == 8
    assert peak.add(30.0) == 1 and peak.peak == 8

