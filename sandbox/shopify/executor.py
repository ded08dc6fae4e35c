"""One GraphQL request against one shop: parse, validate, cost, throttle, execute.

Every answer is HTTP 200 with ``extensions.cost`` (notes §8 items 2-3), even
errors: Shopify reports GraphQL-level failures (bad query, THROTTLED,
MAX_COST_EXCEEDED) in ``errors`` with status 200, and never a 500.
"""

from __future__ import annotations

import re

from graphql import GraphQLError, execute, parse, validate

from sandbox.shopify.cost import actual_cost, requested_cost
from sandbox.shopify.schema import get_schema

RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
# Message text copied from fixture graphql/error_max_cost_exceeded.example.json.
MAX_COST_MESSAGE = (
    "Query cost is {cost}, which exceeds the single query max cost limit ({max}).\n\n"
    "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
    "cost of a query is calculated.\n\n"
    "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
    "See https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
)

# graphql-core validation messages rewritten to graphql-ruby's (Shopify's server library)
# wording and codes, so clients matching on them behave as against Shopify. The codes
# are graphql-ruby's static-validation codes; the mapping is best effort (unverified live).
_RUBY_STYLE = [
    (re.compile(r"Cannot query field '(\w+)' on type '(\w+)'\..*", re.S),
     lambda m: (f"Field '{m[1]}' doesn't exist on type '{m[2]}'",
                {"code": "undefinedField", "typeName": m[2], "fieldName": m[1]})),
    (re.compile(r"Unknown argument '(\w+)' on field '(\w+)\.(\w+)'\..*", re.S),
     lambda m: (f"Field '{m[3]}' doesn't accept argument '{m[1]}'",
                {"code": "argumentNotAccepted", "name": m[3], "typeName": "Field", "argumentName": m[1]})),
    (re.compile(r"Field '(\w+)' argument '(\w+)' of type '.+' is required, but it was not provided\.", re.S),
     lambda m: (f"Field '{m[1]}' is missing required arguments: {m[2]}",
                {"code": "missingRequiredArguments", "className": "Field", "name": m[1], "arguments": m[2]})),
]


def format_error(error: GraphQLError, default_code: str | None = None) -> dict:
    """Shopify's error entry: message, locations, path and extensions.code."""
    message, extensions = error.message, dict(error.extensions or {})
    for pattern, rewrite in _RUBY_STYLE:
        match = pattern.fullmatch(message)
        if match:
            message, extensions = rewrite(match)
            break
    if default_code and "code" not in extensions:
        extensions["code"] = default_code
    entry: dict = {"message": message}
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry["path"] = list(error.path)
    if extensions:
        entry["extensions"] = extensions
    return entry


def cost_extension(shop, requested, actual) -> dict:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": shop.bucket.status()}}


def run_graphql(store, shop, body: dict, context_extra: dict | None = None, debug: bool = False) -> dict:
    """Answer one GraphQL request body for ``shop`` (caller holds ``store.lock``).

    ``debug`` (header ``Shopify-GraphQL-Cost-Debug: 1``) adds ``extensions.cost.fields``.
    """
    schema = get_schema()
    query, variables = body.get("query"), body.get("variables") or {}
    if not isinstance(variables, dict):
        variables = {}
    operation_name = body.get("operationName") or None
    try:
        document = parse(query)
    except GraphQLError as exc:
        return {"errors": [format_error(exc, "GRAPHQL_PARSE_FAILED")], "extensions": cost_extension(shop, 0, 0)}
    errors = validate(schema, document)
    if errors:
        return {"errors": [format_error(e, "GRAPHQL_VALIDATION_FAILED") for e in errors],
                "extensions": cost_extension(shop, 0, 0)}

    report = [] if debug else None
    requested = requested_cost(schema, document, operation_name, variables, report)
    if requested > shop.max_query_cost:
        # Checked before execution and before the bucket (notes §2).
        error = {"message": MAX_COST_MESSAGE.format(cost=requested, max=shop.max_query_cost),
                 "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                "maxCost": shop.max_query_cost, "documentation": RATE_LIMITS_DOC}}
        return {"errors": [error], "extensions": cost_extension(shop, requested, None)}
    if not shop.bucket.take(requested):
        store.throttled += 1
        # Shape of fixture graphql/error_throttled.example.json: no data, actualQueryCost null.
        error = {"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC}}
        return {"errors": [error], "extensions": cost_extension(shop, requested, None)}

    context = {"shop": shop, "store": store, **(context_extra or {})}
    result = execute(schema, document, variable_values=variables, operation_name=operation_name,
                     context_value=context)
    actual = actual_cost(schema, document, result.data, operation_name, variables) if result.data else 0
    actual = min(actual, requested)
    shop.bucket.refund(requested - actual)  # refund of requested - actual (notes §2)
    store.cost_spent += actual
    answer: dict = {}
    if result.errors:
        answer["errors"] = [format_error(e) for e in result.errors]
    if result.data is not None or not result.errors:
        answer["data"] = result.data
    answer["extensions"] = cost_extension(shop, requested, actual)
    if report is not None:
        answer["extensions"]["cost"]["fields"] = report
    return answer
