"""The dashboard's Starlette app: pages, the JSON admin API, /metrics, /healthz, /readyz (docs/dashboard.md).

Every request opens its own ledger connection (SQLite in WAL: readers never wait for the
daemon's writer) in a worker thread. Replays run one at a time (a lock), through the same
runners as ``o2c replay``; exactly-once comes from bindings and request ids as always.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from connector.dashboard import data, pages
from connector.dashboard.auth import SESSION_COOKIE, SESSION_SECONDS, Guard, GuardMiddleware
from connector.dashboard.metrics import render_metrics
from connector.dashboard.openapi import openapi_document
from connector.ledger import Ledger
from connector.ledger_url import parse_ledger

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class Dashboard:
    """State shared by the endpoints: settings, the ledger path, the guard and the replay lock."""

    def __init__(self, settings, ledger_path, guard: Guard):
        self.settings = settings
        self.ledger_path = Path(ledger_path) if parse_ledger(ledger_path).backend == "sqlite" else str(ledger_path)
        self.guard = guard
        self.replay_lock = threading.Lock()
        section = getattr(settings, "dashboard", None)
        self.portal_id = getattr(section, "hubspot_portal_id", None)

    def on_ledger(self, work):
        """Run ``work(ledger)`` in a worker thread on a connection of its own."""
        def run():
            ledger = Ledger(self.ledger_path)
            try:
                return work(ledger)
            finally:
                ledger.close()
        return run_in_threadpool(run)


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)


def _json(payload, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})


def _error(message: str, status: int = 400) -> JSONResponse:
    return _json({"error": message}, status)


def _csrf(request: Request) -> str | None:
    return getattr(request.state, "csrf", None)


async def _form(request: Request) -> dict[str, list[str]]:
    return parse_qs((await request.body()).decode("utf-8", "replace"))


def _first(form: dict, name: str, default: str | None = None) -> str | None:
    values = form.get(name)
    return values[0] if values else default


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    return body


def create_dashboard_app(settings, ledger_path=None, *, admin_token: str | None = None) -> Starlette:
    """The dashboard app. ``admin_token`` defaults to ``settings.dashboard.admin_token``."""
    section = getattr(settings, "dashboard", None)
    if admin_token is None:
        if section is None:
            raise ValueError("the configuration has no dashboard: section (with admin_token)")
        admin_token = section.admin_token.get_secret_value()
    guard = Guard(admin_token, public_origin=getattr(section, "public_origin", None),
                  bind_host=getattr(section, "host", "127.0.0.1"))
    dash = Dashboard(settings, ledger_path or settings.ledger_url, guard)
    store_names = [s.name for s in settings.stores]

    # -- public ------------------------------------------------------------------------------
    async def healthz(request: Request):
        return PlainTextResponse("ok\n")

    async def readyz(request: Request):
        ok, why = await run_in_threadpool(_ready, dash.ledger_path)
        return PlainTextResponse(("ready\n" if ok else f"not ready: {why}\n"), status_code=200 if ok else 503)

    async def login(request: Request):
        if request.method == "GET":
            return _html(pages.login_page(request.query_params.get("next"), None))
        form = await _form(request)
        target = _first(form, "next", "/")
        if not guard.token_ok(_first(form, "token")):
            return _html(pages.login_page(target, "That is not the admin token."), 401)
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(SESSION_COOKIE, guard.new_session(), max_age=SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=(request.url.scheme == "https" or
                                                       (guard.public_origin or "").startswith("https:")))
        return response

    async def logout(request: Request):
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- pages -------------------------------------------------------------------------------
    async def overview_page(request: Request):
        receivables = request.query_params.get("receivables") == "1"
        found = await dash.on_ledger(lambda ledger: data.overview(settings, ledger, receivables=receivables))
        return _html(pages.overview_page(found, _csrf(request)))

    def _order_filters(params) -> dict:
        return {k: params.get(k) or "" for k in ("store", "state", "since", "until", "min", "max", "q")}

    def _search(ledger, filters: dict, page: int):
        return data.search_orders(ledger, store=filters["store"] or None, state=filters["state"] or None,
                                  since=filters["since"] or None, until=filters["until"] or None,
                                  min_total=filters["min"] or None, max_total=filters["max"] or None,
                                  customer=filters["q"] or None, page=page)

    async def orders_page(request: Request):
        filters = _order_filters(request.query_params)
        try:
            page = int(request.query_params.get("page") or 1)
            found = await dash.on_ledger(lambda ledger: _search(ledger, filters, page))
            return _html(pages.orders_page(found, filters, store_names, _csrf(request)))
        except ValueError as exc:
            return _html(pages.orders_page({}, filters, store_names, _csrf(request), str(exc)), 400)

    async def order_page(request: Request):
        key = request.path_params["key"]
        found = await dash.on_ledger(lambda ledger: data.order_detail(settings, ledger, key, dash.portal_id))
        if found is None:
            return _html(pages.not_found(f"No order {key} in the ledger.", _csrf(request)), 404)
        return _html(pages.order_page(found, _csrf(request)))

    async def failures_page(request: Request):
        csrf = _csrf(request)
        if request.method == "GET":
            state, system = request.query_params.get("state", "all"), request.query_params.get("system", "all")
            try:
                found = await dash.on_ledger(lambda ledger: data.failures(settings, ledger, state=state, system=system))
            except ValueError as exc:
                found = await dash.on_ledger(lambda ledger: data.failures(settings, ledger))
                return _html(pages.failures_page(found, csrf, error=str(exc)), 400)
            return _html(pages.failures_page(found, csrf))
        form = await _form(request)
        action = _first(form, "action")
        state, system = _first(form, "state", "all"), _first(form, "system", "all")
        body = ({"step_ids": form.get("step_ids", [])} if form.get("step_ids") else
                {"group": _first(form, "group")} if _first(form, "group") else {"step_ids": []})
        dry, replayed, error, status = None, None, None, 200
        try:
            if action == "dry-run":
                dry = await dash.on_ledger(lambda ledger: data.dry_run(settings, ledger, data.resolve(ledger, body)))
            elif action == "replay":
                replayed = await _replay(body)
            else:
                raise ValueError("action must be dry-run or replay")
            if (dry or replayed or {}).get("selected") == 0:
                error = "No replayable step selected (tick some steps, or they were replayed meanwhile)."
        except ValueError as exc:
            error, status = str(exc), 400
        try:
            found = await dash.on_ledger(lambda ledger: data.failures(settings, ledger, state=state, system=system))
        except ValueError:
            found = await dash.on_ledger(lambda ledger: data.failures(settings, ledger))
        return _html(pages.failures_page(found, csrf, dry_run=dry, replayed=replayed, error=error), status)

    async def findings_page(request: Request):
        message = None
        status = request.query_params.get("status", "open")
        if request.method == "POST":
            form = await _form(request)
            if _first(form, "action") == "accept" and (_first(form, "id") or "").isdigit():
                finding = int(_first(form, "id"))
                changed = await dash.on_ledger(lambda ledger: _accept(ledger, finding))
                message = f"finding {finding} accepted" if changed else f"finding {finding} was not open"
            status = "open"
        try:
            found = await dash.on_ledger(lambda ledger: data.findings_list(ledger, status=status))
        except ValueError:
            found = await dash.on_ledger(lambda ledger: data.findings_list(ledger, status="open"))
        return _html(pages.findings_page(found, _csrf(request), message))

    # -- API ---------------------------------------------------------------------------------
    async def api_overview(request: Request):
        receivables = request.query_params.get("receivables") in ("1", "true")
        return _json(await dash.on_ledger(lambda ledger: data.overview(settings, ledger, receivables=receivables)))

    async def api_orders(request: Request):
        params = request.query_params
        filters = {**_order_filters(params), "min": params.get("min_total") or params.get("min") or "",
                   "max": params.get("max_total") or params.get("max") or "",
                   "q": params.get("customer") or params.get("q") or ""}
        try:
            page = int(params.get("page") or 1)
            per_page = int(params.get("per_page") or data.PER_PAGE)
            return _json(await dash.on_ledger(lambda ledger: data.search_orders(
                ledger, store=filters["store"] or None, state=filters["state"] or None,
                since=filters["since"] or None, until=filters["until"] or None, min_total=filters["min"] or None,
                max_total=filters["max"] or None, customer=filters["q"] or None, page=page, per_page=per_page)))
        except ValueError as exc:
            return _error(str(exc))

    async def api_order(request: Request):
        key = request.path_params["key"]
        found = await dash.on_ledger(lambda ledger: data.order_detail(settings, ledger, key, dash.portal_id))
        return _json(found) if found is not None else _error(f"no order {key} in the ledger", 404)

    async def api_failures(request: Request):
        try:
            return _json(await dash.on_ledger(lambda ledger: data.failures(
                settings, ledger, state=request.query_params.get("state", "all"),
                system=request.query_params.get("system", "all"))))
        except ValueError as exc:
            return _error(str(exc))

    async def api_dry_run(request: Request):
        try:
            body = await _json_body(request)
            return _json(await dash.on_ledger(lambda ledger: data.dry_run(
                settings, ledger, data.resolve(ledger, body), fresh=bool(body.get("fresh")))))
        except ValueError as exc:
            return _error(str(exc))

    async def _replay(body: dict) -> dict:
        def work(ledger):
            with dash.replay_lock:
                return data.replay(settings, ledger, data.resolve(ledger, body), fresh=bool(body.get("fresh")))
        return await dash.on_ledger(work)

    async def api_replay(request: Request):
        try:
            return _json(await _replay(await _json_body(request)))
        except ValueError as exc:
            return _error(str(exc))

    async def api_findings(request: Request):
        try:
            return _json(await dash.on_ledger(lambda ledger: data.findings_list(
                ledger, status=request.query_params.get("status", "open"), store=request.query_params.get("store"))))
        except ValueError as exc:
            return _error(str(exc))

    async def api_accept(request: Request):
        raw = request.path_params["finding_id"]
        if not raw.isdigit():
            return _error("a finding id is a number", 404)
        changed = await dash.on_ledger(lambda ledger: _accept(ledger, int(raw)))
        return _json({"id": int(raw), "accepted": bool(changed)}, 200 if changed else 409)

    async def api_openapi(request: Request):
        return _json(openapi_document())

    async def metrics(request: Request):
        text = await dash.on_ledger(lambda ledger: render_metrics(settings, ledger))
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview_page, methods=["GET"]),
        Route("/orders", orders_page, methods=["GET"]),
        Route("/orders/{key}", order_page, methods=["GET"]),
        Route("/failures", failures_page, methods=["GET", "POST"]),
        Route("/findings", findings_page, methods=["GET", "POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/openapi.json", api_openapi, methods=["GET"]),
        Route("/api/overview", api_overview, methods=["GET"]),
        Route("/api/orders", api_orders, methods=["GET"]),
        Route("/api/orders/{key}", api_order, methods=["GET"]),
        Route("/api/failures", api_failures, methods=["GET"]),
        Route("/api/dry-run", api_dry_run, methods=["POST"]),
        Route("/api/replay", api_replay, methods=["POST"]),
        Route("/api/findings", api_findings, methods=["GET"]),
        Route("/api/findings/{finding_id}/accept", api_accept, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(GuardMiddleware, guard=guard, login_page=pages.login_page)
    app.state.dashboard = dash
    return app


def _accept(ledger: Ledger, finding_id: int) -> int:
    from connector.findings import accept
    return accept(ledger, [finding_id])


def _ready_postgres(url: str) -> tuple[bool, str]:
    """The PostgreSQL ledger answers and every migration is applied (nothing is created here)."""
    from connector.ledger_postgres import connect
    from connector.migrations import MIGRATIONS
    try:
        conn = connect(url)
        try:
            if conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
                return False, "the ledger has no schema yet"
            applied = {row[0] for row in conn.execute("SELECT version FROM migrations")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return False, f"the ledger cannot be read ({exc.__class__.__name__})"
    missing = sorted({v for v, _, _ in MIGRATIONS} - applied)
    return (False, f"migrations not applied: {missing}") if missing else (True, "")


def _ready(path: Path) -> tuple[bool, str]:
    """The ledger opens and every migration is applied (read-only: nothing is created here)."""
    from connector.migrations import MIGRATIONS
    if isinstance(path, str):
        return _ready_postgres(path)
    if not path.is_file():
        return False, "no ledger file yet"
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
        try:
            applied = {row[0] for row in conn.execute("SELECT version FROM migrations")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return False, f"the ledger cannot be read ({exc.__class__.__name__})"
    missing = sorted({v for v, _, _ in MIGRATIONS} - applied)
    return (False, f"migrations not applied: {missing}") if missing else (True, "")
