"""``python -m sandbox serve``: start the emulators on loopback.

Example::

    python -m sandbox serve --ready-file /tmp/sandbox.json
    python -m sandbox serve --shopify-port 0   # 0 = pick any free port
    python -m sandbox seed --urls-file /tmp/sandbox.json --orders 100 --out /tmp/credentials.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

from sandbox.runner import DEFAULT_PORTS, SYSTEMS, serve


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="start the four emulators")
    run.add_argument("--host", default="127.0.0.1")
    for system in SYSTEMS:
        run.add_argument(f"--{system}-port", type=int, default=DEFAULT_PORTS[system],
                         help=f"port for the {system} emulator (0 = any free port)")
    run.add_argument("--woocommerce-tls-port", type=int, default=None,
                     help="also serve WooCommerce over https on this port (0 = any free port)")
    run.add_argument("--tls-dir", help="where to write the self-signed certificate (default: a temp dir)")
    run.add_argument("--ready-file", help="write {pid, urls} here as JSON once every emulator listens")
    run.add_argument("--options", default="{}",
                     help='JSON of per-system options, e.g. {"quickbooks": {"latency_ms": 50}}')
    fill = sub.add_parser("seed", help="seed two stores, a HubSpot account and a QuickBooks company")
    fill.add_argument("--urls-file", required=True, help="the --ready-file written by 'serve'")
    fill.add_argument("--orders", type=int, default=100, help="orders in all, half per store")
    fill.add_argument("--seed", type=int, default=7, help="random seed of the generator")
    fill.add_argument("--out", help="write the test credentials here (default: print them)")
    args = parser.parse_args(argv)
    if args.command == "seed":
        from sandbox.seed import main as seed_main
        seed_main(args)
        return
    ports = {}
    for system in SYSTEMS:
        port = getattr(args, f"{system}_port")
        ports[system] = port or _free_port(args.host)
    tls_port = args.woocommerce_tls_port
    if tls_port == 0:
        tls_port = _free_port(args.host)
    asyncio.run(serve(args.host, ports, args.ready_file, json.loads(args.options), tls_port, args.tls_dir))


if __name__ == "__main__":
    main()
