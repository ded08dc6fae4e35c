"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no network.

The page opens from a file on a machine without a network: nothing is
fetched (a Content-Security-Policy of ``default-src 'none'`` makes sure of
it), every chart is SVG drawn here, and every string from the data (names,
errors, e-mail addresses) is escaped. The report holds no secrets
(:func:`connector.status.collect_status` never reads their values), so the
page holds none either.

Charts: daily volume (orders per day, stacked by store), the cycle-time
histogram (order to booked document and order to cash) and the aging of open
invoices (one panel per currency: amounts are never drawn on a shared scale).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html import escape
from pathlib import Path

from connector.report import CYCLES, FIGURES, cycle_rows
from connector.report_receivables import BUCKETS

COLOURS = ("#2f6fb5", "#e08a2e", "#3a9a5b", "#b54a4a", "#7b5ea7", "#8c6d31", "#3f9fa8", "#c255a0")
CYCLE_NAMES = {"order_to_booked": "order to booked document", "order_to_cash": "order to cash"}
FIGURE_NAMES = {"received": "received", "booked": "booked", "paid": "paid", "refunded": "refunded",
                "cancelled": "cancelled"}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:24px;color:#1d2330;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
.muted{color:#5d6677}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #dde2ea;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#5d6677;font-size:12px}
table{border-collapse:collapse;margin:8px 0 12px;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eef1f5;
text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th{font-weight:600;background:#f6f8fb}.bad{color:#b54a4a;font-weight:600}
svg{display:block;max-width:100%;height:auto;margin:8px 0}svg text{fill:#1d2330}
footer{margin-top:40px;font-size:12px;color:#5d6677}
"""


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _dash(value) -> str:
    return "-" if value is None else _e(value)


# -- charts -------------------------------------------------------------------------------------

def _scale_max(values: list) -> Decimal:
    top = max((Decimal(str(v)) for v in values), default=Decimal(0))
    return top if top > 0 else Decimal(1)


def bar_chart(chart_id: str, title: str, categories: list[str], series: list[tuple[str, list]], *,
              stacked: bool = False, width: int = 760, height: int = 240, label_every: int = 1,
              unit: str = "") -> str:
    """An SVG bar chart: one group (or stack) of bars per category, one colour per series."""
    left, right, top, bottom = 56, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(categories), 1)
    if stacked:
        totals = [sum((Decimal(str(s[1][i])) for s in series), Decimal(0)) for i in range(len(categories))]
    else:
        totals = [Decimal(str(v)) for _, values in series for v in values]
    peak = _scale_max(totals)
    slot = Decimal(plot_w) / n
    bar_w = slot * Decimal("0.8") / (1 if stacked else max(len(series), 1))
    parts = [f'<svg id="{_e(chart_id)}" class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
             f'font-family="system-ui, sans-serif" aria-label="{_e(title)}">',
             f"<title>{_e(title)}</title>",
             f'<text x="{left}" y="16" font-weight="600">{_e(title)}</text>']
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):  # gridlines with their values
        y = top + plot_h - int(fraction * plot_h)
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + plot_w}" y2="{y}" stroke="#dde2ea"/>')
        value = peak * fraction
        text = str(value.quantize(Decimal(1))) if value == value.to_integral_value() or value > 10 else \
            str(value.quantize(Decimal("0.01")))
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{_e(text)}</text>')
    for i, category in enumerate(categories):
        base_x = left + slot * i + slot * Decimal("0.1")
        stack = Decimal(0)
        for j, (name, values) in enumerate(series):
            value = Decimal(str(values[i]))
            h = int((value / peak * plot_h).to_integral_value())
            if stacked:
                x, y = base_x, top + plot_h - int((stack / peak * plot_h).to_integral_value()) - h
                stack += value
            else:
                x, y = base_x + bar_w * j, top + plot_h - h
            if value > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(bar_w - 1, Decimal(1)):.1f}" height="{max(h, 1)}" '
                             f'fill="{COLOURS[j % len(COLOURS)]}"><title>{_e(category)} {_e(name)}: '
                             f'{_e(values[i])}{_e(unit)}</title></rect>')
        if i % label_every == 0:
            cx = left + slot * i + slot / 2
            parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_e(category)}</text>')
    x = left
    for j, (name, _) in enumerate(series):  # legend
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{COLOURS[j % len(COLOURS)]}"/>'
                     f'<text x="{x + 14}" y="{height - 5}">{_e(name)}</text>')
        x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def aging_chart(receivables: dict) -> str:
    """Aging bars: one panel per currency, each on its own scale, inside one SVG."""
    currencies = list(receivables.get("currencies", {}).items())
    panel_h, width = 200, 760
    height = max(panel_h * len(currencies), 40)
    parts = [f'<svg id="chart-aging" class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
             f'font-family="system-ui, sans-serif" aria-label="Open invoices by days past due">'
             "<title>Open invoices by days past due</title>"]
    if not currencies:
        parts.append('<text x="8" y="24">No open invoices.</text>')
    for k, (currency, entry) in enumerate(currencies):
        inner = bar_chart(f"chart-aging-{currency}", f"Open invoices in {currency} by days past due",
                          [b.replace("_", " ") for b in BUCKETS],
                          [(f"balance {currency}", [entry["buckets"][b]["amount"] for b in BUCKETS])],
                          width=width, height=panel_h, unit=f" {currency}")
        # Nest each panel as an <svg> at its offset: its own coordinates, one outer chart.
        parts.append(inner.replace("<svg ", f'<svg x="0" y="{k * panel_h}" ', 1))
    parts.append("</svg>")
    return "".join(parts)


# -- page ---------------------------------------------------------------------------------------

def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f'<th class="n">{_e(h)}</th>' if i >= numeric_from else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i >= numeric_from else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cards(report: dict) -> str:
    cards = []
    for currency, figures in report["totals"]["currencies"].items():
        received = figures["received"]
        cards.append((f"{received['count']} orders", f"received, {received['amount']} {currency}"))
        cards.append((f"{figures['paid']['amount']} {currency}", f"paid ({figures['paid']['count']} orders)"))
    receivables = report["receivables"]
    for currency, entry in receivables.get("currencies", {}).items():
        cards.append((f"{entry['total']} {currency}", f"open receivables ({entry['open_invoices']} invoices)"))
    for currency, dso in receivables.get("dso", {}).items():
        if dso["dso_days"] is not None:
            cards.append((f"{dso['dso_days']} days", f"DSO {currency}"))
    if "overdue" in receivables:
        cards.append((str(len(receivables["overdue"])), "overdue invoices"))
    health = report["sync_health"]
    cards.append((str(health["dead"] + health["held"]), "dead or held steps"))
    return '<div class="cards">' + "".join(f'<div class="card"><b>{_e(a)}</b><span>{_e(b)}</span></div>'
                                           for a, b in cards) + "</div>"


def _orders_html(report: dict) -> str:
    rows = []
    blocks = [(s["name"], s["currencies"]) for s in report["stores"]]
    if len(report["stores"]) > 1:
        blocks.append(("all stores", report["totals"]["currencies"]))
    for name, currencies in blocks:
        for currency, figures in currencies.items():
            rows.append([_e(name), _e(currency)] + [f"{_e(figures[f]['count'])} / {_e(figures[f]['amount'])}"
                                                    for f in FIGURES])
    table = _table(["store", "currency", *(FIGURE_NAMES[f] for f in FIGURES)], rows, numeric_from=2)
    daily = report["daily"]
    stores = report["stores_in_report"]
    chart = bar_chart("chart-daily", "Orders received per day (UTC)", [d["date"][5:] for d in daily],
                      [(s, [d["stores"].get(s, 0) for d in daily]) for s in stores], stacked=True,
                      label_every=max(1, -(-len(daily) // 15)), unit=" orders")
    return (f'<section id="orders"><h2>Orders</h2><p class="muted">Orders the stores created in the period, as '
            f"they stand now: count / amount, per currency.</p>{table}</section>"
            f'<section id="volume"><h2>Daily volume</h2>{chart}</section>')


def _cycles_html(report: dict) -> str:
    rows = []
    for name, cycle, c in cycle_rows(report):
        rows.append([_e(name), _e(CYCLE_NAMES[cycle]), _e(c["count"]), _dash(c["p50_hours"]),
                     _dash(c["p90_hours"]), _dash(c["max_hours"])])
    histogram = report["cycle_histogram"]
    chart = bar_chart("chart-cycle", "Cycle times: orders per duration", histogram["buckets"],
                      [(CYCLE_NAMES[c], histogram[c]) for c in CYCLES], unit=" orders")
    return (f'<section id="cycle-times"><h2>Cycle times (hours)</h2><p class="muted">Nearest-rank percentiles '
            f"over the period's orders that reached the point.</p>"
            f"{_table(['store', 'from order to', 'orders', 'p50', 'p90', 'max'], rows, numeric_from=2)}{chart}"
            f"</section>")


def _receivables_html(receivables: dict) -> str:
    if "currencies" not in receivables:
        text = (f'<p class="bad">Receivables could not be read: {_e(receivables["error"])} '
                f'({_e(receivables["what_to_do"])})</p>' if "error" in receivables
                else f'<p class="muted">{_e(receivables.get("skipped"))}</p>')
        return f'<section id="receivables"><h2>Receivables</h2>{text}{aging_chart({})}</section>'
    rows = [[_e(c), _e(e["open_invoices"]), _e(e["total"]), *(_e(e["buckets"][b]["amount"]) for b in BUCKETS)]
            for c, e in receivables["currencies"].items()]
    aging = _table(["currency", "open invoices", "total", *(b.replace("_", " ") for b in BUCKETS)], rows)
    dso_rows = [[_e(c), _e(d["open_receivables"]), _e(d["credit_sales"]), _e(d["days"]), _dash(d["dso_days"])]
                for c, d in receivables["dso"].items()]
    dso = _table(["currency", "open receivables", "invoiced in the period", "days", "DSO (days)"], dso_rows)
    overdue_rows = [[_e(o["days_past_due"]), _e(o["store"]), _e(o["doc_number"]), _e(o["order_name"]),
                     _e(o["customer"]["name"]), _dash(o["customer"]["email"]), _dash(o["customer"]["phone"]),
                     _e(o["due_date"]), f"{_e(o['balance'])} {_e(o['currency'])}"] for o in receivables["overdue"]]
    overdue = _table(["days overdue", "store", "invoice", "order", "customer", "email", "phone", "due", "balance"],
                     overdue_rows, numeric_from=8) if overdue_rows else '<p class="muted">No overdue invoices.</p>'
    other = (f'<p class="muted">{_e(receivables["unattributed_open_invoices"])} other open invoice(s) in '
             f"QuickBooks were not booked by the connector and are not counted.</p>"
             if receivables["unattributed_open_invoices"] else "")
    return (f'<section id="receivables"><h2>Receivables</h2><p class="muted">Open invoices in QuickBooks as of '
            f"{_e(receivables['as_of'])}, aged by {_e(receivables['due_basis'])}.</p>{aging}"
            f"{aging_chart(receivables)}{other}<h3>Days sales outstanding</h3>{dso}"
            f"<h3>Overdue invoices ({len(receivables['overdue'])})</h3>{overdue}</section>")


def _health_html(health: dict) -> str:
    rows = []
    for s in health["stores"]:
        cover = s["coverage"]
        rows.append([_e(s["name"]), _dash(s["lag_seconds"]), _dash(s["last_poll_at"]),
                     _e(s["webhooks_received"]) if s["webhooks_enabled"] else "off",
                     f"{_e(cover['by_webhook'])}/{_e(cover['orders'])} ({_dash(cover['percent'])}%)",
                     _e(s["rejects"])])
    stores = _table(["store", "cursor lag (s)", "last good poll", "webhooks received", "webhook coverage",
                     "rejected orders"], rows)
    steps = _table(["state", "steps"], [[_e(k), _e(v)] for k, v in health["steps"].items()])
    failures = _table(["state", "step", "steps", "reason", "what to do"],
                      [[_e(f["state"]), _e(f["step"]), _e(f["count"]), _e(f["pattern"] or f["error"]),
                        _e(f["what_to_do"])] for f in health["failures"]], numeric_from=9) \
        if health["failures"] else '<p class="muted">No failed, dead, held or mismatched steps.</p>'
    alerts = "".join(f'<li><span class="{"bad" if a["severity"] == "critical" else ""}">{_e(a["message"])}</span>: '
                     f'{_e(a["what_to_do"])}</li>' for a in health["alerts"])
    return (f'<section id="sync-health"><h2>Sync health</h2>{stores}<h3>Steps by state</h3>{steps}'
            f"<h3>Failures by reason</h3>{failures}"
            + (f"<h3>Alerts</h3><ul>{alerts}</ul>" if alerts else "") + "</section>")


def render_html(report: dict) -> str:
    """The whole page as text."""
    period = report["period"]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report['title'])} {_e(period['since'][:10])} to {_e(period['until'][:10])}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{_e(report['title'])}</h1><p class=\"muted\">{_e(period['since'][:16])} to "
        f"{_e(period['until'][:16])} UTC ({_e(period['days'])} days) &middot; stores: "
        f"{_e(', '.join(report['stores_in_report']))} &middot; generated {_e(report['generated_at'][:16])} UTC</p>"
        f"{_cards(report)}</header>"
        f"{_orders_html(report)}{_cycles_html(report)}{_receivables_html(report['receivables'])}"
        f"{_health_html(report['sync_health'])}"
        "<footer>Every figure is defined in docs/report.md. Amounts are per currency and never added across "
        "currencies. Percentiles are nearest-rank.</footer></body></html>\n")


def write_html_report(settings, path: Path, *, days: int = 30, now=None) -> Path:
    """Build the report of the last ``days`` days and write it as HTML to ``path`` (the demo's last step)."""
    from connector.ledger import Ledger, utcnow
    from connector.report import build_report
    now = now or utcnow()
    ledger = Ledger(settings.ledger_url)
    try:
        report = build_report(settings, ledger, since=now - timedelta(days=days), until=now, now=now)
    finally:
        ledger.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
