"""The GraphQL documents the Shopify adapter sends, built from shared field lists.

The same order fields serve the paged query, the fetch by ids and (with
connections written as ``edges { node }`` and no sizes) the bulk query, so
all three return one shape for the one mapper.

Every field costs points (../shared/notes/shopify.md §1 "Cost"), so line
level money is asked for in the one side that books (shop money by
default; presentment money when a store books in the shopper's currency).
The order totals carry both sides, so the other side is kept as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

BOTH = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
FULFILLMENT_FIELDS = "id status createdAt"


def _money(side: str) -> str:
    return f"{side}Money {{ amount currencyCode }}"


def order_fields(side: str = "shop", *, bulk: bool = False) -> str:
    """The order selection; ``bulk`` writes connections as ``edges { node }`` without sizes.

    Paged queries keep nested sizes small; bulk queries have no cost cap, so
    lists are asked for whole. Orders whose lists fill a page are completed
    by follow-up queries (adapters/shopify.py).
    """
    money = _money(side)
    line = f"""id sku name quantity taxable
      originalUnitPriceSet {{ {money} }}
      discountAllocations {{ allocatedAmountSet {{ {money} }} }}
      taxLines {{ title rate priceSet {{ {money} }} }}"""
    shipping = f"""id title code
      originalPriceSet {{ {money} }}
      discountedPriceSet {{ {money} }}
      taxLines {{ title rate priceSet {{ {money} }} }}"""
    transaction = f"""id kind status gateway test processedAt createdAt
      amountSet {{ {money} }}
      parentTransaction {{ id }}"""
    refund = f"id createdAt note totalRefundedSet {{ {money} }}"
    if bulk:
        lists = f"""lineItems {{ edges {{ node {{ {line} }} }} }}
  shippingLines {{ edges {{ node {{ {shipping} }} }} }}
  transactions {{ {transaction} }}
  refunds {{ {refund} }}
  fulfillments {{ {FULFILLMENT_FIELDS} }}"""
    else:
        lists = f"""lineItems(first: $lines) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {line} }} }}
  shippingLines(first: 3) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {shipping} }} }}
  transactions(first: 5) {{ {transaction} }}
  refunds(first: 5) {{ {refund} }}
  fulfillments(first: 3) {{ {FULFILLMENT_FIELDS} }}"""
    return f"""
  id legacyResourceId name email
  createdAt updatedAt processedAt cancelledAt cancelReason closedAt test
  currencyCode presentmentCurrencyCode taxesIncluded
  displayFinancialStatus displayFulfillmentStatus
  customer {{ id legacyResourceId firstName lastName
             defaultEmailAddress {{ emailAddress }} defaultPhoneNumber {{ phoneNumber }} }}
  billingAddress  {{ firstName lastName company address1 address2 city province provinceCode country countryCodeV2 zip phone }}
  shippingAddress {{ firstName lastName company address1 address2 city province provinceCode country countryCodeV2 zip phone }}
  subtotalPriceSet {{ {money} }}
  totalDiscountsSet {{ {BOTH} }}
  totalShippingPriceSet {{ {BOTH} }}
  totalTaxSet {{ {BOTH} }}
  totalPriceSet {{ {BOTH} }}
  totalTipReceivedSet {{ {money} }}
  totalOutstandingSet {{ {money} }}
  totalRefundedSet {{ {money} }}
  taxLines {{ title rate priceSet {{ {money} }} }}
  {lists}
"""


@dataclass(frozen=True)
class Documents:
    """The queries of one booking side."""

    page: str
    by_id: str
    more_lines: str
    more_lists: str
    refund_details: str


@lru_cache(maxsize=2)
def documents(side: str = "shop") -> Documents:
    fields = order_fields(side)
    money = _money(side)
    return Documents(
        page=f"""
query OrdersPage($first: Int!, $after: String, $query: String, $lines: Int!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {fields} }}
  }}
}}""",
        by_id=f"""
query OrdersById($ids: [ID!]!, $lines: Int!) {{
  nodes(ids: $ids) {{ __typename ... on Order {{ {fields} }} }}
}}""",
        more_lines=f"""
query OrderLines($id: ID!, $after: String, $lines: Int!) {{
  order(id: $id) {{
    lineItems(first: $lines, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ id sku name quantity taxable
        originalUnitPriceSet {{ {money} }}
        discountAllocations {{ allocatedAmountSet {{ {money} }} }}
        taxLines {{ title rate priceSet {{ {money} }} }} }}
    }}
  }}
}}""",
        # Plain lists cannot be paged: ask again for many more when a page came back full.
        more_lists=f"""
query OrderLists($id: ID!) {{
  order(id: $id) {{
    shippingLines(first: 50) {{ nodes {{ id title code originalPriceSet {{ {money} }}
      discountedPriceSet {{ {money} }} taxLines {{ title rate priceSet {{ {money} }} }} }} }}
    transactions(first: 100) {{ id kind status gateway test processedAt createdAt amountSet {{ {money} }}
      parentTransaction {{ id }} }}
    refunds(first: 100) {{ id createdAt note totalRefundedSet {{ {money} }} }}
  }}
}}""",
        # Asked only for orders that have refunds: what was given back, line by line (~150 points each).
        refund_details=f"""
query OrderRefunds($id: ID!) {{
  order(id: $id) {{
    refunds(first: 5) {{ id createdAt note totalRefundedSet {{ {money} }}
      refundLineItems(first: 20) {{ pageInfo {{ hasNextPage }}
        nodes {{ lineItem {{ id }} quantity subtotalSet {{ {money} }} totalTaxSet {{ {money} }} }} }}
      refundShippingLines(first: 3) {{ nodes {{ subtotalAmountSet {{ {money} }} taxAmountSet {{ {money} }} }} }}
      transactions(first: 3) {{ nodes {{ kind status gateway }} }}
    }}
  }}
}}"""
    )


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
ACCESS_SCOPES = """
query AccessScopes { currentAppInstallation { accessScopes { handle } } }
"""


def bulk_orders_query(search: str, side: str = "shop") -> str:
    """The inner query of a bulk backfill: every order in the window, oldest change first."""
    return (f'{{ orders(query: "{search}", sortKey: UPDATED_AT) '
            f'{{ edges {{ node {{ {order_fields(side, bulk=True)} }} }} }} }}')
