"""The order-to-cash report: what happened to a period's orders, as plain data (docs/report.md).

:func:`build_report` reads the ledger (order snapshots, document bindings and
events), QuickBooks (open invoices and their customers, through
:mod:`connector.report_receivables`) and the sync status
(:func:`connector.status.collect_status`) and returns one JSON-serialisable
dict: Decimals as strings, times as ISO-8601 UTC. Renderers
(:mod:`connector.report_tables`, :mod:`connector.report_export`,
:mod:`connector.report_html`) only lay it out.

Definitions in short (docs/report.md has them all):

* The period is ``[since, until)`` in UTC. An order belongs to it when the
  store created it in the period ("the period's orders"); every order figure
  is about those orders, as they stand when the report runs.
* Amounts are kept per currency (the currency the order books in) and never
  added across currencies.
* Percentiles are nearest-rank: for n sorted values, the p-th percentile is
  the value at rank ``ceil(p / 100 * n)``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from connector.ledger import Ledger, iso, utcnow
from connector.model import Order
from connector.planner import DOCUMENTS
from connector.snapshot import from_json

CENT = Decimal("0.01")
FIGURES = ("received", "booked", "paid", "refunded", "cancelled")
CYCLES = ("order_to_booked", "order_to_cash")
# Cycle-time histogram: (label, upper bound in hours, exclusive); the last bucket has no bound.
HISTOGRAM = (("< 1 h", 1), ("1-6 h", 6), ("6-24 h", 24), ("1-3 d", 72), ("3-7 d", 168), ("7-14 d", 336),
             ("14-30 d", 720), ("> 30 d", None))
ALL = "*"  # the store name of "every store in the report" in CSV rows


def cycle_rows(report: dict):
    """``(store name, cycle, figures)`` per store and cycle, then for all stores when there are several."""
    blocks = [(s["name"], s["cycle_times"]) for s in report["stores"]]
    if len(report["stores"]) > 1:
        blocks.append(("all stores", report["totals"]["cycle_times"]))
    for name, cycles in blocks:
        for cycle in CYCLES:
            yield name, cycle, cycles[cycle]


# -- small helpers ------------------------------------------------------------------------------

def amount_text(value: Decimal) -> str:
    """A money amount as text: at least cents, never rounded away (``12.5`` -> ``12.50``)."""
    return str(value.quantize(CENT)) if value.as_tuple().exponent >= -2 else str(value)


def hours(delta: timedelta) -> str:
    """A duration in hours, to 0.01 h, from the exact timedelta (no float on the way)."""
    seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)
    return str((seconds / Decimal(3600)).quantize(CENT, rounding=ROUND_HALF_UP))


def nearest_rank(values: list, p: int):
    """The p-th percentile by nearest rank: the value at rank ceil(p/100 * n) of the sorted values.

    ``None`` for no values. p=100 is the maximum; every result is one of the values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


def parse_moment(text: str, *, end: bool = False) -> datetime:
    """An ISO instant (UTC when no offset), or a date: its midnight, or with ``end`` the next midnight.

    ``--until 2026-11-30`` thus includes all of 30 November.
    """
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        moment = datetime.combine(day, time(), timezone.utc)
        return moment + timedelta(days=1) if end else moment
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _in(moment: datetime | None, since: datetime, until: datetime) -> bool:
    return moment is not None and since <= moment < until


# -- reading the ledger -------------------------------------------------------------------------

def period_orders(ledger: Ledger, since: datetime, until: datetime, stores: list[str]) -> list[Order]:
    """The orders the stores created in ``[since, until)``, from their latest snapshots."""
    if not stores:
        return []
    marks = ",".join("?" * len(stores))
    # source_created_at is ISO UTC with microseconds (ledger.iso): text order is time order, but the
    # snapshot's own time decides, so an odd stored format cannot move an order across the boundary.
    rows = ledger.conn.execute(
        f"SELECT snapshot FROM orders WHERE store IN ({marks}) AND source_created_at >= ? AND source_created_at < ?"
        " ORDER BY source_created_at, order_key",
        (*stores, iso(since - timedelta(days=1)), iso(until + timedelta(days=1)))).fetchall()
    orders = [from_json(row[0]) for row in rows]
    return [o for o in orders if _in(o.created_at.astimezone(timezone.utc), since, until)]


def booked_at(ledger: Ledger, order_keys: list[str]) -> dict[str, dict]:
    """``{order_key: {"kind", "external_id", "at"}}`` for the orders whose document is booked.

    Booked: the order has a QuickBooks document binding (invoice or sales receipt), or its document
    step ended ``done``/``mismatch``. When: the binding's ``created_at`` (committed right after the
    remote create), else the first ``done``/``mismatch`` attempt event, else the step's last update.
    """
    booked: dict[str, dict] = {}
    wanted = set(order_keys)
    kinds = [d.split(".", 1)[1] for d in DOCUMENTS]
    for kind, key, external_id, created in ledger.conn.execute(
            f"SELECT kind, canonical_key, external_id, created_at FROM bindings WHERE system = 'quickbooks'"
            f" AND kind IN ({','.join('?' * len(kinds))})", kinds):
        if key in wanted:
            found = booked.get(key)
            if found is None or created < found["at"]:
                booked[key] = {"kind": kind, "external_id": external_id, "at": created, "from": "binding"}
    marks = ",".join("?" * len(DOCUMENTS))
    for key, step, external_id, updated in ledger.conn.execute(
            f"SELECT order_key, step, external_id, updated_at FROM steps WHERE step IN ({marks})"
            " AND state IN ('done', 'mismatch')", DOCUMENTS):
        if key not in wanted or key in booked:
            continue
        first = ledger.conn.execute(
            "SELECT MIN(at) FROM events WHERE order_key = ? AND step = ? AND outcome IN ('done', 'mismatch')",
            (key, step)).fetchone()[0]
        booked[key] = {"kind": step.split(".", 1)[1], "external_id": external_id, "at": first or updated,
                       "from": "event" if first else "step"}
    for entry in booked.values():
        entry["at"] = _parse(entry["at"])
    return booked


def cash_at(order: Order) -> datetime | None:
    """When the order was paid in full: the captured transaction that brought captured money to the total.

    ``None`` for an order not (yet) paid in full, a zero-total order (no cash moves), or when that
    transaction has no time.
    """
    if order.total.amount <= 0:
        return None
    captured = sorted((t for t in order.transactions if t.is_captured_money and t.amount.amount > 0),
                      key=lambda t: (t.processed_at is None, t.processed_at or order.created_at))
    running = Decimal(0)
    for txn in captured:
        running += txn.amount.amount
        if running >= order.total.amount:
            return txn.processed_at
    return None


# -- sections -----------------------------------------------------------------------------------

def _blank_figures() -> dict:
    return {name: {"count": 0, "amount": Decimal(0)} for name in FIGURES}


def _add(figures: dict, order: Order, booked: bool) -> None:
    def add(name: str, amount: Decimal) -> None:
        figures[name]["count"] += 1
        figures[name]["amount"] += amount
    add("received", order.total.amount)
    if booked:
        add("booked", order.total.amount)
    captured = sum((t.amount.amount for t in order.transactions if t.is_captured_money), Decimal(0))
    if captured > 0:
        add("paid", captured)
    refunded = sum((r.amount.amount for r in order.refunds), Decimal(0))
    if refunded > 0:
        add("refunded", refunded)
    if order.cancelled_at is not None:
        add("cancelled", order.total.amount)


def _figures_out(by_currency: dict) -> dict:
    return {currency: {name: {"count": f["count"], "amount": amount_text(f["amount"])} for name, f in figures.items()}
            for currency, figures in sorted(by_currency.items())}


def _cycle(durations: list[timedelta]) -> dict:
    if not durations:
        return {"count": 0, "p50_hours": None, "p90_hours": None, "max_hours": None}
    return {"count": len(durations), "p50_hours": hours(nearest_rank(durations, 50)),
            "p90_hours": hours(nearest_rank(durations, 90)), "max_hours": hours(max(durations))}


def _histogram(durations: list[timedelta]) -> list[int]:
    counts = [0] * len(HISTOGRAM)
    for delta in durations:
        for i, (_, bound) in enumerate(HISTOGRAM):
            if bound is None or delta < timedelta(hours=bound):
                counts[i] += 1
                break
    return counts


def _days(since: datetime, until: datetime) -> list[date]:
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def orders_section(ledger: Ledger, stores: list, since: datetime, until: datetime) -> dict:
    """Per store and currency: the period's orders received, booked, paid, refunded, cancelled; cycle
    times; the daily series and the cycle-time histogram."""
    names = [s.name for s in stores]
    orders = period_orders(ledger, since, until, names)
    booked = booked_at(ledger, [o.order_key for o in orders])
    per_store = {name: defaultdict(_blank_figures) for name in names}
    everything: dict = defaultdict(_blank_figures)
    cycles = {name: {c: [] for c in CYCLES} for name in [*names, ALL]}
    days = _days(since, until)
    daily = {d: {"stores": {name: 0 for name in names}, "amounts": defaultdict(Decimal)} for d in days}
    for order in orders:
        entry = booked.get(order.order_key)
        for figures in (per_store[order.store][order.currency], everything[order.currency]):
            _add(figures, order, entry is not None)
        created = order.created_at.astimezone(timezone.utc)
        paid = cash_at(order)
        for name in (order.store, ALL):
            if entry is not None and entry["at"] is not None:
                cycles[name]["order_to_booked"].append(entry["at"] - created)
            if paid is not None:
                cycles[name]["order_to_cash"].append(paid.astimezone(timezone.utc) - created)
        day = daily[created.date()]
        day["stores"][order.store] += 1
        day["amounts"][order.currency] += order.total.amount
    result_stores = []
    for store in stores:
        result_stores.append({
            "name": store.name, "system": store.system,
            "currencies": _figures_out(per_store[store.name]),
            "not_booked": sum(f["received"]["count"] - f["booked"]["count"] for f in per_store[store.name].values()),
            "cycle_times": {c: _cycle(cycles[store.name][c]) for c in CYCLES},
        })
    return {
        "stores": result_stores,
        "totals": {"currencies": _figures_out(everything),
                   "cycle_times": {c: _cycle(cycles[ALL][c]) for c in CYCLES}},
        "daily": [{"date": d.isoformat(), "orders": sum(daily[d]["stores"].values()), "stores": daily[d]["stores"],
                   "amounts": {c: amount_text(a) for c, a in sorted(daily[d]["amounts"].items())}} for d in days],
        "cycle_histogram": {"buckets": [label for label, _ in HISTOGRAM],
                            **{c: _histogram(cycles[ALL][c]) for c in CYCLES}},
        "_orders": orders, "_booked": booked,
    }


def sync_health(status: dict, stores: list[str]) -> dict:
    """The report's view of :func:`connector.status.collect_status`: lag, failures, dead/held, coverage."""
    counts = {state: 0 for state in status["queue"]["states"]}
    for system in status["queue"]["systems"].values():
        for state, n in system["counts"].items():
            counts[state] = counts.get(state, 0) + n
    result_stores = []
    for store in status["stores"]:
        if store["name"] not in stores:
            continue
        hooks = store["webhooks"]
        cover = hooks["coverage"]
        percent = None
        if cover["orders"]:
            percent = str((Decimal(100) * cover["by_webhook"] / cover["orders"]).quantize(Decimal("0.1"),
                                                                                       ROUND_HALF_UP))
        result_stores.append({
            "name": store["name"], "system": store["system"], "orders": store["orders"], "rejects": store["rejects"],
            "last_poll_at": store["last_poll_at"], "last_poll_age_seconds": store["last_poll_age_seconds"],
            "cursor": store["cursor"], "lag_seconds": store["cursor_lag_seconds"], "poll_late": store["poll_late"],
            "last_poll_error": (store["last_poll_error"] or {}).get("error"),
            "webhooks_enabled": hooks["enabled"], "webhooks_received": hooks["received"],
            "webhooks_pending": hooks["pending"], "webhooks_failed": hooks["failed"],
            "last_webhook_at": hooks["last_received_at"],
            "coverage": {"orders": cover["orders"], "by_webhook": cover["by_webhook"], "poll_only": cover["poll_only"],
                         "poll_only_since_first_webhook": cover["poll_only_since_first_webhook"],
                         "percent": percent},
        })
    failures = [{"state": g["state"], "step": g["step"], "count": g["count"], "orders": g["orders"],
                 "error": g["error"], "pattern": g["pattern"], "what_to_do": g["what_to_do"],
                 "replay": g.get("replay"), "examples": g["examples"]}
                for g in [*status["problems"], *status["retrying"]]]
    return {
        "steps": counts,
        "dead": counts.get("dead", 0), "held": counts.get("held", 0), "mismatch": counts.get("mismatch", 0),
        "failed": counts.get("failed", 0),
        "failures": failures,
        "stores": result_stores,
        "quickbooks_token": status["tokens"]["quickbooks"]["status"],
        "alerts": [{"severity": a["severity"], "subject": a["subject"], "message": a["message"],
                    "what_to_do": a["what_to_do"]} for a in status["alerts"]],
    }


def build_report(settings, ledger: Ledger, *, store: str | None = None, since: datetime, until: datetime,
                 now: datetime | None = None, receivables: bool = True, books=None) -> dict:
    """The order-to-cash report of ``[since, until)`` as JSON-serialisable data (docs/report.md).

    Args:
        settings: the loaded configuration (its stores and QuickBooks connection).
        ledger: the open ledger.
        store: only this store (default: every configured store).
        since: the period's first instant (aware datetime; UTC when naive).
        until: the instant the period ends (excluded).
        now: the report's "now": invoice ages and sync lag are measured from it (default: the clock).
        receivables: also read QuickBooks for open invoices, aging, DSO and overdue invoices.
        books: what answers QuickBooks queries (``query(sql) -> QueryResponse``); default a
            :class:`adapters.quickbooks.QuickBooksTarget` on the configuration.
    """
    from connector.report_receivables import receivables_section
    from connector.status import collect_status

    now = now or utcnow()
    since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    until = until if until.tzinfo else until.replace(tzinfo=timezone.utc)
    if until <= since:
        raise ValueError(f"the period is empty: until ({iso(until)}) is not after since ({iso(since)})")
    stores = [settings.store(store)] if store else list(settings.stores)
    names = [s.name for s in stores]
    section = orders_section(ledger, stores, since, until)
    orders, booked = section.pop("_orders"), section.pop("_booked")
    report = {
        "title": "Order-to-cash report",
        "generated_at": iso(now),
        "period": {"since": iso(since), "until": iso(until),
                   "days": str(_period_days(since, until)), "timezone": "UTC"},
        "stores_in_report": names,
        **section,
    }
    if receivables:
        report["receivables"] = receivables_section(settings, ledger, names, orders, booked, now=now,
                                                    period_days=_period_days(since, until), books=books)
    else:
        report["receivables"] = {"skipped": "not asked for (--no-receivables)"}
    report["sync_health"] = sync_health(collect_status(settings, ledger, now=now), names)
    json.dumps(report)  # fail here, not in a renderer, if anything is not plain data
    return report


def _period_days(since: datetime, until: datetime) -> Decimal:
    """The period's length in days: ``30`` for a 30-day period, ``0.5`` for twelve hours (to 0.000001 day)."""
    delta = until - since
    seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)
    if seconds % 86400 == 0:
        return Decimal(delta.days)
    return (seconds / Decimal(86400)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize()
