"""Which steps an order needs, and what each waits for.

A step is planned once per order; re-planning a changed order only adds
the steps it did not need before (a payment once the order is paid).
Updating documents already booked is a later capability (issue 5).
"""

from __future__ import annotations

from connector.model import Order

# step -> the steps of the same order that must have ended (done or skipped) first
DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "hubspot.contact": (),
    "quickbooks.customer": (),
    "quickbooks.invoice": ("quickbooks.customer",),
    "quickbooks.payment": ("quickbooks.invoice",),
}
ORDER = tuple(DEPENDENCIES)


def steps_for(order: Order) -> list[str]:
    """The steps ``order`` needs now, in the order they run."""
    steps = ["hubspot.contact", "quickbooks.customer"]
    if order.cancelled_at is None:
        steps.append("quickbooks.invoice")
        if order.is_paid or not order.captured_total.is_zero():
            steps.append("quickbooks.payment")
    return steps
