"""``/metrics``: the status as Prometheus text (exposition format 0.0.4), written by hand.

Gauges only, read from :func:`connector.status.collect_status` at each scrape (docs/dashboard.md
"Metrics"). No secret is ever a label or a value.
"""

from __future__ import annotations

from connector.ledger import Ledger

TOKEN_STATUSES = ("ok", "not_connected", "expiring", "expired", "needs_reconnect")


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, help_text: str, samples: list[tuple[dict, float | int | None]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            if value is None:
                continue
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")


def render_metrics(settings, ledger: Ledger) -> str:
    from connector.status import collect_status
    status = collect_status(settings, ledger)
    out = _Writer()
    queue = status["queue"]
    out.family("o2c_queue_steps", "Steps per target system and state.",
               [({"system": system, "state": state}, entry["counts"].get(state, 0))
                for system, entry in queue["systems"].items() for state in queue["states"]])
    out.family("o2c_queue_kind_steps", "Steps per step kind and state.",
               [({"system": system, "kind": kind, "state": state}, sub["counts"].get(state, 0))
                for system, entry in queue["systems"].items() for kind, sub in entry.get("kinds", {}).items()
                for state in queue["states"]])
    out.family("o2c_queue_blocked_steps", "Pending steps waiting on a dead or held step.",
               [({"system": system}, entry.get("blocked", 0)) for system, entry in queue["systems"].items()])
    out.family("o2c_queue_lease_expired_steps", "Running steps whose claim ran out.",
               [({"system": system}, entry.get("lease_expired", 0)) for system, entry in queue["systems"].items()])
    out.family("o2c_problem_steps", "Dead, held and mismatch steps (and rejected orders), per step kind.",
               [({"state": p["state"], "kind": p["step"]}, p["count"]) for p in _merged(status["problems"])])
    severities = {"critical": 0, "warning": 0}
    for alert in status["alerts"]:
        severities[alert["severity"]] = severities.get(alert["severity"], 0) + 1
    out.family("o2c_alerts", "Alerts a person must act on, per severity.",
               [({"severity": k}, v) for k, v in severities.items()])
    stores = status["stores"]
    out.family("o2c_store_orders", "Orders in the ledger per store.", [({"store": s["name"]}, s["orders"]) for s in stores])
    out.family("o2c_store_rejects", "Orders that could not be read, per store.",
               [({"store": s["name"]}, s["rejects"]) for s in stores])
    out.family("o2c_store_last_poll_age_seconds", "Seconds since the store's last good poll.",
               [({"store": s["name"]}, s.get("last_poll_age_seconds")) for s in stores])
    out.family("o2c_store_poll_late", "1 when the store's last good poll is older than 3 x poll_seconds.",
               [({"store": s["name"]}, int(bool(s.get("poll_late")))) for s in stores])
    out.family("o2c_store_poll_failing", "1 when the store's newest poll failed.",
               [({"store": s["name"]}, int(bool(s.get("last_poll_error")))) for s in stores])
    out.family("o2c_store_cursor_lag_seconds", "Now minus the store's cursor.",
               [({"store": s["name"]}, s.get("cursor_lag_seconds")) for s in stores])
    hooks = [(s["name"], s.get("webhooks") or {}) for s in stores]
    out.family("o2c_webhook_deliveries_pending", "Webhook deliveries not processed yet.",
               [({"store": n}, h.get("pending", 0)) for n, h in hooks if h.get("enabled")])
    out.family("o2c_webhook_deliveries_failed", "Webhook deliveries that failed.",
               [({"store": n}, h.get("failed", 0)) for n, h in hooks if h.get("enabled")])
    qb = status["tokens"]["quickbooks"]
    out.family("o2c_quickbooks_token_status", "1 for the QuickBooks connection's current status.",
               [({"status": s}, int(qb.get("status") == s)) for s in TOKEN_STATUSES])
    out.family("o2c_quickbooks_refresh_token_age_days", "Days since the QuickBooks refresh token was renewed.",
               [({}, qb.get("refresh_token_age_days"))])
    return "\n".join(out.lines) + "\n"


def _merged(problems: list[dict]) -> list[dict]:
    counts: dict[tuple[str, str], int] = {}
    for p in problems:
        counts[(p["state"], p["step"])] = counts.get((p["state"], p["step"]), 0) + p["count"]
    return [{"state": s, "step": k, "count": n} for (s, k), n in sorted(counts.items())]
