"""Local emulators of Shopify, WooCommerce, HubSpot and QuickBooks Online.

Each emulator is a real HTTP server on loopback that speaks its vendor's wire
protocol closely enough that the vendor's official SDK talks to it with only
the base URL changed. The sandbox imports nothing from the product: it stands
in for the outside world.

Every emulator also answers a small control API under ``/_sandbox/`` (seed,
reset, read state, inject faults, read what each account sent against each limit:
``GET /_sandbox/traffic``, docs/sandbox.md §2) that no real vendor has; tests,
the demo and the benchmarks use it.
"""
