"""Starlette app of the Shopify emulator: the Admin GraphQL endpoint and the control API.

Shops live under ``/shop/<shop>`` so one emulator serves several stores; the
ShopifyAPI SDK reaches a shop by setting ``ShopifyResource.site`` to
``http://127.0.0.1:PORT/shop/<shop>/admin/api/<version>`` (notes §4 recipe A).

Options (``create_app(options)``, all optional): ``bucket_size`` (2000),
``restore_rate`` (100/s), ``max_query_cost`` (1000), ``bulk_seconds`` (0.2, how long a bulk
operation stays RUNNING) — defaults for new shops; ``POST /_sandbox/shops/<shop>/config``
changes them per shop (and ``{"fill": true}`` refills the bucket). Faults: faults.py.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.shopify import faults as faults_module
from sandbox.shopify import schema as schema_module
from sandbox.shopify.executor import cost_extension, run_graphql
from sandbox.shopify.refunds import add_refund, refund_summary
from sandbox.shopify.render import iso, render_order
from sandbox.shopify.store import Store

# Body Shopify sends for a bad or missing token (brief; HTTP 401).
LOG = logging.getLogger("sandbox.shopify")
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def _json(payload, status: int = 200) -> Response:
    # json.dumps keeps big ints exact; no float conversion anywhere (notes §3 "Large ints").
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


def create_app(options: dict | None = None) -> Starlette:
    """Build the emulator; the Admin schema starts loading in the background now."""
    options = dict(options or {})
    store = Store(options)
    faults = faults_module.Faults()
    schema_module.start_loading()

    def counted(response: Response) -> Response:
        store.count(response.status_code)
        return response

    async def graphql_endpoint(request: Request) -> Response:
        shop = store.shop(request.path_params["shop"])
        if shop is None:
            return counted(_json({"errors": "Not Found"}, 404))
        if request.headers.get("x-shopify-access-token") != shop.token:
            return counted(_json(INVALID_TOKEN, 401))
        rule = faults.take(shop.name)
        injected = await faults_module.apply(rule, cost_extension(shop, 0, None)) if rule else None
        if injected is not None:
            if rule.get("graphql_code") == "THROTTLED" or injected.status_code == 429:
                store.throttled += 1
            return counted(injected)
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return counted(_json({"errors": {"query": "Required parameter missing or invalid"}}, 400))
        base_url = str(request.base_url).rstrip("/")
        debug = request.headers.get("shopify-graphql-cost-debug") == "1"

        def work():
            schema_module.get_schema()  # first request waits for the background load
            with store.lock:
                try:
                    return run_graphql(store, shop, body, {"base_url": base_url}, debug=debug)
                except Exception:  # an emulator bug answers like Shopify's own, never a bare 500
                    LOG.exception("shopify emulator failed on %r", body.get("query", "")[:200])
                    return faults_module.graphql_error("INTERNAL_SERVER_ERROR", cost_extension(shop, 0, None))

        # Off the event loop: a big page can take a moment and the runner shares one loop.
        answer = await asyncio.to_thread(work)
        return counted(_json(answer))

    async def bulk_file(request: Request) -> Response:
        shop = store.shop(request.path_params["shop"])
        key = f"gid://shopify/BulkOperation/{request.path_params['op']}"
        text = shop.bulk_results.get(key) if shop else None
        if text is None:
            return counted(PlainTextResponse("Not Found", 404))
        return counted(Response(text, media_type="application/jsonl"))

    # --- control API (docs/sandbox-contract.md) ------------------------------------------

    async def reset(_request: Request) -> Response:
        with store.lock:
            store.reset()
            faults.set([])
        return JSONResponse({"ok": True})

    async def set_faults(request: Request) -> Response:
        if request.method == "POST":
            faults.set((await request.json()).get("faults", []))
        return JSONResponse({"faults": faults.rules})

    async def state(_request: Request) -> Response:
        with store.lock:
            return _json(store.state())

    async def counters(_request: Request) -> Response:
        return _json(store.counters())

    async def seed_orders(request: Request) -> Response:
        payload = await request.json()
        token = (payload.get("credentials") or {}).get("access_token")
        specs = payload.get("orders") or []

        def work():
            with store.lock:
                shop = store.ensure_shop(request.path_params["shop"], token)
                for spec in specs:
                    store.add_order(shop, render_order(store, shop, spec))

        await asyncio.to_thread(work)  # thousands of orders take seconds; keep the loop free
        return JSONResponse({"created": len(specs)})

    async def touch_order(request: Request) -> Response:
        payload = await request.json() if await request.body() else {}
        with store.lock:
            shop = store.shop(request.path_params["shop"])
            order = store.find_order(shop, request.path_params["legacy_id"]) if shop else None
            if order is None:
                return JSONResponse({"error": "no such order"}, status_code=404)
            if payload.get("updated_at"):
                order["updatedAt"] = iso(payload["updated_at"])
            for key, value in (payload.get("fields") or {}).items():
                order[key] = value  # test hook: overwrite any node field
            return _json({"order": {"id": order["id"], "updatedAt": order["updatedAt"]}})

    async def refund_order(request: Request) -> Response:
        payload = await request.json()
        with store.lock:
            shop = store.shop(request.path_params["shop"])
            order = store.find_order(shop, request.path_params["legacy_id"]) if shop else None
            if order is None:
                return JSONResponse({"error": "no such order"}, status_code=404)
            try:
                refund = add_refund(store, shop, order, payload)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
            return _json({"refund": refund_summary(refund), "order": {"id": order["id"], "updatedAt": order["updatedAt"]}})

    async def configure(request: Request) -> Response:
        payload = await request.json()
        with store.lock:
            shop = store.ensure_shop(request.path_params["shop"], payload.get("access_token"))
            shop.bucket.configure(payload.get("bucket_size"), payload.get("restore_rate"))
            if payload.get("fill"):
                shop.bucket.fill()
            if payload.get("max_query_cost") is not None:
                shop.max_query_cost = int(payload["max_query_cost"])
            if payload.get("bulk_seconds") is not None:
                shop.bulk_seconds = float(payload["bulk_seconds"])
            return _json({"shop": shop.name, "throttle_status": shop.bucket.status(),
                          "max_query_cost": shop.max_query_cost})

    routes = [
        Route("/shop/{shop}/admin/api/{version}/graphql.json", graphql_endpoint, methods=["POST"]),
        Route("/_files/bulk/{shop}/{op}.jsonl", bulk_file, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/state", state, methods=["GET"]),
        Route("/_sandbox/counters", counters, methods=["GET"]),
        Route("/_sandbox/faults", set_faults, methods=["GET", "POST"]),
        Route("/_sandbox/shops/{shop}/orders", seed_orders, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/{legacy_id}/touch", touch_order, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/{legacy_id}/refunds", refund_order, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/config", configure, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app
