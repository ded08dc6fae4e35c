"""Injected faults for the Shopify emulator (``POST /_sandbox/faults``).

Same rule shape as the WooCommerce and HubSpot emulators::

    {"faults": [{"shop": "demo", "status": 503, "times": 1, "latency_ms": 0,
                 "retry_after": 2, "body": {...}, "graphql_code": "THROTTLED"}]}

``shop`` is optional (any shop); ``times`` -1 = forever; ``status`` 0 with
``latency_ms`` = only a delay (above the client's timeout it provokes one).
``graphql_code`` answers HTTP 200 with that code in ``errors[].extensions``:
``THROTTLED`` and ``INTERNAL_SERVER_ERROR`` are what Airbyte retries on a 200
(notes §2). A 429 carries ``Retry-After`` (notes §2: some clients report
GraphQL 429s; ShopifyAPI raises ``HTTPError`` with ``e.headers["Retry-After"]``).
"""

from __future__ import annotations

import asyncio
import json
import uuid

from starlette.responses import Response

# The REST-era 429 text, also seen on GraphQL 429s (unverified for GraphQL; emulator wording).
TOO_MANY = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}


class Faults:
    def __init__(self):
        self.rules: list[dict] = []

    def set(self, rules: list[dict]) -> list[dict]:
        self.rules = [{"times": 1, **rule} for rule in rules]
        return self.rules

    def take(self, shop: str) -> dict | None:
        for rule in self.rules:
            if rule["times"] != 0 and rule.get("shop", shop) == shop:
                rule["times"] -= 1
                return rule
        return None


def graphql_error(code: str, cost: dict | None = None) -> dict:
    """An HTTP-200 GraphQL error answer with ``extensions.code`` = ``code``."""
    if code == "THROTTLED":
        error = {"message": "Throttled",
                 "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}
    else:
        request_id = str(uuid.uuid4())
        error = {"message": f"Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id} "
                            "(include this in support requests).",
                 "extensions": {"code": code, "requestId": request_id}}
    answer: dict = {"errors": [error]}
    if cost is not None:
        answer["extensions"] = cost
    return answer


async def apply(rule: dict, cost: dict | None = None) -> Response | None:
    """Sleep for the rule's latency, then return its response (None = carry on normally)."""
    if rule.get("latency_ms"):
        await asyncio.sleep(int(rule["latency_ms"]) / 1000)
    headers = {"Retry-After": str(rule["retry_after"])} if rule.get("retry_after") is not None else {}
    if rule.get("graphql_code"):
        body = graphql_error(rule["graphql_code"], cost)
        return Response(json.dumps(body), status_code=200, headers=headers, media_type="application/json")
    status = int(rule.get("status", 500))
    if not status:
        return None
    if status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = "2.0"
    body = rule.get("body", TOO_MANY if status == 429 else {"errors": "Internal Server Error"})
    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")
