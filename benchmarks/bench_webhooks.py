"""Webhook intake: signed Shopify webhooks over loopback at rising rates, from a separate load process.

The webhook server is the product's (``o2c webhooks serve``: connector/webhook_server.py under uvicorn)
in its own process; this process is the load generator (httpx, asyncio, open loop: each request is
sent at its scheduled time whether or not earlier ones were answered). Per rate step it reports the
deliveries accepted per second, p50/p99 time from sending to the 2xx answer, and at the end counts the
inbox rows in the ledger: every accepted delivery (distinct X-Shopify-Webhook-Id) must be there.

    python benchmarks/bench_webhooks.py [--total 5000] [--rates 250,500,1000,1500,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import PY, ROOT, save  # noqa: E402

# The sandbox shop, its app secret, a placeholder config and the signature: as the webhook tests use them.
from tests.webhook_support import PLACEHOLDER, SHOP, SHOP_SECRET, free_port, sign  # noqa: E402


def delivery(i: int) -> tuple[bytes, dict]:
    order_id = 5_000_000_000_000_000_000 + i
    raw = json.dumps({"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                      "name": f"#{1000 + i}", "updated_at": "2026-01-20T10:00:00-05:00",
                      "financial_status": "paid", "total_price": "42.00"}, separators=(",", ":")).encode()
    return raw, {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
                 "X-Shopify-Hmac-Sha256": sign(SHOP_SECRET, raw), "X-Shopify-Webhook-Id": f"bench-{i}",
                 "X-Shopify-Shop-Domain": f"{SHOP}.myshopify.com", "X-Shopify-Event-Id": f"ev-{i}",
                 "X-Shopify-API-Version": "2026-01", "X-Shopify-Triggered-At": "2026-01-20T15:00:00Z"}


def start_server(workdir: Path) -> tuple[subprocess.Popen, int, Path]:
    from connector.demo import write_config
    port = free_port()
    path = write_config(workdir, PLACEHOLDER)
    text = path.read_text().replace("    system: shopify\n",
                                    "    system: shopify\n    webhook_secret: ${O2C_BENCH_SHOP_HOOK_SECRET}\n")
    text += f"webhooks:\n  host: 127.0.0.1\n  port: {port}\n  public_base_url: http://127.0.0.1:{port}\n"
    path.write_text(text)
    log = open(workdir / "webhooks.log", "w")
    proc = subprocess.Popen([str(Path(PY).parent / "o2c"), "webhooks", "serve", "--config", str(path)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "O2C_BENCH_SHOP_HOOK_SECRET": SHOP_SECRET})
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("webhook server did not start:\n" + (workdir / "webhooks.log").read_text())
            time.sleep(0.05)
    return proc, port, workdir / "ledger.db"


async def step(client: httpx.AsyncClient, url: str, rate: float, first: int, count: int) -> dict:
    payloads = [delivery(first + i) for i in range(count)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted_ids: list[int] = []

    async def one(i: int, at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        raw, headers = payloads[i]
        t0 = time.perf_counter()
        try:
            r = await client.post(url, content=raw, headers=headers)
            code = r.status_code
        except httpx.HTTPError:
            code = -1
        dt = time.perf_counter() - t0
        statuses[code] = statuses.get(code, 0) + 1
        if 200 <= code < 300:
            latencies.append(dt)
            accepted_ids.append(first + i)

    start = time.perf_counter() + 0.05
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, start + i / rate) for i in range(count)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
    return {"offered_per_s": rate, "sent": count, "accepted": len(latencies), "statuses": statuses,
            "elapsed_s": round(elapsed, 3), "accepted_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2), "max_ms": round(pct(1.0), 2),
            "ids": accepted_ids, "setup_s": round(start - t0, 3)}


async def load(port: int, rates: list[float], total: int) -> list[dict]:
    url = f"http://127.0.0.1:{port}/webhooks/shopify/{SHOP}"
    per = total // len(rates)
    results = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:
        # warm up connections (not counted)
        await asyncio.gather(*(client.post(f"http://127.0.0.1:{port}/nowhere") for _ in range(20)),
                             return_exceptions=True)
        first = 0
        for k, rate in enumerate(rates):
            count = per if k < len(rates) - 1 else total - first
            results.append(await step(client, url, rate, first, count))
            first += count
            await asyncio.sleep(0.5)
    return results


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=5000)
    ap.add_argument("--rates", default="250,500,1000,1500,2000")
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "webhooks"))
    args = ap.parse_args()
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    rates = [float(r) for r in args.rates.split(",")]
    proc, port, ledger = start_server(workdir)
    try:
        steps = asyncio.run(load(port, rates, args.total))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    conn = sqlite3.connect(ledger)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(inbox)")]
    key = "dedupe_key" if "dedupe_key" in cols else None  # X-Shopify-Webhook-Id (connector/migrations.py)
    rows = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
    accepted = sum(s["accepted"] for s in steps)
    missing = None
    if key:
        stored = {str(r[0]) for r in conn.execute(f"SELECT {key} FROM inbox")}
        wanted = {f"bench-{i}" for s in steps for i in s["ids"]}
        missing = len(wanted - {k for k in stored if k.startswith("bench-")} - {
            w for w in wanted if any(k.endswith(w) for k in ())})
        if missing == len(wanted) and wanted:
            # the key is stored in another shape: match by suffix
            missing = sum(1 for w in wanted if not any(k.endswith(w) for k in stored))
    conn.close()
    for s in steps:
        s.pop("ids")
    out = {"steps": steps, "accepted_total": accepted, "inbox_rows": rows, "inbox_key_column": key,
           "missing_from_inbox": missing, "total": args.total, "rates": rates}
    print(f"{'offered/s':>9} {'accepted/s':>10} {'accepted':>8} {'p50 ms':>7} {'p99 ms':>7} statuses")
    for s in steps:
        print(f"{s['offered_per_s']:>9.0f} {s['accepted_per_s']:>10.1f} {s['accepted']:>8} {s['p50_ms']:>7.2f} "
              f"{s['p99_ms']:>7.2f} {s['statuses']}")
    print(f"accepted {accepted}, inbox rows {rows}, missing {missing}")
    save("webhooks", out)
    return out


if __name__ == "__main__":
    main()
