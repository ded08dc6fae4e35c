"""HubSpot CRM emulator: ``create_app(options)`` for ``sandbox/runner.py``.

One HubSpot account per emulator (docs/sandbox.md). Every vendor route
is wrapped here in: Bearer auth, fault injection, rate limits with the
``X-HubSpot-RateLimit-*`` headers (``shared/notes/hubspot.md`` §4), and
per-endpoint counters. The control API lives under ``/_sandbox/``.

Options (all optional; the control API can change the first three at run time):
``access_token`` ("pat-sandbox"), ``ten_second_limit`` (100), ``daily_limit``
(250000), ``search_per_second`` (5), ``portal_id`` ("12345678"),
``prefixes`` ({"objects": [...], "properties": [...], "associations": [...],
"objects_v4": [...], "pipelines": [...]}, see ``routes.DEFAULT_PREFIXES``).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from . import errors
from .associations import AssociationStore
from .errors import HubSpotError, json_response
from .objects import ObjectStore, now_iso
from .pipelines import Pipelines
from .properties import PropertyRegistry
from .ratelimit import RateLimiter
from .routes import DEFAULT_PREFIXES, api_routes, read_json

CONFIGURABLE = ("access_token", "ten_second_limit", "daily_limit", "search_per_second")
TYPE_PARAMS = ("object_type", "from_type", "to_type", "op")


class Account:
    """Everything the emulator holds; ``reset()`` returns it to the options' defaults."""

    def __init__(self, options: dict):
        self.options = dict(options or {})
        self.reset()

    def reset(self) -> None:
        opts = self.options
        self.access_token = opts.get("access_token", "pat-sandbox")
        self.portal_id = str(opts.get("portal_id", "12345678"))
        self.registry = PropertyRegistry()
        self.pipelines = Pipelines(now_iso())
        self.store = ObjectStore(self.registry, self.portal_id, pipelines=self.pipelines)
        self.assocs = AssociationStore(self.store)
        self.limiter = RateLimiter(int(opts.get("ten_second_limit", 100)), int(opts.get("daily_limit", 250_000)),
                                   int(opts.get("search_per_second", 5)))
        self.requests = 0
        self.rate_limited = 0
        self.by_endpoint: dict[str, Counter] = defaultdict(Counter)
        self.faults: list[dict] = []

    def configure(self, body: dict) -> dict:
        unknown = set(body) - set(CONFIGURABLE)
        if unknown:
            raise errors.validation(f"unknown config keys: {sorted(unknown)}")
        if "access_token" in body:
            self.access_token = str(body["access_token"])
        if "ten_second_limit" in body:
            self.limiter.ten_second_limit = int(body["ten_second_limit"])
        if "daily_limit" in body:
            self.limiter.daily_limit = int(body["daily_limit"])
        if "search_per_second" in body:
            self.limiter.search_per_second = int(body["search_per_second"])
        return self.config()

    def config(self) -> dict:
        return {"access_token": self.access_token, "ten_second_limit": self.limiter.ten_second_limit,
                "daily_limit": self.limiter.daily_limit, "search_per_second": self.limiter.search_per_second}

    def take_fault(self, endpoint: str) -> dict | None:
        """The first armed fault whose ``endpoint`` is a substring of this endpoint key."""
        for fault in self.faults:
            if fault.get("endpoint", "") in endpoint and fault["times"] != 0:
                fault["times"] -= 1
                return fault
        return None


def _endpoint_key(request: Request, template: str) -> str:
    """``POST /crm/v3/objects/contacts/batch/upsert``: type names filled in, ids left as ``{...}``."""
    path = template
    for name, value in request.path_params.items():
        if name in TYPE_PARAMS:
            path = path.replace("{" + name + "}", str(value)).replace("{" + name + ":path}", str(value))
    return f"{request.method} {path}"


def _rate_limited(policy: str, account: Account) -> dict:
    if policy == "DAILY":
        return errors.daily()
    if policy == "SECONDLY":
        return errors.search_secondly()
    return errors.ten_secondly_rolling(account.portal_id)


def _fault_response(fault: dict, account: Account, headers: dict):
    status = int(fault.get("status", 500))
    if "body" in fault:
        body = fault["body"]
    elif status == 429:
        body = errors.ten_secondly_rolling(account.portal_id)
    else:
        body = errors.error_body("Internal error (injected by the sandbox)", "INTERNAL_ERROR")
    extra = dict(headers)
    if fault.get("retry_after") is not None:
        extra["Retry-After"] = str(fault["retry_after"])
    return json_response(body, status, extra)


def guarded(account: Account, handler, template: str, kind: str):
    """Wrap a vendor handler: count, authenticate, inject faults, rate-limit, add headers."""

    async def endpoint(request: Request):
        key = _endpoint_key(request, template)
        account.requests += 1
        response = await _answer(request, key)
        account.by_endpoint[key][str(response.status_code)] += 1
        account.limiter.traffic.answered(response.status_code)
        if response.status_code == 429:
            account.rate_limited += 1
        return response

    async def _answer(request: Request, key: str):
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {account.access_token}":
            error = errors.unauthorized()
            return json_response(error.body, error.status)
        fault = account.take_fault(key)
        if fault and fault.get("latency_ms"):
            await asyncio.sleep(fault["latency_ms"] / 1000)
        token = auth[len("Bearer "):]
        policy = account.limiter.check_search() if kind == "search" else account.limiter.check(token)
        # Notes §4: search answers carry none of the rate-limit headers.
        headers = {} if kind == "search" else account.limiter.headers(token)
        if policy:
            return json_response(_rate_limited(policy, account), 429, headers)
        if fault and fault.get("status") and not fault.get("after_apply"):
            return _fault_response(fault, account, headers)
        try:
            response = await handler(request, account)
        except HubSpotError as error:
            response = json_response(error.body, error.status)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            # A malformed body the handlers did not anticipate: answer 400 rather than crash.
            response = json_response(errors.error_body(f"Invalid input JSON: {exc}", "VALIDATION_ERROR"), 400)
        if fault and fault.get("status"):
            # after_apply: the write happened but the client sees a failure (lost answer).
            return _fault_response(fault, account, headers)
        response.headers.update(headers)
        return response

    return endpoint


def control_routes(account: Account) -> list[Route]:
    """``/_sandbox/*`` (docs/sandbox.md)."""

    async def reset(request):
        account.reset()
        return json_response({"ok": True})

    async def state(request):
        dump = account.store.dump()
        return json_response({**dump, "associations": account.assocs.dump(),
                              "properties": account.registry.custom()})

    async def counters(request):
        return json_response({"requests": account.requests, "rate_limited": account.rate_limited,
                              "by_endpoint": {k: dict(v) for k, v in account.by_endpoint.items()}})

    async def traffic(request):
        return json_response({"accounts": {account.portal_id: account.limiter.traffic_report()}})

    async def config(request):
        try:
            if request.method == "POST":
                return json_response(account.configure(await read_json(request) or {}))
            return json_response(account.config())
        except HubSpotError as error:
            return json_response(error.body, error.status)

    async def faults(request):
        """``{"faults": [{"endpoint": "contacts/batch/upsert", "status": 503, "times": 1,
        "latency_ms": 0, "retry_after": 1, "after_apply": false, "body": {...}}]}``;
        ``{"faults": []}`` clears. ``times`` -1 = forever."""
        if request.method == "POST":
            body = await read_json(request) or {}
            account.faults = [{"times": 1, **f} for f in body.get("faults", [])]
        return json_response({"faults": account.faults})

    return [Route("/_sandbox/reset", reset, methods=["POST"]),
            Route("/_sandbox/state", state, methods=["GET"]),
            Route("/_sandbox/counters", counters, methods=["GET"]),
            Route("/_sandbox/traffic", traffic, methods=["GET"]),
            Route("/_sandbox/config", config, methods=["GET", "POST"]),
            Route("/_sandbox/faults", faults, methods=["GET", "POST"])]


def create_app(options: dict | None = None) -> Starlette:
    """Build the emulator. ``options`` as in the module docstring."""
    account = Account(options or {})
    prefixes = {**DEFAULT_PREFIXES}
    for area, value in ((options or {}).get("prefixes") or {}).items():
        prefixes[area] = [value] if isinstance(value, str) else list(value)
    routes = control_routes(account)
    for path, methods, handler, kind in api_routes(prefixes):
        routes.append(Route(path, guarded(account, handler, path, kind), methods=methods))

    async def no_route(request: Request, exc):
        status = getattr(exc, "status_code", 404)
        message = "resource not found" if status == 404 else f"{request.method} is not allowed here"
        return json_response(errors.error_body(message, "OBJECT_NOT_FOUND" if status == 404 else
                                               "VALIDATION_ERROR"), status)

    app = Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})
    app.state.account = account
    return app
