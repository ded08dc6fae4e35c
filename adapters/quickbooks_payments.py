"""Payments (one per captured transaction) and refunds (one document per refund).

``quickbooks.payment:<transaction id>``: a Payment applied to the order's
invoice, with the payment method and deposit account of the transaction's
gateway (``quickbooks.gateways``). After a batch of payments the invoices
they paid are read back in one query, so the invoice binding keeps
``Balance`` and ``SyncToken`` current (the HubSpot write-back reads them;
the void's 5010 check relies on the token). An unpaid order has no payment
step: its invoice stays open until the store reports a capture.

``quickbooks.refund:<refund id>``: a RefundReceipt (money back, from the
gateway's ``refund_account``) or a CreditMemo (``quickbooks.refunds``),
numbered ``<document number>-R<n>`` and naming the original document in
its PrivateNote and binding.

A retried attempt probes first: payments by ``PaymentRefNum`` (and the
order key in the PrivateNote), refunds by DocNumber.
"""

from __future__ import annotations

from adapters.quickbooks_documents import bind_document, document_of
from adapters.quickbooks_items import resolve
from adapters.quickbooks_runner import Books, Pending, stamp, summary
from connector.errors import SkippableError, StepError
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import customer_key, doc_number, request_id
from mappings.quickbooks_money import payment_body, ref_num, refund_body, refund_index
from mappings.quickbooks_sales import Expected, cents

REFUND_ENTITY = {"refund_receipt": "RefundReceipt", "credit_memo": "CreditMemo"}


def _target_id(item: Work) -> str | None:
    return item.step.split(":", 1)[1] if ":" in item.step else None


# -- payments -----------------------------------------------------------------------------

def run_payments(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    todo = []
    for item in work:
        try:
            result = _payment_ready(books, item)
        except StepError as exc:
            result = Outcome(item.step_id, "failed", error=exc)
        if isinstance(result, Outcome):
            outcomes[item.step_id] = result
        else:
            todo.append((item, result))
    _probe_payments(books, todo, outcomes)
    pending = []
    for item, txn in todo:
        if item.step_id in outcomes:
            continue
        try:
            pending.append(_payment_pending(books, item, txn))
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
    outcomes.update(books.create_all(pending))
    _refresh_invoices(books, [item for item, _ in todo])
    return stamp(work, outcomes)


def _payment_ready(books: Books, item: Work):
    """The transaction to book, or the outcome when there is nothing to send."""
    order, txn_id = item.order, _target_id(item)
    if txn_id is None:
        return Outcome(item.step_id, "skipped", error=SkippableError(
            "superseded: payments are now booked one per captured transaction", what_to_do="nothing"))
    key = f"{order.order_key}|{txn_id}"
    bound = books.ledger.binding("quickbooks", "payment", key)
    if bound:
        return Outcome(item.step_id, "done", external_id=bound, response=f"already bound: Payment {bound}")
    if books.ledger.binding("quickbooks", "payment", order.order_key):
        return Outcome(item.step_id, "skipped", error=SkippableError(
            "an earlier version booked one payment for the whole order", what_to_do="nothing"))
    txn = next((t for t in order.transactions if t.source_transaction_id == txn_id), None)
    if txn is None or not txn.is_captured_money:
        return Outcome(item.step_id, "skipped", error=SkippableError(
            f"transaction {txn_id} is no longer a captured payment in the store", what_to_do="nothing"))
    return txn


def _probe_payments(books: Books, todo, outcomes) -> None:
    retried = [(item, txn) for item, txn in todo if item.attempts > 1]
    if not retried:
        return
    found = books.target.find_payments(sorted({ref_num(txn.source_transaction_id) for _, txn in retried}))
    for item, txn in retried:
        for payment in found:
            if payment.get("PaymentRefNum") == ref_num(txn.source_transaction_id) and \
                    item.order.order_key in (payment.get("PrivateNote") or ""):
                _bind_payment(books, item, txn, payment)
                outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=payment["Id"],
                                                 note="found by PaymentRefNum",
                                                 response=f"found by probe: {summary('Payment', payment)}")
                break


def _payment_pending(books: Books, item: Work, txn) -> Pending:
    order = item.order
    found = document_of(books.ledger, order.order_key)
    if found is None or found[0] != "Invoice":
        raise StepError("the order has no bound QuickBooks invoice to apply the payment to",
                        what_to_do="replay the invoice step first")
    customer_id = books.ledger.binding("quickbooks", "customer", customer_key(order))
    body = payment_body(order, txn, customer_id, found[1], books.gateway(txn.gateway),
                        home_currency=books.home_if_needed(order))

    def done(created: dict) -> Outcome:
        _bind_payment(books, item, txn, created)
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True)
    return Pending(item, "Payment", body, request_id(order.order_key, item.step), done)


def _bind_payment(books: Books, item: Work, txn, payment: dict) -> None:
    books.ledger.bind("quickbooks", "payment", f"{item.order.order_key}|{txn.source_transaction_id}", payment["Id"],
                      {"TotalAmt": str(payment.get("TotalAmt")), "gateway": txn.gateway})


def _refresh_invoices(books: Books, items: list[Work]) -> None:
    """Read back the invoices payments were applied to: Balance and SyncToken stay current."""
    wanted = {}
    for item in items:
        found = document_of(books.ledger, item.order.order_key)
        if found and found[0] == "Invoice":
            wanted[found[1]] = item.order.order_key
    if not wanted:
        return
    try:
        invoices = books.target.read_many("Invoice", sorted(wanted))
    except StepError:
        return  # the payments are bound; the balance is refreshed by the next payment or reconcile
    for invoice_id, invoice in invoices.items():
        bind_document(books, wanted[invoice_id], "Invoice", invoice)


# -- refunds ------------------------------------------------------------------------------

def run_refunds(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    entity = REFUND_ENTITY[books.settings.refunds]
    outcomes: dict[int, Outcome] = {}
    todo = []
    for item in work:
        refund_id = _target_id(item)
        refund = next((r for r in item.order.refunds if r.source_refund_id == refund_id), None)
        bound = books.ledger.binding("quickbooks", "refund", f"{item.order.order_key}|{refund_id}")
        if bound:
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=bound,
                                             response=f"already bound: refund document {bound}")
        elif refund is None:
            outcomes[item.step_id] = Outcome(item.step_id, "skipped", error=SkippableError(
                f"refund {refund_id} is no longer in the store's order", what_to_do="nothing"))
        elif document_of(books.ledger, item.order.order_key) is None:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=StepError(
                "the order has no bound QuickBooks document to refund", what_to_do="replay the document step first"))
        else:
            todo.append((item, refund))
    numbers = {}
    for item, refund in list(todo):
        try:
            numbers[item.step_id] = doc_number(item.order, books.prefix(item.order.store),
                                               f"-R{refund_index(item.order, refund)}")
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
            todo.remove((item, refund))
    retried = [(i, r) for i, r in todo if i.attempts > 1]
    if retried:
        found = books.target.find_by_doc_numbers(entity, [numbers[i.step_id] for i, _ in retried])
        for item, refund in retried:
            doc = found.get(numbers[item.step_id])
            note = (doc or {}).get("PrivateNote") or ""
            # The note names the refund itself: a DocNumber alone could be another refund's.
            if doc is not None and item.order.order_key in note and f"refund {refund.source_refund_id} " in note:
                _bind_refund(books, item, refund, entity, doc)
                outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=doc["Id"],
                                                 note="found by DocNumber",
                                                 response=f"found by probe: {summary(entity, doc)}")
    todo = [(i, r) for i, r in todo if i.step_id not in outcomes]
    if not todo:
        return stamp(work, outcomes)
    items = resolve(books, [i.order for i, _ in todo])
    pending = []
    for item, refund in todo:
        try:
            pending.append(_refund_pending(books, entity, item, refund, items, numbers[item.step_id]))
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
    outcomes.update(books.create_all(pending))
    return stamp(work, outcomes)


def _refund_pending(books: Books, entity: str, item: Work, refund, items, number: str) -> Pending:
    order = item.order
    original_entity, original_id, original = document_of(books.ledger, order.order_key)
    customer_id = books.ledger.binding("quickbooks", "customer", customer_key(order))
    refs = books.gateway(refund.gateway or _gateway_of(order))
    body = refund_body(order, refund, entity, customer_id, items, number, books.policy, refs,
                       {"kind": original_entity, "DocNumber": original.get("DocNumber")},
                       home_currency=books.home_if_needed(order))
    want = Expected(refund.amount.rounded().amount, cents(body["TxnTaxDetail"]["TotalTax"]))

    def done(created: dict) -> Outcome:
        _bind_refund(books, item, refund, entity, created, original_entity, original_id)
        note = _verify_refund(books, order, entity, created, want)
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True, note=note)
    return Pending(item, entity, body, request_id(order.order_key, item.step), done)


def _gateway_of(order) -> str | None:
    captured = [t for t in order.transactions if t.is_captured_money]
    return captured[0].gateway if captured else None


def _bind_refund(books: Books, item: Work, refund, entity: str, doc: dict, original_entity: str | None = None,
                 original_id: str | None = None) -> None:
    books.ledger.bind("quickbooks", "refund", f"{item.order.order_key}|{refund.source_refund_id}", doc["Id"], {
        "entity": entity, "DocNumber": doc.get("DocNumber"), "TotalAmt": str(doc.get("TotalAmt")),
        "original": {"entity": original_entity, "Id": original_id}})


def _verify_refund(books: Books, order, entity: str, doc: dict, want: Expected) -> str | None:
    total = cents(doc.get("TotalAmt"))
    if total == want.total:
        return None
    message = f"{entity} {doc.get('DocNumber')} totals {total} in QuickBooks; the store refunded {want.total}"
    books.ledger.record_event("total_mismatch", "recorded", order_key=order.order_key, step="quickbooks.refund",
                              detail=message)
    return "total mismatch: " + message

