"""QuickBooks Online emulator: the v3 REST routes (create/read/update/delete/void, query, batch, CDC).

``create_app(options)`` returns the Starlette app that ``sandbox/runner.py`` serves. Paths,
auth and bodies follow ``shared/notes/quickbooks.md``; only the base URL differs, so
python-quickbooks 0.9.12 talks to it with ``qb.api_url_v3 = "http://127.0.0.1:PORT/v3"``.
The control API (``/_sandbox/...``) lives in ``control.py``; OAuth in ``oauth.py``.

Options (``--options '{"quickbooks": {...}}'``): ``latency_ms``, ``requests_per_minute`` (500),
``batch_requests_per_minute`` (40, per realm+app), ``batch_requests_per_realm_per_minute`` (120),
``max_concurrent`` (10), ``requests_per_second`` (off; per realm+app), ``throttle_format``
("xml" | "json"), ``auth_fault_format`` ("json" | "xml"), ``refresh_grace_seconds`` (86400), ``access_token_ttl_seconds`` (3600),
``replay_faults`` (false), ``utc_offset`` ("-07:00"), ``company_settings`` (defaults for new companies).
``POST /_sandbox/options`` changes them at run time until the next reset.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.quickbooks import batch as batch_ops
from sandbox.quickbooks import control, entities, faults, query, tax
from sandbox.quickbooks.idempotency import MAX_BATCH_REQUEST_ID, MAX_BID, MAX_REQUEST_ID, ReplayStore
from sandbox.quickbooks.oauth import OAuthServer
from sandbox.quickbooks.store import ENTITIES, SEED, Company
from sandbox.quickbooks.wire import Clock, dumps, json_response, loads, raw_response
from sandbox.traffic import AccountTraffic, token_label


class Emulator:
    """All state of one QuickBooks emulator: companies, tokens, replays, counters, faults."""

    def __init__(self, options: dict):
        self.base_options = dict(options or {})
        self.options = dict(self.base_options)
        self.clock = Clock(self.options.get("utc_offset", "-07:00"))
        self.oauth = OAuthServer(self.clock, self.options, on_realm=self.company)
        self.reset()

    def reset(self) -> None:
        self.options = dict(self.base_options)
        self.companies: dict[str, Company] = {}
        self.oauth.reset()
        self.replays = ReplayStore(bool(self.options.get("replay_faults", False)))
        self.counters = {"requests": 0, "by_endpoint": {}, "throttled": 0, "writes": 0, "replays": 0}
        self.faults: list[dict] = []
        self.windows: dict[str, deque] = {}
        self.in_flight: dict[str, int] = {}
        self.traffic: dict[str, AccountTraffic] = {}  # per realm, for GET /_sandbox/traffic
        self.clock.skew = 0.0
        self.configure({})

    def configure(self, changes: dict) -> None:
        """Merge option changes (``POST /_sandbox/options``) into the parts that cache them."""
        self.options.update(changes)
        self.oauth.grace = float(self.options.get("refresh_grace_seconds", 86_400))
        self.oauth.access_ttl = int(self.options.get("access_token_ttl_seconds", 3600))
        self.replays.replay_faults = bool(self.options.get("replay_faults", False))

    def company(self, realm: str, settings: dict | None = None) -> Company:
        """The company for ``realm``, created with the seed chart (notes §1) on first use."""
        company = self.companies.get(realm)
        if company is None:
            merged = dict(self.options.get("company_settings", {}))
            merged.update(settings or {})
            company = self.companies[realm] = Company(realm, self.clock, merged)
            tax.seed(company)
            for entity, rows in SEED.items():
                for row in rows:
                    entities.create(company, entity, dict(row))
        elif settings:
            company.settings.update(settings)
        return company

    # -- request plumbing ------------------------------------------------------------------
    def count(self, endpoint: str, status: int) -> None:
        self.counters["requests"] += 1
        bucket = self.counters["by_endpoint"].setdefault(endpoint, {"total": 0})
        bucket["total"] += 1
        bucket[str(status)] = bucket.get(str(status), 0) + 1
        if status == 429:
            self.counters["throttled"] += 1

    def traffic_of(self, realm: str) -> AccountTraffic:
        traffic = self.traffic.get(realm)
        if traffic is None:
            traffic = self.traffic[realm] = AccountTraffic()
        return traffic

    def configured_limits(self) -> dict:
        """The limits ``/_sandbox/traffic`` reports beside each window's figures (options as now)."""
        options = self.options
        return {"requests_per_minute": int(options.get("requests_per_minute", 500)),
                "batch_requests_per_minute": int(options.get("batch_requests_per_minute", 40)),
                "batch_requests_per_realm_per_minute": int(options.get("batch_requests_per_realm_per_minute", 120)),
                "requests_per_second": int(options["requests_per_second"]) if options.get("requests_per_second")
                else None}

    def fault_response(self, fault: faults.Fault, request: Request, force_xml: bool = False) -> Response:
        if force_xml or _wants_xml(request):
            return raw_response(fault.xml(self.clock.stamp()).encode("utf-8"), fault.status, "application/xml")
        return json_response(fault.envelope(self.clock.stamp()), fault.status)

    def _authenticate(self, request: Request, realm: str) -> Response | None:
        token = _bearer(request)
        realms, why = self.oauth.realms_of(token) if token else (None, "Missing bearer token")
        epoch_ms = int(self.clock.now() * 1000)
        if realms is None:
            if self.options.get("auth_fault_format") == "xml":
                return self.fault_response(faults.auth_failed_xml(), request, force_xml=True)
            return json_response(faults.auth_failed_json(epoch_ms, why), 401)
        if realm not in realms:
            return json_response(faults.forbidden_json(epoch_ms), 403)
        return None

    async def _throttle(self, request: Request, realm: str) -> Response | None:
        """Sliding one-minute windows and a concurrency cap -> 429, XML by default (notes §3).

        Every call costs 1 against 500/min per realm; a batch costs one per item there ("each
        item metered like a normal call", notes §2.2) and 1 against 40 batch requests/min per
        realm+app and 120/min per realm. The app is the OAuth client that got the token (the
        token itself for control-API tokens). A request that does not fit is refused whole and
        consumes nothing. Plus 10 concurrent requests per realm (notes §3, 2016 policy), and, only
        when the ``requests_per_second`` option is set, that many per second per realm+app (the
        limits page's "10 requests per second per realm and app", notes §3; off by default).
        """
        now = self.clock.now()
        cost = 1
        token = _bearer(request)
        app_id = self.oauth.app_of(token)
        # How /_sandbox/traffic names the app: the OAuth client id, or a hash of a control-API token.
        app = token_label(app_id) if app_id == token else app_id
        windows = []  # (key, traffic name, limit, weight, span in seconds)
        if request.url.path.endswith("/batch"):
            cost = await batch_ops.item_count(request)
            windows += [(f"{realm}/batch/{app_id}", f"batch_requests_per_minute:{app}",
                         int(self.options.get("batch_requests_per_minute", 40)), 1, 60),
                        (f"{realm}/batch", "batch_requests_per_realm_per_minute",
                         int(self.options.get("batch_requests_per_realm_per_minute", 120)), 1, 60)]
        windows.insert(0, (realm, "requests_per_minute", int(self.options.get("requests_per_minute", 500)), cost, 60))
        if self.options.get("requests_per_second"):
            windows.append((f"{realm}/second/{app_id}", f"requests_per_second:{app}",
                            int(self.options["requests_per_second"]), 1, 1))
        traffic = self.traffic_of(realm)
        traffic.concurrency.offer()
        over = self.in_flight.get(realm, 0) >= int(self.options.get("max_concurrent", 10))
        for key, name, limit, weight, span in windows:
            traffic.limit(name, span).offered.add(now, weight)
            window = self.windows.setdefault(key, deque())
            while window and window[0] <= now - span:
                window.popleft()
            over = over or len(window) + weight > limit
        if over:
            xml = self.options.get("throttle_format", "xml") == "xml"
            return self.fault_response(faults.throttled(), request, force_xml=xml)
        for key, name, _, weight, span in windows:
            self.windows[key].extend([now] * weight)
            traffic.limit(name, span).admitted.add(now, weight)
        traffic.units += cost
        return None

    def _injected(self, request: Request) -> dict | None:
        """First matching injected fault (``POST /_sandbox/faults``), consuming one use."""
        for rule in self.faults:
            if rule.get("times", 1) <= 0:
                continue
            if rule.get("method") and rule["method"].upper() != request.method:
                continue
            if rule.get("path_contains") and rule["path_contains"] not in request.url.path:
                continue
            rule["times"] = rule.get("times", 1) - 1
            return rule
        return None

    async def handle(self, request: Request, endpoint: str, work, write: bool = False) -> Response:
        """Auth, throttle, latency, injected faults, requestid replay, then ``work(company)``."""
        realm = request.path_params["realm"]
        response = await self._handle(request, realm, work, write)
        self.count(endpoint, response.status_code)
        self.traffic_of(realm).answered(response.status_code)
        return response

    async def _handle(self, request: Request, realm: str, work, write: bool) -> Response:
        denied = self._authenticate(request, realm)
        if denied is not None:
            return denied
        throttled = await self._throttle(request, realm)
        if throttled is not None:
            return throttled
        self.in_flight[realm] = self.in_flight.get(realm, 0) + 1
        traffic = self.traffic_of(realm)
        traffic.concurrency.enter()
        try:
            rule = self._injected(request)
            latency = (rule or {}).get("latency_ms", self.options.get("latency_ms", 0))
            if latency:
                await asyncio.sleep(latency / 1000)
            if rule and rule.get("status") and not rule.get("after_write"):
                return self._injected_response(rule, request)
            request_id = request.query_params.get("requestid") if write else None
            key = None
            if request_id:
                bids = await batch_ops.bids_of(request)
                is_batch = request.url.path.endswith("/batch")
                limit = MAX_BATCH_REQUEST_ID if is_batch else MAX_REQUEST_ID
                if len(request_id) > limit:  # ≤ 50, batch ≤ 36 (notes §2.5)
                    return self.fault_response(faults.too_long("requestid", limit), request)
                if any(len(bid) > MAX_BID for bid in bids):  # bId ≤ 10 with requestid (notes §2.2)
                    return self.fault_response(faults.too_long("bId", MAX_BID), request)
                key = self.replays.key(realm, request_id, bids)
                stored = self.replays.get(key)
                if stored is not None:
                    self.counters["replays"] += 1
                    return raw_response(stored.body, stored.status, stored.media_type)
            company = self.company(realm)
            media = "application/json;charset=UTF-8"
            try:
                body, writes = await work(company)
                status = 200
                payload = dumps({**body, "time": self.clock.stamp()}).encode("utf-8")
            except faults.Fault as fault:
                writes, status = 0, fault.status
                if fault.code == "6240" and company.settings.get("duplicate_name_variant") == "lowercase":
                    # Intuit intermittently answers 6240 in a lower-case envelope (notes §1.1).
                    payload = dumps(faults.lowercase_envelope(fault, int(self.clock.now() * 1000))).encode()
                elif _wants_xml(request):  # an XML client gets the IntuitResponse form (fixtures errors/*.xml)
                    payload = faults.as_observed(fault).xml(self.clock.stamp()).encode("utf-8")
                    media = "application/xml"
                else:
                    payload = dumps(fault.envelope(self.clock.stamp())).encode("utf-8")
            self.counters["writes"] += writes
            if key is not None:
                self.replays.put(key, status, media, payload)
            if rule and rule.get("status"):  # the write happened, the answer is lost (crash after send)
                return self._injected_response(rule, request)
            return raw_response(payload, status, media)
        finally:
            self.in_flight[realm] -= 1
            traffic.concurrency.leave()

    def _injected_response(self, rule: dict, request: Request) -> Response:
        status = int(rule["status"])
        if status == 429:
            xml = rule.get("format", self.options.get("throttle_format", "xml")) == "xml"
            return self.fault_response(faults.throttled(), request, force_xml=xml)
        fault = faults.server_error()
        fault.status = status
        return self.fault_response(fault, request, force_xml=rule.get("format") == "xml")


def _wants_xml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "xml" in accept and "json" not in accept


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    try:
        body = loads(raw) if raw else {}
    except ValueError as exc:
        raise faults.invalid_property(f"body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise faults.invalid_property("body must be a JSON object")
    return body


def _entity(request: Request) -> str:
    name = ENTITIES.get(request.path_params["entity"].lower())
    if name is None:
        raise faults.unsupported(f"{request.method} {request.path_params['entity']}")
    return name


def create_app(options: dict | None = None) -> Starlette:
    """Build the QuickBooks emulator app (see module docstring for ``options``)."""
    emu = Emulator(options or {})

    async def write_entity(request: Request) -> Response:
        async def work(company: Company):
            entity = _entity(request)
            body = await _json_body(request)
            params = request.query_params
            operation = (params.get("operation") or "").lower()
            include = {part.strip().lower() for part in (params.get("include") or "").split(",")}
            if operation == "delete":
                return {entity: entities.delete(company, entity, body)}, 1
            if operation == "void" or "void" in include:
                return {entity: entities.void(company, entity, body)}, 1
            allow_dup = "allowduplicatedocnum" in include
            if body.get("Id") not in (None, ""):
                return {entity: entities.update(company, entity, body, allow_dup)}, 1
            return {entity: entities.create(company, entity, body, allow_dup)}, 1
        name = request.path_params["entity"].lower()
        return await emu.handle(request, f"POST /v3/company/{{realm}}/{name}", work, write=True)

    async def read_entity(request: Request) -> Response:
        async def work(company: Company):
            if request.path_params["entity"].lower() == "companyinfo":
                return {"CompanyInfo": company.company_info()}, 0
            entity = _entity(request)
            obj = company.get(entity, request.path_params["id"])
            if obj is None:
                raise faults.not_found(entity)
            return {entity: obj}, 0
        name = request.path_params["entity"].lower()
        return await emu.handle(request, f"GET /v3/company/{{realm}}/{name}/{{id}}", work)

    async def run_query(request: Request) -> Response:
        async def work(company: Company):
            if request.method == "GET":
                text = request.query_params.get("query", "")
            else:
                text = (await request.body()).decode("utf-8")
            return {"QueryResponse": query.run(company, text)}, 0
        return await emu.handle(request, f"{request.method} /v3/company/{{realm}}/query", work)

    async def run_batch(request: Request) -> Response:
        async def work(company: Company):
            return batch_ops.run(company, await _json_body(request))
        return await emu.handle(request, "POST /v3/company/{realm}/batch", work, write=True)

    async def read_preferences(request: Request) -> Response:
        async def work(company: Company):
            return {"Preferences": company.preferences()}, 0
        return await emu.handle(request, "GET /v3/company/{realm}/preferences", work)

    async def run_cdc(request: Request) -> Response:
        async def work(company: Company):
            return batch_ops.cdc(company, request.query_params), 0
        return await emu.handle(request, "GET /v3/company/{realm}/cdc", work)

    async def discovery(request: Request) -> Response:
        emu.count("GET /.well-known/openid_configuration", 200)
        return emu.oauth.discovery(request)

    async def token(request: Request) -> Response:
        response = await emu.oauth.token(request)
        emu.count("POST /oauth2/v1/tokens/bearer", response.status_code)
        return response

    async def revoke(request: Request) -> Response:
        response = await emu.oauth.revoke(request)
        emu.count("POST /v2/oauth2/tokens/revoke", response.status_code)
        return response

    routes = [
        Route("/.well-known/openid_sandbox_configuration/", discovery, methods=["GET"]),
        Route("/.well-known/openid_sandbox_configuration", discovery, methods=["GET"]),
        Route("/.well-known/openid_configuration/", discovery, methods=["GET"]),
        Route("/.well-known/openid_configuration", discovery, methods=["GET"]),
        Route("/oauth2/v1/tokens/bearer", token, methods=["POST"]),
        Route("/connect/oauth2", emu.oauth.authorize, methods=["GET"]),
        Route("/v2/oauth2/tokens/revoke", revoke, methods=["POST"]),
        Route("/v3/company/{realm}/query", run_query, methods=["GET", "POST"]),
        Route("/v3/company/{realm}/batch", run_batch, methods=["POST"]),
        Route("/v3/company/{realm}/cdc", run_cdc, methods=["GET"]),
        Route("/v3/company/{realm}/preferences", read_preferences, methods=["GET"]),
        Route("/v3/company/{realm}/{entity}", write_entity, methods=["POST"]),
        Route("/v3/company/{realm}/{entity}/{id}", read_entity, methods=["GET"]),
        *control.routes(emu),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emu
    return app
