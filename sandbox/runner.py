"""Run the four emulators, each on its own loopback port, in one process.

Each vendor is its own host in real life, so each emulator gets its own port;
one asyncio loop serves them all (uvicorn servers share the loop).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass

import uvicorn

SYSTEMS = ("shopify", "woocommerce", "hubspot", "quickbooks")
DEFAULT_PORTS = {"shopify": 8701, "woocommerce": 8702, "hubspot": 8703, "quickbooks": 8704}


@dataclass
class Emulator:
    system: str
    port: int
    server: uvicorn.Server


def build_app(system: str, options: dict):
    """Import one emulator's Starlette app factory lazily (keeps start-up lean)."""
    if system == "shopify":
        from sandbox.shopify.app import create_app
    elif system == "woocommerce":
        from sandbox.woocommerce.app import create_app
    elif system == "hubspot":
        from sandbox.hubspot.app import create_app
    elif system == "quickbooks":
        from sandbox.quickbooks.app import create_app
    else:  # pragma: no cover - guarded by argparse choices
        raise ValueError(f"unknown system {system!r}")
    from sandbox.fault_bodies import BY_SYSTEM
    from sandbox.faults import FaultInjector
    # Every emulator sits behind the shared fault injector (POST /_sandbox/chaos).
    return FaultInjector(create_app(options), options.get("chaos"), BY_SYSTEM[system])


def _config(app, host: str, port: int, **tls) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=os.environ.get("SANDBOX_LOG_LEVEL", "warning"),
                          access_log=False, lifespan="off", **tls)


async def serve(host: str, ports: dict[str, int], ready_file: str | None, options: dict,
                tls_port: int | None = None, tls_dir: str | None = None) -> None:
    """Start every emulator, write ``ready_file`` once all listen, run until signalled.

    With ``tls_port`` the WooCommerce emulator is also served over https
    (one app, two ports), with a certificate made in ``tls_dir``.
    """
    emulators = []
    apps = {}
    for system, port in ports.items():
        apps[system] = build_app(system, options.get(system, {}))
        emulators.append(Emulator(system, port, uvicorn.Server(_config(apps[system], host, port))))
    ca_file = None
    if tls_port is not None:
        import tempfile
        from pathlib import Path

        from sandbox.tls import MarkHttps, make_certificate
        cert, key = make_certificate(Path(tls_dir or tempfile.mkdtemp(prefix="o2c-sandbox-tls-")))
        ca_file = str(cert)
        config = _config(MarkHttps(apps["woocommerce"]), host, tls_port, ssl_certfile=str(cert), ssl_keyfile=str(key))
        emulators.append(Emulator("woocommerce_https", tls_port, uvicorn.Server(config)))
    for emulator in emulators:
        # Signals are handled once below, for all servers together.
        emulator.server.install_signal_handlers = lambda: None
    tasks = [asyncio.create_task(e.server.serve()) for e in emulators]
    while not all(e.server.started for e in emulators):
        if any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()
            raise SystemExit("a sandbox emulator failed to start (is its port already in use?)")
        await asyncio.sleep(0.02)
    urls = {e.system: f"{'https' if e.system.endswith('_https') else 'http'}://{host}:{e.port}"
            for e in emulators}
    if ready_file:
        tmp = ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"pid": os.getpid(), "urls": urls, "ca_file": ca_file}, fh)
        os.replace(tmp, ready_file)
    print("sandbox ready: " + ", ".join(f"{k} {v}" for k, v in urls.items()), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for e in emulators:
        e.server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
