"""Shared helpers of the benchmarks: start the sandbox with (scaled) vendor limits and latency,
seed it, write a connector config, read the emulators' counters, describe the machine.

Benchmarks drive the product exactly as a user would: emulators over HTTP in their own process
(``python -m sandbox serve``), the connector in another process (``benchmarks/drive.py``).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PY = sys.executable
SYSTEMS = ("shopify", "woocommerce", "hubspot", "quickbooks")

# The vendors' default limits (docs/sandbox.md §5, §7, §8; docs/operations.md "Rate limits").
QBO_PER_MINUTE = 500
QBO_CONCURRENT = 10
QBO_BATCH_PER_MINUTE = 40
HUBSPOT_PER_10S = 100
HUBSPOT_SEARCH_PER_S = 5
SHOPIFY_BUCKET = 2000
SHOPIFY_RESTORE = 100

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")


# The benchmarks' WooCommerce site runs a release that lists refunds across orders (GET /refunds, 9.0 and
# later, as current sites do); the emulator's default, 8.9.3, makes the connector read them order by order.
WC_VERSION = "9.0.0"


def sandbox_options(rate_scale: float | None, latency_ms: int) -> dict:
    """Emulator options: the vendors' default limits times ``rate_scale`` (None: no limits at all)."""
    if rate_scale is None:
        big = 10_000_000
        opts = {
            "shopify": {"bucket_size": big, "restore_rate": big, "max_query_cost": 1000},
            "woocommerce": {"wc_version": WC_VERSION},
            "hubspot": {"ten_second_limit": big, "daily_limit": big, "search_per_second": big},
            "quickbooks": {"requests_per_minute": big, "max_concurrent": 10_000, "batch_requests_per_minute": big,
                           "batch_requests_per_realm_per_minute": big},
        }
    else:
        s = rate_scale
        opts = {
            "shopify": {"bucket_size": int(SHOPIFY_BUCKET * s), "restore_rate": int(SHOPIFY_RESTORE * s)},
            "woocommerce": {"wc_version": WC_VERSION},
            "hubspot": {"ten_second_limit": int(HUBSPOT_PER_10S * s), "daily_limit": 10_000_000,
                        "search_per_second": max(1, int(HUBSPOT_SEARCH_PER_S * s))},
            "quickbooks": {"requests_per_minute": int(QBO_PER_MINUTE * s), "max_concurrent": int(QBO_CONCURRENT * s),
                           "batch_requests_per_minute": int(QBO_BATCH_PER_MINUTE * s),
                           "batch_requests_per_realm_per_minute": int(120 * s)},
        }
    if latency_ms:
        for system in SYSTEMS:
            opts[system]["chaos"] = {"seed": 0, "faults": [{"path": "", "latency_ms": latency_ms}]}
    return opts


class Sandbox:
    """``python -m sandbox serve`` on free loopback ports, in its own process."""

    def __init__(self, workdir: Path, options: dict):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        ready = workdir / "sandbox.json"
        ready.unlink(missing_ok=True)
        args = [PY, "-m", "sandbox", "serve", "--ready-file", str(ready), "--options", json.dumps(options)]
        for system in SYSTEMS:
            args += [f"--{system}-port", "0"]
        self.log = open(workdir / "sandbox.log", "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("sandbox did not start:\n" + (workdir / "sandbox.log").read_text())
            time.sleep(0.05)
        self.urls = json.loads(ready.read_text())["urls"]
        self.client = httpx.Client(timeout=600)

    def counters(self) -> dict:
        return {s: self.client.get(f"{self.urls[s]}/_sandbox/counters").json() for s in SYSTEMS}

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def seed(sandbox: Sandbox, orders: int, *, seed_value: int = 7, shop_share: float = 0.5,
         chunk: int = 2000) -> dict:
    """Seed ``orders`` orders (``shop_share`` to Shopify, the rest to WooCommerce), in chunks so no
    control call holds the emulators' loop for long. Returns the credentials (sandbox/seed.py shape)."""
    from sandbox import seed as seed_mod
    from sandbox.generator import generate_orders

    urls = sandbox.urls
    # The generator spaces orders 1 minute to 6 hours apart (sandbox/generator.py): start far enough
    # back that even the largest gaps leave every order in the past, so a backfill sees all of them.
    start = (datetime.now(timezone.utc) - timedelta(hours=6 * orders + 48)).replace(microsecond=0)
    # sandbox.seed creates the stores, HubSpot token, QuickBooks company, items and OAuth client.
    credentials = seed_mod.seed(urls, orders=0, seed_value=seed_value, start=start)
    shop_count = int(orders * shop_share)
    for store, count, first, gateways, sv in (
            ("shopify", shop_count, 1001, None, seed_value),
            ("woocommerce", orders - shop_count, 5001, ("stripe", "paypal", "bacs"), seed_value + 1)):
        if not count:
            continue
        # Generate the whole sequence once (so the variety cycle and customers are the product's),
        # then post it in slices.
        kwargs = {"start": start, "first_number": first}
        if gateways:
            kwargs["gateways"] = gateways
        specs = generate_orders(sv, count, **kwargs)
        for i in range(0, count, chunk):
            part = specs[i:i + chunk]
            if store == "shopify":
                url = f"{urls['shopify']}/_sandbox/shops/{seed_mod.SHOP}/orders"
                body = {"credentials": seed_mod.CREDENTIALS["shopify"], "orders": part}
            else:
                url = f"{urls['woocommerce']}/_sandbox/sites/{seed_mod.SITE}/orders"
                body = {"credentials": seed_mod.CREDENTIALS["woocommerce"], "orders": part}
            r = sandbox.client.post(url, json=body)
            r.raise_for_status()
        del specs
    return credentials


def write_config(workdir: Path, credentials: dict, *, rate_scale: float | None, posting: str = "sales_receipt",
                 extra: str = "") -> Path:
    """The demo's config (connector/demo.py) plus ``posting:`` per store and a ``limits:`` section."""
    from connector.demo import write_config as demo_write_config
    path = demo_write_config(workdir, credentials)
    text = path.read_text()
    text = text.replace("    safety_lag_seconds: 0\n", f"    safety_lag_seconds: 0\n    posting: {posting}\n")
    if rate_scale is None:
        scale = 1000.0  # "no limits": the largest scale the config accepts
    else:
        scale = rate_scale
    text = text.replace('initial_cursor: "2020-01-01T00:00:00Z"', 'initial_cursor: "1900-01-01T00:00:00Z"')
    text += f"limits:\n  rate_scale: {scale}\n"
    text += extra
    path.write_text(text)
    return path


def status_429(counters: dict) -> dict[str, int]:
    """429 answers each emulator sent (what the vendor saw), from /_sandbox/counters."""
    out = {}
    for system, c in counters.items():
        n = 0
        by_status = c.get("by_status")
        if isinstance(by_status, dict):
            n = int(by_status.get("429", 0) or by_status.get(429, 0) or 0)
        elif "by_endpoint" in c:
            for ep in c["by_endpoint"].values():
                n += int(ep.get("429", 0))
        if system == "hubspot":
            n = max(n, int(c.get("rate_limited", 0)))
        if system == "quickbooks":
            n = max(n, int(c.get("throttled", 0)))
        if system == "shopify":
            n = max(n, int(c.get("throttled", 0)))  # Shopify throttles with HTTP 200 + THROTTLED
        out[system] = n
    return out


def diff_counters(after: dict, before: dict) -> dict:
    """requests per system between two counter readings."""
    return {s: after[s]["requests"] - before[s]["requests"] for s in SYSTEMS}


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            commit += " (+ uncommitted changes)"
    except OSError:
        commit = "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": mem, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "date": datetime.now().astimezone().isoformat(
                timespec="seconds"), "commit": commit}


def run_json(args: list[str], *, env: dict | None = None, timeout: float | None = None,
             command: list[str] | None = None) -> dict:
    """Run a benchmark helper process that prints one JSON object as its last stdout line.

    ``command`` is the whole command line when the helper runs under another program (a sampler);
    by default it is the venv's python with ``args``."""
    proc = subprocess.run(command or [PY, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    # The last line that is a JSON object: a sampler running the helper prints its own lines after it.
    return json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("{")))


def results_dir() -> Path:
    d = BENCH / "results"
    d.mkdir(exist_ok=True)
    return d


def save(name: str, data: dict) -> None:
    (results_dir() / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
