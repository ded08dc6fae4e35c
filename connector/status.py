"""Where things stand, as plain data: ``o2c status`` prints it, a dashboard and a report read it.

:func:`collect_status` reads the ledger (and only the configuration's names,
intervals and whether secrets are set, never a secret's value) and returns a
JSON-serialisable dict (docs/status.md):

* ``queue``: steps per target system and per kind, counted by state, with the
  next retry of failed steps, the oldest pending step and the pending steps
  blocked behind a dead or held one;
* ``problems``: dead, held and mismatch steps (and orders that could not be
  read) grouped by step kind and error with the ids and amounts taken out, each
  group with example orders, what to do and the replay command that retries it;
  ``retrying``: the same for failed steps the queue retries by itself;
* ``stores``: per store, the last good poll, the last poll error, the cursor
  and its lag, webhook deliveries (last received and processed, pending,
  failing) and webhook coverage;
* ``tokens``: QuickBooks token health, HubSpot "configured";
* ``alerts``: short sentences an admin must act on, each with what to do.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timedelta

from connector import inbox
from connector.events import redact
from connector.ledger import Ledger, iso, utcnow
from connector.planner import KINDS
from connector.replay import Selection, select

STATES = ("pending", "in_flight", "failed", "dead", "held", "mismatch", "skipped", "done")
SYSTEMS = ("hubspot", "quickbooks")
PROBLEM_STATES = ("dead", "held", "mismatch")  # a person must act
EXAMPLES = 5  # order keys shown per problem group
VALUES = 10  # distinct quoted values (SKUs, names) shown per problem group
STALE_POLL_FACTOR = 3  # a store's poll is late after this many poll intervals
WEBHOOK_PENDING_LATE = timedelta(minutes=15)  # a delivery unprocessed this long: is anything processing the inbox?
WEBHOOK_FAILED_RECENT = timedelta(hours=24)  # failed deliveries younger than this raise an alert
REFRESH_TOKEN_DAYS = 100  # QuickBooks refresh tokens expire 100 days after their last use (notes §4)
REFRESH_TOKEN_WARN_DAYS = 90

_QUOTED = re.compile(r"(?<!\w)'([^']*)'(?!\w)|(?<!\w)\"([^\"]*)\"(?!\w)")
_PARENS = re.compile(r"\([^()]*\)")
_HTTP = re.compile(r"\bHTTP \d{3}\b")  # a status keeps causes apart: "(HTTP 400)" stays
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBERISH = re.compile(r"(?<![\w./:#-])(?<!HTTP )[\w./:#-]*\d[\w./:#-]*")  # ids, amounts, dates, doc numbers


# -- grouping -----------------------------------------------------------------------------------

def normalise(text: str | None) -> str:
    """``text`` with what varies per order taken out, so the same cause reads the same.

    Quoted values, parentheses, e-mail addresses and any word with a digit in it (ids, amounts,
    dates, SKUs, DocNumbers) become placeholders; ``HTTP 400`` keeps its status.
    """
    if not text:
        return ""
    text = _QUOTED.sub(lambda m: "'…'" if m.group(1) is not None else '"…"', text)
    text = _PARENS.sub(lambda m: m.group(0) if _HTTP.search(m.group(0)) else "(…)", text)
    text = _EMAIL.sub("<email>", text)

    def number(match: re.Match) -> str:
        word = match.group(0)
        tail = word[len(word.rstrip(".:/-")):]
        return "#" + tail
    text = _NUMBERISH.sub(number, text)
    return " ".join(text.split())


def quoted_values(text: str | None) -> list[str]:
    """The quoted values of ``text`` (a SKU, an item or customer name), in order."""
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _QUOTED.finditer(text or "")]


def group_key(step_kind: str, state: str, error: str | None, what_to_do: str | None) -> tuple[str, str, str, str]:
    """Steps with the same kind, state, and normalised what-to-do and error are one problem.

    The steps table keeps no error code, so the sentences decide: the what-to-do is written per
    cause, and the normalised error keeps apart causes that share a generic what-to-do.
    """
    return step_kind, state, normalise(what_to_do), normalise(error)


def _kind(step: str) -> str:
    return step.split(":", 1)[0]


def _system(kind: str) -> str:
    return kind.split(".", 1)[0]


def _command(config_path: str | None, *words: str) -> str:
    """``o2c <words>``, with ``--config <path>`` when the status was asked for with one."""
    words = ("o2c", *words, *(("--config", config_path) if config_path else ()))
    return " ".join(shlex.quote(w) for w in words)


def _group(rows: list[dict], *, kind_of=lambda r: _kind(r["step"]), state_of=lambda r: r["state"]) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for row in rows:
        key = group_key(kind_of(row), state_of(row), row["error"], row["what_to_do"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "state": key[1], "step": key[0], "count": 0, "error": redact(row["error"], 1000) or "",
                "pattern": redact(key[3], 1000), "what_to_do": redact(row["what_to_do"], 1000) or "",
                "values": [], "more_values": 0, "examples": [], "_whats": set(), "_values": [], "_keys": set(),
                "_next": None}
        group["count"] += 1
        due = row.get("next_attempt_at")
        if due and (group["_next"] is None or due < group["_next"]):
            group["_next"] = due
        group["_whats"].add(row["what_to_do"] or "")
        for value in quoted_values(row["error"]):
            if value not in group["_values"]:
                group["_values"].append(value)
        if row["order_key"] not in group["_keys"]:
            group["_keys"].add(row["order_key"])
            if len(group["examples"]) < EXAMPLES:
                group["examples"].append(row["order_key"])
    result = []
    for (_, _, what_pattern, _), group in groups.items():
        if len(group.pop("_whats")) > 1:  # the sentence names one order's value: show its shape
            group["what_to_do"] = redact(what_pattern, 1000)
        values = group.pop("_values")
        group["values"] = [redact(v, 200) for v in values[:VALUES]]
        group["more_values"] = max(0, len(values) - VALUES)
        group["orders"] = len(group.pop("_keys"))
        due = group.pop("_next")
        if group["state"] == "failed":
            group["next_retry_at"] = due
        result.append(group)
    return result


def _order(groups: list[dict], states: tuple[str, ...]) -> list[dict]:
    rank = {s: i for i, s in enumerate(states)}
    return sorted(groups, key=lambda g: (rank.get(g["state"], len(rank)), -g["count"], g["step"], g["pattern"]))


def _replay(ledger: Ledger, group: dict, config_path: str | None) -> None:
    """The narrowest ``o2c replay`` that retries the group, and how many steps it would touch."""
    kind, state = group["step"], group["state"]
    base = Selection(step=kind, states=(state,))
    covers = len(select(ledger, base))
    args = ["replay", "--step", kind, "--state", state]
    if covers != group["count"] and group["orders"] <= EXAMPLES:
        narrow = Selection(order_keys=tuple(group["examples"]), step=kind, states=(state,))
        covers = len(select(ledger, narrow))
        for key in group["examples"]:
            args += ["--order", key]
    group["replay"] = _command(config_path, *args)
    group["replay_covers"] = covers


# -- sections -----------------------------------------------------------------------------------

def _empty_counts() -> dict[str, int]:
    return {state: 0 for state in STATES}


def _queue(ledger: Ledger, now: datetime) -> dict:
    now_iso = iso(now)
    kind_sql = "CASE WHEN instr(step, ':') > 0 THEN substr(step, 1, instr(step, ':') - 1) ELSE step END"
    kinds: dict[str, dict] = {}
    for kind, state, n, next_retry, oldest, expired in ledger.conn.execute(
            f"SELECT {kind_sql} AS kind, state, COUNT(*), MIN(next_attempt_at), MIN(created_at),"
            " SUM(CASE WHEN lease_until <= ? THEN 1 ELSE 0 END) FROM steps GROUP BY kind, state", (now_iso,)):
        entry = kinds.setdefault(kind, {"counts": _empty_counts(), "next_retry_at": None, "oldest_pending_at": None,
                                        "blocked": 0, "lease_expired": 0})
        entry["counts"][state] = entry["counts"].get(state, 0) + n
        if state == "failed":
            entry["next_retry_at"] = next_retry
        elif state == "pending":
            entry["oldest_pending_at"] = oldest
        elif state == "in_flight":
            entry["lease_expired"] = expired or 0
    for kind, n in _blocked(ledger).items():
        if kind in kinds:
            kinds[kind]["blocked"] = n
    systems: dict[str, dict] = {}
    rank = {k: i for i, k in enumerate(KINDS)}
    for system in sorted({*SYSTEMS, *(_system(k) for k in kinds)}, key=lambda s: (s not in SYSTEMS, s)):
        mine = {k: kinds[k] for k in sorted((k for k in kinds if _system(k) == system),
                                            key=lambda k: (rank.get(k, len(rank)), k))}
        counts = _empty_counts()
        for entry in mine.values():
            for state, n in entry["counts"].items():
                counts[state] = counts.get(state, 0) + n
        systems[system] = {
            "counts": counts,
            "total": sum(counts.values()),
            "next_retry_at": min((e["next_retry_at"] for e in mine.values() if e["next_retry_at"]), default=None),
            "oldest_pending_at": min((e["oldest_pending_at"] for e in mine.values() if e["oldest_pending_at"]),
                                     default=None),
            "blocked": sum(e["blocked"] for e in mine.values()),
            "lease_expired": sum(e["lease_expired"] for e in mine.values()),
            "kinds": mine,
        }
    return {"states": list(STATES), "systems": systems}


def _blocked(ledger: Ledger) -> dict[str, int]:
    """Pending steps, per kind, that wait (directly or through another step) on a dead or held one."""
    orders = [r[0] for r in ledger.conn.execute(
        "SELECT DISTINCT order_key FROM steps WHERE state IN ('dead', 'held')")]
    result: dict[str, int] = {}
    for order_key in orders:
        rows = ledger.conn.execute("SELECT step, state, depends_on FROM steps WHERE order_key = ?",
                                   (order_key,)).fetchall()
        stuck = {step for step, state, _ in rows if state in ("dead", "held")}
        changed = True
        while changed:
            changed = False
            for step, state, depends in rows:
                if step not in stuck and state in ("pending", "failed") and \
                        stuck & set(filter(None, (depends or "").split(","))):
                    stuck.add(step)
                    changed = True
        for step, state, _ in rows:
            if step in stuck and state == "pending":
                result[_kind(step)] = result.get(_kind(step), 0) + 1
    return result


def _problems(ledger: Ledger, config_path: str | None) -> tuple[list[dict], list[dict]]:
    keys = ("order_key", "step", "state", "error", "what_to_do", "next_attempt_at")
    rows = [dict(zip(keys, r)) for r in ledger.conn.execute(
        "SELECT order_key, step, state, error, what_to_do, next_attempt_at FROM steps"
        " WHERE state IN ('failed', 'dead', 'held', 'mismatch') ORDER BY order_key, id")]
    problems = _group([r for r in rows if r["state"] in PROBLEM_STATES])
    for group in problems:
        _replay(ledger, group, config_path)
    rejects = [dict(zip(("order_key", "error", "what_to_do"), r)) for r in ledger.conn.execute(
        "SELECT order_key, error, what_to_do FROM rejects ORDER BY order_key")]
    for group in _group(rejects, kind_of=lambda r: "intake", state_of=lambda r: "rejected"):
        group["replay"], group["replay_covers"] = None, 0  # read again when the store changes the order
        problems.append(group)
    retrying = _group([r for r in rows if r["state"] == "failed"])
    return _order(problems, (*PROBLEM_STATES, "rejected")), _order(retrying, ("failed",))


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _age(value: str | None, now: datetime) -> int | None:
    moment = _parse(value)
    return None if moment is None else int((now - moment).total_seconds())


def _store(ledger: Ledger, settings, store, now: datetime) -> dict:
    conn, name = ledger.conn, store.name
    prefix = (len(name) + 1, name + " ")
    orders = conn.execute("SELECT COUNT(*) FROM orders WHERE store = ?", (name,)).fetchone()[0]
    cursor = conn.execute("SELECT value, updated_at FROM cursors WHERE store = ?", (name,)).fetchone()
    ok = conn.execute("SELECT id, at FROM events WHERE kind = 'pull' AND outcome = 'ok' AND substr(detail, 1, ?) = ?"
                      " ORDER BY id DESC LIMIT 1", prefix).fetchone()
    newest = conn.execute("SELECT id, at, outcome, error, detail FROM events WHERE kind = 'pull'"
                          " AND substr(detail, 1, ?) = ? ORDER BY id DESC LIMIT 1", prefix).fetchone()
    last_ok = ok[1] if ok else (cursor[1] if cursor else None)
    error = None
    if newest is not None and newest[2] != "ok":
        since, failures = conn.execute(
            "SELECT MIN(at), COUNT(*) FROM events WHERE kind = 'pull' AND outcome != 'ok' AND id > ?"
            " AND substr(detail, 1, ?) = ?", (ok[0] if ok else 0, *prefix)).fetchone()
        error = {"at": newest[1], "error": redact(newest[3] or newest[4], 1000), "failing_since": since,
                 "failures": failures}
    age = _age(last_ok, now)
    late_after = STALE_POLL_FACTOR * store.poll_seconds
    first, last_in, last_done = conn.execute(
        "SELECT MIN(received_at), MAX(received_at), MAX(processed_at) FROM inbox WHERE store = ?", (name,)).fetchone()
    retrying, late = conn.execute(
        "SELECT SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN received_at < ? THEN 1 ELSE 0 END)"
        " FROM inbox WHERE store = ? AND processed_at IS NULL", (iso(now - WEBHOOK_PENDING_LATE), name)).fetchone()
    recent_failed = conn.execute(
        "SELECT COUNT(*) FROM inbox WHERE store = ? AND outcome = 'failed' AND received_at >= ?",
        (name, iso(now - WEBHOOK_FAILED_RECENT))).fetchone()[0]
    last_error = conn.execute("SELECT error FROM inbox WHERE store = ? AND outcome = 'failed' AND error IS NOT NULL"
                              " ORDER BY id DESC LIMIT 1", (name,)).fetchone()
    retry_error = conn.execute("SELECT error FROM inbox WHERE store = ? AND processed_at IS NULL AND attempts > 0"
                               " ORDER BY id DESC LIMIT 1", (name,)).fetchone()
    health = conn.execute("SELECT at, outcome, detail FROM events WHERE kind = 'webhook_health'"
                          " AND substr(detail, 1, ?) = ? ORDER BY id DESC LIMIT 1",
                          (len(name) + 2, name + ": ")).fetchone()
    counts = inbox.counts(ledger, name)
    cover = inbox.coverage(ledger, name)
    rejects = conn.execute("SELECT COUNT(*) FROM rejects WHERE store = ?", (name,)).fetchone()[0]
    return {
        "name": name,
        "system": store.system,
        "orders": orders,
        "rejects": rejects,
        "poll_seconds": store.poll_seconds,
        "last_poll_at": last_ok,
        "last_poll_age_seconds": age,
        "poll_late": age is None or age > late_after,
        "poll_late_after_seconds": late_after,
        "last_poll_error": error,
        "cursor": cursor[0] if cursor else None,
        "cursor_lag_seconds": _age(cursor[0], now) if cursor else None,
        "webhooks": {
            "enabled": settings.webhooks is not None and store.webhook_secret is not None,
            "first_received_at": first,
            "last_received_at": last_in,
            "last_processed_at": last_done,
            "received": counts["received"],
            "duplicates": counts["duplicates"],
            "pending": counts["pending"],
            "pending_late": late or 0,
            "retrying": retrying or 0,
            "failed": counts.get("failed", 0),
            "failed_recently": recent_failed,
            "last_error": redact(last_error[0], 1000) if last_error else None,
            "retry_error": redact(retry_error[0], 1000) if retry_error and retry_error[0] else None,
            "outcomes": {k: v for k, v in sorted(counts.items())
                         if k not in ("received", "duplicates", "pending")},
            "coverage": {"orders": cover.orders, "by_webhook": cover.by_webhook, "poll_only": cover.poll_only,
                         "poll_only_since_first_webhook": cover.poll_only_since},
            "subscriptions": ({"checked_at": health[0], "outcome": health[1],
                               "detail": redact(health[2][len(name) + 2:], 500)} if health else None),
        },
    }


def _tokens(ledger: Ledger, settings, now: datetime, config_path: str | None) -> dict:
    realm = settings.quickbooks.realm_id
    # Never the token values: only whether one is stored, and the times around it.
    row = ledger.conn.execute(
        "SELECT length(refresh_token) > 0, access_expires_at, updated_at, needs_reconnect FROM tokens"
        " WHERE system = 'quickbooks' AND account = ?", (realm,)).fetchone()
    stored, expires, updated, reconnect = (bool(row[0]), row[1], row[2], redact(row[3], 500)) if row \
        else (False, None, None, None)
    age = _age(updated, now) if stored else None
    quickbooks = {
        "company": realm,
        "stored": stored,
        "access_token_expires_at": expires if stored else None,
        "access_token_valid": bool(stored and expires and _parse(expires) > now),
        "refresh_token_renewed_at": updated if stored else None,
        "refresh_token_age_days": round(age / 86400, 1) if age is not None else None,
        "refresh_token_expires_about": iso(_parse(updated) + timedelta(days=REFRESH_TOKEN_DAYS)) if stored else None,
        "needs_reconnect": reconnect,
        "status": "ok",
        "message": "connected",
        "what_to_do": None,
    }
    auth = _command(config_path, "auth", "quickbooks")
    reconnect_text = f"reconnect with `{auth}`"
    if reconnect:
        quickbooks.update(status="needs_reconnect", message=f"QuickBooks needs reconnecting: {reconnect}",
                          what_to_do=reconnect_text)
    elif not stored:
        quickbooks.update(status="not_connected",
                          message="no QuickBooks token in the ledger yet: the next sync will try the refresh token "
                                  "from the configuration",
                          what_to_do=f"run `{_command(config_path, 'sync')}` to check it works; if QuickBooks refuses "
                                     f"it, {reconnect_text}")
    elif age is not None and age > REFRESH_TOKEN_DAYS * 86400:
        quickbooks.update(status="expired",
                          message=f"the QuickBooks refresh token was last renewed {age // 86400} days ago; it "
                                  f"expires after {REFRESH_TOKEN_DAYS} days unused",
                          what_to_do=reconnect_text)
    elif age is not None and age > REFRESH_TOKEN_WARN_DAYS * 86400:
        quickbooks.update(status="expiring",
                          message=f"the QuickBooks refresh token was last renewed {age // 86400} days ago; it "
                                  f"expires {REFRESH_TOKEN_DAYS} days after its last renewal",
                          what_to_do=f"run `{_command(config_path, 'sync')}` or keep `o2c daemon` running (each "
                                     f"token refresh renews it); if it has lapsed, {reconnect_text}")
    configured = bool(settings.hubspot.access_token.get_secret_value())  # only whether it is set
    hubspot = {"auth": "private app token", "status": "configured" if configured else "missing"}
    return {"quickbooks": quickbooks, "hubspot": hubspot}


def duration(seconds: int) -> str:
    """A short human length of time: ``45 s``, ``12 min``, ``5 h``, ``3 days``."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _n(count: int, noun: str) -> str:
    """``1 webhook delivery``, ``2 webhook deliveries``, ``3 times``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _alerts(status: dict, config_path: str | None) -> list[dict]:
    alerts: list[dict] = []

    def alert(severity: str, subject: str, message: str, what_to_do: str) -> None:
        alerts.append({"severity": severity, "subject": subject, "message": message, "what_to_do": what_to_do})

    qbo = status["tokens"]["quickbooks"]
    if qbo["status"] != "ok":
        alert("critical" if qbo["status"] in ("needs_reconnect", "expired") else "warning", "quickbooks",
              qbo["message"], qbo["what_to_do"])
    sync = _command(config_path, "sync")
    for store in status["stores"]:
        subject = f"store {store['name']}"
        error = store["last_poll_error"]
        if error:
            why = (error["error"] or "").removeprefix(f"{store['name']}: ")
            since = (error["failing_since"] or "")[:16].replace("T", " ")
            alert("critical", subject, f"{store['name']}: polling fails ({_n(error['failures'], 'time')} in a row "
                  f"since {since} UTC): {why}",
                  "check the store's address and credentials in the config and that the store is up; "
                  "the next poll reads the missed window again")
        elif store["last_poll_at"] is None:
            alert("warning", subject, f"{store['name']} has never been polled",
                  f"run `{sync}` or start `o2c daemon`")
        elif store["poll_late"]:
            alert("critical", subject, f"{store['name']}: last good poll {duration(store['last_poll_age_seconds'])}"
                  f" ago (it polls every {duration(store['poll_seconds'])})",
                  "check that `o2c daemon` is running (or that the scheduled `o2c sync` runs); if you sync on a "
                  "schedule, set the store's poll_seconds to that interval")
        hooks = store["webhooks"]
        if hooks["retrying"]:
            why = (hooks["retry_error"] or "the store could not be reached").removeprefix(f"{store['name']}: ")
            alert("warning", subject, f"{store['name']}: {_n(hooks['retrying'], 'webhook delivery')} waiting for the "
                  f"store to answer: {why}",
                  "nothing to do if it passes (they are retried, and polling catches up); else check the store")
        elif hooks["pending_late"]:
            late = duration(int(WEBHOOK_PENDING_LATE.total_seconds()))
            alert("warning", subject, f"{store['name']}: {_n(hooks['pending_late'], 'webhook delivery')} waiting "
                  f"more than {late}",
                  "check that `o2c daemon` is running (it processes the inbox), or run `o2c webhooks process`")
        if hooks["failed_recently"]:
            alert("warning", subject, f"{store['name']}: {_n(hooks['failed_recently'], 'webhook delivery')} could "
                  f"not be processed in the last day: {hooks['last_error'] or 'see the inbox'}",
                  "polling still reads these orders; check the orders in the store if it goes on")
        subs = hooks["subscriptions"]
        if subs and subs["outcome"] == "failed":
            alert("warning", subject, f"{store['name']}: webhook subscriptions are not all in place "
                  f"({subs['detail']})", "run `o2c webhooks register` and check the store's webhook settings")
    for state, label, what in (
            ("dead", "dead step", "fix the cause each problem names, then run its replay command"),
            ("held", "step held for review", "review the documents in the target, then replay or leave them"),
            ("mismatch", "step booked with a total mismatch", "compare each document with the store's order; "
                                                               "fix it in the target, or accept it"),
            ("rejected", "order that could not be read", "fix what each problem names; the order is read "
                                                          "again when it changes in the store")):
        groups = [g for g in status["problems"] if g["state"] == state]
        if groups:
            n = sum(g["count"] for g in groups)
            noun = label if n == 1 else label.replace("step", "steps", 1).replace("order", "orders", 1)
            alert("critical" if state == "dead" else "warning", "intake" if state == "rejected" else "steps",
                  f"{n} {noun} ({len(groups)} problem{'s' if len(groups) > 1 else ''})", what)
    return alerts


def collect_status(settings, ledger: Ledger, now: datetime | None = None, *, config_path: str | None = None) -> dict:
    """Where things stand, as JSON-serialisable data (docs/status.md).

    ``config_path`` goes into the commands the status suggests (``o2c replay --config ...``).
    """
    now = now or utcnow()
    problems, retrying = _problems(ledger, config_path)
    status = {
        "generated_at": iso(now),
        "ledger": ledger.location,
        "queue": _queue(ledger, now),
        "problems": problems,
        "retrying": retrying,
        "stores": [_store(ledger, settings, store, now) for store in settings.stores],
        "tokens": _tokens(ledger, settings, now, config_path),
    }
    status["alerts"] = _alerts(status, config_path)
    return status
