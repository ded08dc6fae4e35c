"""Control API of the QuickBooks emulator (no real vendor has it): ``/_sandbox/...``.

| method + path | what |
|---|---|
| ``POST /_sandbox/reset`` | forget everything (companies, tokens, replays, counters, faults, clock skew) |
| ``GET /_sandbox/state`` | ``{"companies": {realm: {"Customer": [...], "Invoice": [...], ...}}, "oauth": {...}}`` |
| ``GET /_sandbox/counters`` | ``{"requests", "by_endpoint": {"POST /v3/company/{realm}/invoice": {"total", "200", ...}}, "throttled", "writes", "replays"}`` |
| ``GET /_sandbox/traffic`` | per realm: requests, units, 429s, the most units in any window of each limit and the most concurrent requests, beside the limits (sandbox/traffic.py) |
| ``POST /_sandbox/companies/{realm}`` | create a company with the seed chart; ``{"access_token"?, "settings"?}`` |
| ``POST /_sandbox/companies/{realm}/seed`` | ``{"Item": [...], "Customer": [...], ...}`` created through the normal rules |
| ``POST /_sandbox/oauth/clients`` | ``{"client_id", "client_secret", "realm_id", "refresh_token"?}`` -> ``{"refresh_token"}`` |
| ``POST /_sandbox/oauth/expire`` | expire every issued access token (next API call gets 401) |
| ``POST /_sandbox/clock`` | ``{"advance_seconds": n}``: move the emulator clock forward |
| ``POST /_sandbox/options`` | merge emulator options (``requests_per_minute``, ``latency_ms``, ...) until the next reset |
| ``POST /_sandbox/faults`` | ``{"faults": [{"path_contains"?, "method"?, "status"?, "latency_ms"?, "times"?, "after_write"?, "format"?}]}`` (replaces the list; ``[]`` clears) |

Company ``settings``: ``home_currency`` ("USD"), ``currencies`` (["USD"]),
``duplicate_docnumber_fault`` (false; true -> 6140 on a reused DocNumber),
``duplicate_name_variant`` ("typical" | "lowercase": 6240 in Intuit's alternate lower-case envelope).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.quickbooks import entities, faults
from sandbox.quickbooks.store import ENTITIES
from sandbox.quickbooks.wire import dumps, loads


def _ok(body) -> Response:
    return Response(dumps(body), media_type="application/json")


async def _body(request: Request) -> dict:
    raw = await request.body()
    return loads(raw) if raw else {}


def routes(emu) -> list[Route]:
    """The control routes bound to one ``Emulator``."""

    async def reset(request: Request) -> Response:
        emu.reset()
        return _ok({"reset": True})

    async def state(request: Request) -> Response:
        return _ok({"companies": {realm: c.export() for realm, c in emu.companies.items()},
                    "oauth": emu.oauth.export(), "requestids": len(emu.replays)})

    async def counters(request: Request) -> Response:
        return _ok(emu.counters)

    async def traffic(request: Request) -> Response:
        limits = emu.configured_limits()
        concurrent = int(emu.options.get("max_concurrent", 10))
        return _ok({"accounts": {realm: t.report(limits, concurrent) for realm, t in sorted(emu.traffic.items())}})

    async def company(request: Request) -> Response:
        realm = request.path_params["realm"]
        body = await _body(request)
        emu.company(realm, body.get("settings"))
        if body.get("access_token"):
            emu.oauth.add_access_token(body["access_token"], realm, body.get("access_token_ttl_seconds"))
        return _ok({"realm_id": realm})

    async def seed(request: Request) -> Response:
        realm = request.path_params["realm"]
        target = emu.company(realm)
        body = await _body(request)
        created: dict[str, list] = {}
        try:
            for name, rows in body.items():
                entity = ENTITIES.get(name.lower())
                if entity is None:
                    return _error(f"unknown entity {name}")
                for row in rows:
                    created.setdefault(entity, []).append(entities.create(target, entity, row))
        except faults.Fault as fault:
            return Response(dumps({"Fault": fault.body(), "created": created}), status_code=400,
                            media_type="application/json")
        return _ok(created)

    async def client(request: Request) -> Response:
        body = await _body(request)
        missing = [k for k in ("client_id", "client_secret", "realm_id") if not body.get(k)]
        if missing:
            return _error(f"missing {', '.join(missing)}")
        token = emu.oauth.register_client(body["client_id"], body["client_secret"], str(body["realm_id"]),
                                          body.get("refresh_token"))
        return _ok({"refresh_token": token, "realm_id": str(body["realm_id"])})

    async def expire(request: Request) -> Response:
        return _ok({"expired": emu.oauth.expire_access_tokens()})

    async def clock(request: Request) -> Response:
        body = await _body(request)
        emu.clock.advance(float(body.get("advance_seconds", 0)))
        return _ok({"now": emu.clock.stamp()})

    async def set_faults(request: Request) -> Response:
        body = await _body(request)
        rules = body.get("faults", [])
        if not isinstance(rules, list):
            return _error("faults must be a list")
        emu.faults = [dict(rule) for rule in rules]
        return _ok({"faults": emu.faults})

    async def options(request: Request) -> Response:
        emu.configure(await _body(request))
        return _ok(emu.options)

    return [
        Route("/_sandbox/options", options, methods=["POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/state", state, methods=["GET"]),
        Route("/_sandbox/counters", counters, methods=["GET"]),
        Route("/_sandbox/traffic", traffic, methods=["GET"]),
        Route("/_sandbox/companies/{realm}", company, methods=["POST"]),
        Route("/_sandbox/companies/{realm}/seed", seed, methods=["POST"]),
        Route("/_sandbox/oauth/clients", client, methods=["POST"]),
        Route("/_sandbox/oauth/expire", expire, methods=["POST"]),
        Route("/_sandbox/clock", clock, methods=["POST"]),
        Route("/_sandbox/faults", set_faults, methods=["POST"]),
    ]


def _error(message: str) -> Response:
    return Response(dumps({"error": message}), status_code=400, media_type="application/json")
