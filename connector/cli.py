"""The ``o2c`` command line (also ``python sync.py``).

Every command has help with an example. Errors a user can meet print one
line saying what happened and what to do; a bad config exits with code 2.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console

from connector.errors import ConfigError

console = Console()
if not console.is_terminal:
    console.width = max(console.width, 120)  # logs and CI: wide enough for the summary tables
err_console = Console(stderr=True)

EPILOG = """\b
Examples:
  o2c sync --config config.yaml          one pass: pull what changed, book it, record it
  o2c daemon --config config.yaml        keep running: polls, webhooks, steps, token refresh
  o2c worker --config config.yaml        only run due steps (more workers beside a daemon --no-worker)
  o2c backfill --store S --since DATE    a Shopify store's history, through a bulk export
  o2c status --config config.yaml        what the ledger holds, step by step
  o2c dashboard --config config.yaml     the admin dashboard (the daemon serves it too)
  o2c replay --config config.yaml --state dead --dry-run   what a replay would do
  o2c reconcile --config config.yaml --fix   prove the books match the stores; repair what is safe
  o2c check-config --config config.yaml  validate the configuration and stop
  o2c ledger copy var/o2c.db '${O2C_LEDGER_URL}'   move the ledger to PostgreSQL, verified
  o2c auth quickbooks --config config.yaml  connect or reconnect QuickBooks
  o2c sandbox                            run the local emulators for manual use
  o2c demo                               the whole cycle on the local sandbox
"""


def _load(config_path: str):
    from connector.config import load_config
    try:
        return load_config(config_path)
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


def _prepare_process(settings) -> None:
    """What every process that talks to the vendors does first, whatever the command.

    Several processes on one ledger (workers and daemons on a PostgreSQL ledger, or a daemon and a
    replay beside it on one SQLite file) spend the same vendor allowances: their rate budgets are
    shared through the ledger, or each would believe it has the whole allowance (docs/operations.md
    "Rate limits"). ``limits: shared: false`` turns it off for a process that is known to be alone.
    """
    from connector.rate_budget_shared import share_budgets_as_configured
    share_budgets_as_configured(settings)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="o2c-connector", prog_name="o2c")
def main() -> None:
    """o2c-connector: every Shopify and WooCommerce order into HubSpot and QuickBooks Online,
    booked right to the cent and never twice."""


@main.command(epilog="\b\nExample:\n  o2c sync --config config.yaml\n  o2c sync --config config.yaml --store demo-shop")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--store", default=None, help="pull only this store (steps of all stores still run)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sync(config_path: str, store: str | None, quiet: bool) -> None:
    """Run one sync pass: pull changed orders, push them to HubSpot and QuickBooks, record every step."""
    from connector.run import run_sync_pass
    settings = _load(config_path)
    if store:
        try:
            settings.store(store)
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(2)
    _prepare_process(settings)
    code = run_sync_pass(settings, console, only_store=store, show_progress=not quiet)
    sys.exit(code)


@main.command(epilog="\b\nExample:\n  o2c backfill --config config.yaml --store main-shop --since 2024-01-01")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--store", required=True, help="the Shopify store to backfill")
@click.option("--since", required=True, help="first day (or ISO instant, UTC) of the history to take in")
@click.option("--book/--no-book", default=True, show_default=True, help="also run the steps the orders need")
@click.option("--quiet", is_flag=True, help="no progress bar")
def backfill(config_path: str, store: str, since: str, book: bool, quiet: bool) -> None:
    """Take a store's order history in through a bulk export; a killed run resumes where it stopped."""
    from connector.run import run_backfill
    settings = _load(config_path)
    try:
        settings.store(store)
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except ValueError:
        err_console.print(f"[bold red]error:[/] --since '{since}' is not a date; write it like 2024-01-01",
                          highlight=False)
        sys.exit(2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    _prepare_process(settings)
    sys.exit(run_backfill(settings, console, store=store, since=moment, book=book, show_progress=not quiet))


@main.command(epilog="\b\nExample:\n  o2c auth quickbooks --config config.yaml\n"
                     "  o2c auth quickbooks --config config.yaml --redirect-url 'https://localhost/callback?code=..'")
@click.argument("system", type=click.Choice(["quickbooks"]))
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--redirect-url", default=None, help="the address QuickBooks sent you to after you connected")
def auth(system: str, config_path: str, redirect_url: str | None) -> None:
    """Connect (or reconnect) QuickBooks: open the consent page, then paste the address it sends you to."""
    from adapters.quickbooks_auth import TokenVault
    from connector.errors import RetryableError
    from connector.ledger import Ledger
    settings = _load(config_path)
    ledger = Ledger(settings.ledger_url)
    try:
        vault = TokenVault(settings.quickbooks, ledger)
        state = vault.expected_state()
        try:
            url = vault.consent_url(state)
        except RetryableError as exc:
            err_console.print(f"[bold red]error:[/] {exc}. Check quickbooks.environment and the network.",
                              highlight=False)
            sys.exit(1)
        if redirect_url is None:
            console.print("1. Open this address, sign in to QuickBooks and connect the company:")
            console.print(url, soft_wrap=True, highlight=False)
            redirect_url = click.prompt("2. Paste the whole address your browser landed on")
        try:
            realm = vault.connect(redirect_url.strip(), state)
        except ValueError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(1)
        console.print(f"QuickBooks company {realm} connected; tokens saved in {settings.ledger_shown}. "
                      "Paused QuickBooks steps resume at the next sync.")
    finally:
        ledger.close()


@main.command(epilog="\b\nExamples:\n  o2c daemon --config config.yaml\n  o2c daemon --config config.yaml --verbose\n"
                     "  o2c daemon --config config.yaml --no-worker   beside `o2c worker` processes")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--worker-seconds", default=5.0, show_default=True, help="how often due steps are run")
@click.option("--no-worker", is_flag=True,
              help="run no steps here: polls, webhooks, token refresh and reconcile only, for `o2c worker` "
                   "processes to book (docs/operations.md \"Scaling out\")")
@click.option("--run-for", default=None, type=float, help="stop by itself after this many seconds (tests)")
@click.option("--verbose", is_flag=True, help="log every poll and worker pass")
def daemon(config_path: str, worker_seconds: float, no_worker: bool, run_for: float | None, verbose: bool) -> None:
    """Run continuously: poll each store on its interval, run due steps, refresh tokens; SIGTERM stops cleanly."""
    from connector.daemon import Daemon
    settings = _load(config_path)
    _configure_logging(verbose)
    _prepare_process(settings)
    sys.exit(Daemon(settings, worker_seconds=worker_seconds, run_worker=not no_worker).run(run_for=run_for))


@main.command(epilog="\b\nExamples:\n  o2c worker --config config.yaml\n"
                     "  o2c worker --config config.yaml --run-for 600   stop by itself after ten minutes")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--run-for", default=None, type=float, help="stop by itself after this many seconds")
@click.option("--idle-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="how long to wait before looking again when no step is due")
@click.option("--verbose", is_flag=True, help="log every worker pass")
def worker(config_path: str, run_for: float | None, idle_seconds: float, verbose: bool) -> None:
    """Run due steps only (no polls, no webhooks, no scheduler) until SIGTERM; start as many as the
    ledger (PostgreSQL) and the vendors' rate limits allow, beside one `o2c daemon --no-worker`."""
    from connector.worker_process import run_worker
    settings = _load(config_path)
    _configure_logging(verbose)
    _prepare_process(settings)
    sys.exit(run_worker(settings, run_for=run_for, idle_seconds=idle_seconds))


def _configure_logging(verbose: bool) -> None:
    import logging
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("o2c").setLevel(logging.INFO)


@main.command(epilog="\b\nExamples:\n  o2c replay --config config.yaml --state dead --dry-run\n"
                     "  o2c replay --config config.yaml --order main-shop:1001 --fresh\n"
                     "  o2c replay --config config.yaml --step quickbooks.invoice --since 2026-11-01")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--order", "orders", multiple=True, help="an order key (store:id); repeat for several")
@click.option("--step", default=None, help="a step kind (quickbooks.invoice) or full name (quickbooks.payment:42)")
@click.option("--state", "states", multiple=True, type=click.Choice(["failed", "dead", "skipped", "held", "mismatch"]),
              help="which states to replay (default: failed and dead)")
@click.option("--system", type=click.Choice(["hubspot", "quickbooks"]), default=None)
@click.option("--since", default=None, help="only steps last updated at or after this ISO instant")
@click.option("--until", default=None, help="only steps last updated before this ISO instant")
@click.option("--dry-run", is_flag=True,
              help="show, field by field, what a replay would send against what the target holds now; "
                   "change nothing (docs/replay.md)")
@click.option("--fresh", is_flag=True, help="re-read the orders from their stores before replaying "
                                           "(with --dry-run: into a throw-away copy of the ledger)")
@click.option("--all-fields", is_flag=True, help="with --dry-run: list unchanged fields too")
@click.option("--json", "as_json", is_flag=True, help="with --dry-run: print the preview as JSON")
def replay(config_path: str, orders: tuple, step: str | None, states: tuple, system: str | None,
           since: str | None, until: str | None, dry_run: bool, fresh: bool, all_fields: bool,
           as_json: bool) -> None:
    """Replay failed, dead or skipped steps after fixing their cause; exactly-once like every run."""
    from rich.table import Table

    from connector.composition import build_runners
    from connector.engine import PassReport, run_due_steps
    from connector.ledger import Ledger
    from connector.replay import Selection, requeue, select
    from connector.run import print_failures, print_report
    if as_json and not dry_run:
        err_console.print("[bold red]error:[/] --json goes with --dry-run", highlight=False)
        sys.exit(2)
    settings = _load(config_path)
    _prepare_process(settings)
    ledger = Ledger(settings.ledger_url)
    try:
        chosen = select(ledger, Selection(tuple(orders), step, tuple(states) or ("failed", "dead"), system,
                                          since, until))
        if dry_run:
            from connector.dry_run import preview
            from connector.dry_run_view import print_preview, preview_json
            result = preview(settings, ledger, chosen, fresh=fresh)
            if as_json:
                click.echo(preview_json(result))
            else:
                print_preview(result, console, all_fields=all_fields)
            return
        table = Table(title=f"Replaying {len(chosen)} step(s)")
        for column in ("order", "step", "state", "tries", "last error", "what to do"):
            table.add_column(column, overflow="fold")
        for row in chosen:
            table.add_row(row["order_key"], row["step"], row["state"], str(row["attempts"]), row["error"] or "",
                          row["what_to_do"] or "")
        console.print(table)
        if not chosen:
            return
        if fresh:
            from connector.refetch import refetch_orders
            refetch_orders(settings, ledger, sorted({row["order_key"] for row in chosen}))
        requeue(ledger, chosen)
        report = PassReport()
        run_due_steps(ledger, build_runners(settings, ledger), report)
        print_report(report, console)
        print_failures(ledger, console)
    finally:
        ledger.close()


@main.command(epilog="\b\nExamples:\n  o2c status --config config.yaml\n  o2c status --config config.yaml --json\n"
                     "  o2c status --config config.yaml --check   exit 1 when something needs a person")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON (for scripts and dashboards)")
@click.option("--check", is_flag=True, help="exit 1 when there are alerts (for monitoring)")
def status(config_path: str, as_json: bool, check: bool) -> None:
    """Show where things stand: alerts, the queue per target and state, problems grouped with what to do
    and how to replay them, each store's polls and webhooks, token health (docs/status.md)."""
    import json

    from connector.ledger import Ledger
    from connector.run import print_status
    from connector.status import collect_status
    settings = _load(config_path)
    ledger = Ledger(settings.ledger_url)
    try:
        data = collect_status(settings, ledger, config_path=None if config_path == "config.yaml" else config_path)
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        print_status(settings, console, data)
    sys.exit(1 if check and data["alerts"] else 0)


@main.command(epilog="\b\nExamples:\n  o2c report --config config.yaml                      the last 30 days, as tables\n"
                     "  o2c report --config config.yaml --since 2026-11-01 --until 2026-11-30 --format html"
                     " --out report.html\n"
                     "  o2c report --config config.yaml --store main-shop --format csv --out report.csv")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--store", default=None, help="only this store (default: every store)")
@click.option("--since", default=None, help="first day, or ISO instant (UTC), of the period (default: 30 days "
                                            "before --until)")
@click.option("--until", default=None, help="last day (included), or ISO instant (excluded), of the period "
                                            "(default: now)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]), default="table",
              show_default=True, help="terminal tables, JSON, one long-form CSV, or a self-contained HTML page")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="write the json, csv or html to this file instead of printing it")
@click.option("--no-receivables", is_flag=True, help="do not read QuickBooks (no open invoices, aging, DSO)")
def report(config_path: str, store: str | None, since: str | None, until: str | None, fmt: str,
           out_path: str | None, no_receivables: bool) -> None:
    """The order-to-cash report: per store and currency the period's orders received, booked, paid, refunded
    and cancelled; cycle times; open invoices aged, DSO and overdue invoices from QuickBooks; sync health
    (docs/report.md). Exit 1 when QuickBooks could not be read (the rest is still reported)."""
    from datetime import timedelta

    from connector.ledger import Ledger, utcnow
    from connector.report import build_report, parse_moment
    if out_path and fmt == "table":
        err_console.print("[bold red]error:[/] --out goes with --format json, csv or html", highlight=False)
        sys.exit(2)
    settings = _load(config_path)
    now = utcnow()
    try:
        if store:
            settings.store(store)
        end = parse_moment(until, end=True) if until else now
        start = parse_moment(since) if since else end - timedelta(days=30)
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except ValueError:
        err_console.print("[bold red]error:[/] --since and --until take a date like 2026-11-01 or an ISO instant "
                          "like 2026-11-01T08:00:00Z", highlight=False)
        sys.exit(2)
    if end <= start:
        err_console.print("[bold red]error:[/] the period is empty: --until must come after --since", highlight=False)
        sys.exit(2)
    if not no_receivables:
        _prepare_process(settings)  # the receivables are read from QuickBooks
    ledger = Ledger(settings.ledger_url)
    try:
        data = build_report(settings, ledger, store=store, since=start, until=end, now=now,
                            receivables=not no_receivables)
    finally:
        ledger.close()
    if fmt == "table":
        from connector.report_tables import print_report
        print_report(data, console)
    else:
        from connector.report_export import to_csv, to_json
        from connector.report_html import render_html
        text = {"json": to_json, "csv": to_csv, "html": render_html}[fmt](data)
        if out_path:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            Path(out_path).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            console.print(f"wrote {out_path}", highlight=False)
        else:
            click.echo(text, nl=not text.endswith("\n"))
    if "error" in data["receivables"]:
        if fmt != "table":
            err_console.print(f"[bold red]receivables could not be read:[/] {data['receivables']['error']}",
                              highlight=False)
        sys.exit(1)


@main.command(epilog="\b\nExamples:\n  o2c reconcile --config config.yaml        since the last run (first: 30 days)\n"
                     "  o2c reconcile --config config.yaml --store main-shop --since 2026-11-01 --fix\n"
                     "  o2c reconcile --config config.yaml --accept 12   a bookkeeper's change is intended\n"
                     "  o2c reconcile --config config.yaml --json       for scripts; exit 1 when a person must act")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--store", default=None, help="only this store (default: every store)")
@click.option("--since", default=None, help="first day or ISO instant (UTC) of the store window (default: the "
                                            "end of the store's last reconcile run; the first run: 30 days back)")
@click.option("--until", default=None, help="end of the window, a day or ISO instant (UTC) (default: now)")
@click.option("--fix", is_flag=True, help="repair the safe findings through the normal steps (re-read the order, "
                                          "re-queue its steps; exactly once as always); report the rest")
@click.option("--accept", "accept_ids", multiple=True, type=int,
              help="mark a finding accepted (the difference is intended) and stop; repeat for several")
@click.option("--json", "as_json", is_flag=True, help="print the runs and findings as JSON")
def reconcile(config_path: str, store: str | None, since: str | None, until: str | None, fix: bool,
              accept_ids: tuple, as_json: bool) -> None:
    """Prove the books match the stores: compare each store's orders, the ledger, QuickBooks and HubSpot,
    record every difference with a proposed action (docs/reconcile.md). Exit 1 while a finding only a
    person can resolve is open."""
    from connector.ledger import Ledger
    settings = _load(config_path)
    _prepare_process(settings)
    ledger = Ledger(settings.ledger_url)
    try:
        if accept_ids:
            from connector.findings import accept
            changed = accept(ledger, list(accept_ids))
            console.print(f"{changed} finding(s) accepted", highlight=False)
            sys.exit(0 if changed == len(set(accept_ids)) else 1)
        try:
            if store:
                settings.store(store)
            moments = [_moment(value) if value else None for value in (since, until)]
        except ConfigError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(2)
        except ValueError:
            err_console.print("[bold red]error:[/] --since and --until take a date like 2026-11-01 or an ISO "
                              "instant like 2026-11-01T08:00:00Z", highlight=False)
            sys.exit(2)
        from connector.reconcile import reconcile as run_reconcile
        from connector.reconcile_view import print_result, result_json
        result = run_reconcile(settings, ledger, store=store, since=moments[0], until=moments[1], fix=fix)
    finally:
        ledger.close()
    if as_json:
        click.echo(result_json(result))
    else:
        print_result(result, console)
    sys.exit(result.exit_code)


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@main.command(epilog="\b\nExamples:\n  o2c dashboard --config config.yaml\n"
                     "  o2c dashboard --config config.yaml --port 8721   then open http://127.0.0.1:8721/")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
@click.option("--host", default=None, help="bind address (default: dashboard.host, 127.0.0.1)")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="port (default: dashboard.port, 8720)")
def dashboard(config_path: str, host: str | None, port: int | None) -> None:
    """Serve the admin dashboard alone until Ctrl-C: overview, orders, failures with dry run and replay, reconcile
    findings, the JSON admin API, /metrics (docs/dashboard.md). `o2c daemon` serves it too."""
    from connector.dashboard import dashboard_server
    from connector.ledger import Ledger
    settings = _load(config_path)
    if settings.dashboard is None:
        err_console.print("[bold red]error:[/] the configuration has no dashboard: section; add one with "
                          "admin_token: ${O2C_ADMIN_TOKEN} (see config.example.yaml)", highlight=False)
        sys.exit(2)
    _prepare_process(settings)  # its replays call the vendors
    Ledger(settings.ledger_url).close()  # create and migrate it before the first request
    server = dashboard_server(settings, host=host, port=port)
    console.print(f"dashboard on http://{server.config.host}:{server.config.port}/ (log in with the "
                  "dashboard.admin_token); Ctrl-C stops", highlight=False)
    server.run()


@main.command("check-config", epilog="\b\nExample:\n  o2c check-config --config config.yaml")
@click.option("--config", "config_path", default="config.yaml", show_default=True, help="the YAML config file")
def check_config(config_path: str) -> None:
    """Validate the configuration (keys, types, secrets, URLs) and stop."""
    settings = _load(config_path)
    names = ", ".join(f"{s.name} ({s.system})" for s in settings.stores)
    console.print(f"config OK: {len(settings.stores)} store(s): {names}; ledger {settings.ledger_shown}")


@main.command(epilog="\b\nExample:\n  o2c sandbox\n  o2c sandbox --orders 200 --workdir var/play")
@click.option("--orders", default=20, show_default=True, help="orders to seed, split over the two stores")
@click.option("--workdir", default="var/sandbox", show_default=True, help="where the config and env file go")
@click.option("--seed", default=7, show_default=True, help="random seed of the order generator")
@click.option("--port-base", default=8701, show_default=True,
              help="Shopify on this port, WooCommerce +1, HubSpot +2, QuickBooks +3 (0: any free ports)")
def sandbox(orders: int, workdir: str, seed: int, port_base: int) -> None:
    """Run the four local emulators until Ctrl-C, seeded, printing their URLs and test credentials."""
    from connector.demo import run_sandbox
    sys.exit(run_sandbox(Path(workdir), orders=orders, seed=seed, port_base=port_base, console=console))


@main.command(epilog="\b\nExample:\n  o2c demo\n  o2c demo --orders 200 --keep")
@click.option("--orders", default=100, show_default=True, help="orders to seed, split over the two stores")
@click.option("--workdir", default="var/demo", show_default=True, help="where the config and ledger go")
@click.option("--keep", is_flag=True, help="keep the sandbox running after the demo (Ctrl-C to stop)")
@click.option("--seed", default=7, show_default=True, help="random seed of the order generator")
def demo(orders: int, workdir: str, keep: bool, seed: int) -> None:
    """Start the sandbox, seed two stores, run the sync, and print what was booked."""
    from connector.demo import run_demo
    sys.exit(run_demo(Path(workdir), orders=orders, keep=keep, seed=seed, console=console))


from connector.cli_ledger import ledger as ledger_commands  # noqa: E402  (the `o2c ledger` group)
from connector.cli_webhooks import webhooks  # noqa: E402  (after main exists: it reuses _load)
main.add_command(webhooks)
main.add_command(ledger_commands)

if __name__ == "__main__":
    main()
