"""Shared fault injection: every emulator can be made slow, failing, hanging or cut off.

Each fault is observed through the vendor's official SDK, as the connector
would meet it, and injected errors carry that vendor's own error shape.
"""

from __future__ import annotations

import time

import httpx
import pytest
import requests
import shopify
from hubspot import HubSpot
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputUpsert, SimplePublicObjectBatchInputUpsert
from quickbooks import QuickBooks
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from woocommerce import API

from sandbox.seed import CREDENTIALS, REALM, SHOP, SITE, seed


def chaos(sandbox, system: str, *rules: dict) -> None:
    sandbox.control(system, "POST", "chaos", json={"faults": list(rules)})


def woo(sandbox, timeout: float = 5) -> API:
    return API(url=f"{sandbox.urls['woocommerce']}/site/{SITE}", version="wc/v3", timeout=timeout,
               consumer_key=CREDENTIALS["woocommerce"]["consumer_key"],
               consumer_secret=CREDENTIALS["woocommerce"]["consumer_secret"])


def hubspot_upsert(sandbox):
    client = HubSpot(access_token=CREDENTIALS["hubspot"]["access_token"], host=sandbox.urls["hubspot"])
    body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        SimplePublicObjectBatchInputUpsert(id="ada@example.com", id_property="email", properties={"firstname": "A"})])
    return client.crm.contacts.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=body)


def quickbooks_client(sandbox, token: str) -> QuickBooks:
    qb = QuickBooks(company_id=REALM, minorversion=75)
    qb.api_url_v3 = qb.sandbox_api_url_v3 = f"{sandbox.urls['quickbooks']}/v3"
    session = requests.Session()
    session.access_token = token
    qb.session = session
    return qb


@pytest.fixture
def seeded(sandbox):
    seed(sandbox.urls, orders=4)
    return sandbox


def test_error_rate_is_applied_to_the_share_of_requests_asked_for(seeded):
    chaos(seeded, "woocommerce", {"path": "/orders", "rate": 0.5, "status": 503})
    statuses = [woo(seeded).get("orders").status_code for _ in range(60)]
    failed = statuses.count(503)
    assert 15 <= failed <= 45 and statuses.count(200) == 60 - failed
    chaos(seeded, "woocommerce")  # no rules: back to normal
    assert woo(seeded).get("orders").status_code == 200


def test_injected_errors_carry_each_vendors_own_shape(seeded):
    chaos(seeded, "hubspot", {"path": "/batch/upsert", "status": 429, "times": 1})
    with pytest.raises(Exception) as caught:
        hubspot_upsert(seeded)
    body = caught.value.body.decode() if isinstance(caught.value.body, bytes) else caught.value.body
    assert caught.value.status == 429 and '"policyName": "TEN_SECONDLY_ROLLING"' in body
    assert hubspot_upsert(seeded).status == "COMPLETE"  # times: 1

    chaos(seeded, "woocommerce", {"path": "/orders", "status": 502, "times": 1})
    response = woo(seeded).get("orders")
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")


def test_latency_distribution_slows_answers_down(seeded):
    chaos(seeded, "woocommerce", {"path": "/orders", "latency": {"dist": "uniform", "low_ms": 200, "high_ms": 300}})
    started = time.monotonic()
    assert woo(seeded).get("orders").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_a_hang_makes_the_client_time_out(seeded):
    chaos(seeded, "woocommerce", {"path": "/orders", "hang_seconds": 3, "times": 1})
    with pytest.raises(requests.Timeout):
        woo(seeded, timeout=0.5).get("orders")


def test_a_dropped_connection_reaches_each_sdk_as_a_connection_error(seeded):
    chaos(seeded, "woocommerce", {"path": "/orders", "drop": True, "times": 1})
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        woo(seeded).get("orders")

    chaos(seeded, "shopify", {"path": "/graphql.json", "drop": True, "times": 1})
    shopify.ShopifyResource.activate_session(shopify.Session("demo.myshopify.com", "2026-01",
                                                             CREDENTIALS["shopify"]["access_token"]))
    shopify.ShopifyResource.site = f"{seeded.urls['shopify']}/shop/{SHOP}/admin/api/2026-01"
    try:
        with pytest.raises(Exception) as caught:
            shopify.GraphQL().execute("{ shop { name } }")
        assert "IncompleteRead" in type(caught.value).__name__ or "Remote" in type(caught.value).__name__ \
            or "closed" in str(caught.value).lower() or "incomplete" in str(caught.value).lower()
    finally:
        shopify.ShopifyResource.clear_session()


def test_quickbooks_throttle_fault_is_the_xml_body_python_quickbooks_cannot_parse(seeded):
    token = httpx.post(f"{seeded.urls['quickbooks']}/_sandbox/companies/{REALM}",
                       json={"access_token": "qb-test-token"}, timeout=10)
    token.raise_for_status()
    chaos(seeded, "quickbooks", {"path": "/query", "status": 429, "times": 1})
    with pytest.raises(QuickbooksException) as caught:
        Customer.all(qb=quickbooks_client(seeded, "qb-test-token"))
    assert caught.value.error_code == 10000 and "ThrottleExceeded" in caught.value.message


def test_rules_are_listed_cleared_and_refused_when_malformed(seeded):
    chaos(seeded, "hubspot", {"path": "/objects", "latency_ms": 10})
    assert seeded.control("hubspot", "GET", "chaos")["faults"][0]["latency_ms"] == 10
    assert seeded.control("hubspot", "DELETE", "chaos") == {"faults": []}
    response = httpx.post(f"{seeded.urls['hubspot']}/_sandbox/chaos", json={"faults": [{"colour": "red"}]})
    assert response.status_code == 400 and "colour" in response.json()["error"]
