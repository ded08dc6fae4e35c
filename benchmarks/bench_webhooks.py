"""Webhook intake: signed Shopify webhooks over loopback at rising rates, from a separate load process.

The webhook server is the product's (``o2c webhooks serve``: connector/webhook_server.py under uvicorn)
in its own process; this process is the load generator. It is kept light so that it measures the
server, not itself: every request is built and signed before the clock starts, and it is written as raw
HTTP/1.1 bytes on a pool of keep-alive connections (asyncio protocols, no HTTP client library), one
request in flight per connection. Open loop: each request is dispatched at its scheduled time whether
or not earlier ones were answered; when every connection is busy it waits for one, and that wait counts
in its latency (latency runs from dispatch to the end of the 2xx answer).

Per rate step it reports the deliveries accepted per second, p50/p99 time to the 2xx answer, how late
the generator dispatched (``send_lag_p99_ms``: if it grows, the generator is not keeping up) and the CPU
both processes used (``generator_cpu_pct``, ``server_cpu_pct``: 100 = one core). At the end it counts
the inbox rows in the ledger: every accepted delivery (distinct X-Shopify-Webhook-Id) must be there.

    python benchmarks/bench_webhooks.py [--total 5000] [--rates 250,500,1000,1500,2000] [--connections 128]
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
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import PY, ROOT, save  # noqa: E402

# The sandbox shop, its app secret, a placeholder config and the signature: as the webhook tests use them.
from tests.webhook_support import PLACEHOLDER, SHOP, SHOP_SECRET, free_port, sign  # noqa: E402

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def delivery(i: int) -> tuple[bytes, dict]:
    order_id = 5_000_000_000_000_000_000 + i
    raw = json.dumps({"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                      "name": f"#{1000 + i}", "updated_at": "2026-01-20T10:00:00-05:00",
                      "financial_status": "paid", "total_price": "42.00"}, separators=(",", ":")).encode()
    return raw, {"Content-Type": "application/json", "X-Shopify-Topic": "orders/updated",
                 "X-Shopify-Hmac-Sha256": sign(SHOP_SECRET, raw), "X-Shopify-Webhook-Id": f"bench-{i}",
                 "X-Shopify-Shop-Domain": f"{SHOP}.myshopify.com", "X-Shopify-Event-Id": f"ev-{i}",
                 "X-Shopify-API-Version": "2026-01", "X-Shopify-Triggered-At": "2026-01-20T15:00:00Z"}


def http_request(port: int, path: str, raw: bytes, headers: dict) -> bytes:
    """One HTTP/1.1 keep-alive POST as the bytes that go on the wire."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items()),
            f"Content-Length: {len(raw)}", "", ""]
    return "\r\n".join(head).encode("latin-1") + raw


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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICK, int(fields[12]) / CLOCK_TICK


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight; parses Content-Length answers."""

    def __init__(self, pool: "Pool"):
        self.pool = pool
        self.transport = None
        self.buffer = b""
        self.job = None  # (request index, dispatch time) of the request in flight
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, job, data: bytes) -> None:
        self.job = job
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length:]
        job, self.job = self.job, None
        self.pool.answered(self, job, int(head[9:12]))

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.job is not None:
            job, self.job = self.job, None
            self.pool.answered(self, job, -1)
        self.pool.replace()


class Pool:
    """The connections, the requests waiting for a free one, and what each answer was."""

    def __init__(self, port: int, size: int):
        self.port, self.size = port, size
        self.idle: deque[Connection] = deque()
        self.waiting: deque = deque()
        self.requests: list[bytes] = []
        self.step = None  # the running step's results
        self.stopping = False
        self.done = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            _, conn = await loop.create_connection(lambda: Connection(self), "127.0.0.1", self.port)
            self.idle.append(conn)

    def replace(self) -> None:
        """A connection the server closed (idle timeout, error) is replaced by a new one."""
        if not self.stopping:
            asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        _, conn = await asyncio.get_running_loop().create_connection(lambda: Connection(self), "127.0.0.1",
                                                                       self.port)
        if self.waiting:
            job = self.waiting.popleft()
            conn.send(job, self.requests[job[0]])
        else:
            self.idle.append(conn)

    def dispatch(self, index: int, at: float) -> None:
        job = (index, at)
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed:
                conn.send(job, self.requests[index])
                return
        self.waiting.append(job)

    def answered(self, conn: Connection, job, status: int) -> None:
        index, at = job
        now = time.perf_counter()
        step = self.step
        step["statuses"][status] = step["statuses"].get(status, 0) + 1
        if 200 <= status < 300:
            step["latencies"].append(now - at)
            step["ids"].append(step["first"] + index)
        step["answered"] += 1
        if not conn.closed:
            if self.waiting:  # a request waited for a free connection: it goes now
                job = self.waiting.popleft()
                conn.send(job, self.requests[job[0]])
            else:
                self.idle.append(conn)
        if step["answered"] == step["sent"] and not self.done.done():
            self.done.set_result(None)


async def run_step(pool: Pool, server_pid: int, path: str, rate: float, first: int, count: int) -> dict:
    pool.requests = [http_request(pool.port, path, *delivery(first + i)) for i in range(count)]
    loop = asyncio.get_running_loop()
    pool.step = {"statuses": {}, "latencies": [], "ids": [], "answered": 0, "sent": count, "first": first}
    pool.done = loop.create_future()
    lags = []
    cpu0, server0 = time.process_time(), cpu_seconds(server_pid)
    start = time.perf_counter() + 0.05
    i = 0
    while i < count:
        now = time.perf_counter()
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        # dispatch everything due by now (the loop wakes in steps of about a millisecond)
        while i < count and start + i / rate <= now:
            at = start + i / rate
            lags.append(now - at)
            pool.dispatch(i, now)
            i += 1
    await asyncio.wait_for(pool.done, timeout=120)
    elapsed = time.perf_counter() - start
    server1 = cpu_seconds(server_pid)
    cpu, server_user, server_sys = time.process_time() - cpu0, server1[0] - server0[0], server1[1] - server0[1]
    server_cpu = server_user + server_sys
    step = pool.step
    latencies = sorted(step["latencies"])
    lags.sort()

    def pct(values, p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")
    return {"offered_per_s": rate, "sent": count, "accepted": len(latencies), "statuses": step["statuses"],
            "elapsed_s": round(elapsed, 3), "accepted_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(latencies, 0.50), 2), "p99_ms": round(pct(latencies, 0.99), 2),
            "max_ms": round(pct(latencies, 1.0), 2), "send_lag_p99_ms": round(pct(lags, 0.99), 2),
            "generator_cpu_pct": round(100 * cpu / elapsed, 1), "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
            "server_cpu_ms_per_request": round(1000 * server_cpu / count, 3),
            "server_sys_share": round(server_sys / server_cpu, 2) if server_cpu else None,
            "ids": step["ids"], "setup_s": 0.05}


async def load(port: int, server_pid: int, rates: list[float], total: int, connections: int) -> list[dict]:
    path = f"/webhooks/shopify/{SHOP}"
    per = total // len(rates)
    pool = Pool(port, connections)
    await pool.open()
    # warm up every connection and the server's code paths (a 404, not counted)
    pool.requests = [http_request(port, "/nowhere", b"{}", {"Content-Type": "application/json"})] * connections
    pool.step = {"statuses": {}, "latencies": [], "ids": [], "answered": 0, "sent": connections, "first": 0}
    pool.done = asyncio.get_running_loop().create_future()
    for i in range(connections):
        pool.dispatch(i, time.perf_counter())
    await asyncio.wait_for(pool.done, timeout=60)
    results = []
    first = 0
    for k, rate in enumerate(rates):
        count = per if k < len(rates) - 1 else total - first
        results.append(await run_step(pool, server_pid, path, rate, first, count))
        first += count
        await asyncio.sleep(0.5)
    pool.stopping = True
    for conn in pool.idle:
        conn.transport.close()
    return results


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=5000)
    ap.add_argument("--rates", default="250,500,1000,1500,2000")
    ap.add_argument("--connections", type=int, default=128, help="keep-alive connections of the load generator")
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "webhooks"))
    args = ap.parse_args()
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    rates = [float(r) for r in args.rates.split(",")]
    proc, port, ledger = start_server(workdir)
    try:
        steps = asyncio.run(load(port, proc.pid, rates, args.total, args.connections))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    conn = sqlite3.connect(ledger)
    rows = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
    # X-Shopify-Webhook-Id is the dedupe key (connector/webhook_server.py shopify_delivery)
    stored = {str(r[0]) for r in conn.execute("SELECT dedupe_key FROM inbox")}
    conn.close()
    accepted = sum(s["accepted"] for s in steps)
    wanted = {f"webhook-id|bench-{i}" for s in steps for i in s["ids"]}
    missing = len(wanted - stored)
    for s in steps:
        s.pop("ids")
    out = {"steps": steps, "accepted_total": accepted, "inbox_rows": rows, "inbox_key_column": "dedupe_key",
           "missing_from_inbox": missing, "total": args.total, "rates": rates, "connections": args.connections,
           "generator": "raw HTTP/1.1 on asyncio protocols, pre-built signed requests, keep-alive pool"}
    print(f"{'offered/s':>9} {'accepted/s':>10} {'accepted':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'lag p99':>7} {'gen cpu%':>8} {'srv cpu%':>8} {'srv ms/req':>10} statuses")
    for s in steps:
        print(f"{s['offered_per_s']:>9.0f} {s['accepted_per_s']:>10.1f} {s['accepted']:>8} {s['p50_ms']:>7.2f} "
              f"{s['p99_ms']:>7.2f} {s['max_ms']:>7.2f} {s['send_lag_p99_ms']:>7.2f} {s['generator_cpu_pct']:>8.1f} "
              f"{s['server_cpu_pct']:>8.1f} {s['server_cpu_ms_per_request']:>10.3f} {s['statuses']}")
    print(f"accepted {accepted}, inbox rows {rows}, missing {missing}")
    save("webhooks", out)
    return out


if __name__ == "__main__":
    main()
