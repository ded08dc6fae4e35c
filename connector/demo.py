"""``o2c demo``: the whole order-to-cash sync on the local sandbox, in one command.

Starts the emulators (``python -m sandbox serve``), seeds one Shopify shop
and one WooCommerce site through the sandbox's own seeding command, writes
a config whose secrets are environment references, runs one sync pass and
prints what was booked. The product talks to the sandbox only over HTTP,
exactly as it would to the real vendors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from connector.config import load_config
from connector.run import run_sync_pass

SECRET_ENV = {
    "O2C_DEMO_SHOPIFY_TOKEN": ("shopify", "access_token"),
    "O2C_DEMO_WOO_KEY": ("woocommerce", "consumer_key"),
    "O2C_DEMO_WOO_SECRET": ("woocommerce", "consumer_secret"),
    "O2C_DEMO_HUBSPOT_TOKEN": ("hubspot", "access_token"),
    "O2C_DEMO_QBO_CLIENT_ID": ("quickbooks", "client_id"),
    "O2C_DEMO_QBO_CLIENT_SECRET": ("quickbooks", "client_secret"),
    "O2C_DEMO_QBO_REFRESH_TOKEN": ("quickbooks", "refresh_token"),
}

CONFIG_TEMPLATE = """\
# Written by `o2c demo` for the local sandbox. Secrets are environment references,
# never values: the demo sets O2C_DEMO_* in its own process.
ledger: ledger.db
stores:
  - name: demo-shop
    system: shopify
    shop_url: {shopify[shop_url]}
    access_token: ${{O2C_DEMO_SHOPIFY_TOKEN}}
    initial_cursor: "2020-01-01T00:00:00Z"
    safety_lag_seconds: 0
  - name: demo-woo
    system: woocommerce
    url: {woocommerce[url]}
    consumer_key: ${{O2C_DEMO_WOO_KEY}}
    consumer_secret: ${{O2C_DEMO_WOO_SECRET}}
    initial_cursor: "2020-01-01T00:00:00Z"
    safety_lag_seconds: 0
hubspot:
  access_token: ${{O2C_DEMO_HUBSPOT_TOKEN}}
  host: {hubspot[host]}
quickbooks:
  realm_id: "{quickbooks[realm_id]}"
  client_id: ${{O2C_DEMO_QBO_CLIENT_ID}}
  client_secret: ${{O2C_DEMO_QBO_CLIENT_SECRET}}
  refresh_token: ${{O2C_DEMO_QBO_REFRESH_TOKEN}}
  environment: {quickbooks[discovery_url]}
  api_url: {quickbooks[api_url]}
  default_item: Services    # lines without a SKU (custom lines, fees) book to this item
  refunds: refund_receipt   # or credit_memo
  gateways:                 # how each store gateway's money books ("*": any other gateway)
    "*": {{payment_method: Credit Card, deposit_account: Undeposited Funds, refund_account: Checking}}
    bacs: {{payment_method: Check, deposit_account: Checking, refund_account: Checking}}
"""


SYSTEMS = ("shopify", "woocommerce", "hubspot", "quickbooks")


def start_sandbox(workdir: Path, port_base: int = 0) -> tuple[subprocess.Popen, dict]:
    """Start the emulators on loopback (free ports, or ``port_base`` .. +3); return the process and URLs."""
    ready = workdir / "sandbox.json"
    ready.unlink(missing_ok=True)
    log = open(workdir / "sandbox.log", "w")
    args = [sys.executable, "-m", "sandbox", "serve", "--ready-file", str(ready)]
    for i, system in enumerate(SYSTEMS):
        args += [f"--{system}-port", str(port_base + i if port_base else 0)]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the sandbox did not start; see {workdir / 'sandbox.log'}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["urls"]


def seed_sandbox(workdir: Path, orders: int, seed: int) -> dict:
    """Run the sandbox's seeding command; it prints the test credentials as JSON."""
    out = workdir / "credentials.json"
    subprocess.run([sys.executable, "-m", "sandbox", "seed", "--urls-file", str(workdir / "sandbox.json"),
                    "--orders", str(orders), "--seed", str(seed), "--out", str(out)], check=True)
    return json.loads(out.read_text())


def write_env_file(workdir: Path, credentials: dict) -> Path:
    """The sandbox's test credentials as ``export`` lines (0600), for commands run by hand."""
    env_path = workdir / "env.sh"
    env_path.write_text("".join(f"export {env}={credentials[system][key]}\n"
                                for env, (system, key) in SECRET_ENV.items()), encoding="utf-8")
    env_path.chmod(0o600)
    return env_path


def write_config(workdir: Path, credentials: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(CONFIG_TEMPLATE.format(**credentials), encoding="utf-8")
    for env, (system, key) in SECRET_ENV.items():
        os.environ[env] = credentials[system][key]
    return path


def run_sandbox(workdir: Path, *, orders: int, seed: int, port_base: int, console: Console) -> int:
    """Run the emulators until Ctrl-C, seeded, with a ready config and the test credentials shown."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc, urls = start_sandbox(workdir, port_base)
    try:
        credentials = seed_sandbox(workdir, orders, seed)
        config_path = write_config(workdir, credentials)
        env_path = write_env_file(workdir, credentials)
        console.print("[bold]sandbox running[/] (test credentials: these are not secrets)")
        for system, url in urls.items():
            console.print(f"  {system:<12} {url}")
        for system, values in credentials.items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if k not in ("shop_url", "url", "host"))
            console.print(f"  {system:<12} {shown}", highlight=False)
        console.print(f"seeded {orders} orders; config: {config_path}")
        console.print(f"try:  . {env_path} && o2c sync --config {config_path}")
        console.print("Ctrl-C to stop")
        try:
            proc.wait()
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_demo(workdir: Path, *, orders: int, keep: bool, seed: int, console: Console) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ledger.db").unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (workdir / f"ledger.db{suffix}").unlink(missing_ok=True)
    console.print("[bold]1.[/] starting the sandbox (Shopify, WooCommerce, HubSpot, QuickBooks on loopback)")
    proc, urls = start_sandbox(workdir)
    try:
        for system, url in urls.items():
            console.print(f"   {system:<12} {url}")
        console.print(f"[bold]2.[/] seeding demo-shop (Shopify) and demo-woo (WooCommerce) with {orders} orders")
        credentials = seed_sandbox(workdir, orders, seed)
        config_path = write_config(workdir, credentials)
        console.print(f"[bold]3.[/] syncing with {config_path}")
        settings = load_config(config_path)
        code = run_sync_pass(settings, console)
        env_path = write_env_file(workdir, credentials)
        console.print(f"look around:  . {env_path} && o2c status --config {config_path}")
        from connector.report_html import write_html_report
        report_path = write_html_report(settings, workdir / "report.html")
        console.print(f"[bold]4.[/] order-to-cash report (open it in a browser): {report_path.resolve()}",
                      highlight=False, soft_wrap=True)
        if keep:
            console.print("sandbox still running; Ctrl-C to stop")
            try:
                proc.wait()
            except KeyboardInterrupt:
                pass
        return code
    finally:
        _stop(proc)
