"""The admin dashboard: pages, a JSON admin API, /metrics, /healthz and /readyz (docs/dashboard.md).

Served by ``o2c daemon`` when the configuration has a ``dashboard:`` section, or alone by
``o2c dashboard``; bound to 127.0.0.1 by default; every page and API call needs the admin token.
"""

from __future__ import annotations

from connector.dashboard.app import create_dashboard_app


def dashboard_server(settings, *, host: str | None = None, port: int | None = None):
    """A uvicorn server for the dashboard (not started); the caller runs ``server.run()``."""
    import uvicorn
    section = settings.dashboard
    config = uvicorn.Config(create_dashboard_app(settings, settings.ledger_url), host=host or section.host,
                            port=section.port if port is None else port, log_level="warning", access_log=False,
                            lifespan="off")
    return uvicorn.Server(config)


__all__ = ["create_dashboard_app", "dashboard_server"]
