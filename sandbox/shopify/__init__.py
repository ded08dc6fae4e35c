"""Shopify Admin GraphQL API emulator (2026-01), spoken to by the unmodified ShopifyAPI SDK.

Modules, one responsibility each:

* ``app``        Starlette routes: ``POST /shop/<shop>/admin/api/<v>/graphql.json``, bulk files,
                 control API (``/_sandbox/reset|state|counters|faults``, seeding, touch,
                 refunds, cancel, config).
* ``executor``   one GraphQL request: parse, validate, cost, throttle, execute, error shape.
* ``schema``     loads the real 2026-01 SDL (gzipped here) once and wires resolvers.
* ``render``     order spec (``sandbox/generator.py``) -> ``Order`` node dict, Shopify's arithmetic.
* ``connection`` Relay pagination with opaque base64 cursors; ``search`` the ``query:`` syntax.
* ``cost``       calculated query cost and the leaky bucket; ``bulk`` bulk query operations.
* ``store``      in-memory shops; ``faults`` injected faults; ``refunds`` / ``cancel`` what a
                 merchant does after the sale (control API).
* ``webhooks``   webhook subscriptions (GraphQL + control API) and the events order actions fire;
                 ``delivery`` signed POSTs, retries, removal, knobs; ``rest_render`` Order node ->
                 REST-shaped webhook body; ``payments`` marks an order paid (control API).

Seed and call::

    httpx.post(f"{url}/_sandbox/shops/demo/orders",
               json={"credentials": {"access_token": "shpat_x"}, "orders": generate_orders(1, 50)})
    shopify.ShopifyResource.activate_session(shopify.Session("demo.myshopify.com", "2026-01", "shpat_x"))
    shopify.ShopifyResource.site = f"{url}/shop/demo/admin/api/2026-01"
    json.loads(shopify.GraphQL().execute(QUERY, variables={...}, operation_name="OrdersPage"))

The sandbox imports nothing from the product (connector/, adapters/, mappings/).
"""
