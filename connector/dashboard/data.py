"""What the dashboard shows, as plain JSON-serialisable data; the pages and the API both read it.

Nothing here reads a secret: the ledger's events are redacted when written, tokens are read
only as "connected / expires" through :func:`connector.status.collect_status`, and the
configuration's secret values are never touched.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from connector.events import redact
from connector.ledger import Ledger, iso, utcnow
from connector.replay import REPLAYABLE, Selection, requeue, select
from connector.report import parse_moment

ORDER_STATES = ("dead", "held", "mismatch", "failed", "pending", "done", "new")
FAILURE_STATES = ("dead", "held", "mismatch", "failed")
PER_PAGE = 50

# An order's overall state, from its steps: the worst one wins; all done/skipped is "done".
ORDER_STATE_SQL = """
    CASE WHEN COUNT(s.id) = 0 THEN 'new'
         WHEN SUM(CASE WHEN s.state = 'dead' THEN 1 ELSE 0 END) > 0 THEN 'dead'
         WHEN SUM(CASE WHEN s.state = 'held' THEN 1 ELSE 0 END) > 0 THEN 'held'
         WHEN SUM(CASE WHEN s.state = 'mismatch' THEN 1 ELSE 0 END) > 0 THEN 'mismatch'
         WHEN SUM(CASE WHEN s.state = 'failed' THEN 1 ELSE 0 END) > 0 THEN 'failed'
         WHEN SUM(CASE WHEN s.state IN ('pending', 'in_flight') THEN 1 ELSE 0 END) > 0 THEN 'pending'
         ELSE 'done' END"""

QBO_PAGES = {"invoice": "invoice?txnId=", "sales_receipt": "salesreceipt?txnId=", "payment": "recvpayment?txnId=",
             "refund": "refundreceipt?txnId=", "credit_memo": "creditmemo?txnId=", "customer": "customerdetail?nameId="}
HUBSPOT_OBJECTS = {"contact": "0-1", "order_contact": "0-1", "deal": "0-3"}


# -- overview -----------------------------------------------------------------------------------

def overview(settings, ledger: Ledger, *, days: int = 30, receivables: bool = False) -> dict:
    """The status (queue, problems, stores, tokens, alerts) and the report of the last ``days`` days."""
    from connector.report import build_report
    from connector.status import collect_status
    now = utcnow()
    status = collect_status(settings, ledger, now=now)
    report = build_report(settings, ledger, since=now - timedelta(days=days), until=now, now=now,
                          receivables=receivables)
    return {"status": status, "report": report}


# -- orders -------------------------------------------------------------------------------------

def _decimal(text: str | None) -> Decimal | None:
    if text in (None, ""):
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"'{text}' is not an amount; write it like 120.50") from None


def search_orders(ledger: Ledger, *, store: str | None = None, state: str | None = None, since: str | None = None,
                  until: str | None = None, min_total: str | None = None, max_total: str | None = None,
                  customer: str | None = None, page: int = 1, per_page: int = PER_PAGE) -> dict:
    """Orders, newest first, filtered; amounts compared as Decimals. Raises ValueError for bad filters."""
    if state and state not in ORDER_STATES:
        raise ValueError(f"state must be one of {', '.join(ORDER_STATES)}")
    low, high = _decimal(min_total), _decimal(max_total)
    where, args = [], []
    if store:
        where.append("o.store = ?")
        args.append(store)
    try:
        if since:
            where.append("o.source_created_at >= ?")
            args.append(iso(parse_moment(since)))
        if until:
            where.append("o.source_created_at < ?")
            args.append(iso(parse_moment(until, end=True)))
    except ValueError:
        raise ValueError("dates are like 2026-11-01 or an ISO instant like 2026-11-01T08:00:00Z") from None
    if customer:
        where.append("(LOWER(COALESCE(json_extract(o.snapshot, '$.customer.email'), '')) LIKE ? ESCAPE '\\'"
                     " OR LOWER(COALESCE(json_extract(o.snapshot, '$.customer.first_name'), '') || ' ' ||"
                     " COALESCE(json_extract(o.snapshot, '$.customer.last_name'), '')) LIKE ? ESCAPE '\\'"
                     " OR LOWER(o.name) LIKE ? ESCAPE '\\' OR o.order_key LIKE ? ESCAPE '\\')")
        text = "%" + customer.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args += [text] * 4
    sql = (f"SELECT o.order_key, o.store, o.name, o.currency, o.total, o.source_created_at, o.source_updated_at,"
           f" json_extract(o.snapshot, '$.customer.email'), json_extract(o.snapshot, '$.customer.first_name'),"
           f" json_extract(o.snapshot, '$.customer.last_name'), json_extract(o.snapshot, '$.financial_status'),"
           f" {ORDER_STATE_SQL} AS overall, COUNT(s.id)"
           f" FROM orders o LEFT JOIN steps s ON s.order_key = o.order_key"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " GROUP BY o.order_key" + (f" HAVING {ORDER_STATE_SQL} = ?" if state else "")  # PostgreSQL: no alias here
           + " ORDER BY o.source_created_at DESC, o.order_key")
    if state:
        args.append(state)
    rows = []
    for r in ledger.conn.execute(sql, args):
        total = Decimal(r[4])
        if (low is not None and total < low) or (high is not None and total > high):
            continue
        rows.append({"order_key": r[0], "store": r[1], "name": r[2], "currency": r[3], "total": r[4],
                     "created_at": r[5], "updated_at": r[6], "customer": {
                         "email": r[7], "name": " ".join(p for p in (r[8], r[9]) if p) or None},
                     "financial_status": r[10], "state": r[11], "steps": r[12]})
    page, per_page = max(1, page), max(1, min(per_page, 500))
    start = (page - 1) * per_page
    return {"total": len(rows), "page": page, "per_page": per_page, "orders": rows[start:start + per_page]}


def document_links(settings, system: str, kind: str, external_id: str | None, portal_id: str | None) -> str | None:
    """The address of a document in QuickBooks or a record in HubSpot, when one can be made."""
    if not external_id:
        return None
    if system == "quickbooks":
        environment = settings.quickbooks.environment
        host = {"sandbox": "app.sandbox.qbo.intuit.com", "production": "app.qbo.intuit.com",
                "prod": "app.qbo.intuit.com"}.get(environment)
        page = QBO_PAGES.get(kind)
        if kind == "refund" and settings.quickbooks.refunds == "credit_memo":
            page = QBO_PAGES["credit_memo"]
        return f"https://{host}/app/{page}{external_id}" if host and page else None
    if system == "hubspot" and portal_id and kind in HUBSPOT_OBJECTS:
        return f"https://app.hubspot.com/contacts/{portal_id}/record/{HUBSPOT_OBJECTS[kind]}/{external_id}"
    return None


def _documents(settings, ledger: Ledger, key: str, steps: list[dict], portal_id: str | None) -> list[dict]:
    docs, seen = [], set()
    for system, kind, canonical, external_id, details in ledger.conn.execute(
            "SELECT system, kind, canonical_key, external_id, details FROM bindings"
            " WHERE canonical_key = ? OR substr(canonical_key, 1, ?) = ? ORDER BY system, kind, canonical_key",
            (key, len(key) + 1, key + "|")):
        info = json.loads(details) if details else {}
        seen.add((system, kind, external_id))
        docs.append({"system": system, "kind": kind, "key": canonical, "external_id": external_id,
                     "doc_number": info.get("DocNumber"),
                     "url": document_links(settings, system, kind, external_id, portal_id)})
    for step in steps:  # what a step created or found but no order-keyed binding names (the customer)
        if step["external_id"]:
            system, kind = step["step"].split(":", 1)[0].split(".", 1)
            if kind == "contact":
                kind = "order_contact"
            if (system, kind, step["external_id"]) not in seen and kind in (*QBO_PAGES, *HUBSPOT_OBJECTS):
                seen.add((system, kind, step["external_id"]))
                docs.append({"system": system, "kind": kind, "key": step["step"], "external_id": step["external_id"],
                             "doc_number": None,
                             "url": document_links(settings, system, kind, step["external_id"], portal_id)})
    return docs


def order_detail(settings, ledger: Ledger, key: str, portal_id: str | None = None) -> dict | None:
    """One order: its snapshot summary, overall state, steps, documents and every event (the timeline)."""
    row = ledger.conn.execute(
        "SELECT order_key, store, system, source_order_id, name, currency, total, source_created_at,"
        " source_updated_at, balance_difference, first_seen_at, last_changed_at, snapshot FROM orders"
        " WHERE order_key = ?", (key,)).fetchone()
    if row is None:
        return None
    snapshot = json.loads(row[12])
    customer = snapshot.get("customer") or {}
    step_keys = ("id", "step", "state", "attempts", "next_attempt_at", "depends_on", "request_id", "external_id",
                 "error", "what_to_do", "updated_at")
    steps = [dict(zip(step_keys, r)) for r in ledger.conn.execute(
        f"SELECT {', '.join(step_keys)} FROM steps WHERE order_key = ? ORDER BY id", (key,))]
    for step in steps:
        step["error"], step["what_to_do"] = redact(step["error"], 2000), redact(step["what_to_do"], 2000)
    states = {s["state"] for s in steps}
    overall = ("new" if not steps else next((s for s in ("dead", "held", "mismatch", "failed") if s in states), None)
               or ("pending" if states & {"pending", "in_flight"} else "done"))
    event_keys = ("id", "at", "step", "system", "kind", "outcome", "request_id", "payload_hash", "detail",
                  "response", "error", "duration_ms")
    events = [dict(zip(event_keys, r)) for r in ledger.conn.execute(
        f"SELECT {', '.join(event_keys)} FROM events WHERE order_key = ? ORDER BY id", (key,))]
    return {
        "order_key": row[0], "store": row[1], "system": row[2], "source_order_id": row[3], "name": row[4],
        "currency": row[5], "total": row[6], "created_at": row[7], "updated_at": row[8],
        "balance_difference": row[9], "first_seen_at": row[10], "last_changed_at": row[11],
        "state": overall,
        "customer": {"email": customer.get("email"), "name": " ".join(
            p for p in (customer.get("first_name"), customer.get("last_name")) if p) or None,
            "company": customer.get("company")},
        "financial_status": snapshot.get("financial_status"),
        "fulfillment_status": snapshot.get("fulfillment_status"),
        "cancelled_at": snapshot.get("cancelled_at"),
        "lines": [{"sku": line.get("sku"), "title": line.get("title"), "quantity": line.get("quantity")}
                  for line in snapshot.get("lines", [])],
        "steps": steps,
        "documents": _documents(settings, ledger, key, steps, portal_id),
        "events": events,
    }


# -- failures -----------------------------------------------------------------------------------

def group_id(key: tuple) -> str:
    """A short stable id of a problem group (kind, state, normalised what-to-do and error)."""
    return hashlib.sha256(json.dumps(list(key)).encode("utf-8")).hexdigest()[:12]


def _failure_rows(ledger: Ledger, states: tuple[str, ...], system: str | None) -> list[dict]:
    marks = ",".join("?" * len(states))
    args: list = list(states)
    sql = ("SELECT id, order_key, step, state, attempts, error, what_to_do, next_attempt_at, updated_at FROM steps"
           f" WHERE state IN ({marks})")
    if system:
        sql += " AND substr(step, 1, ?) = ?"
        args += [len(system) + 1, system + "."]
    keys = ("id", "order_key", "step", "state", "attempts", "error", "what_to_do", "next_attempt_at", "updated_at")
    return [dict(zip(keys, r)) for r in ledger.conn.execute(sql + " ORDER BY order_key, id", args)]


def failures(settings, ledger: Ledger, *, state: str = "all", system: str | None = None) -> dict:
    """Dead, held, mismatch (and, asked for, failed) steps grouped by cause like ``o2c status``, each group
    with its id, what to do, its replay command and its steps; rejected orders apart (no replay)."""
    from connector.status import _group, _order, _replay, group_key  # the same grouping as `o2c status`
    if state not in ("all", *FAILURE_STATES):
        raise ValueError(f"state must be all or one of {', '.join(FAILURE_STATES)}")
    if system not in (None, "", "all", "hubspot", "quickbooks"):
        raise ValueError("system must be all, hubspot or quickbooks")
    system = None if system in (None, "", "all") else system
    states = ("dead", "held", "mismatch") if state == "all" else (state,)
    buckets: dict[tuple, list[dict]] = {}
    for row in _failure_rows(ledger, states, system):
        key = group_key(row["step"].split(":", 1)[0], row["state"], row["error"], row["what_to_do"])
        buckets.setdefault(key, []).append(row)
    groups = []
    for key, rows in buckets.items():
        (group,) = _group(rows)
        _replay(ledger, group, None)
        group["id"] = group_id(key)
        group["steps"] = [{**{k: row[k] for k in ("id", "order_key", "step", "state", "attempts", "updated_at")},
                           "error": redact(row["error"], 1000), "what_to_do": redact(row["what_to_do"], 1000)}
                          for row in rows]
        groups.append(group)
    groups = _order(groups, FAILURE_STATES)
    rejects = []
    if state == "all" and system is None:
        keys = ("order_key", "store", "error", "what_to_do", "last_seen_at")
        rejects = [dict(zip(keys, r)) for r in ledger.conn.execute(
            "SELECT order_key, store, error, what_to_do, last_seen_at FROM rejects ORDER BY order_key")]
        for reject in rejects:
            reject["error"], reject["what_to_do"] = redact(reject["error"], 1000), redact(reject["what_to_do"], 1000)
    return {"state": state, "system": system or "all", "groups": groups, "rejects": rejects,
            "steps": sum(g["count"] for g in groups)}


# -- selecting, dry-running and replaying -------------------------------------------------------

def resolve(ledger: Ledger, body: dict) -> list[dict]:
    """The steps a request names, as rows of :func:`connector.replay.select`.

    ``body``: ``step_ids`` (list of step ids), ``group`` (a failures group id, with its ``state``), or a
    selection like ``o2c replay`` (``order_keys``, ``step``, ``states``, ``system``, ``since``, ``until``).
    Only steps in a replayable state are ever selected; ``done`` steps never are.
    """
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    states = tuple(body.get("states") or ("failed", "dead"))
    if any(s not in REPLAYABLE for s in states):
        raise ValueError(f"states must be among {', '.join(REPLAYABLE)}")
    if body.get("step_ids"):
        try:
            wanted = {int(i) for i in body["step_ids"]}
        except (TypeError, ValueError):
            raise ValueError("step_ids must be a list of step ids (integers)") from None
        return [row for row in select(ledger, Selection(states=REPLAYABLE)) if row["id"] in wanted]
    if body.get("group"):
        from connector.status import group_key
        rows = select(ledger, Selection(states=REPLAYABLE))
        return [row for row in rows if group_id(group_key(row["step"].split(":", 1)[0], row["state"], row["error"],
                                                          row["what_to_do"])) == body["group"]]
    keys = body.get("order_keys") or ()
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise ValueError("order_keys must be a list of order keys (store:id)")
    if body.get("system") not in (None, "hubspot", "quickbooks"):
        raise ValueError("system must be hubspot or quickbooks")
    return select(ledger, Selection(tuple(keys), body.get("step") or None, states, body.get("system"),
                                    body.get("since"), body.get("until")))


def dry_run(settings, ledger: Ledger, chosen: list[dict], *, fresh: bool = False) -> dict:
    """What replaying ``chosen`` would do, field by field; changes nothing (:mod:`connector.dry_run`)."""
    from connector.dry_run import preview
    from connector.dry_run_view import preview_json
    result = preview(settings, ledger, chosen, fresh=fresh)
    return {"selected": len(chosen), **json.loads(preview_json(result))}


def replay(settings, ledger: Ledger, chosen: list[dict], *, fresh: bool = False) -> dict:
    """Re-queue ``chosen`` and run every due step (exactly once as always); what each step and order says now."""
    from connector.composition import run_all_targets
    if not chosen:
        return {"selected": 0, "requeued": 0, "steps": [], "orders": [], "paused": {}}
    if fresh:
        from connector.refetch import refetch_orders
        refetch_orders(settings, ledger, sorted({row["order_key"] for row in chosen}))
    requeued = requeue(ledger, chosen)
    report = run_all_targets(settings)
    ids = [row["id"] for row in chosen]
    _wait_for_other_workers(ledger, ids)
    now = {r[0]: r[1:] for r in ledger.conn.execute(
        f"SELECT id, state, error, what_to_do, external_id FROM steps WHERE id IN ({','.join('?' * len(ids))})", ids)}
    steps = []
    for row in chosen:
        state, error, what, external = now.get(row["id"], (None, None, None, None))
        steps.append({"id": row["id"], "order_key": row["order_key"], "step": row["step"], "was": row["state"],
                      "state": state, "error": redact(error, 1000), "what_to_do": redact(what, 1000),
                      "external_id": external})
    orders = []
    for key in sorted({row["order_key"] for row in chosen}):
        overall = ledger.conn.execute(f"SELECT {ORDER_STATE_SQL} FROM steps s WHERE s.order_key = ?", (key,)).fetchone()
        orders.append({"order_key": key, "state": overall[0]})
    return {"selected": len(chosen), "requeued": requeued, "steps": steps, "orders": orders,
            "paused": {k: redact(str(v), 500) for k, v in getattr(report, "paused", {}).items()}}


def _wait_for_other_workers(ledger: Ledger, ids: list[int], *, seconds: float = 30.0) -> None:
    """The daemon's worker may have claimed some of the steps first: wait (bounded) until it has run them,
    so the answer says how they ended. Steps waiting on a dead dependency or a later retry are not waited for."""
    import time
    marks = ",".join("?" * len(ids))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now, busy = iso(utcnow()), False
        for order_key, state, depends_on, due in ledger.conn.execute(
                f"SELECT order_key, state, depends_on, next_attempt_at FROM steps WHERE id IN ({marks})"
                " AND state IN ('in_flight', 'pending')", ids).fetchall():
            if state == "in_flight":
                busy = True
            elif due is None or due <= now:
                needs = [d for d in depends_on.split(",") if d]
                ended = {r[0] for r in ledger.conn.execute(
                    "SELECT step FROM steps WHERE order_key = ? AND state IN ('done', 'skipped')", (order_key,))}
                busy = busy or all(d in ended for d in needs)
        if not busy:
            return
        time.sleep(0.2)


# -- findings -----------------------------------------------------------------------------------

def findings_list(ledger: Ledger, *, status: str | None = "open", store: str | None = None) -> dict:
    from connector.findings import rows
    statuses = None if status in (None, "", "all") else (status,)
    if statuses and status not in ("open", "fixed", "requeued", "accepted"):
        raise ValueError("status must be all, open, fixed, requeued or accepted")
    found = rows(ledger, store=store or None, statuses=statuses)
    return {"status": status or "all", "findings": found}
