"""Which steps an order needs, and what each waits for.

A step is named ``<kind>`` or ``<kind>:<id>`` when an order can need several
of a kind (one payment per captured transaction, one refund document per
refund). Planning only adds steps: a changed order gains what it did not
need before (a payment once paid, a refund, a void once cancelled); steps
already planned keep their state.

Kinds run in the order of :data:`KINDS`, so a step's dependencies (always
of an earlier kind) are settled before it is tried in the same pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from connector.model import Order

KINDS = (
    "hubspot.contact",
    "quickbooks.customer",
    "quickbooks.invoice",
    "quickbooks.sales_receipt",
    "quickbooks.payment",
    "quickbooks.refund",
    "quickbooks.void",
    "hubspot.deal",
    "hubspot.deal_sync",
)
DOCUMENTS = ("quickbooks.invoice", "quickbooks.sales_receipt")


@dataclass(frozen=True)
class PlannedStep:
    name: str
    depends_on: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return kind_of(self.name)


def kind_of(step: str) -> str:
    return step.split(":", 1)[0]


CHECKOUT_WINDOW = timedelta(hours=1)


def paid_at_checkout(order: Order) -> bool:
    """Captured in full when it was placed (within the hour): what a sales receipt records.

    An order paid later (cash on delivery, invoice terms) is an invoice and a payment instead.
    """
    captured = [t for t in order.transactions if t.is_captured_money]
    if not order.is_paid or order.total.is_zero() or not captured:
        return False
    if order.captured_total.rounded().amount < order.total.rounded().amount:
        return False
    return all(t.processed_at is None or t.processed_at - order.created_at <= CHECKOUT_WINDOW for t in captured)


def steps_for(order: Order, posting: str = "invoice", planned: set[str] | frozenset = frozenset()) -> list[PlannedStep]:
    """The steps ``order`` needs now, in the order they run.

    Args:
        order: the latest canonical snapshot.
        posting: the store's posting mode, ``invoice`` (invoice + payments) or
            ``sales_receipt`` (a sales receipt for orders paid at checkout;
            anything else still gets an invoice).
    """
    steps = [PlannedStep("hubspot.contact"), PlannedStep("quickbooks.customer")]
    customer = ("quickbooks.customer",)
    if "quickbooks.invoice" in planned:
        document = "quickbooks.invoice"
    elif "quickbooks.sales_receipt" in planned:
        document = "quickbooks.sales_receipt"
    else:
        document = "quickbooks.sales_receipt" if posting == "sales_receipt" and paid_at_checkout(order) \
            else "quickbooks.invoice"
    steps.append(PlannedStep(document, customer))
    if document == "quickbooks.invoice":
        for txn in order.transactions:
            if txn.is_captured_money and not txn.amount.is_zero():
                steps.append(PlannedStep(f"quickbooks.payment:{txn.source_transaction_id}", (document,)))
    for refund in order.refunds:
        if not refund.amount.is_zero():
            steps.append(PlannedStep(f"quickbooks.refund:{refund.source_refund_id}", (document,)))
    if order.cancelled_at is not None and not any(t.is_captured_money and not t.amount.is_zero()
                                                  for t in order.transactions):
        # Only a document no money was taken for is voided. QuickBooks refuses to void an invoice a
        # payment settles, and a paid, cancelled order books its money back through its refunds:
        # voiding the document as well would take the sale off twice.
        steps.append(PlannedStep("quickbooks.void", (document,)))
    # The deal does not wait for QuickBooks (an accounting outage must not hide sales from the CRM);
    # a second step writes the document number and balance back once the books have them. Its name
    # counts the booking steps, so each new payment, refund or void plans one more write-back.
    booked = tuple(s.name for s in steps if s.kind.startswith("quickbooks.") and s.kind != "quickbooks.customer")
    steps.append(PlannedStep("hubspot.deal", ("hubspot.contact",)))
    steps.append(PlannedStep(f"hubspot.deal_sync:{len(booked)}", ("hubspot.deal",) + booked))
    return steps
