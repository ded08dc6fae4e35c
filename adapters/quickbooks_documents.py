"""The sales document of an order (Invoice or SalesReceipt), its verification, and its void.

Document steps of a batch are created in batch calls of up to 30
(:meth:`Books.create_all`), each item with its DocNumber; an attempt after
a lost answer first probes by DocNumber (one query for the batch) and
binds what it finds (DESIGN.md guarantee 2). After each write the answer's
``TotalAmt`` and ``TxnTaxDetail.TotalTax`` are compared with the store's
(guarantee 4): a difference of at most one cent is absorbed by a rounding
line when ``quickbooks.rounding_item`` is set (recorded); any other
difference is recorded as an event ``total_mismatch`` and in the binding's
``Mismatch`` detail with both figures, and the step still ends ``done``
so the order is not blocked.

Void (order cancelled): sent with the SyncToken we last saw. On 5010 the
document is re-read: when the fields we booked (customer, number, lines,
totals) are unchanged, only our own payments moved the token, so the void
is retried once with the fresh token; otherwise a person edited the
document in QuickBooks and the step is held for review (dead, code
``held_for_review``), never overwritten (peers.md pain point 4).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from adapters.quickbooks import STALE_OBJECT
from adapters.quickbooks_items import resolve
from adapters.quickbooks_runner import Books, Pending, stamp, summary
from connector.errors import PermanentError, SkippableError, StepError
from connector.events import error_answer, payload_hash
from connector.protocols import Outcome, Work
from mappings.quickbooks_documents import customer_key, doc_number, request_id
from mappings.quickbooks_money import main_gateway, receipt_payment_fields
from mappings.quickbooks_sales import (
    Expected,
    cents,
    document_body,
    expected,
    sales_line,
    shipping_details,
)

ENTITY = {"quickbooks.invoice": "Invoice", "quickbooks.sales_receipt": "SalesReceipt"}
BINDING = {"Invoice": "invoice", "SalesReceipt": "sales_receipt"}
ROUNDING_LIMIT = Decimal("0.01")


def document_of(ledger, order_key: str) -> tuple[str, str, dict] | None:
    """``(entity, id, details)`` of the order's bound sales document, if any."""
    for entity, kind in BINDING.items():
        bound = ledger.binding("quickbooks", kind, order_key)
        if bound:
            return entity, bound, ledger.binding_details("quickbooks", kind, order_key) or {}
    return None


def fingerprint(doc: dict) -> str:
    """A hash of the fields the connector booked; a person's edit changes it, a payment does not."""
    lines = [(line.get("DetailType"), str(cents(line.get("Amount"))),
              ((line.get("SalesItemLineDetail") or {}).get("ItemRef") or {}).get("value"))
             for line in doc.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
    parts = [(doc.get("CustomerRef") or {}).get("value"), doc.get("DocNumber"), str(cents(doc.get("TotalAmt"))),
             str(cents((doc.get("TxnTaxDetail") or {}).get("TotalTax"))), lines]
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def bind_document(books: Books, order_key: str, entity: str, doc: dict, extra: dict | None = None) -> dict:
    """Bind (or refresh) the order's document with what the HubSpot write-back reads."""
    kind = BINDING[entity]
    details = books.ledger.binding_details("quickbooks", kind, order_key) or {}
    details.update({"DocNumber": doc.get("DocNumber"), "TotalAmt": str(doc.get("TotalAmt")),
                    "Balance": str(doc.get("Balance")), "SyncToken": doc.get("SyncToken"),
                    "TotalTax": str((doc.get("TxnTaxDetail") or {}).get("TotalTax", "0")),
                    "Currency": (doc.get("CurrencyRef") or {}).get("value"), "Fingerprint": fingerprint(doc)})
    details.update(extra or {})
    books.ledger.bind("quickbooks", kind, order_key, doc["Id"], details)
    return details


# -- create -------------------------------------------------------------------------------

def run_documents(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    entity = ENTITY[kind]
    outcomes: dict[int, Outcome] = {}
    todo: list[Work] = []
    for item in work:
        existing = document_of(books.ledger, item.order.order_key)
        if existing and existing[0] == entity:
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=existing[1], response=(
                f"already bound: {entity} {existing[1]} DocNumber {existing[2].get('DocNumber')}"))
        elif existing:
            outcomes[item.step_id] = Outcome(item.step_id, "skipped", error=SkippableError(
                f"the order is already booked as {existing[0]} {existing[2].get('DocNumber')}; not booking a "
                f"{entity} too", what_to_do="nothing; the first document stands"))
        else:
            todo.append(item)
    numbers = {}
    for item in list(todo):
        try:
            numbers[item.step_id] = doc_number(item.order, books.prefix(item.order.store))
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
            todo.remove(item)
    _probe(books, entity, todo, numbers, outcomes)
    todo = [w for w in todo if w.step_id not in outcomes]
    if not todo:
        return stamp(work, outcomes)
    items = resolve(books, [w.order for w in todo])
    pending = []
    for item in todo:
        try:
            pending.append(_pending(books, entity, item, items, numbers[item.step_id]))
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
    outcomes.update(books.create_all(pending))
    return stamp(work, outcomes)


def _probe(books: Books, entity: str, todo: list[Work], numbers: dict, outcomes: dict) -> None:
    """After an attempt whose answer may be lost, look for the document before creating it again."""
    retried = [w for w in todo if w.attempts > 1]
    if not retried:
        return
    found = books.target.find_by_doc_numbers(entity, [numbers[w.step_id] for w in retried])
    for item in retried:
        doc = found.get(numbers[item.step_id])
        if doc is not None and item.order.order_key in (doc.get("PrivateNote") or ""):
            bind_document(books, item.order.order_key, entity, doc)
            outcomes[item.step_id] = Outcome(item.step_id, "done", external_id=doc["Id"], note="found by DocNumber",
                                             response=f"found by probe: {summary(entity, doc)}")
        elif doc is not None:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=PermanentError(
                f"DocNumber {numbers[item.step_id]} is used by another {entity} ({doc['Id']}) not booked for "
                f"{item.order.order_key}", system="quickbooks", code="doc_number_taken",
                what_to_do="renumber that document in QuickBooks or change the store's doc_number_prefix; "
                           "then replay"))


def _pending(books: Books, entity: str, item: Work, items, number: str) -> Pending:
    order = item.order
    customer_id = books.ledger.binding("quickbooks", "customer", customer_key(order))
    if customer_id is None:
        raise StepError("the order's QuickBooks customer is not bound", what_to_do="replay the customer step")
    body = document_body(order, customer_id, items, number, books.policy,
                         home_currency=books.home_if_needed(order), ship=shipping_details(order))
    if entity == "SalesReceipt":
        body.update(receipt_payment_fields(order, books.gateway(main_gateway(order))))
    want = expected(order)

    def done(created: dict) -> Outcome:
        details = bind_document(books, order.order_key, entity, created)
        note = verify(books, order, entity, created, want, items.rounding, details)
        return Outcome(item.step_id, "done", external_id=created["Id"], created=True, note=note)
    return Pending(item, entity, body, request_id(order.order_key, f"quickbooks.{BINDING[entity]}"), done)


# -- verify -------------------------------------------------------------------------------

def verify(books: Books, order, entity: str, doc: dict, want: Expected, rounding_item: str | None,
           details: dict) -> str | None:
    """Compare the document with the store; absorb ≤ 1 cent when configured; record any mismatch."""
    total, tax = cents(doc.get("TotalAmt")), cents((doc.get("TxnTaxDetail") or {}).get("TotalTax"))
    if total == want.total and tax == want.tax:
        return None
    difference = want.total - total
    if rounding_item and tax == want.tax and 0 < abs(difference) <= ROUNDING_LIMIT:
        lines = [line for line in doc.get("Line") or [] if line.get("DetailType") != "SubTotalLineDetail"]
        lines.append(sales_line(difference, rounding_item, "Rounding", 1, difference,
                                {"value": "NON"} if books.policy.mode == "us" else
                                {"value": books.policy.exempt_code or "NON"}))
        updated = books.target.update(entity, {"Id": doc["Id"], "SyncToken": doc["SyncToken"], "sparse": True,
                                               "Line": lines},
                                      request_id(order.order_key, f"quickbooks.{BINDING[entity]}.rounding"))
        bind_document(books, order.order_key, entity, updated, {"Rounding": str(difference)})
        books.ledger.record_event("rounding", "recorded", order_key=order.order_key,
                                  step=f"quickbooks.{BINDING[entity]}",
                                  detail=f"{entity} {doc.get('DocNumber')}: rounding line {difference} "
                                         f"{order.currency} brings {total} to the store's {want.total}")
        return f"rounding line {difference}"
    mismatch = {"qbo_total": str(total), "store_total": str(want.total), "qbo_tax": str(tax),
                "store_tax": str(want.tax), "currency": order.currency}
    books.ledger.bind("quickbooks", BINDING[entity], order.order_key, doc["Id"], {**details, "Mismatch": mismatch})
    message = (f"{entity} {doc.get('DocNumber')} totals {total} (tax {tax}) in QuickBooks; the store says "
               f"{want.total} (tax {want.tax}) {order.currency}")
    books.ledger.record_event("total_mismatch", "recorded", order_key=order.order_key,
                              step=f"quickbooks.{BINDING[entity]}", detail=message)
    return "total mismatch: " + message


# -- void ---------------------------------------------------------------------------------

def run_voids(books: Books, kind: str, work: list[Work]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    for item in work:
        try:
            outcomes[item.step_id] = _void(books, item)
        except StepError as exc:
            outcomes[item.step_id] = Outcome(item.step_id, "failed", error=exc)
    return stamp(work, outcomes)


def _void(books: Books, item: Work) -> Outcome:
    order = item.order
    found = document_of(books.ledger, order.order_key)
    if found is None:
        raise StepError("the order has no bound QuickBooks document to void",
                        what_to_do="replay the document step first")
    entity, doc_id, details = found
    if details.get("Voided"):
        return Outcome(item.step_id, "done", external_id=doc_id,
                       response=f"already voided: {entity} {doc_id} DocNumber {details.get('DocNumber')}")
    rid = request_id(order.order_key, "quickbooks.void")
    token = details.get("SyncToken") or "0"
    body = {"Id": doc_id, "SyncToken": token, "sparse": True}
    answer = "voided"
    try:
        voided = books.target.update(entity, body, rid, void=True)
    except PermanentError as exc:
        if exc.code != str(STALE_OBJECT):
            raise
        current = books.target.read(entity, doc_id)
        stale = f"{error_answer(exc) or exc}; re-read SyncToken {current.get('SyncToken')}"
        if (current.get("PrivateNote") or "").startswith("Voided"):
            voided, answer = current, f"{stale}, found voided"
        elif fingerprint(current) != details.get("Fingerprint"):
            books.ledger.record_event("held_for_review", "dead", order_key=order.order_key, step=item.step,
                                      detail=f"{entity} {details.get('DocNumber')} was edited in QuickBooks")
            held = PermanentError(
                f"{entity} {details.get('DocNumber')} was edited in QuickBooks after it was booked; the "
                "connector does not overwrite a person's changes", system="quickbooks", code="held_for_review",
                what_to_do=f"review {entity} {details.get('DocNumber')} in QuickBooks and void it there if the "
                           "order is cancelled, then mark this step resolved (or replay)")
            held.__cause__ = exc
            return Outcome(item.step_id, "failed", error=held, payload_hash=payload_hash(body), request_id=rid,
                           response=f"{stale}, edited since booked: {summary(entity, current)}")
        else:
            # Only our own writes (payments) moved the SyncToken: retry once with the fresh one.
            body, rid = {"Id": doc_id, "SyncToken": current["SyncToken"], "sparse": True}, rid + "-2"
            voided = books.target.update(entity, body, rid, void=True)
            answer = f"{stale}, voided"
    bind_document(books, order.order_key, entity, voided, {"Voided": True})
    return Outcome(item.step_id, "done", external_id=doc_id, created=True, note="voided",
                   payload_hash=payload_hash(body), request_id=rid, response=f"{answer}: {summary(entity, voided)}")
