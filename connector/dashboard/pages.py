"""The dashboard's pages: server-rendered HTML, inline CSS, no script, nothing fetched from elsewhere.

Charts come from :mod:`connector.report_html` (inline SVG). Every value from the ledger is escaped.
Actions are plain HTML forms carrying the session's CSRF token, so the pages work without JavaScript.
Element ids and ``data-testid``s the browser tests rely on are listed in docs/dashboard.md.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode

from connector.report import CYCLES
from connector.report_html import CSS as REPORT_CSS
from connector.report_html import CYCLE_NAMES, aging_chart, bar_chart

CSS = REPORT_CSS + """
body{max-width:1280px}nav{display:flex;gap:16px;align-items:center;border-bottom:1px solid #dde2ea;
padding-bottom:8px;margin-bottom:16px}nav a{color:#2f6fb5;text-decoration:none;font-weight:600}
nav a.on{color:#1d2330;border-bottom:2px solid #2f6fb5}nav form{margin-left:auto}
form.inline{display:inline;margin:0}button{font:inherit;padding:3px 10px;border:1px solid #9aa6b8;
border-radius:4px;background:#f6f8fb;cursor:pointer}button.replay{background:#2f6fb5;color:#fff;border-color:#2f6fb5}
.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin:8px 0 16px}.filters label{display:flex;
flex-direction:column;font-size:12px;color:#5d6677}input,select{font:inherit;padding:3px 6px}
.critical{color:#b54a4a;font-weight:600}.warning{color:#a36a00;font-weight:600}.ok{color:#3a9a5b;font-weight:600}
.state-done,.state-skipped{color:#3a9a5b}.state-dead{color:#b54a4a;font-weight:600}.state-held,.state-mismatch,
.state-failed{color:#a36a00;font-weight:600}.group{border:1px solid #dde2ea;border-radius:6px;padding:8px 12px;
margin:12px 0}.result{border:2px solid #2f6fb5;border-radius:6px;padding:8px 12px;margin:12px 0}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{white-space:pre-wrap;word-break:break-all;margin:0}
td.small{font-size:12px}.login{max-width:360px;margin:80px auto}
"""
NAV = (("overview", "/", "Overview"), ("orders", "/orders", "Orders"), ("failures", "/failures", "Failures"),
       ("findings", "/findings", "Findings"))


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def dash(value) -> str:
    return "-" if value in (None, "") else e(value)


def shell(title: str, body: str, *, active: str | None = None, csrf: str | None = None) -> str:
    nav = ""
    if active is not None:
        links = "".join(f'<a id="nav-{key}" href="{href}"{" class=on" if key == active else ""}>{e(label)}</a>'
                        for key, href, label in NAV)
        logout = (f'<form class="inline" method="post" action="/logout">{_csrf(csrf)}'
                  f'<button id="logout" type="submit">Log out</button></form>') if csrf else ""
        nav = f"<nav><b>o2c</b>{links}{logout}</nav>"
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)} - o2c dashboard</title><style>{CSS}</style></head><body>{nav}"
            f"<main><h1>{e(title)}</h1>{body}</main></body></html>\n")


def _csrf(token: str | None) -> str:
    return f'<input type="hidden" name="csrf_token" value="{e(token)}">' if token else ""


def table(headers: list[str], rows: list[str], *, table_id: str | None = None) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    ident = f' id="{e(table_id)}"' if table_id else ""
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}" class="muted">None.</td></tr>'
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def tr(cells: list[str], attrs: str = "") -> str:
    return f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def state(value: str | None) -> str:
    return f'<span class="state-{e(value)}">{e(value)}</span>'


def order_link(key: str) -> str:
    return f'<a href="/orders/{quote(key, safe=":")}">{e(key)}</a>'


# -- login --------------------------------------------------------------------------------------

def login_page(next_path: str | None, message: str | None) -> str:
    target = next_path if next_path and next_path.startswith("/") and not next_path.startswith("//") else "/"
    note = f'<p id="login-error" class="critical">{e(message)}</p>' if message else ""
    body = (f'<div class="login">{note}<p>Enter the admin token (the <code>dashboard.admin_token</code> of the '
            f'configuration).</p><form method="post" action="/login">'
            f'<input type="hidden" name="next" value="{e(target)}">'
            f'<p><input id="token" name="token" type="password" autocomplete="current-password" size="40" '
            f'autofocus required></p><p><button id="login" type="submit">Log in</button></p></form></div>')
    return shell("Log in", body)


# -- overview -----------------------------------------------------------------------------------

def overview_page(data: dict, csrf: str | None) -> str:
    status, report = data["status"], data["report"]
    alerts = "".join(f'<li data-testid="alert"><span class="{e(a["severity"])}">{e(a["message"])}</span>'
                     f' &rarr; {e(a["what_to_do"])}</li>' for a in status["alerts"])
    alerts_html = f'<ul id="alerts">{alerts}</ul>' if alerts else '<p id="alerts" class="ok">No alerts.</p>'
    cards = []
    for system, entry in status["queue"]["systems"].items():
        counts = entry["counts"]
        cards.append((f"{counts.get('pending', 0) + counts.get('in_flight', 0) + counts.get('failed', 0)}",
                      f"{system}: waiting or retrying"))
        cards.append((f"{counts.get('dead', 0)}", f"{system}: dead"))
    for currency, figures in report["totals"]["currencies"].items():
        cards.append((f"{figures['received']['count']}", f"orders, {figures['received']['amount']} {currency}"))
        cards.append((f"{figures['paid']['amount']} {currency}", "paid"))
    cards_html = '<div class="cards" id="cards">' + "".join(
        f'<div class="card"><b>{e(a)}</b><span>{e(b)}</span></div>' for a, b in cards) + "</div>"
    states = status["queue"]["states"]
    queue_rows = []
    for system, entry in status["queue"]["systems"].items():
        queue_rows.append(tr([f"<b>{e(system)}</b>", *(e(entry["counts"].get(s, 0)) for s in states),
                              dash(entry.get("next_retry_at")), e(entry.get("blocked", 0))]))
        for kind, sub in entry.get("kinds", {}).items():
            queue_rows.append(tr([f"&nbsp;&nbsp;{e(kind)}", *(e(sub["counts"].get(s, 0)) for s in states),
                                  dash(sub.get("next_retry_at")), e(sub.get("blocked", 0))]))
    queue = table(["steps", *states, "next retry", "blocked"], queue_rows, table_id="queue")
    store_rows = []
    for s in status["stores"]:
        hooks = s.get("webhooks") or {}
        subs = (hooks.get("subscriptions") or {}) if hooks else {}
        store_rows.append(tr([e(s["name"]), e(s["system"]), e(s["orders"]), dash(s.get("last_poll_at")),
                              '<span class="critical">late</span>' if s.get("poll_late") else "ok",
                              dash((s.get("last_poll_error") or {}).get("error")),
                              dash(hooks.get("last_received_at")) if hooks.get("enabled") else "off",
                              e(hooks.get("pending", 0)) if hooks else "-",
                              dash(subs.get("outcome"))], f' data-store="{e(s["name"])}"'))
    stores = table(["store", "system", "orders", "last good poll", "poll", "poll error", "last webhook",
                    "webhooks waiting", "subscriptions"], store_rows, table_id="stores")
    qb, hs = status["tokens"]["quickbooks"], status["tokens"]["hubspot"]
    tokens = table(["system", "status", "detail", "what to do"], [
        tr(["QuickBooks", f'<span class="{"ok" if qb.get("status") == "ok" else "critical"}">{e(qb.get("status"))}'
                          "</span>", e(qb.get("message")), dash(qb.get("what_to_do"))]),
        tr(["HubSpot", e(hs.get("status")), e(hs.get("auth")), "-"])], table_id="tokens")
    daily = report["daily"]
    volume = bar_chart("chart-daily", "Orders received per day (UTC)", [d["date"][5:] for d in daily],
                       [(s, [d["stores"].get(s, 0) for d in daily]) for s in report["stores_in_report"]],
                       stacked=True, label_every=max(1, -(-len(daily) // 15)), unit=" orders")
    histogram = report["cycle_histogram"]
    cycles = bar_chart("chart-cycle", "Cycle times: orders per duration", histogram["buckets"],
                       [(CYCLE_NAMES[c], histogram[c]) for c in CYCLES], unit=" orders")
    receivables = report["receivables"]
    aging = (aging_chart(receivables) if "currencies" in receivables else
             '<p class="muted">Receivables are read from QuickBooks on demand: '
             '<a id="with-receivables" href="/?receivables=1">show open invoices and aging</a>.</p>')
    problems = "".join(f'<li>{e(p["count"])} {e(p["state"])} {e(p["step"])}: {e(p["pattern"] or p["error"])}</li>'
                       for p in status["problems"])
    body = (f'<p class="muted">Generated {e(status["generated_at"][:19])} UTC; the report covers '
            f'{e(report["period"]["since"][:10])} to {e(report["period"]["until"][:10])}.</p>'
            f"<h2>Alerts</h2>{alerts_html}{cards_html}<h2>Queue</h2>{queue}"
            f'<h2>Problems</h2><ul id="problems">{problems or "<li>None.</li>"}</ul>'
            f'<p><a href="/failures">Failures: what to do, dry run and replay</a></p>'
            f"<h2>Stores</h2>{stores}<h2>Tokens</h2>{tokens}"
            f'<h2>Orders and cycle times</h2><section id="charts">{volume}{cycles}{aging}</section>')
    return shell("Overview", body, active="overview", csrf=csrf)


# -- orders -------------------------------------------------------------------------------------

def orders_page(data: dict, filters: dict, stores: list[str], csrf: str | None, error: str | None = None) -> str:
    def field(name, label, kind="text", size=12):
        return (f'<label>{e(label)}<input id="filter-{name}" name="{name}" type="{kind}" size="{size}" '
                f'value="{e(filters.get(name) or "")}"></label>')
    store_options = "".join(f'<option value="{e(s)}"{" selected" if filters.get("store") == s else ""}>{e(s)}</option>'
                            for s in ["", *stores])
    from connector.dashboard.data import ORDER_STATES
    state_options = "".join(f'<option value="{e(s)}"{" selected" if filters.get("state") == s else ""}>'
                            f'{e(s or "any")}</option>' for s in ["", *ORDER_STATES])
    form = (f'<form class="filters" method="get" action="/orders" id="orders-filter">'
            f'<label>store<select id="filter-store" name="store">{store_options}</select></label>'
            f'<label>state<select id="filter-order-state" name="state">{state_options}</select></label>'
            f'{field("since", "from (date)", "text", 11)}{field("until", "to (date)", "text", 11)}'
            f'{field("min", "min amount", "text", 8)}{field("max", "max amount", "text", 8)}'
            f'{field("q", "customer, e-mail or order", "search", 20)}'
            f'<button id="apply-orders-filter" type="submit">Filter</button></form>')
    note = f'<p class="critical" id="filter-error">{e(error)}</p>' if error else ""
    rows = [tr([order_link(o["order_key"]), e(o["name"]), e(o["created_at"][:16]),
                e(o["customer"]["name"] or ""), dash(o["customer"]["email"]), f'{e(o["total"])} {e(o["currency"])}',
                dash(o["financial_status"]), state(o["state"])], f' data-order-key="{e(o["order_key"])}"')
            for o in data.get("orders", [])]
    pages = ""
    if data.get("total", 0) > data.get("per_page", 1):
        last = -(-data["total"] // data["per_page"])
        query = {k: v for k, v in filters.items() if v}
        pages = "<p>" + " ".join(
            f'<a href="/orders?{e(urlencode({**query, "page": n}))}">{n}</a>' if n != data["page"] else f"<b>{n}</b>"
            for n in range(1, min(last, 50) + 1)) + "</p>"
    body = (f"{form}{note}<p class=\"muted\" id=\"orders-count\">{e(data.get('total', 0))} order(s)</p>"
            + table(["order", "name", "created (UTC)", "customer", "e-mail", "total", "payment", "state"], rows,
                    table_id="orders") + pages)
    return shell("Orders", body, active="orders", csrf=csrf)


def order_page(order: dict, csrf: str | None) -> str:
    docs = [tr([e(d["system"]), e(d["kind"]), e(d["key"]), dash(d["doc_number"]),
                (f'<a href="{e(d["url"])}" rel="noopener noreferrer" target="_blank">{e(d["external_id"])}</a>'
                 if d["url"] else e(d["external_id"]))]) for d in order["documents"]]
    steps = [tr([e(s["step"]), state(s["state"]), e(s["attempts"]), dash(s["external_id"]), dash(s["error"]),
                 dash(s["what_to_do"]), e((s["updated_at"] or "")[:19])],
                f' data-step="{e(s["step"])}" data-state="{e(s["state"])}"') for s in order["steps"]]
    events = [tr([e((ev["at"] or "")[:23]), dash(ev["step"]), e(ev["kind"]), state(ev["outcome"]),
                  dash(ev["request_id"]), f'<code>{dash(ev["payload_hash"])}</code>', dash(ev["duration_ms"]),
                  f'<pre>{dash(ev["detail"])}</pre>', f'<pre>{dash(ev["response"])}</pre>',
                  f'<pre>{dash(ev["error"])}</pre>'], ' data-testid="event"') for ev in order["events"]]
    lines = "".join(f"<li>{e(line['quantity'])} &times; {e(line['title'])} ({dash(line['sku'])})</li>"
                    for line in order["lines"])
    customer = order["customer"]
    body = (f'<p>State: <b id="order-state" class="state-{e(order["state"])}">{e(order["state"])}</b></p>'
            f'<table id="order-summary"><tbody>'
            f'<tr><th>order</th><td>{e(order["name"])} ({e(order["order_key"])}, {e(order["system"])})</td></tr>'
            f'<tr><th>customer</th><td>{dash(customer["name"])} &lt;{dash(customer["email"])}&gt;</td></tr>'
            f'<tr><th>total</th><td>{e(order["total"])} {e(order["currency"])}</td></tr>'
            f'<tr><th>payment / fulfilment</th><td>{dash(order["financial_status"])} / '
            f'{dash(order["fulfillment_status"])}</td></tr>'
            f'<tr><th>created / updated at the store</th><td>{e(order["created_at"][:19])} / '
            f'{e(order["updated_at"][:19])}</td></tr></tbody></table><ul>{lines}</ul>'
            f"<h2>Documents</h2>{table(['system', 'kind', 'key', 'DocNumber', 'id'], docs, table_id='documents')}"
            f"<h2>Steps</h2>{table(['step', 'state', 'attempts', 'external id', 'error', 'what to do', 'updated'], steps, table_id='steps')}"
            f'<h2>Timeline</h2><p class="muted">Every attempt and what it sent (payload hash, request id) and '
            f"heard back; secrets are blanked before they are recorded.</p>"
            + table(["at (UTC)", "step", "kind", "outcome", "request id", "payload hash", "ms", "detail", "response",
                     "error"], events, table_id="timeline"))
    return shell(f"Order {order['name']}", body, active="orders", csrf=csrf)


# -- failures -----------------------------------------------------------------------------------

def _buttons(csrf: str | None, hidden: dict, filters: dict, *, suffix: str = "") -> str:
    fields = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in {**hidden, **filters}.items())
    return (f'<form class="inline" method="post" action="/failures">{_csrf(csrf)}{fields}'
            f'<button class="dry-run{suffix}" name="action" value="dry-run" type="submit">Dry run</button> '
            f'<button class="replay{suffix}" name="action" value="replay" type="submit">Replay</button></form>')


def failures_page(data: dict, csrf: str | None, *, dry_run: dict | None = None, replayed: dict | None = None,
                  error: str | None = None) -> str:
    filters = {"state": data["state"], "system": data["system"]}
    state_options = "".join(f'<option value="{s}"{" selected" if data["state"] == s else ""}>{s}</option>'
                            for s in ("all", "dead", "held", "mismatch", "failed"))
    system_options = "".join(f'<option value="{s}"{" selected" if data["system"] == s else ""}>{s}</option>'
                             for s in ("all", "quickbooks", "hubspot"))
    form = (f'<form class="filters" method="get" action="/failures" id="failures-filter">'
            f'<label>state<select id="filter-state" name="state">{state_options}</select></label>'
            f'<label>system<select id="filter-system" name="system">{system_options}</select></label>'
            f'<button id="apply-filter" type="submit">Apply</button></form>')
    results = ""
    if error:
        results += f'<div class="result critical" id="action-error">{e(error)}</div>'
    if dry_run is not None:
        results += dry_run_html(dry_run)
    if replayed is not None:
        results += replay_html(replayed)
    bulk = (f'<form id="bulk" method="post" action="/failures">{_csrf(csrf)}'
            + "".join(f'<input type="hidden" name="{k}" value="{e(v)}">' for k, v in filters.items())
            + '<p>Selected steps: <button id="bulk-dry-run" name="action" value="dry-run" type="submit">Dry run selected'
              '</button> <button id="bulk-replay" name="action" value="replay" type="submit">Replay selected</button>'
              "</p></form>")
    groups = []
    for g in data["groups"]:
        rows = [tr([f'<input type="checkbox" class="select" name="step_ids" value="{e(s["id"])}" form="bulk">',
                    order_link(s["order_key"]), e(s["step"]), state(s["state"]), e(s["attempts"]),
                    dash(s["error"]), e((s["updated_at"] or "")[:19]),
                    _buttons(csrf, {"step_ids": s["id"]}, filters)],
                   f' data-order-key="{e(s["order_key"])}" data-step="{e(s["step"])}" data-step-id="{e(s["id"])}"')
                for s in g["steps"]]
        more = f' and {g["more_values"]} more' if g["more_values"] else ""
        values = f'<p class="muted">values: {e(", ".join(g["values"]))}{e(more)}</p>' if g["values"] else ""
        groups.append(
            f'<section class="group" data-group="{e(g["id"])}" data-state="{e(g["state"])}" data-kind="{e(g["step"])}">'
            f'<h3>{state(g["state"])} {e(g["step"])}: {e(g["count"])} step(s), {e(g["orders"])} order(s)</h3>'
            f'<p>{e(g["error"])}</p>{values}<p><b>What to do:</b> {e(g["what_to_do"])}</p>'
            f'<p class="muted">From a shell: <code>{e(g["replay"])}</code></p>'
            f'<p>Whole group: {_buttons(csrf, {"group": g["id"], "group_state": g["state"]}, filters, suffix="-group")}</p>'
            + table(["", "order", "step", "state", "attempts", "error", "updated", ""], rows) + "</section>")
    rejects = ""
    if data["rejects"]:
        rejects = "<h2>Orders that could not be read</h2>" + table(
            ["order", "error", "what to do", "last seen"],
            [tr([e(r["order_key"]), e(r["error"]), dash(r["what_to_do"]), e((r["last_seen_at"] or "")[:19])])
             for r in data["rejects"]], table_id="rejects") + \
            '<p class="muted">They are read again when the order changes in the store.</p>'
    body = (f"{form}{results}<p id=\"failures-count\">{e(data['steps'])} step(s) in {len(data['groups'])} "
            f"group(s)</p>{bulk}<div id=\"failures\">{''.join(groups) or '<p>Nothing failed.</p>'}</div>{rejects}")
    return shell("Failures", body, active="failures", csrf=csrf)


def dry_run_html(result: dict) -> str:
    parts = [f'<div class="result" id="dry-run-result" data-steps="{e(len(result["steps"]))}"><h2>Dry run</h2>'
             f'<p>{e(result["selected"])} step(s) selected; nothing was sent, the ledger is unchanged.</p>']
    for step in result["steps"]:
        parts.append(f'<div class="dry-run-step" data-order-key="{e(step["order_key"])}" data-step="{e(step["step"])}" '
                     f'data-verdict="{e(step["verdict"])}"><h3>{order_link(step["order_key"])} {e(step["step"])} '
                     f'({e(step["state"])}): <span class="verdict">{e(step["verdict"])}</span></h3>')
        if step.get("message"):
            parts.append(f'<p>{e(step["message"])}</p>')
        if step.get("what_to_do"):
            parts.append(f'<p><b>What to do:</b> {e(step["what_to_do"])}</p>')
        for write in step["writes"]:
            parts.append(f'<p><b>{e(write["summary"])}</b></p>')
            if write.get("note"):
                parts.append(f'<p class="warning">{e(write["note"])}</p>')
            diff = write.get("diff")
            if diff:
                rows = [tr([f'<code>{e(r["path"])}</code>', e(r["sent"]), dash(r["current"]),
                            f'<span class="diff-{e(r["status"])}">{e(r["status"])}</span>'])
                        for r in diff["rows"] if r["status"] != "same"]
                same = sum(1 for r in diff["rows"] if r["status"] == "same")
                parts.append(table(["field", "would send", "the target has now", ""], rows)
                             + (f'<p class="muted">{same} field(s) unchanged.</p>' if same else ""))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def replay_html(result: dict) -> str:
    rows = [tr([order_link(s["order_key"]), e(s["step"]), e(s["was"]), state(s["state"]), dash(s["external_id"]),
                dash(s["error"])], f' data-order-key="{e(s["order_key"])}" data-step="{e(s["step"])}"')
            for s in result["steps"]]
    orders = "".join(f'<li data-order-key="{e(o["order_key"])}">{order_link(o["order_key"])}: {state(o["state"])}</li>'
                     for o in result["orders"])
    paused = "".join(f'<p class="critical">{e(k)} paused: {e(v)}</p>' for k, v in result.get("paused", {}).items())
    return (f'<div class="result" id="replay-result"><h2>Replay</h2><p>{e(result["requeued"])} step(s) re-queued and '
            f"run (exactly once: bindings and request ids stop anything from being booked twice).</p>{paused}"
            + table(["order", "step", "was", "now", "external id", "error"], rows) + f"<ul>{orders}</ul></div>")


# -- findings -----------------------------------------------------------------------------------

def findings_page(data: dict, csrf: str | None, message: str | None = None) -> str:
    options = "".join(f'<option value="{s}"{" selected" if data["status"] == s else ""}>{s}</option>'
                      for s in ("open", "requeued", "accepted", "fixed", "all"))
    form = (f'<form class="filters" method="get" action="/findings"><label>status<select id="filter-finding-status" '
            f'name="status">{options}</select></label><button id="apply-findings-filter" type="submit">Apply</button>'
            f"</form>")
    rows = []
    for f in data["findings"]:
        accept = (f'<form class="inline" method="post" action="/findings">{_csrf(csrf)}'
                  f'<input type="hidden" name="id" value="{e(f["id"])}">'
                  f'<button class="accept" name="action" value="accept" type="submit">Accept</button></form>'
                  if f["status"] in ("open", "requeued") else "")
        detail = f["detail"].get("text") if isinstance(f["detail"], dict) else f["detail"]
        rows.append(tr([e(f["id"]), order_link(f["order_key"]), e(f["system"]), e(f["kind"]), dash(f["subject"]),
                        dash(detail), e(f["proposed_action"]), "safe" if f["safe"] else "needs a person",
                        e(f["status"]), e((f["last_seen_at"] or "")[:19]), accept],
                       f' data-finding-id="{e(f["id"])}"'))
    note = f'<p id="findings-message" class="ok">{e(message)}</p>' if message else ""
    body = (f"{form}{note}<p class=\"muted\">Differences the reconciler found between the stores, the ledger and "
            f"the books. Safe ones are repaired by <code>o2c reconcile --fix</code> (and the daemon's scheduled "
            f"run); accept a finding when the difference is intended.</p>"
            + table(["id", "order", "system", "kind", "subject", "detail", "proposed action", "", "status",
                     "last seen", ""], rows, table_id="findings"))
    return shell("Reconcile findings", body, active="findings", csrf=csrf)


def not_found(what: str, csrf: str | None) -> str:
    return shell("Not found", f'<p id="not-found">{e(what)}</p>', active="overview", csrf=csrf)
