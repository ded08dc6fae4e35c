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
  ``GET|POST /_sandbox/faults`` (see faults.py).
- ``POST /_sandbox/sites/<site>/orders`` ``{"credentials": {"consumer_key", "consumer_secret",
  "permissions"?}, "orders": [spec...], "settings"?: {"timezone_offset"}}`` -> ``{"created", "ids"}``.
- ``POST /_sandbox/sites/<site>/orders/<id>/touch`` ``{"date_modified_gmt"?, "status"?}``.
- ``POST /_sandbox/sites/<site>/orders/<id>/refunds`` ``{"amount"?, "reason"?, "line_items"?:
  [{"id", "quantity"}], "refunded_payment"?, "date_created_gmt"?}`` -> the refund (201).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.woocommerce import auth, errors, faults, listing, refunds
from sandbox.woocommerce.errors import WPError, error_response, wp_response
from sandbox.woocommerce.oauth1 import php_query
from sandbox.woocommerce.render import links, render_order, wc_date
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
]
REFUND_PARAMS = ("page", "per_page", "offset", "order", "orderby", "after", "before", "dates_are_gmt", "include")


def home_url(request: Request, site: str) -> str:
    """The site's home URL: fixed scheme/host/port of this server, not the Host
    header (notes §2: the base string uses home_url, not the Host header)."""
    scheme = "https" if auth.is_ssl(request.headers) else "http"
    server = request.scope.get("server")
    hostport = f"{server[0]}:{server[1]}" if server else request.headers.get("host", "localhost")
    return f"{scheme}://{hostport}/site/{site}"


def serialize(order: dict, home: str, fields: list[str] | None = None) -> dict:
    out = dict(order)
    out["payment_url"] = home + order["payment_url"]
    out["_links"] = links(order, home)
    if fields:
        # rest_filter_response_fields: top-level keys named in _fields.
        wanted = {f.split(".")[0] for f in fields}
        out = {k: v for k, v in out.items() if k in wanted}
    return out


class WooCommerceEmulator:
    def __init__(self, options: dict):
        self.store = Store(options)
        self.faults = faults.Faults()

    # ---- wc/v3 -------------------------------------------------------------
    async def wc_api(self, request: Request):
        site_name, rest = request.path_params["site"], request.path_params["rest"].rstrip("/")
        method = "GET" if request.method == "HEAD" else request.method
        label, handler, args = "/" + rest, None, {}
        for route_method, pattern, name, route_label in ROUTES:
            match = pattern.fullmatch(rest)
            if match and route_method == method:
                label, handler, args = route_label, getattr(self, name), match.groupdict()
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
        return response

    async def _dispatch(self, request: Request, site_name: str, rest: str, method: str, handler, args: dict):
        site = self.store.site(site_name) or Site(site_name)   # an unseeded site has no keys
        params = php_query(request.scope.get("query_string", b"").decode("latin-1"))
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
        return await handler(site, cred, params, home, **args)

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
        parents = [int(p) for p in listing.parse_list(params.get("parent")) if p.isdigit()]
        return self._refund_page(site, cred, params, home, "refunds", parents, True)

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
        return JSONResponse({"ok": True})

    async def state(self, request: Request):
        sites = {}
        for name, site in self.store.sites.items():
            sites[name] = {
                "orders": [site.orders[i] for i in sorted(site.orders)],
                "refunds": [site.refunds[i] for i in sorted(site.refunds)],
                "customers": dict(site.customers),
                "consumer_keys": sorted(site.credentials),
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

    async def seed_orders(self, request: Request):
        body = await request.json()
        site = self.store.site(request.path_params["site"], create=True)
        settings = body.get("settings") or {}
        if "timezone_offset" in settings:
            site.tz_offset = parse_offset(settings["timezone_offset"])
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
        text = body.get("date_modified_gmt")
        moment = (datetime.fromisoformat(text.replace("Z", "+00:00")) if text else datetime.now(timezone.utc))
        if moment.tzinfo:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        order["date_modified_gmt"] = wc_date(moment)
        order["date_modified"] = wc_date(moment + site.tz_offset)
        if body.get("status"):
            order["status"] = body["status"]
        return JSONResponse(order)


def create_app(options: dict | None = None) -> Starlette:
    emu = WooCommerceEmulator(options or {})
    app = Starlette(routes=[
        Route("/_sandbox/reset", emu.reset, methods=["POST"]),
        Route("/_sandbox/state", emu.state, methods=["GET"]),
        Route("/_sandbox/counters", emu.counters, methods=["GET"]),
        Route("/_sandbox/faults", emu.set_faults, methods=["GET", "POST"]),
        Route("/_sandbox/sites/{site}/orders", emu.seed_orders, methods=["POST"]),
        Route("/_sandbox/sites/{site}/orders/{id:int}/touch", emu.touch_order, methods=["POST"]),
        Route("/_sandbox/sites/{site}/orders/{id:int}/refunds", emu.create_refund, methods=["POST"]),
        Route("/site/{site}/wp-json/{rest:path}", emu.wc_api,
              methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    ])
    app.state.emulator = emu
    return app
