"""``o2c webhooks ...``: serve, register, check and process webhooks (docs/webhooks.md).

Each store delivers to ``<webhooks.public_base_url>/webhooks/<system>/<store>``.
``register`` and ``status`` are safe to run any time: Shopify deletes failing
subscriptions and WooCommerce disables failing webhooks (peers.md (c) 7, 9),
so ``register`` re-creates and re-enables, and ``status`` says what is missing
and how many orders came only by polling (webhook coverage).
"""

from __future__ import annotations

import sys

import click
from rich.table import Table

CONFIG = click.option("--config", "config_path", default="config.yaml", show_default=True,
                      help="the YAML config file")
STORE = click.option("--store", default=None, help="only this store")
INBOX_WAIT_SECONDS = 30.0  # a daemon's inbox pass takes seconds; past this, say so rather than hang


def _load(config_path: str):
    from connector.cli import _load as load
    return load(config_path)


def _consoles():
    from connector.cli import console, err_console
    return console, err_console


def _stores(settings, only: str | None):
    return [settings.store(only)] if only else list(settings.stores)


@click.group(epilog="\b\nExamples:\n  o2c webhooks serve --config config.yaml\n"
                    "  o2c webhooks register --config config.yaml\n  o2c webhooks status --config config.yaml\n"
                    "  o2c webhooks process --config config.yaml")
def webhooks() -> None:
    """Receive store webhooks: run the server, register subscriptions, check them, process the inbox."""


@webhooks.command(epilog="\b\nExample:\n  o2c webhooks serve --config config.yaml\n"
                         "  o2c webhooks serve --config config.yaml --port 8710")
@CONFIG
@click.option("--host", default=None, help="address to bind (default: webhooks.host, 127.0.0.1)")
@click.option("--port", default=None, type=int, help="port to bind (default: webhooks.port, 8710)")
def serve(config_path: str, host: str | None, port: int | None) -> None:
    """Run the webhook server alone (the daemon also serves it): check, store, answer 200."""
    import logging

    import uvicorn

    from connector.config import WebhookSettings
    from connector.webhook_server import create_webhook_app
    settings = _load(config_path)
    hooks = settings.webhooks or WebhookSettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_webhook_app(settings, settings.ledger_url)
    # One worker (the inbox has one writer: the group committer); no access log, whose arguments
    # uvicorn formats for every answer (refusals are logged by the app with their reason).
    # uvicorn takes httptools and uvloop when they are installed, else h11 and asyncio.
    try:
        uvicorn.run(app, host=host or hooks.host, port=port if port is not None else hooks.port,
                    log_level="warning", access_log=False, lifespan="off")
    finally:
        app.state.webhooks.close()  # commit what is queued (the answers already waited for it)


@webhooks.command(epilog="\b\nExample:\n  o2c webhooks register --config config.yaml\n"
                         "  o2c webhooks register --config config.yaml --store main-shop")
@CONFIG
@STORE
def register(config_path: str, store: str | None) -> None:
    """Create the missing subscriptions in each store and re-enable disabled ones (idempotent)."""
    settings = _load(config_path)
    console, err_console = _consoles()
    failed = _report(settings, store, apply=True, console=console, err_console=err_console)
    sys.exit(1 if failed else 0)


@webhooks.command(epilog="\b\nExample:\n  o2c webhooks status --config config.yaml")
@CONFIG
@STORE
def status(config_path: str, store: str | None) -> None:
    """Show each store's subscriptions (missing, disabled) and webhook coverage; exit 1 if any is missing."""
    from connector import inbox
    from connector.ledger import Ledger
    settings = _load(config_path)
    console, err_console = _consoles()
    failed = _report(settings, store, apply=False, console=console, err_console=err_console)
    ledger = Ledger(settings.ledger_url)
    try:
        table = Table(title="Webhook coverage")
        for column in ("store", "orders", "by webhook", "poll only", "poll only since first webhook",
                       "deliveries", "duplicates", "pending"):
            table.add_column(column, justify="left" if column == "store" else "right")
        for one in _stores(settings, store):
            cover, counts = inbox.coverage(ledger, one.name), inbox.counts(ledger, one.name)
            table.add_row(one.name, str(cover.orders), str(cover.by_webhook), str(cover.poll_only),
                          str(cover.poll_only_since), str(counts["received"]), str(counts["duplicates"]),
                          str(counts["pending"]))
        console.print(table)
    finally:
        ledger.close()
    sys.exit(1 if failed else 0)


def _report(settings, only: str | None, *, apply: bool, console, err_console) -> bool:
    """Check (or with ``apply`` fix) every store's subscriptions and print a table; True if any is wrong."""
    from connector.errors import SourceError
    from connector.webhook_health import HEALTHY, callback_url, check_store
    table = Table(title="Webhook subscriptions")
    for column in ("store", "topic", "state", "id", "address"):
        table.add_column(column, overflow="fold")
    failed = False
    for store in _stores(settings, only):
        url = callback_url(settings, store)
        if url is None:
            err_console.print(f"[bold red]error:[/] {store.name}: webhooks.public_base_url is not set. Fix: set it"
                              " to the https address the stores reach this connector at", highlight=False)
            return True
        if store.webhook_secret is None:
            err_console.print(f"[yellow]warning:[/] {store.name}: no webhook_secret; every delivery will be"
                              " refused (401)", highlight=False)
            failed = True
        try:
            rows = check_store(store, url, apply=apply)
        except SourceError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            failed = True
            continue
        for row in rows:
            failed |= row["state"] not in HEALTHY
            table.add_row(store.name, row["topic"], row["state"], str(row["id"] or ""), url)
    console.print(table)
    return failed


@webhooks.command(epilog="\b\nExample:\n  o2c webhooks process --config config.yaml")
@CONFIG
def process(config_path: str) -> None:
    """Process the inbox once: fetch announced orders fresh, record them, plan their steps."""
    from connector.cli import _prepare_process
    from connector.intake import process_inbox
    from connector.job_locks import waiting_lock
    from connector.ledger import Ledger
    settings = _load(config_path)
    console, err_console = _consoles()
    _prepare_process(settings)  # its fetches share the stores' budgets with the daemons on this ledger
    ledger = Ledger(settings.ledger_url)
    try:
        # The daemons' inbox job, run once across nodes: two at once would fetch the same orders twice.
        with waiting_lock(ledger, "inbox", timeout=INBOX_WAIT_SECONDS) as held:
            if not held:
                err_console.print(f"A daemon on this ledger has been processing the inbox for over "
                                  f"{INBOX_WAIT_SECONDS:g} s; nothing was done here. It processes these "
                                  "deliveries too: check `o2c webhooks status`, or try again.")
                sys.exit(2)
            results = process_inbox(settings, ledger)
    finally:
        ledger.close()
    table = Table(title="Inbox processed")
    for column in ("store", "deliveries", "outcomes", "orders fetched", "requests", "error"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(result.store, str(sum(result.outcomes.values())),
                      ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())), str(result.fetched),
                      str(result.calls), result.error or "")
    console.print(table)
    sys.exit(1 if any(r.error for r in results) else 0)
