"""The GraphQL documents the Shopify adapter sends, built from shared field lists.

The same order fields serve the paged query, the fetch by ids and (with
connections written as ``edges { node }`` and no sizes) the bulk query, so
all three return one shape for the one mapper.
"""

# Only the shop's money is asked for: every field costs points (notes §1 "Cost"), and the books are
# kept in shop currency. Presentment money, when a store books in it, is a later per-store setting.
MONEY = "shopMoney { amount currencyCode }"
LINE_FIELDS = f"""
      id sku name quantity taxable
      originalUnitPriceSet {{ {MONEY} }}
      discountAllocations {{ allocatedAmountSet {{ {MONEY} }} }}
      taxLines {{ title rate priceSet {{ {MONEY} }} }}
"""
SHIPPING_FIELDS = f"""id title code
      originalPriceSet {{ {MONEY} }}
      discountedPriceSet {{ {MONEY} }}
      taxLines {{ title rate priceSet {{ {MONEY} }} }}"""
TRANSACTION_FIELDS = f"""id kind status gateway test processedAt createdAt
      amountSet {{ {MONEY} }}
      parentTransaction {{ id }}"""
REFUND_FIELDS = f"id createdAt note totalRefundedSet {{ {MONEY} }}"
FULFILLMENT_FIELDS = "id status createdAt"


def order_fields(*, bulk: bool = False) -> str:
    """The order selection; ``bulk`` writes connections as ``edges { node }`` without sizes.

    Paged queries keep nested sizes small because every field costs points;
    bulk queries have no cost cap, so lists are asked for whole.
    """
    if bulk:
        lines = f"lineItems {{ edges {{ node {{ {LINE_FIELDS} }} }} }}"
        shipping = f"shippingLines {{ edges {{ node {{ {SHIPPING_FIELDS} }} }} }}"
        transactions = f"transactions {{ {TRANSACTION_FIELDS} }}"
        refunds = f"refunds {{ {REFUND_FIELDS} }}"
        fulfillments = f"fulfillments {{ {FULFILLMENT_FIELDS} }}"
    else:
        lines = f"lineItems(first: $lines) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_FIELDS} }} }}"
        shipping = f"shippingLines(first: 3) {{ nodes {{ {SHIPPING_FIELDS} }} }}"
        transactions = f"transactions(first: 5) {{ {TRANSACTION_FIELDS} }}"
        refunds = f"refunds(first: 5) {{ {REFUND_FIELDS} }}"
        fulfillments = f"fulfillments(first: 3) {{ {FULFILLMENT_FIELDS} }}"
    return f"""
  id legacyResourceId name email
  createdAt updatedAt processedAt cancelledAt cancelReason closedAt test
  currencyCode presentmentCurrencyCode taxesIncluded
  displayFinancialStatus displayFulfillmentStatus
  customer {{ id legacyResourceId firstName lastName
             defaultEmailAddress {{ emailAddress }} defaultPhoneNumber {{ phoneNumber }} }}
  billingAddress  {{ firstName lastName company address1 address2 city province provinceCode country countryCodeV2 zip phone }}
  shippingAddress {{ firstName lastName company address1 address2 city province provinceCode country countryCodeV2 zip phone }}
  subtotalPriceSet {{ {MONEY} }}
  totalDiscountsSet {{ {MONEY} }}
  totalShippingPriceSet {{ {MONEY} }}
  totalTaxSet {{ {MONEY} }}
  totalPriceSet {{ {MONEY} }}
  totalOutstandingSet {{ {MONEY} }}
  totalRefundedSet {{ {MONEY} }}
  taxLines {{ title rate priceSet {{ {MONEY} }} }}
  {lines}
  {shipping}
  {transactions}
  {refunds}
  {fulfillments}
"""


ORDER_FIELDS = order_fields()
ORDER_LINES = f"""
query OrderLines($id: ID!, $after: String, $lines: Int!) {{
  order(id: $id) {{
    lineItems(first: $lines, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ {LINE_FIELDS} }}
    }}
  }}
}}
"""
ORDERS_BY_ID = f"""
query OrdersById($ids: [ID!]!, $lines: Int!) {{
  nodes(ids: $ids) {{ __typename ... on Order {{ {ORDER_FIELDS} }} }}
}}
"""
ORDERS_PAGE = f"""
query OrdersPage($first: Int!, $after: String, $query: String, $lines: Int!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {ORDER_FIELDS} }}
  }}
}}
"""
BULK_RUN = """
mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""
# node(id:) works on every API version; bulkOperation(id:) only from 2026-01 (notes §1 Bulk).
BULK_POLL = """
query PollBulk($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url partialDataUrl } }
}
"""


def bulk_orders_query(search: str) -> str:
    """The inner query of a bulk backfill: every order in the window, oldest change first."""
    return f"""{{ orders(query: "{search}", sortKey: UPDATED_AT) {{ edges {{ node {{ {order_fields(bulk=True)} }} }} }} }}"""
