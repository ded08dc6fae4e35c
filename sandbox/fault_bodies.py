"""What each vendor's injected error looks like on the wire (status -> body, type, headers).

Shapes from the notes: Shopify (../shared/notes/shopify.md §2), WooCommerce
hosts and WAFs in front of WordPress (woocommerce.md §5: 429/503 from the
host, 502/504 from proxies, HTML), HubSpot (hubspot.md §4-5), QuickBooks
(quickbooks.md §2.6 and §3: the throttle body is often XML).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone


def _json(data: dict) -> bytes:
    return json.dumps(data).encode()


def _html(status: int, reason: str) -> tuple[bytes, str, dict]:
    page = f"<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>"
    return page.encode(), "text/html", {}


REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


def shopify(status: int):
    if status == 429:
        return (_json({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                                 "uninterrupted service."}), "application/json", {"Retry-After": "2.0"})
    if status >= 500:
        return (_json({"errors": [{"message": "Internal error. Looks like something went wrong on our end.",
                                   "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}), "application/json", {})
    return _json({"errors": REASONS.get(status, "Error")}), "application/json", {}


def woocommerce(status: int):
    if status == 500:
        return (_json({"code": "internal_server_error", "message": "There has been a critical error on this "
                       "website.", "data": {"status": 500}}), "application/json", {})
    headers = {"Retry-After": "10"} if status in (429, 503) else {}
    body, kind, _ = _html(status, REASONS.get(status, "Error"))
    return body, kind, headers


def hubspot(status: int):
    correlation = str(uuid.uuid4())
    if status == 429:
        return (_json({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                       "errorType": "RATE_LIMIT", "correlationId": correlation, "policyName": "TEN_SECONDLY_ROLLING",
                       "groupName": "publicapi:hapikey-api-calls-ten-secondly:12345678"}),
                "application/json;charset=utf-8", {})
    if status in (502, 503, 504):
        return _html(status, REASONS[status])
    return (_json({"status": "error", "message": "internal error", "correlationId": correlation,
                   "category": "INTERNAL_ERROR"}), "application/json;charset=utf-8", {})


def quickbooks(status: int):
    now = datetime.now(timezone.utc).isoformat()
    if status == 429:
        xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse xmlns="http://schema.intuit.com'
               f'/finance/v3" time="{now}"><Fault type="SERVICE"><Error code="3001" element=""><Message>message='
               'ThrottleExceeded; errorCode=003001; statusCode=429</Message><Detail>The request limit was reached.  '
               'Try again later</Detail></Error></Fault></IntuitResponse>')
        return xml.encode(), "application/xml", {"intuit_tid": str(uuid.uuid4())}
    if status in (502, 503, 504):
        return _html(status, REASONS[status])
    return (_json({"Fault": {"Error": [{"Message": "An application error has occurred while processing your "
                                        "request", "Detail": "System Failure Error: An unexpected error occurred",
                                        "code": "10000"}], "type": "SystemFault"}, "time": now}),
            "application/json", {"intuit_tid": str(uuid.uuid4())})


BY_SYSTEM = {"shopify": shopify, "woocommerce": woocommerce, "hubspot": hubspot, "quickbooks": quickbooks}
