"""Starlette app of the Shopify emulator: the Admin GraphQL endpoint and the control API.

Shops live under ``/shop/<shop>`` so one emulator serves several stores; the
ShopifyAPI SDK reaches a shop by setting ``ShopifyResource.site`` to
``http://127.0.0.1:PORT/shop/<shop>/admin/api/<version>`` (notes §4 recipe A).

Options (``create_app(options)``, all optional): ``bucket_size`` (2000),
``restore_rate`` (100/s), ``max_query_cost`` (1000), ``bulk_seconds`` (0.2, how long a bulk
operation stays RUNNING), ``visible_days`` (None; 60 emulates an app without
``read_all_orders``, notes §1) — defaults for new shops; ``POST /_sandbox/shops/<shop>/config``
changes them per shop (and ``{"fill": true}`` refills the bucket). Faults: faults.py.

Webhooks (webhooks.py, delivery.py, rest_render.py): the shop config also takes
``api_secret`` (the app's client secret that signs deliveries, default
``shpss_sandbox_secret``), ``scopes`` (default ``["read_orders", "read_all_orders"]``;
without ``read_all_orders`` only 60 days of orders are visible), ``timezone_offset`` of REST
timestamps (``-05:00``) and the ``webhook_*`` delivery knobs. Control routes:
``GET|POST /_sandbox/shops/<shop>/webhooks`` (``{"topic": "orders/create", "address": url}``),
``DELETE /_sandbox/shops/<shop>/webhooks/<legacy id>``, ``GET .../webhooks/deliveries``
(``?topic=&limit=``) and ``POST .../webhooks/config``. ``POST .../orders/<legacy id>/pay`` marks a
pending or authorized order paid (payments.py), which fires orders/paid.

Seeding: ``POST /_sandbox/shops/<shop>/orders`` renders the order specs it is sent;
``POST /_sandbox/shops/<shop>/orders/generate`` (``{"credentials", "seed", "count", "start"?,
"first_number"?, "gateways"?, "variety"?}``) generates the same specs here (sandbox/generator.py
``iter_orders``) and renders them, so a benchmark seeds 100,000 orders without sending them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
from datetime import datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.generator import iter_orders
from sandbox.shopify import faults as faults_module
from sandbox.shopify import schema as schema_module
from sandbox.shopify import webhooks
from sandbox.shopify.cancel import cancel_order
from sandbox.shopify.delivery import Engine
from sandbox.shopify.executor import cost_extension, run_graphql
from sandbox.shopify.payments import pay_order
from sandbox.shopify.refunds import add_refund, refund_summary
from sandbox.shopify.render import iso, render_order
from sandbox.shopify.store import Store

# Body Shopify sends for a bad or missing token (brief; HTTP 401).
LOG = logging.getLogger("sandbox.shopify")
VERSION = "2026-01"  # API version of control-API subscriptions (X-Shopify-API-Version)
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def _json(payload, status: int = 200) -> Response:
    # json.dumps keeps big ints exact; no float conversion anywhere (notes §3 "Large ints").
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


def create_app(options: dict | None = None) -> Starlette:
    """Build the emulator; the Admin schema starts loading in the background now."""
    options = dict(options or {})
    store = Store(options)
    engine = Engine(store, options)
    store.listener = webhooks.Events(engine)
    faults = faults_module.Faults()
    schema_module.start_loading()

    def counted(response: Response) -> Response:
        store.count(response.status_code)
        return response

    async def graphql_endpoint(request: Request) -> Response:
        shop = store.shop(request.path_params["shop"])
        if shop is None:
            return counted(_json({"errors": "Not Found"}, 404))
        shop.requests += 1
        if request.headers.get("x-shopify-access-token") != shop.token:
            return counted(_json(INVALID_TOKEN, 401))
        rule = faults.take(shop.name)
        injected = await faults_module.apply(rule, cost_extension(shop, 0, None)) if rule else None
        if injected is not None:
            if rule.get("graphql_code") == "THROTTLED" or injected.status_code == 429:
                store.throttled += 1
                shop.injected_throttles += 1
            return counted(injected)
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return counted(_json({"errors": {"query": "Required parameter missing or invalid"}}, 400))
        base_url = str(request.base_url).rstrip("/")
        extra = {"base_url": base_url, "api_version": request.path_params["version"]}
        debug = request.headers.get("shopify-graphql-cost-debug") == "1"

        def work():
            schema_module.get_schema()  # first request waits for the background load
            with store.lock:
                try:
                    return run_graphql(store, shop, body, extra, debug=debug)
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
        gc.unfreeze()  # what generate_orders froze may be collected again
        engine.reset()
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

    async def traffic(_request: Request) -> Response:
        with store.lock:
            return _json(store.traffic())

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

    async def generate_orders(request: Request) -> Response:
        """Seed ``count`` generated orders without sending their specs (benchmarks seed 100,000):
        ``{"credentials", "seed", "count", "start"?, "first_number"?, "gateways"?, "variety"?}`` gives the
        same orders as posting ``generate_orders(seed, count, ...)`` to ``seed_orders``."""
        payload = await request.json()
        token = (payload.get("credentials") or {}).get("access_token")
        try:
            count = int(payload["count"])
            kwargs = {"first_number": int(payload.get("first_number", 1001)),
                      "variety": bool(payload.get("variety", True))}
            if payload.get("start"):
                kwargs["start"] = datetime.fromisoformat(str(payload["start"]).replace("Z", "+00:00"))
            if payload.get("gateways"):
                kwargs["gateways"] = tuple(payload["gateways"])
            specs = iter_orders(int(payload.get("seed", 7)), count, **kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad generate request: {exc}"}, status_code=422)

        def work():
            while True:
                with store.lock:  # a slice at a time: API requests are served in between
                    shop = store.ensure_shop(request.path_params["shop"], token)
                    batch = list(itertools.islice(specs, 500))
                    for spec in batch:
                        store.add_order(shop, render_order(store, shop, spec))
                # The orders live until a reset: out of the cyclic GC's sight, so that its full collections
                # do not walk every order again and again (a third of the time of seeding 100,000).
                gc.freeze()
                if len(batch) < 500:
                    return

        await asyncio.to_thread(work)
        return JSONResponse({"created": count})

    async def touch_order(request: Request) -> Response:
        payload = await request.json() if await request.body() else {}
        with store.lock:
            shop = store.shop(request.path_params["shop"])
            order = store.find_order(shop, request.path_params["legacy_id"]) if shop else None
            if order is None:
                return JSONResponse({"error": "no such order"}, status_code=404)
            before = store.snapshot(order)
            if payload.get("updated_at"):
                order["updatedAt"] = iso(payload["updated_at"])
            for key, value in (payload.get("fields") or {}).items():
                order[key] = value  # test hook: overwrite any node field
            store.order_changed(shop, order, before)  # orders/updated (+ paid, cancelled...)
            return _json({"order": {"id": order["id"], "updatedAt": order["updatedAt"]}})

    def change_order(request: Request, payload: dict, action, answer) -> Response:
        """Apply ``action(shop, order, payload)`` to one order, then emit its webhook events.

        404 for an unknown shop or order, 422 when the action refuses (ValueError);
        ``answer(order, result)`` is the JSON body.
        """
        with store.lock:
            shop = store.shop(request.path_params["shop"])
            order = store.find_order(shop, request.path_params["legacy_id"]) if shop else None
            if order is None:
                return JSONResponse({"error": "no such order"}, status_code=404)
            before = store.snapshot(order)
            try:
                result = action(shop, order, payload)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
            store.order_changed(shop, order, before)  # the topics this change fires (webhooks.py)
            return _json(answer(order, result))

    def _status(order: dict, _result) -> dict:
        return {"order": {"id": order["id"], "updatedAt": order["updatedAt"],
                          "displayFinancialStatus": order["displayFinancialStatus"]}}

    async def refund_order(request: Request) -> Response:
        # refunds/create + orders/updated
        return change_order(request, await request.json(),
                            lambda shop, order, payload: add_refund(store, shop, order, payload),
                            lambda order, refund: {"refund": refund_summary(refund),
                                                   "order": {"id": order["id"], "updatedAt": order["updatedAt"]}})

    async def cancel(request: Request) -> Response:
        # orders/cancelled + orders/updated (+ refund)
        payload = await request.json() if await request.body() else {}
        return change_order(request, payload,
                            lambda shop, order, payload: cancel_order(store, shop, order, payload), _status)

    async def pay(request: Request) -> Response:
        # orders/paid + order_transactions/create + orders/updated
        payload = await request.json() if await request.body() else {}
        return change_order(request, payload, lambda shop, order, payload: pay_order(store, order, payload),
                            _status)

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
            if payload.get("scopes") is not None:  # read_all_orders absent -> 60-day window
                shop.set_scopes(payload["scopes"])
            if "visible_days" in payload:  # null = read_all_orders granted
                shop.visible_days = payload["visible_days"]
            if payload.get("api_secret"):
                shop.api_secret = str(payload["api_secret"])
            if payload.get("timezone_offset"):
                shop.timezone_offset = str(payload["timezone_offset"])
            try:
                hooks = engine.set_config(shop.name, {k: v for k, v in payload.items() if k.startswith("webhook_")})
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
            return _json({"shop": shop.name, "throttle_status": shop.bucket.status(),
                          "max_query_cost": shop.max_query_cost, "scopes": shop.scopes,
                          "visible_days": shop.visible_days, "webhooks": hooks})

    # --- webhooks control (webhooks.py, delivery.py) ---------------------------------------

    async def subscriptions(request: Request) -> Response:
        name = request.path_params["shop"]
        if request.method == "GET":
            with store.lock:
                shop = store.shop(name)
                return _json({"webhook_subscriptions": shop.webhook_subscriptions if shop else []})
        payload = await request.json()
        enum = webhooks.ENUMS.get(payload.get("topic") or "", payload.get("topic"))
        with store.lock:
            shop = store.ensure_shop(name, payload.get("access_token"))
            node, errors = webhooks.add_subscription(
                store, shop, enum, payload.get("address"), api_version=payload.get("api_version") or VERSION,
                include_fields=payload.get("include_fields"), field="address",
                origin="app_config" if payload.get("app_config") else "admin_api")
        if errors:
            return _json({"errors": errors}, 422)
        return _json({"webhook_subscription": node}, 201)

    async def delete_subscription(request: Request) -> Response:
        with store.lock:
            shop = store.shop(request.path_params["shop"])
            gid = f"gid://shopify/WebhookSubscription/{request.path_params['legacy_id']}"
            if shop is None or not webhooks.remove_subscription(shop, gid):
                return JSONResponse({"error": "no such subscription"}, status_code=404)
        return JSONResponse({"deleted": gid})

    async def deliveries(request: Request) -> Response:
        limit = request.query_params.get("limit")
        return _json(engine.report(request.path_params["shop"], request.query_params.get("topic"),
                                   int(limit) if limit and limit.isdigit() else None))

    async def webhook_config(request: Request) -> Response:
        try:
            return _json({"config": engine.set_config(request.path_params["shop"], await request.json())})
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)

    routes = [
        Route("/shop/{shop}/admin/api/{version}/graphql.json", graphql_endpoint, methods=["POST"]),
        Route("/_files/bulk/{shop}/{op}.jsonl", bulk_file, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/state", state, methods=["GET"]),
        Route("/_sandbox/counters", counters, methods=["GET"]),
        Route("/_sandbox/traffic", traffic, methods=["GET"]),
        Route("/_sandbox/faults", set_faults, methods=["GET", "POST"]),
        Route("/_sandbox/shops/{shop}/orders", seed_orders, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/generate", generate_orders, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/{legacy_id}/touch", touch_order, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/{legacy_id}/refunds", refund_order, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/{legacy_id}/cancel", cancel, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/orders/{legacy_id}/pay", pay, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/config", configure, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/webhooks", subscriptions, methods=["GET", "POST"]),
        Route("/_sandbox/shops/{shop}/webhooks/deliveries", deliveries, methods=["GET"]),
        Route("/_sandbox/shops/{shop}/webhooks/config", webhook_config, methods=["POST"]),
        Route("/_sandbox/shops/{shop}/webhooks/{legacy_id}", delete_subscription, methods=["DELETE"]),
    ]

    def bound(route: Route) -> Route:
        """Every handler first hands the server loop to the delivery engine (it needs it
        to start deliveries published from worker threads)."""
        handler = route.endpoint

        async def endpoint(request: Request) -> Response:
            engine.bind(asyncio.get_running_loop())
            return await handler(request)
        return Route(route.path, endpoint, methods=[m for m in route.methods if m != "HEAD"])

    app = Starlette(routes=[bound(r) for r in routes])
    app.state.store = store
    app.state.webhooks = engine
    return app
