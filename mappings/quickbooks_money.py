"""Canonical transactions and refunds -> QuickBooks Payment, RefundReceipt and CreditMemo bodies.

Pure (no I/O). Notes (../shared/notes/quickbooks.md):

- §1.4 a Payment applied to an invoice is ``{"TotalAmt", "CustomerRef",
  "Line": [{"Amount", "LinkedTxn": [{"TxnId", "TxnType": "Invoice"}]}]}``;
  ``DepositToAccountRef`` and ``PaymentMethodRef`` come from the gateway's
  configuration (:class:`GatewayRefs`). One payment per captured transaction.
- §1.5 a RefundReceipt (money back) needs ``DepositToAccountRef``, the
  account the money leaves from; a CreditMemo (credit on account) needs none.
  Neither links to the original document in QuickBooks, so the original's
  DocNumber is in the PrivateNote and the binding.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from connector.errors import PermanentError
from connector.model import Order, Refund, Transaction
from mappings.quickbooks_documents import ItemRefs, private_note
from mappings.quickbooks_sales import (
    TaxPolicy,
    exchange_rate,
    line_tax_code,
    sales_line,
)

REF_NUM_MAX = 21  # PaymentRefNum, like DocNumber (Finance.xsd)


@dataclass(frozen=True)
class GatewayRefs:
    """QuickBooks ids for one gateway's money (None: QuickBooks' default, e.g. Undeposited Funds)."""

    payment_method: str | None = None
    deposit_account: str | None = None
    refund_account: str | None = None


def ref_num(source_id: str) -> str:
    """A transaction id as ``PaymentRefNum``: the last 21 characters (where ids differ)."""
    return source_id[-REF_NUM_MAX:]


def payment_body(order: Order, txn: Transaction, customer_id: str, invoice_id: str, refs: GatewayRefs,
                 *, home_currency: str | None = None) -> dict:
    """One Payment for one captured transaction, applied to the order's invoice."""
    amount = txn.amount.rounded().amount
    body = {
        "TotalAmt": amount,
        "CustomerRef": {"value": customer_id},
        "CurrencyRef": {"value": order.currency},
        "TxnDate": (txn.processed_at or order.created_at).date().isoformat(),
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
        "PaymentRefNum": ref_num(txn.source_transaction_id),
        "PrivateNote": private_note(order, f"{txn.gateway or 'payment'} transaction {txn.source_transaction_id} of order"),
    }
    _money_refs(body, refs.payment_method, refs.deposit_account)
    rate = exchange_rate(order, home_currency)
    if rate is not None:
        body["ExchangeRate"] = rate
    return body


def receipt_payment_fields(order: Order, refs: GatewayRefs) -> dict:
    """What a SalesReceipt adds to a sales document: where the money went and how it was paid."""
    captured = [t for t in order.transactions if t.is_captured_money]
    fields: dict = {}
    if captured:
        main = max(captured, key=lambda t: t.amount.amount)
        fields["PaymentRefNum"] = ref_num(main.source_transaction_id)
    _money_refs(fields, refs.payment_method, refs.deposit_account)
    return fields


def main_gateway(order: Order) -> str | None:
    """The gateway that took most of the money (a sales receipt has one deposit account)."""
    captured = [t for t in order.transactions if t.is_captured_money]
    return max(captured, key=lambda t: t.amount.amount).gateway if captured else None


def _money_refs(body: dict, method: str | None, account: str | None) -> None:
    if method:
        body["PaymentMethodRef"] = {"value": method}
    if account:
        body["DepositToAccountRef"] = {"value": account}


def refund_index(order: Order, refund: Refund) -> int:
    """1-based position of ``refund`` among the order's refunds in the order they happened, for its DocNumber.

    Not the position in the store's list: WooCommerce lists an order's refunds newest first, so
    every new refund would be "first" and two refunds would get one DocNumber. Refunds are only
    ever added, so by time (then by id, numerically: both stores' ids grow) a refund keeps its place.
    """
    def when(r: Refund):
        digits = r.source_refund_id.isdigit()
        return (r.created_at, 0 if digits else 1, int(r.source_refund_id) if digits else 0, r.source_refund_id)
    ids = [r.source_refund_id for r in sorted(order.refunds, key=when)]
    return ids.index(refund.source_refund_id) + 1


def refund_body(order: Order, refund: Refund, kind: str, customer_id: str, items: ItemRefs, number: str,
                policy: TaxPolicy, refs: GatewayRefs, original: dict, *, home_currency: str | None = None) -> dict:
    """A RefundReceipt (``kind='RefundReceipt'``) or CreditMemo for one refund; totals ``refund.amount``.

    Lines: each refunded order line (tax excluded, as the model stores it),
    the refunded shipping, and whatever of the refund the store did not
    itemise (an amount-only refund) on the fallback item; the refunded tax
    in ``TxnTaxDetail.TotalTax``.
    """
    by_id = {line.source_line_id: line for line in order.lines}
    lines, tax = [], Decimal(0)
    for part in refund.lines:
        source = by_id.get(part.source_line_id)
        title = source.title if source else f"line {part.source_line_id}"
        item_id = items.by_sku.get((source.sku if source else None) or "") or items.fallback
        if item_id is None:
            raise PermanentError(f"no QuickBooks item for refunded SKU '{source.sku if source else None}'",
                                 system="quickbooks", code="unknown_sku",
                                 what_to_do="map the SKU under quickbooks.item_map or set quickbooks.default_item, "
                                            "then replay")
        part_tax = part.tax.amount if part.tax else Decimal(0)
        tax += part_tax
        amount = part.amount.amount
        gross = amount + part_tax if order.taxes_included else None
        code = line_tax_code(policy, source.tax_lines if source else (), bool(part_tax))
        lines.append(sales_line(amount, item_id, title, part.quantity, source.unit_price.amount if source else amount,
                                code, gross))
    if refund.shipping and not refund.shipping.is_zero():
        if items.shipping is None:
            raise PermanentError("no QuickBooks item for shipping", system="quickbooks", code="no_shipping_item",
                                 what_to_do="create the item named in quickbooks.shipping_item, then replay")
        amount = refund.shipping.amount
        lines.append(sales_line(amount, items.shipping, "Shipping refund", 1, amount, line_tax_code(policy, (), False)))
    itemised = sum((line["Amount"] for line in lines), Decimal(0)) + tax
    rest = refund.amount.amount - itemised
    if rest < 0:
        # The store's refund lines add up to more than the money returned (e.g. restocking fee kept):
        # take the difference off as a discount so the document equals the refund.
        lines.append({"DetailType": "DiscountLineDetail", "Amount": -rest, "Description": "Kept by the store",
                      "DiscountLineDetail": {"PercentBased": False}})
    elif rest > 0:
        if items.fallback is None and not lines:
            raise PermanentError("an amount-only refund needs an item to book to", system="quickbooks",
                                 code="no_refund_item",
                                 what_to_do="set quickbooks.default_item, then replay")
        lines.append(sales_line(rest, items.fallback or lines[0]["SalesItemLineDetail"]["ItemRef"]["value"],
                                refund.note or "Refund", 1, rest, line_tax_code(policy, (), False)))
    body = {
        "DocNumber": number,
        "TxnDate": refund.created_at.date().isoformat(),
        "CustomerRef": {"value": customer_id},
        "CurrencyRef": {"value": order.currency},
        "Line": lines,
        "TxnTaxDetail": {"TotalTax": tax},
        "PrivateNote": private_note(order, f"refund {refund.source_refund_id} of {original.get('kind', 'document')} "
                                          f"{original.get('DocNumber', '')} for order"),
    }
    if policy.mode != "us":
        body["GlobalTaxCalculation"] = "TaxInclusive" if order.taxes_included else "TaxExcluded"
    rate = exchange_rate(order, home_currency)
    if rate is not None:
        body["ExchangeRate"] = rate
    if kind == "RefundReceipt":
        if not refs.refund_account:
            raise PermanentError(
                f"no account to pay the refund from for gateway '{refund.gateway or 'unknown'}'",
                system="quickbooks", code="no_refund_account",
                what_to_do="set quickbooks.gateways.<gateway>.refund_account (or '*'), or quickbooks.refunds: "
                           "credit_memo; then replay")
        _money_refs(body, refs.payment_method, refs.refund_account)
        body["PaymentRefNum"] = ref_num(refund.source_refund_id)
    return body
