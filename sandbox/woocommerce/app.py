"""WooCommerce emulator: Starlette app with the wc/v3 REST routes and the
``/_sandbox`` control API (docs/sandbox.md).

Sites live under ``/site/<site>``; the official client's ``url`` is
``http://127.0.0.1:PORT/site/<site>``. Request handling follows the order WP
applies it: authentication errors (``rest_authentication_errors``), API-key
read/write permission (``rest_pre_dispatch``), route match
(``rest_no_route``), parameter validation (``rest_invalid_param``), then the
controller's permission callback (``woocommerce_rest_cannot_view``).

Options (``--options '{"woocommerce": {...}}'``): ``timezone_offset`` ("+00:00",
site local time for the non-``_gmt`` dates), ``wc_version`` ("8.9.3").

Control API (JSON):
- ``POST /_sandbox/reset``, ``GET /_sandbox/state``, ``GET /_sandbox/counters``,
  ``GET /_sandbox/traffic`` (sandbox/traffic.py), ``GET|POST /_sandbox/faults`` (see faults.py).
- ``POST /_sandbox/sites/<site>/orders`` ``{"credentials": {"consumer_key", "consumer_secret",
  "permissions"?}, "orders": [spec...], "settings"?: {"timezone_offset"}}`` -> ``{"created", "ids"}``.
- ``POST /_sandbox/sites/<site>/orders/<id>/touch`` ``{"date_modified_gmt"?, "status"?}``.
- ``POST /_sandbox/sites/<site>/orders/<id>/refunds`` ``{"amount"?, "reason"?, "line_items"?:
  [{"id", "quantity"}], "refunded_payment"?, "date_created_gmt"?}`` -> the refund (201).
- ``DELETE /_sandbox/sites/<site>/orders/<id>`` moves the order to the trash (``order.deleted``);
  ``POST /_sandbox/sites/<site>/orders/<id>/untrash`` restores it (``order.restored``).
- ``GET /_sandbox/sites/<site>/webhooks/deliveries`` -> ``{"deliveries": [...], "pending", "config"}``;
  ``GET|POST /_sandbox/sites/<site>/webhooks/config`` ``{"delay_seconds", "timeout_seconds",
  "ping_timeout_seconds", "drop_rate", "seed"}`` (see delivery.py).

Webhooks (notes §3): ``/wc/v3/webhooks`` CRUD (webhooks.py); seeding an order fires
``woocommerce_new_order``, touching it ``woocommerce_update_order``, a refund
``woocommerce_order_refunded``; deliveries run in the background (delivery.py, hookshot.py).
More options: ``wp_version`` ("6.5.3", for the Hookshot User-Agent), ``webhook_delay_seconds``,
``webhook_timeout_seconds``, ``webhook_ping_timeout_seconds``, ``webhook_drop_rate``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.woocommerce import auth, delivery, errors, faults, listing, refunds, webhooks
from sandbox.woocommerce.errors import WPError, error_response, wp_response
from sandbox.woocommerce.oauth1 import php_query
from sandbox.woocommerce.render import render_order, serialize, wc_date
from sandbox.woocommerce.store import Credential, Site, Store, parse_offset

# (method, pattern, handler name, counter label); patterns match the path after
# /wp-json/ with the trailing slash removed, case-insensitively (WP_REST_Server).
ROUTES = [
    ("GET", re.compile(r"wc/v3/orders", re.I), "list_orders", "/wc/v3/orders"),
    ("GET", re.compile(r"wc/v3/orders/(?P<id>\d+)", re.I), "get_order", "/wc/v3/orders/<id>"),
    ("GET", re.compile(r"wc/v3/orders/(?P<order_id>\d+)/refunds", re.I), "list_order_refunds",
     "/wc/v3/orders/<id>/refunds"),
    ("GET", re.compile(r"wc/v3/orders/(?P<order_id>\d+)/refunds/(?P<id>\d+)", re.I), "get_refund",
     "/wc/v3/orders/<id>/refunds/<id>"),
    ("GET", re.compile(r"wc/v3/refunds", re.I), "list_refunds", "/wc/v3/refunds"),
    ("GET", re.compile(r"wc/v3/webhooks", re.I), "webhooks.list", "/wc/v3/webhooks"),
    ("POST", re.compile(r"wc/v3/webhooks", re.I), "webhooks.create", "/wc/v3/webhooks"),
    ("GET", re.compile(r"wc/v3/webhooks/(?P<id>\d+)", re.I), "webhooks.get", "/wc/v3/webhooks/<id>"),
    ("DELETE", re.compile(r"wc/v3/webhooks/(?P<id>\d+)", re.I), "webhooks.delete", "/wc/v3/webhooks/<id>"),
] + [   # WP_REST_Server::EDITABLE is POST, PUT and PATCH.
    (m, re.compile(r"wc/v3/webhooks/(?P<id>\d+)", re.I), "webhooks.update", "/wc/v3/webhooks/<id>")
    for m in ("POST", "PUT", "PATCH")
]
REFUND_PARAMS = ("page", "per_page", "offset", "order", "orderby", "after", "before", "dates_are_gmt", "include")


def _version(text: str) -> tuple[int, ...]:
    """``"8.9.3"`` -> ``(8, 9, 3)``; what is not a number counts as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in str(text).split("."))


def home_url(request: Request, site: str) -> str:
    """The site's home URL: fixed scheme/host/port of this server, not the Host
    header (notes §2: the base string uses home_url, not the Host header)."""
    scheme = "https" if auth.is_ssl(request.headers) else "http"
    server = request.scope.get("server")
    hostport = f"{server[0]}:{server[1]}" if server else request.headers.get("host", "localhost")
    return f"{scheme}://{hostport}/site/{site}"


async def _body_params(request: Request) -> tuple[dict, dict | WPError]:
    """(form params, JSON params) of the request body, as WP_REST_Request sees them;
    a malformed JSON body gives a ``rest_invalid_json`` error instead of the JSON params
    (raised only after authentication and routing, as has_valid_params() does)."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not raw:
        return {}, {}
    if ctype == "application/x-www-form-urlencoded":
        return php_query(raw.decode("latin-1")), {}
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}, WPError("rest_invalid_json", "Invalid JSON body passed.", 400,
                               json_error_code=4, json_error_message="Syntax error")
        return {}, value if isinstance(value, dict) else {}
    return {}, {}


def _moment(text: str | None) -> datetime:
    """Naive UTC from an optional ISO string (default: now)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


class WooCommerceEmulator:
    def __init__(self, options: dict):
        self.store = Store(options)
        self.faults = faults.Faults()
        self.engine = delivery.Engine(self.store, options)
        self.webhooks = webhooks.WebhookAPI(self.engine)

    # ---- wc/v3 -------------------------------------------------------------
    async def wc_api(self, request: Request):
        site_name, rest = request.path_params["site"], request.path_params["rest"].rstrip("/")
        method = "GET" if request.method == "HEAD" else request.method
        label, handler, args = "/" + rest, None, {}
        for route_method, pattern, name, route_label in ROUTES:
            match = pattern.fullmatch(rest)
            if match and route_method == method:
                owner, _, attr = name.rpartition(".")
                label, args = route_label, match.groupdict()
                handler = getattr(getattr(self, owner) if owner else self, attr)
                break
        rule = self.faults.take(site_name, f"{request.method} {label}")
        # Injected host/proxy faults answer before WordPress runs (no nonce is used up).
        response = await faults.apply(rule) if rule else None
        if response is None:
            try:
                response = await self._dispatch(request, site_name, rest, method, handler, args)
            except WPError as err:
                response = error_response(err)
        self.store.count(f"{request.method} {label}", response.status_code)
        self.store.count_site(site_name, response.status_code)
        return response

    async def _dispatch(self, request: Request, site_name: str, rest: str, method: str, handler, args: dict):
        site = self.store.site(site_name) or Site(site_name)   # an unseeded site has no keys
        params = php_query(request.scope.get("query_string", b"").decode("latin-1"))
        form, body = await _body_params(request)
        params = {**params, **form}   # OAuth signs $_GET + $_POST (notes §2)
        home = home_url(request, site_name)
        cred = None
        if "wc/" in "/" + rest + "/":   # is_request_to_rest_api(): only WC routes use WC auth
            raw_path = request.scope.get("raw_path") or request.url.path.encode()
            base_url = home.split("/site/")[0] + raw_path.decode("latin-1")
            cred, error = auth.authenticate(request.method, base_url, site, params, request.headers)
            if error:
                raise error
            error = auth.check_key_permissions(cred, method)
            if error:
                raise error
        if handler is None:
            raise errors.no_route()
        if isinstance(body, WPError):
            raise body
        # WP_REST_Request::get_params(): JSON body over POST body over query.
        return await handler(site, cred, {**params, **body}, home, **args)

    async def list_orders(self, site: Site, cred, params: dict, home: str):
        q = listing.parse_query(params, site.tz_offset)
        if cred is None:
            raise WPError("woocommerce_rest_cannot_view", errors.CANNOT_LIST, 401)
        matched = listing.select(list(site.orders.values()), q)
        page, total, pages = listing.paginate(matched, q)
        fields = listing.parse_list(params.get("_fields")) or None
        headers = listing.headers(f"{home}/wp-json/wc/v3/orders", params, q, total, pages)
        return wp_response([serialize(o, home, fields) for o in page], headers=headers)

    async def get_order(self, site: Site, cred, params: dict, home: str, id: str):
        order = site.orders.get(int(id))
        # get_item_permissions_check only refuses an order that exists.
        if order is None:
            raise WPError("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        if cred is None:
            raise WPError("woocommerce_rest_cannot_view", errors.CANNOT_VIEW, 401)
        return wp_response(serialize(order, home, listing.parse_list(params.get("_fields")) or None))

    async def list_order_refunds(self, site: Site, cred, params: dict, home: str, order_id: str):
        return self._refund_page(site, cred, params, home, f"orders/{order_id}/refunds", [int(order_id)], False)

    async def list_refunds(self, site: Site, cred, params: dict, home: str):
        # WC_REST_Refunds_Controller arrived in WooCommerce 9.0: an older site has no such route. Its
        # prepare_objects_query unsets post_parent__in, so ``parent`` filters nothing here (notes §1).
        if _version(site.wc_version) < (9, 0):
            raise errors.no_route()
        return self._refund_page(site, cred, params, home, "refunds", [], True)

    def _refund_page(self, site, cred, params, home, path, parents, with_parent):
        q = listing.parse_query({k: v for k, v in params.items() if k in REFUND_PARAMS}, site.tz_offset)
        if q["orderby"] not in ("date", "id", "include"):
            q["orderby"] = "date"
        if cred is None:
            raise WPError("woocommerce_rest_cannot_view", errors.CANNOT_LIST, 401)
        matched = refunds.select(list(site.refunds.values()), q, parents)
        page, total, pages = listing.paginate(matched, q)
        headers = listing.headers(f"{home}/wp-json/wc/v3/{path}", params, q, total, pages)
        return wp_response([refunds.serialize_refund(r, home, with_parent) for r in page], headers=headers)

    async def get_refund(self, site: Site, cred, params: dict, home: str, order_id: str, id: str):
        # WC v2 order-refunds controller: unknown refund, unknown order, then wrong parent.
        refund = site.refunds.get(int(id))
        if refund is None:
            raise WPError("woocommerce_rest_shop_order_refund_invalid_id", "Invalid ID.", 404)
        if cred is None:
            raise WPError("woocommerce_rest_cannot_view", errors.CANNOT_VIEW, 401)
        if int(order_id) not in site.orders:
            raise WPError("woocommerce_rest_invalid_order_id", "Invalid order ID.", 404)
        if refund["parent_id"] != int(order_id):
            raise WPError("woocommerce_rest_invalid_order_refund_id", "Invalid order refund ID.", 404)
        return wp_response(refunds.serialize_refund(refund, home, False))

    # ---- control API -------------------------------------------------------
    async def reset(self, request: Request):
        self.store.reset()
        self.faults.set([])
        self.engine.reset()
        return JSONResponse({"ok": True})

    async def state(self, request: Request):
        sites = {}
        for name, site in self.store.sites.items():
            sites[name] = {
                "orders": [site.orders[i] for i in sorted(site.orders)],
                "refunds": [site.refunds[i] for i in sorted(site.refunds)],
                "customers": dict(site.customers),
                "consumer_keys": sorted(site.credentials),
                "webhooks": [site.webhooks[i].state() for i in sorted(site.webhooks)],
            }
        return JSONResponse({"sites": sites})

    async def counters(self, request: Request):
        by_endpoint = {k: dict(v) for k, v in self.store.counters.items()}
        by_status: dict[str, int] = {}
        for statuses in by_endpoint.values():
            for status, n in statuses.items():
                by_status[status] = by_status.get(status, 0) + n
        # Same top-level keys as the other emulators; "throttled" = 429s sent (only injected ones:
        # core wc/v3 has no rate limit, notes §5).
        return JSONResponse({"requests": sum(by_status.values()), "by_endpoint": by_endpoint,
                             "by_status": by_status, "throttled": by_status.get("429", 0)})

    async def traffic(self, request: Request):
        return JSONResponse({"accounts": {site: t.report({"requests_per_second": None})
                                          for site, t in sorted(self.store.traffic.items())}})

    async def seed_orders(self, request: Request):
        body = await request.json()
        site = self.store.site(request.path_params["site"], create=True)
        settings = body.get("settings") or {}
        if "timezone_offset" in settings:
            site.tz_offset = parse_offset(settings["timezone_offset"])
        if "wc_version" in settings:  # 9.0 and later serve GET /refunds
            site.wc_version = str(settings["wc_version"])
        creds = body.get("credentials") or []
        for c in creds if isinstance(creds, list) else [creds]:
            site.credentials[c["consumer_key"]] = Credential(
                c["consumer_key"], c["consumer_secret"], c.get("permissions", "read_write"), int(c.get("user_id", 1)))
        ids = []
        try:
            for spec in body.get("orders") or []:
                order = render_order(site, spec)
                site.orders[order["id"]] = order
                ids.append(order["id"])
                self.engine.fire(site, "woocommerce_new_order", order["id"], home_url(request, site.name))
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad order spec: {exc!r}", "created": len(ids)}, status_code=400)
        return JSONResponse({"created": len(ids), "ids": ids})

    async def create_refund(self, request: Request):
        site = self.store.site(request.path_params["site"])
        order = site.orders.get(request.path_params["id"]) if site else None
        if order is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        try:
            refund = refunds.create_refund(site, order, await request.json())
        except (refunds.RefundError, KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        # wc_create_refund fires woocommerce_order_refunded; the order save fires update_order too.
        for action in ("woocommerce_order_refunded", "woocommerce_update_order"):
            self.engine.fire(site, action, order["id"], home_url(request, site.name))
        return JSONResponse(refund, status_code=201)

    async def set_faults(self, request: Request):
        if request.method == "POST":
            self.faults.set((await request.json()).get("faults", []))
        return JSONResponse({"faults": self.faults.rules})

    async def touch_order(self, request: Request):
        site = self.store.site(request.path_params["site"])
        order = site.orders.get(request.path_params["id"]) if site else None
        if order is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        body = await request.json() if await request.body() else {}
        moment = _moment(body.get("date_modified_gmt"))
        order["date_modified_gmt"] = wc_date(moment)
        order["date_modified"] = wc_date(moment + site.tz_offset)
        if body.get("status"):
            order["status"] = body["status"]
        self.engine.fire(site, "woocommerce_update_order", order["id"], home_url(request, site.name))
        return JSONResponse(order)

    def _order(self, request: Request):
        site = self.store.site(request.path_params["site"])
        return site, (site.orders.get(request.path_params["id"]) if site else None)

    def _set_modified(self, site: Site, order: dict) -> None:
        moment = _moment(None).replace(microsecond=0)
        order["date_modified_gmt"] = wc_date(moment)
        order["date_modified"] = wc_date(moment + site.tz_offset)

    async def trash_order(self, request: Request):
        """wp_trash_post / woocommerce_trash_order: status ``trash``, the old status kept."""
        site, order = self._order(request)
        if order is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        if order["status"] == "trash":
            return JSONResponse({"error": "order is already in the trash"}, status_code=409)
        # wp_trash_post fires before the status changes (notes §3: order.deleted = moved to trash).
        self.engine.fire(site, "wp_trash_post", order["id"], home_url(request, site.name))
        site.trash_status[order["id"]] = order["status"]
        order["status"] = "trash"
        self._set_modified(site, order)
        return JSONResponse(order)

    async def untrash_order(self, request: Request):
        """untrashed_post: the status from before the trash comes back (WC's wp_untrash_post_status)."""
        site, order = self._order(request)
        if order is None or order["status"] != "trash":
            return JSONResponse({"error": "no such order in the trash"}, status_code=404)
        order["status"] = site.trash_status.pop(order["id"], "pending")
        self._set_modified(site, order)
        self.engine.fire(site, "untrashed_post", order["id"], home_url(request, site.name))
        return JSONResponse(order)

    async def webhook_deliveries(self, request: Request):
        return JSONResponse(self.engine.report(request.path_params["site"]))

    async def webhook_config(self, request: Request):
        name = request.path_params["site"]
        if request.method == "POST":
            try:
                return JSONResponse(self.engine.set_config(name, await request.json()))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.engine.config(name))


def create_app(options: dict | None = None) -> Starlette:
    emu = WooCommerceEmulator(options or {})
    app = Starlette(routes=[
        Route("/_sandbox/reset", emu.reset, methods=["POST"]),
        Route("/_sandbox/state", emu.state, methods=["GET"]),
        Route("/_sandbox/counters", emu.counters, methods=["GET"]),
        Route("/_sandbox/traffic", emu.traffic, methods=["GET"]),
        Route("/_sandbox/faults", emu.set_faults, methods=["GET", "POST"]),
        Route("/_sandbox/sites/{site}/orders", emu.seed_orders, methods=["POST"]),
        Route("/_sandbox/sites/{site}/orders/{id:int}/touch", emu.touch_order, methods=["POST"]),
        Route("/_sandbox/sites/{site}/orders/{id:int}/refunds", emu.create_refund, methods=["POST"]),
        Route("/_sandbox/sites/{site}/orders/{id:int}", emu.trash_order, methods=["DELETE"]),
        Route("/_sandbox/sites/{site}/orders/{id:int}/untrash", emu.untrash_order, methods=["POST"]),
        Route("/_sandbox/sites/{site}/webhooks/deliveries", emu.webhook_deliveries, methods=["GET"]),
        Route("/_sandbox/sites/{site}/webhooks/config", emu.webhook_config, methods=["GET", "POST"]),
        Route("/site/{site}/wp-json/{rest:path}", emu.wc_api,
              methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    ])
    app.state.emulator = emu
    return app
