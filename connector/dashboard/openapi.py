"""The admin API described as an OpenAPI 3.1 document, served at ``/api/openapi.json``.

Hand-written: every ``/api`` route of :mod:`connector.dashboard.app` is here (a test checks it).
"""

from __future__ import annotations

_ERROR = {"description": "a bad parameter or body", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_401 = {"description": "no or a wrong admin token", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_403 = {"description": "a request from another origin, or (browser session) without the CSRF token; nothing done",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: dict | None = None) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


SELECTION = {
    "type": "object",
    "description": "Which steps: step_ids, or a failures group id, or a selection like `o2c replay`. Only "
                   "failed, dead, skipped, held and mismatch steps are ever selected.",
    "properties": {
        "step_ids": {"type": "array", "items": {"type": "integer"}},
        "group": {"type": "string", "description": "a group id from /api/failures"},
        "order_keys": {"type": "array", "items": {"type": "string"}, "description": "store:id"},
        "step": {"type": "string", "description": "a kind (quickbooks.invoice) or a full name"},
        "states": {"type": "array", "items": {"enum": ["failed", "dead", "skipped", "held", "mismatch"]},
                   "description": "default: failed and dead"},
        "system": {"enum": ["hubspot", "quickbooks"]},
        "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"},
        "fresh": {"type": "boolean", "description": "re-read the orders from their stores first"},
    },
}


def openapi_document() -> dict:
    post_body = {"required": False, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Selection"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "o2c-connector admin API", "version": "1",
                 "description": "The JSON behind the dashboard (docs/dashboard.md). Every call needs the admin token "
                                "(Authorization: Bearer) or a browser session; POSTs from a browser session also need "
                                "the X-CSRF-Token header and the dashboard's own Origin."},
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "o2c_session"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}},
                                  "required": ["error"]},
                        "Selection": SELECTION},
        },
        "paths": {
            "/api/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                          "responses": {"200": _ok("the OpenAPI document"), "401": _401}}},
            "/api/overview": {"get": {
                "summary": "Status (queue, problems, stores, tokens, alerts; docs/status.md) and the report of the "
                           "last 30 days (docs/report.md)", "operationId": "overview",
                "parameters": [_query("receivables", "1: also read open invoices from QuickBooks",
                                      {"enum": ["0", "1"]})],
                "responses": {"200": _ok("{status, report}"), "401": _401}}},
            "/api/orders": {"get": {
                "summary": "Search orders, newest first", "operationId": "searchOrders",
                "parameters": [_query("store", "store name"),
                               _query("state", "the order's overall state", {"enum": [
                                   "dead", "held", "mismatch", "failed", "pending", "done", "new"]}),
                               _query("since", "created at or after (date or ISO instant)"),
                               _query("until", "created before (a date: up to its end)"),
                               _query("min_total", "total at least (decimal)"),
                               _query("max_total", "total at most (decimal)"),
                               _query("customer", "text in the customer's name or e-mail, the order name or key"),
                               _query("page", "1-based", {"type": "integer", "minimum": 1}),
                               _query("per_page", "default 50, at most 500", {"type": "integer", "minimum": 1})],
                "responses": {"200": _ok("{total, page, per_page, orders: [...]}"), "400": _ERROR, "401": _401}}},
            "/api/orders/{key}": {"get": {
                "summary": "One order: summary, overall state, steps, documents with links, the events timeline",
                "operationId": "getOrder",
                "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                                "description": "store:id"}],
                "responses": {"200": _ok("the order"), "401": _401,
                              "404": {"description": "no such order", "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/api/failures": {"get": {
                "summary": "Dead, held and mismatch steps grouped by cause, with what to do and their steps",
                "operationId": "failures",
                "parameters": [_query("state", "default all (dead, held, mismatch)",
                                      {"enum": ["all", "dead", "held", "mismatch", "failed"]}),
                               _query("system", "default all", {"enum": ["all", "hubspot", "quickbooks"]})],
                "responses": {"200": _ok("{groups: [...], rejects: [...]}"), "400": _ERROR, "401": _401}}},
            "/api/dry-run": {"post": {
                "summary": "What a replay of the selected steps would send, field by field; changes nothing",
                "operationId": "dryRun", "requestBody": post_body,
                "responses": {"200": _ok("{selected, steps: [{verdict, writes: [{diff}]}], refetched}"),
                              "400": _ERROR, "401": _401, "403": _403}}},
            "/api/replay": {"post": {
                "summary": "Re-queue the selected steps and run every due step (exactly once as always)",
                "operationId": "replay", "requestBody": post_body,
                "responses": {"200": _ok("{selected, requeued, steps: [{was, state}], orders: [{state}]}"),
                              "400": _ERROR, "401": _401, "403": _403}}},
            "/api/findings": {"get": {
                "summary": "Reconcile findings with their proposed actions", "operationId": "findings",
                "parameters": [_query("status", "default open",
                                      {"enum": ["open", "requeued", "accepted", "fixed", "all"]}),
                               _query("store", "store name")],
                "responses": {"200": _ok("{status, findings: [...]}"), "400": _ERROR, "401": _401}}},
            "/api/findings/{finding_id}/accept": {"post": {
                "summary": "Accept a finding: the difference is intended", "operationId": "acceptFinding",
                "parameters": [{"name": "finding_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": _ok("{id, accepted: true}"), "401": _401, "403": _403,
                              "409": _ok("{id, accepted: false}: not open")}}},
        },
    }
